/* The lifetime rule (engine/lifetime.c) for each provider's case: STS's 900 s
 * minimum (botocore's refresh window), AOS's 2 s, a Redfish BMC's idle
 * timeout (no minimum), OAuth 2.0's 10 s; then properties over many
 * lifetimes. Times are relative to an issue time T. */
#include <stdio.h>

#include "engine/lifetime.h"
#include "tap.h"

#define T 1800000000
#define MARGIN 300 /* refresh_margin's default */

static void walk(const char *what, time_t lifetime, int min_validity, time_t serve_until, time_t due)
{
	time_t exp = T + lifetime;

	is_int(lifetime_serve_until(T, exp, min_validity), serve_until, "%s: served until T+%ld", what,
	       (long)(serve_until - T));
	ok(lifetime_usable(T, exp, min_validity, serve_until - 1), "%s: served 1 s before that", what);
	ok(!lifetime_usable(T, exp, min_validity, serve_until), "%s: not served from then on", what);
	is_int(lifetime_renewal_due(T, exp, min_validity, MARGIN, T), due, "%s: renewed at T+%ld", what,
	       (long)(due - T));
}

int main(void)
{
	plan(-1);

	/* STS: 900 s minimum. The shortest credential AWS issues can never
	 * have 900 s left: served for half its life, renewed halfway there. */
	walk("STS 900 s", 900, 900, T + 450, T + 225);
	/* 12 h: served until 15 min are left, renewed 20 min before expiry. */
	walk("STS 43200 s", 43200, 900, T + 43200 - 900, T + 43200 - 1200);
	walk("STS 3600 s", 3600, 900, T + 2700, T + 2400);

	/* AOS: 2 s minimum; a 24 h JWT, and a 100 s one. */
	walk("AOS 86400 s", 86400, 2, T + 86398, T + 86398 - MARGIN);
	walk("AOS 100 s", 100, 2, T + 98, T + 49);
	/* 3 s: floor 1 s, and renewal waits the 1 s between two renewals. */
	walk("AOS 3 s", 3, 2, T + 2, T + 1);

	/* Redfish: no minimum, the lifetime is the idle timeout counted from
	 * the last keep-alive: a 30 s timeout gets a keep-alive every 15 s. */
	walk("Redfish idle 30 s", 30, 0, T + 30, T + 15);
	walk("Redfish idle 1800 s", 1800, 0, T + 1800, T + 1500);

	/* OAuth 2.0: 10 s minimum (golang.org/x/oauth2's expiryDelta). */
	walk("OAuth2 3600 s", 3600, 10, T + 3590, T + 3290);
	walk("OAuth2 20 s", 20, 10, T + 10, T + 5);

	/* No expiry: always served, never renewed by the clock. */
	is_int(lifetime_serve_until(T, 0, 900), 0, "no expiry: no serve limit");
	ok(lifetime_usable(T, 0, 900, T + 1000000), "no expiry: served");
	is_int(lifetime_renewal_due(T, 0, 900, MARGIN, T), 0, "no expiry: no renewal");

	/* Never twice within a second: the last renewal was just now. */
	is_int(lifetime_renewal_due(T, T + 900, 900, MARGIN, T + 225), T + 226, "renewal 1 s after the last one");
	/* A session that arrives with 1 s of life: floor 0, due in 1 s. */
	is_int(lifetime_renewal_due(T, T + 1, 900, MARGIN, T), T + 1, "1 s session: renewal in 1 s, not at once");

	/* Properties, for every lifetime up to 2 days and each minimum: the
	 * floor is at most half the life; renewal comes after issue and no
	 * later than the end of service; a session is served for at least
	 * half its life. */
	{
		static const int mins[] = { 0, 2, 10, 900 };
		unsigned bad = 0;
		for (size_t m = 0; m < 4; m++) {
			for (time_t l = 2; l <= 172800; l += l < 2000 ? 1 : 97) {
				time_t until = lifetime_serve_until(T, T + l, mins[m]);
				time_t due = lifetime_renewal_due(T, T + l, mins[m], MARGIN, T);
				bad += lifetime_floor(T, T + l, mins[m]) > l / 2;
				bad += due < T + LIFETIME_MIN_RENEW_INTERVAL || due > until;
				bad += until - T < l - l / 2;
			}
		}
		is_int(bad, 0, "properties hold over lifetimes 2 s .. 2 days for minimums 0, 2, 10, 900");
	}
	return done();
}
