/* The lifetime rule (README, "How sessions are kept"), as pure functions of
 * a session's times: no lock, no clock, no target. A session of lifetime L
 * is served while more than floor = min(min_validity, L/2) seconds are left,
 * and renewed min(margin, (L - floor)/2) seconds before that floor, never
 * within MIN_RENEW_INTERVAL of the last renewal. */
#pragma once

#include <stdbool.h>
#include <time.h>

#define LIFETIME_MIN_RENEW_INTERVAL 1 /* seconds between two renewals of one session */

/* Seconds before expiry from which a session is no longer served. A session
 * that can never meet the minimum (a 900 s credential against a 15-minute
 * minimum) is served for half its life instead of being replaced in a loop. */
time_t lifetime_floor(time_t obtained_at, time_t expires_at, int min_validity);
/* The last moment the session may be served; 0: no expiry. */
time_t lifetime_serve_until(time_t obtained_at, time_t expires_at, int min_validity);
/* Is it still to be served at now? A session without expiry always is. */
bool lifetime_usable(time_t obtained_at, time_t expires_at, int min_validity, time_t now);
/* When renewal is due (0: never, no expiry); last_renew is the last login or
 * in-place renewal. */
time_t lifetime_renewal_due(time_t obtained_at, time_t expires_at, int min_validity, int margin, time_t last_renew);
