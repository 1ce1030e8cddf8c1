/* Fleet mode: a login that failed (the server down, erroring, or issuing
 * sessions already expired) is recorded beside the target's session key,
 * sealed, with the time before which no node logs in again: 1, 2, 4 ... 60 s
 * after failures in a row, on etcd's clock. Reads on every node get the
 * error at once meanwhile. The lock's release writes it and the next
 * publish removes it, so it costs no request of its own; every node learns
 * it from the watch. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "backoff.h"
#include "internal.h"

#define BACKOFF_MAX 60 /* seconds */

char *fleet_backoff_key(const char *key)
{
	char *k;

	return asprintf(&k, "%s/backoff", key) < 0 ? NULL : k;
}

char *fleet_backoff_key_b64(const char *key)
{
	_cleanup_free_ char *bkey = fleet_backoff_key(key);

	return bkey ? etcd_b64(bkey, strlen(bkey)) : NULL;
}

bool fleet_is_backoff_key(const char *session_key, const char *key)
{
	size_t len = strlen(session_key);

	return strncmp(key, session_key, len) == 0 && strcmp(key + len, "/backoff") == 0;
}

static time_t fleet_now(const struct fleet *f)
{
	return now_real() + etcd_clock_skew(f->etcd);
}

int fleet_backoff_record(struct auth_target *t, const struct auth_ctx *ctx, const char *key, int r, char **ret_b64)
{
	struct fleet_target *ft = target_fleet(t);
	struct fleet *f = fleet_of(t);
	_cleanup_free_ char *bkey = NULL;
	json_int_t failures = 1;
	time_t delay;

	if (r == -EKEYREJECTED || r == -ENOKEY || r == -ENOMEM || r == -ECANCELED || r == -EHOSTDOWN) {
		return -EINVAL;
	}
	pthread_mutex_lock(&ft->lock);
	if (ft->backoff) {
		failures += json_integer_value(json_object_get(ft->backoff, "k"));
	}
	pthread_mutex_unlock(&ft->lock);
	delay = failures > 6 ? BACKOFF_MAX : (time_t)1 << (failures - 1);
	if (delay > BACKOFF_MAX) {
		delay = BACKOFF_MAX;
	}
	bkey = fleet_backoff_key(key);
	if (!bkey) {
		return -ENOMEM;
	}
	return fleet_seal_value(f, bkey,
				json_pack("{s:i, s:s, s:s, s:I, s:I}", "e", -r, "m", ctx->error, "n", f->node, "k", failures,
					  "u", (json_int_t)(fleet_now(f) + delay)),
				ret_b64);
}

void fleet_backoff_seen(struct auth_target *t, const char *key, const char *value_b64)
{
	struct fleet_target *ft = target_fleet(t);
	json_t *record = NULL;

	if (value_b64 && fleet_open_value(fleet_of(t), key, value_b64, &record) < 0) {
		record = NULL; /* one that does not open backs nothing off */
	}
	pthread_mutex_lock(&ft->lock);
	json_decref(ft->backoff);
	ft->backoff = record;
	pthread_mutex_unlock(&ft->lock);
}

int fleet_backoff_check(struct auth_target *t, struct auth_ctx *ctx)
{
	struct fleet_target *ft = target_fleet(t);
	struct fleet *f = fleet_of(t);
	json_auto_t *record = NULL;
	time_t until;
	char when[21];

	pthread_mutex_lock(&ft->lock);
	record = json_incref(ft->backoff);
	pthread_mutex_unlock(&ft->lock);
	until = record ? (time_t)json_integer_value(json_object_get(record, "u")) : 0;
	if (!record || fleet_now(f) >= until || json_integer_value(json_object_get(record, "e")) <= 0) {
		return 0;
	}
	return auth_ctx_fail(ctx, -(int)json_integer_value(json_object_get(record, "e")),
			     "%s (node %s's login; the fleet tries again after %s)",
			     json_string_value(json_object_get(record, "m")) ?: "the login failed",
			     json_string_value(json_object_get(record, "n")) ?: "?",
			     format_iso8601(until - etcd_clock_skew(f->etcd), when));
}
