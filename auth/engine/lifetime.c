/* The lifetime rule: when a session is served, and when it is renewed. */
#include "lifetime.h"

time_t lifetime_floor(time_t obtained_at, time_t expires_at, int min_validity)
{
	time_t lifetime = expires_at - obtained_at;
	time_t half = lifetime > 0 ? lifetime / 2 : 0;

	return min_validity < half ? min_validity : half;
}

time_t lifetime_serve_until(time_t obtained_at, time_t expires_at, int min_validity)
{
	return expires_at ? expires_at - lifetime_floor(obtained_at, expires_at, min_validity) : 0;
}

bool lifetime_usable(time_t obtained_at, time_t expires_at, int min_validity, time_t now)
{
	return expires_at == 0 || lifetime_serve_until(obtained_at, expires_at, min_validity) > now;
}

/* Renewal starts margin before the floor is reached, but no earlier than
 * halfway between issue and floor, and never within a second of the last
 * renewal: however short the lifetime, renewals can't run back to back. */
time_t lifetime_renewal_due(time_t obtained_at, time_t expires_at, int min_validity, int margin, time_t last_renew)
{
	time_t floor, ahead, due;

	if (!expires_at) {
		return 0;
	}
	floor = lifetime_floor(obtained_at, expires_at, min_validity);
	ahead = (expires_at - obtained_at - floor) / 2;
	if (margin < ahead) {
		ahead = margin;
	}
	due = expires_at - floor - ahead;
	return due > last_renew + LIFETIME_MIN_RENEW_INTERVAL ? due : last_renew + LIFETIME_MIN_RENEW_INTERVAL;
}
