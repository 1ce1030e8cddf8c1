/* The fleet-wide single flight: a node that needs a session reads the
 * target's key; if the fleet has a newer one it adopts it. Otherwise it takes
 * the lock (a txn: create if absent and nobody published meanwhile), logs in
 * and publishes with a txn fenced on its lock, which also deletes the lock.
 * The others wait for the watch (watch.c). */
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "backoff.h"
#include "reconcile.h"
#include "reject.h"
#include "lib/log.h"

/* What one step of fleet_flight_begin came to, besides -errno. */
enum {
	LEAD = 0,  /* this node holds the fleet lock: it logs in or renews */
	ADOPT = 1, /* the fleet has a newer session: adopt it */
	WAIT = 2,  /* another node holds the lock: wait for what it publishes */
	ALONE = 3, /* the store is down and on_store_down = local: log in alone */
	GO_ON = 4, /* nothing decided yet: the next step */
};

/* A request to the store failed: ALONE, or -errno (message in ctx). */
static int store_failure(struct auth_target *t, struct auth_ctx *ctx, int r, const char *err)
{
	struct fleet *f = fleet_of(t);

	if (r != -EHOSTDOWN) {
		return auth_ctx_fail(ctx, r, "fleet store (etcd): %s", err);
	}
	if (f->on_down == DOWN_LOCAL && !(target_provider(t)->needs_one_time && target_provider(t)->needs_one_time(target_info(t)))) {
		pthread_mutex_lock(&f->lock);
		if (!f->warned_local) {
			log_warning("Fleet store down: logging in locally (on_store_down = local); BMC slots may run out");
			f->warned_local = true;
		}
		pthread_mutex_unlock(&f->lock);
		return ALONE;
	}
	return auth_ctx_fail(ctx, -EHOSTDOWN, "fleet store (etcd) unavailable, no new session until it is back "
			     "(on_store_down = %s): %s", fleet_down_modes[f->on_down], err);
}

static bool store_down(struct fleet *f)
{
	bool down;

	pthread_mutex_lock(&f->lock);
	down = f->down;
	pthread_mutex_unlock(&f->lock);
	return down;
}

/* Is s (the fleet's) newer than current (this node's)? */
static bool newer(const struct auth_session *s, const struct auth_session *current)
{
	return !current || !secret_equal(s->token, current->token) || s->expires_at > current->expires_at ||
	       s->obtained_at > current->obtained_at;
}

/* One fleet_flight_begin: the target, what the node has, the keys it uses. */
struct begin {
	struct auth_target *t;
	struct auth_ctx *ctx;
	const struct auth_session *current;
	char *key, *lock_key;
	int64_t ended_mod;     /* the value this node ended: never adopted */
	int64_t known_mod;     /* renewing: the revision of the value this node has */
};

static void begin_done(struct begin *b)
{
	free(b->key);
	free(b->lock_key);
}

/* The key's value kv (mod: what this node asked about): ADOPT with *ret when
 * it is a session to adopt, GO_ON when not, -EKEYREJECTED when it records
 * the refusal of these credentials, -EBADMSG when it does not open. */
static int open_kv(struct begin *b, const json_t *kv, int64_t mod, struct auth_session **ret)
{
	struct fleet_target *ft = target_fleet(b->t);
	int64_t kv_mod = etcd_int(kv, "mod_revision");
	struct auth_session *s = NULL;
	int r;

	if (!kv || kv_mod == mod || kv_mod == b->ended_mod) {
		return GO_ON; /* one ended here while the store was down is as good as gone */
	}
	r = fleet_open_for(b->t, b->ctx, b->key, json_string_value(json_object_get(kv, "value")) ?: "", &s);
	if (r == -ENOENT) {
		return GO_ON; /* another's refused login: this node may try its own */
	}
	if (r < 0) {
		return r;
	}
	if (!fleet_of(b->t)->engine->can_serve(b->t, s) || !newer(s, b->current)) {
		auth_session_free(s);
		return GO_ON;
	}
	fleet_target_seen(ft, kv_mod);
	*ret = s;
	return ADOPT;
}

/* Reads the target's key: ADOPT with *ret when the fleet has a session this
 * node should adopt, GO_ON when not (*ret_mod: the key's revision, 0 if
 * absent), ALONE, or -errno. */
static int look(struct begin *b, int64_t *ret_mod, struct auth_session **ret)
{
	json_auto_t *reply = NULL;
	json_t *kv;
	char err[256];
	int r;

	r = fleet_call(fleet_of(b->t), "kv/range", etcd_key(b->key, false), REQUEST_TIMEOUT_MS, &reply, err, sizeof(err));
	if (r < 0) {
		return store_failure(b->t, b->ctx, r, err);
	}
	kv = fleet_first_kv(reply);
	*ret_mod = etcd_int(kv, "mod_revision");
	r = open_kv(b, kv, 0, ret);
	if (r < 0 && r != -EKEYREJECTED) {
		return auth_ctx_fail(b->ctx, -EBADMSG, "the fleet's session for this target does not decrypt with "
				     "key_file (key id %s): wrong key, or rotated without keeping the old one",
				     fleet_keys_id(fleet_of(b->t)->keys));
	}
	return r;
}

/* The lock txn: create it under our lease if absent and nobody published
 * since mod. 1 when taken (*ret_rev: its revision), 0 when not (*ret_kv:
 * the value found). */
static int take_lock(struct auth_target *t, const char *lock_key, const char *key, int64_t mod, int64_t *ret_rev,
		     json_t **ret_kv, char *err, size_t size)
{
	struct fleet *f = fleet_of(t);
	_cleanup_free_ char *k = etcd_b64(lock_key, strlen(lock_key)), *v = etcd_b64(f->node, strlen(f->node));
	_cleanup_free_ char *vk = etcd_b64(key, strlen(key));
	json_auto_t *reply = NULL;
	json_t *body;
	char lease[24];
	int r;

	pthread_mutex_lock(&f->lock);
	snprintf(lease, sizeof(lease), "%lld", (long long)f->lease);
	pthread_mutex_unlock(&f->lock);
	if (strcmp(lease, "0") == 0) {
		/* Never a lock without a lease: it would outlive this node. */
		snprintf(err, size, "no lease from etcd yet");
		return -EHOSTDOWN;
	}
	if (!vk) {
		return -ENOMEM;
	}
	/* Failing, it reads the value: whoever changed it, this node adopts it. */
	body = json_pack("{s:[o,o], s:[{s:{s:s, s:s, s:s}}], s:[{s:{s:s}}]}", "compare",
			 fleet_compare(lock_key, "CREATE", "create_revision", 0), fleet_compare(key, "MOD", "mod_revision", mod),
			 "success", "request_put", "key", k, "value", v, "lease", lease, "failure", "request_range", "key", vk);
	r = fleet_call(f, "kv/txn", body, REQUEST_TIMEOUT_MS, &reply, err, size);
	if (r < 0) {
		return r;
	}
	r = json_is_true(json_object_get(reply, "succeeded"));
	*ret_rev = etcd_int(json_object_get(reply, "header"), "revision");
	if (!r) {
		*ret_kv = json_incref(fleet_first_kv(json_object_get(json_array_get(json_object_get(reply, "responses"), 0),
							     "response_range")));
	}
	return r;
}

/* One try at t's lock: LEAD (taken), ADOPT (*ret: what was published
 * meanwhile), WAIT (held by another node), ALONE, or -errno. */
static int try_lock(struct begin *b, struct auth_session **ret)
{
	struct auth_target *t = b->t;
	struct fleet_target *ft = target_fleet(t);
	int64_t mod = 0, lock_rev = 0;
	json_auto_t *kv = NULL;
	char err[256] = "";
	int r;

	if (b->known_mod > 0) {
		/* Renewing what this node has: the lock txn checks that the value
		 * is still that one (no read first). */
		mod = TAKE_INT(b->known_mod);
	} else if ((r = look(b, &mod, ret)) != GO_ON) {
		return r;
	}
	r = take_lock(t, b->lock_key, b->key, mod, &lock_rev, &kv, err, sizeof(err));
	if (r < 0) {
		return store_failure(t, b->ctx, r, err);
	}
	if (r == 0) {
		r = open_kv(b, kv, mod, ret);
		return r == ADOPT || r == -EKEYREJECTED ? r : WAIT;
	}
	pthread_mutex_lock(&ft->lock);
	ft->leading = true;
	ft->lock_rev = lock_rev;
	snprintf(ft->holder, sizeof(ft->holder), "%s", fleet_of(t)->node);
	pthread_mutex_unlock(&ft->lock);
	return LEAD;
}

/* Waits until the watch brings an event on t's keys (true) or until passes. */
static bool wait_target(struct fleet *f, struct auth_target *t, uint64_t seen, double until)
{
	struct fleet_target *ft = target_fleet(t);
	struct timespec ts = { .tv_sec = (time_t)until, .tv_nsec = (long)((until - (double)(time_t)until) * 1e9) };
	bool changed = false;

	for (;;) {
		uint64_t global;
		pthread_mutex_lock(&f->lock);
		global = f->events; /* before looking at t: no event slips in between */
		pthread_mutex_unlock(&f->lock);
		pthread_mutex_lock(&ft->lock);
		changed = ft->events != seen;
		pthread_mutex_unlock(&ft->lock);
		if (changed || now_mono() >= until || __atomic_load_n(&f->stopping, __ATOMIC_RELAXED)) {
			return changed;
		}
		pthread_mutex_lock(&f->lock);
		while (f->events == global && !f->stopping &&
		       pthread_cond_timedwait(&f->event, &f->lock, &ts) != ETIMEDOUT) {
		}
		pthread_mutex_unlock(&f->lock);
	}
}

/* What the watch delivered for t's key: ADOPT with *ret when it is a session
 * to adopt (no request to etcd needed), -EKEYREJECTED when it records the
 * refusal of these credentials, else GO_ON. */
static int from_watch(struct begin *b, struct auth_session **ret)
{
	struct auth_target *t = b->t;
	struct fleet_target *ft = target_fleet(t);
	json_auto_t *kv = NULL;
	int r;

	pthread_mutex_lock(&ft->lock);
	if (ft->seen_value && strcmp(ft->key, b->key) == 0) {
		kv = json_pack("{s:s, s:I}", "value", ft->seen_value, "mod_revision", (json_int_t)ft->seen_mod);
	}
	pthread_mutex_unlock(&ft->lock);
	r = kv ? open_kv(b, kv, 0, ret) : GO_ON;
	return r == ADOPT || r == -EKEYREJECTED ? r : GO_ON;
}

/* Someone else holds t's lock, as far as the watch knows. */
static bool locked_elsewhere(struct fleet *f, struct auth_target *t)
{
	struct fleet_target *ft = target_fleet(t);
	bool r;

	pthread_mutex_lock(&ft->lock);
	r = ft->holder[0] && strcmp(ft->holder, f->node) != 0;
	pthread_mutex_unlock(&ft->lock);
	return r;
}

static uint64_t target_events(struct auth_target *t)
{
	struct fleet_target *ft = target_fleet(t);
	uint64_t n;

	pthread_mutex_lock(&ft->lock);
	n = ft->events;
	pthread_mutex_unlock(&ft->lock);
	return n;
}

/* Takes the lock, or waits for the node that holds it to publish, until
 * deadline: LEAD, ADOPT (*ret), ALONE or -errno. *waited: it waited. */
static int contend(struct begin *b, double deadline, bool *waited, struct auth_session **ret)
{
	struct fleet *f = fleet_of(b->t);
	bool woken = true; /* at first, trust the watch as if just woken */

	for (;;) {
		uint64_t seen = target_events(b->t);
		int r;

		if (woken && locked_elsewhere(f, b->t)) {
			r = WAIT; /* the holder will publish: nothing to ask etcd yet */
		} else {
			r = try_lock(b, ret);
		}
		if (r != WAIT) {
			return r;
		}
		if (!*waited) {
			*waited = true;
			pthread_mutex_lock(&f->lock);
			f->lock_waits++;
			pthread_mutex_unlock(&f->lock);
		}
		if (now_mono() >= deadline) {
			return auth_ctx_fail(b->ctx, -ETIMEDOUT, "timed out waiting for another node to log in for the fleet");
		}
		woken = wait_target(f, b->t, seen, now_mono() + WAIT_SLICE < deadline ? now_mono() + WAIT_SLICE : deadline);
		if (woken && (r = from_watch(b, ret)) != GO_ON) {
			return r;
		}
	}
}

/* Checking a session that is not due for renewal changes nothing the fleet
 * shares: no lock (only a new login, if the check fails, is published, see
 * fleet_flight_end). */
static bool check_only(struct auth_target *t, const struct auth_session *current)
{
	struct fleet_target *ft = target_fleet(t);
	const struct fleet_engine *engine = fleet_of(t)->engine;
	/* Asked of the engine before ft->lock is taken: it takes t's lock. */
	bool checking = current && engine->can_serve(t, current) && (target_provider(t)->features & AUTH_PROVIDER_CHECKS_REGULARLY) &&
			!(target_provider(t)->features & AUTH_PROVIDER_RENEWS_IN_PLACE) && !engine->renewal_due(t);

	pthread_mutex_lock(&ft->lock);
	ft->checking = checking;
	pthread_mutex_unlock(&ft->lock);
	return checking;
}

/* The steps, each of which may settle it: the keys; what the watch brought
 * (not trusted while the store is down with on_store_down = fail: etcd
 * must vouch for it); a mere check; the store known down (fail, or log in
 * alone, at once rather than after the store's timeout: the keep-alive
 * finds out when it is back); then the lock. */
int fleet_flight_begin(struct auth_target *t, struct auth_ctx *ctx, const struct auth_session *current,
		       struct auth_session **ret_shared)
{
	struct fleet_target *ft = target_fleet(t);
	struct fleet *f = fleet_of(t);
	_cleanup_(begin_done) struct begin b = { .t = t, .ctx = ctx, .current = current };
	double started = now_mono();
	/* Waiting for another node's login: no longer than a read waits. */
	double deadline = ctx->deadline ? ctx->deadline : started + target_info(t)->timeout;
	bool waited = false;
	int r;

	if (!f) {
		return 0;
	}
	r = fleet_target_keys(t, ctx->user, &b.key, &b.lock_key);
	if (r < 0) {
		return r;
	}
	pthread_mutex_lock(&ft->lock);
	b.ended_mod = ft->ended_mod;
	b.known_mod = current ? ft->mod_rev : 0;
	pthread_mutex_unlock(&ft->lock);
	if (!(f->on_down == DOWN_FAIL && store_down(f)) && (r = from_watch(&b, ret_shared)) != GO_ON) {
		return r == ADOPT ? 1 : r;
	}
	if (check_only(t, current)) {
		return 0;
	}
	if ((r = fleet_backoff_check(t, ctx)) < 0) {
		return r; /* another node's login failed: not before the fleet's time */
	}
	if (store_down(f)) {
		r = store_failure(t, ctx, -EHOSTDOWN, "no member answered the last request");
	} else {
		r = contend(&b, deadline, &waited, ret_shared);
	}
	if (waited) {
		pthread_mutex_lock(&f->lock);
		f->lock_wait_seconds += now_mono() - started;
		pthread_mutex_unlock(&f->lock);
	}
	return r == ADOPT ? 1 : r == LEAD || r == ALONE ? 0 : r;
}

/* The fenced publish: put the (sealed) value and delete our lock, if it is
 * still ours. 1 published, 0 fence lost (*ret_current: the fleet's value, or
 * NULL). */
static int publish(struct auth_target *t, const char *key, const char *lock_key, int64_t lock_rev, const char *value,
		   int64_t *ret_rev, json_t **ret_current, char *err, size_t size)
{
	_cleanup_free_ char *k = etcd_b64(key, strlen(key)), *lk = etcd_b64(lock_key, strlen(lock_key)),
			    *bk = fleet_backoff_key_b64(key);
	json_auto_t *reply = NULL;
	json_t *body;
	int r;

	if (!k || !lk || !bk) {
		return -ENOMEM;
	}
	/* The value, the lock gone, and any record of failed logins with it. */
	body = json_pack("{s:[o], s:[{s:{s:s, s:s}}, {s:{s:s}}, {s:{s:s}}], s:[{s:{s:s}}]}", "compare",
			 fleet_compare(lock_key, "CREATE", "create_revision", lock_rev), "success", "request_put", "key", k,
			 "value", value, "request_delete_range", "key", lk, "request_delete_range", "key", bk, "failure",
			 "request_range", "key", k);
	r = fleet_call(fleet_of(t), "kv/txn", body, REQUEST_TIMEOUT_MS, &reply, err, size);
	if (r < 0) {
		return r;
	}
	*ret_rev = etcd_int(json_object_get(reply, "header"), "revision");
	r = json_is_true(json_object_get(reply, "succeeded"));
	if (!r) {
		json_t *range = json_object_get(json_array_get(json_object_get(reply, "responses"), 0), "response_range");
		*ret_current = json_incref(fleet_first_kv(range));
	}
	return r;
}

/* Gives the lock back after a failed login, so another node may try. */
static void release(struct auth_target *t, const char *lock_key, int64_t lock_rev)
{
	_cleanup_free_ char *lk = etcd_b64(lock_key, strlen(lock_key));
	json_auto_t *reply = NULL;
	char err[256];

	if (lk) {
		fleet_call(fleet_of(t), "kv/txn",
			   json_pack("{s:[o], s:[{s:{s:s}}]}", "compare",
				     fleet_compare(lock_key, "CREATE", "create_revision", lock_rev), "success",
				     "request_delete_range", "key", lk),
			   REQUEST_TIMEOUT_MS, &reply, err, sizeof(err));
	}
}

/* A failed login: the lock goes, and the fleet's record of failed logins
 * comes in its place in the same txn, so that no node tries before its time. */
static void release_failed(struct auth_target *t, const struct auth_ctx *ctx, const char *key, const char *lock_key,
			   int64_t lock_rev, int r)
{
	_cleanup_free_ char *lk = etcd_b64(lock_key, strlen(lock_key)), *bk = fleet_backoff_key_b64(key), *record = NULL;
	json_auto_t *reply = NULL;
	char err[256];

	if (!lk || !bk || fleet_backoff_record(t, ctx, key, r, &record) < 0) {
		release(t, lock_key, lock_rev);
		return;
	}
	fleet_call(fleet_of(t), "kv/txn",
		   json_pack("{s:[o], s:[{s:{s:s}}, {s:{s:s, s:s}}]}", "compare",
			     fleet_compare(lock_key, "CREATE", "create_revision", lock_rev), "success",
			     "request_delete_range", "key", lk, "request_put", "key", bk, "value", record),
		   REQUEST_TIMEOUT_MS, &reply, err, sizeof(err));
}

/* The server refused this node's login: the fleet learns it in place of a
 * session (fenced like one), and no node tries these credentials again. */
static void reject(struct auth_target *t, const struct auth_ctx *ctx, const char *key, const char *lock_key,
		   int64_t lock_rev, int r)
{
	_cleanup_free_ char *value = NULL;
	json_auto_t *theirs = NULL;
	json_t *record = NULL;
	int64_t rev = 0;
	char err[256] = "";

	if (fleet_rejection_record(ctx, fleet_of(t)->node, r, &record) < 0 ||
	    fleet_seal_value(fleet_of(t), key, record, &value) < 0 ||
	    publish(t, key, lock_key, lock_rev, value, &rev, &theirs, err, sizeof(err)) != 1) {
		release(t, lock_key, lock_rev);
	}
}

static int publish_checked(struct auth_target *t, struct auth_ctx *ctx, const char *key, struct auth_session **fresh,
			   bool *is_login);

/* Our lock lapsed and another node took over: end our new session (a BMC
 * slot) and use the one the fleet has, or waits for, instead. theirs: the
 * published value the fenced txn found (a reference taken over), or NULL. */
static int fenced_off(struct auth_target *t, struct auth_ctx *ctx, const char *key, json_t *theirs_taken,
		      struct auth_session **fresh, bool *is_login)
{
	struct fleet_target *ft = target_fleet(t);
	json_auto_t *theirs = theirs_taken;
	struct auth_session *shared = NULL;
	int64_t lock_rev = 0;
	bool leading = false;
	int r = 0;

	if (theirs) {
		r = fleet_open_session(t, key, json_string_value(json_object_get(theirs, "value")) ?: "", &shared);
		pthread_mutex_lock(&ft->lock);
		ft->mod_rev = etcd_int(theirs, "mod_revision");
		pthread_mutex_unlock(&ft->lock);
		if (r == -EKEYREJECTED) {
			/* Another node's refused login, of other credentials: ours
			 * worked, and a new one replaces the record. */
			return *fresh ? publish_checked(t, ctx, key, fresh, is_login) : 0;
		}
	}
	log_info("%s/%s: another node took over the fleet lock; ending this node's new session", target_provider(t)->name,
		 auth_target_name(t));
	if (*fresh && *is_login && target_provider(t)->logout(ctx, *fresh) < 0) {
		log_warning("%s/%s: failed to end the session: %s", target_provider(t)->name, auth_target_name(t), ctx->error);
	}
	auth_session_free(TAKE_PTR(*fresh));
	*is_login = false;
	if (theirs) {
		if (r < 0) {
			return auth_ctx_fail(ctx, -EBADMSG, "the fleet's session for this target does not decrypt with key_file");
		}
		*fresh = shared;
		return 0;
	}
	/* Not published yet: wait for it like any other node. */
	r = fleet_flight_begin(t, ctx, NULL, &shared);
	if (r == 1) {
		*fresh = shared;
		return 0;
	}
	if (r == 0) {
		pthread_mutex_lock(&ft->lock);
		if (ft->leading) {
			leading = true;
			ft->leading = false;
			lock_rev = ft->lock_rev;
		}
		pthread_mutex_unlock(&ft->lock);
		if (leading) {
			char *lock_key = NULL;
			if (asprintf(&lock_key, "%s/lock", key) >= 0) {
				release(t, lock_key, lock_rev);
				free(lock_key);
			}
		}
		r = auth_ctx_fail(ctx, -EAGAIN, "lost the fleet lock while logging in, and nobody published: try again");
	}
	return r;
}

/* A login after a failed check (no lock held): put it if the key is still
 * what this node last saw, else end it and use the fleet's. */
static int publish_checked(struct auth_target *t, struct auth_ctx *ctx, const char *key, struct auth_session **fresh,
			   bool *is_login)
{
	struct fleet_target *ft = target_fleet(t);
	_cleanup_free_ char *value = NULL, *k = etcd_b64(key, strlen(key));
	json_auto_t *reply = NULL;
	json_t *body;
	int64_t seen;
	char err[256];
	int r;

	pthread_mutex_lock(&ft->lock);
	seen = ft->mod_rev;
	pthread_mutex_unlock(&ft->lock);
	r = fleet_seal_session(t, key, *fresh, &value);
	if (r < 0 || !k) {
		return r < 0 ? r : -ENOMEM;
	}
	body = json_pack("{s:[o], s:[{s:{s:s, s:s}}], s:[{s:{s:s}}]}", "compare", fleet_compare(key, "MOD", "mod_revision", seen),
			 "success", "request_put", "key", k, "value", value, "failure", "request_range", "key", k);
	if (fleet_call(fleet_of(t), "kv/txn", body, REQUEST_TIMEOUT_MS, &reply, err, sizeof(err)) < 0) {
		log_warning("%s/%s: could not publish the session to the fleet: %s", target_provider(t)->name, auth_target_name(t), err);
		fleet_alone_note(t, *fresh);
		return 0;
	}
	if (json_is_true(json_object_get(reply, "succeeded"))) {
		pthread_mutex_lock(&ft->lock);
		ft->mod_rev = etcd_int(json_object_get(reply, "header"), "revision");
		pthread_mutex_unlock(&ft->lock);
		return 0;
	}
	return fenced_off(t, ctx, key,
			  json_incref(fleet_first_kv(json_object_get(
				  json_array_get(json_object_get(reply, "responses"), 0), "response_range"))),
			  fresh, is_login);
}

int fleet_flight_end(struct auth_target *t, struct auth_ctx *ctx, int r, const struct auth_session *current,
		     time_t expires_at, struct auth_session **fresh, bool *is_login)
{
	struct fleet_target *ft = target_fleet(t);
	_cleanup_free_ char *key = NULL, *lock_key = NULL, *value = NULL;
	_cleanup_session_ struct auth_session *renewed = NULL;
	const struct auth_session *s = *fresh;
	json_t *theirs = NULL; /* taken over by fenced_off() */
	int64_t lock_rev, rev = 0;
	bool checking = false;
	char err[256] = "";
	int p;

	if (!fleet_of(t)) {
		return r;
	}
	pthread_mutex_lock(&ft->lock);
	if (ft->leading || ft->checking) {
		ft->leading = false;
		checking = TAKE_FLAG(ft->checking);
		key = strdup(ft->key);
		lock_key = strdup(ft->lock_key);
	}
	lock_rev = ft->lock_rev;
	pthread_mutex_unlock(&ft->lock);
	if (checking && key && lock_key) {
		/* The check passed (nothing to tell), or failed and this node logged
		 * in: publish that unless another node published meanwhile. */
		return r < 0 || !*fresh ? r : publish_checked(t, ctx, key, fresh, is_login);
	}
	if (!key || !lock_key) {
		/* Not leading: fleet store down with on_store_down = local. */
		if (r >= 0 && *fresh) {
			fleet_alone_note(t, *fresh);
		}
		return r;
	}
	if (r == -EKEYREJECTED) {
		reject(t, ctx, key, lock_key, lock_rev, r);
		return r;
	}
	if (r < 0) {
		release_failed(t, ctx, key, lock_key, lock_rev, r);
		return r;
	}
	if (!s && current) {
		/* Renewed in place: the same session with its new expiry. */
		if (!(renewed = auth_session_dup(current))) {
			return -ENOMEM;
		}
		if (expires_at) {
			renewed->expires_at = expires_at;
			renewed->obtained_at = now_real();
		}
		s = renewed;
	}
	if (!s) {
		return r;
	}
	p = fleet_seal_session(t, key, s, &value);
	if (p == 0) {
		p = publish(t, key, lock_key, lock_rev, value, &rev, &theirs, err, sizeof(err));
	}
	if (p < 0) {
		/* Ours works: serve it here (the lock lapses with its lease) and
		 * publish it when the store is back. */
		log_warning("%s/%s: could not publish the session to the fleet: %s", target_provider(t)->name, auth_target_name(t), err);
		if (*fresh) {
			fleet_alone_note(t, *fresh);
		}
		return r;
	}
	if (p == 1) {
		pthread_mutex_lock(&ft->lock);
		ft->mod_rev = rev;
		pthread_mutex_unlock(&ft->lock);
		return r;
	}
	return fenced_off(t, ctx, key, theirs, fresh, is_login);
}

void fleet_session_written(struct auth_target *t, const char *user, const struct auth_session *s)
{
	struct fleet_target *ft = target_fleet(t);
	struct fleet *f = fleet_of(t);
	_cleanup_free_ char *key = NULL, *lock_key = NULL, *value = NULL, *k = NULL, *lk = NULL;
	json_auto_t *reply = NULL;
	char err[256] = "";
	int r;

	if (!f) {
		return;
	}
	r = fleet_target_keys(t, user, &key, &lock_key);
	if (r == 0) {
		r = fleet_seal_session(t, key, s, &value);
	}
	if (r == 0 && (!(k = etcd_b64(key, strlen(key))) || !(lk = etcd_b64(lock_key, strlen(lock_key))))) {
		r = -ENOMEM;
	}
	/* The lock goes too: a login under way elsewhere is fenced off, ends
	 * its own session and takes this one. */
	if (r == 0) {
		r = fleet_call(f, "kv/txn",
			       json_pack("{s:[{s:{s:s, s:s}}, {s:{s:s}}]}", "success", "request_put", "key", k, "value",
					 value, "request_delete_range", "key", lk),
			       REQUEST_TIMEOUT_MS, &reply, err, sizeof(err));
	}
	if (r < 0) {
		log_warning("%s/%s: could not publish the written session to the fleet: %s", target_provider(t)->name, auth_target_name(t),
			    err[0] ? err : strerror(-r));
		return;
	}
	pthread_mutex_lock(&ft->lock);
	ft->mod_rev = etcd_int(json_object_get(reply, "header"), "revision");
	pthread_mutex_unlock(&ft->lock);
}

void fleet_session_ending(struct auth_target *t)
{
	struct fleet_target *ft = target_fleet(t);

	if (!ft) {
		return;
	}
	/* Under t's lock, with the session it ends: no flight of this node
	 * adopts it again, from the watch or from etcd, before it is gone. */
	pthread_mutex_lock(&ft->lock);
	ft->ended_mod = ft->mod_rev;
	free(TAKE_PTR(ft->seen_value));
	fleet_alone_park(ft);
	pthread_mutex_unlock(&ft->lock);
}

int fleet_session_ended(struct auth_target *t)
{
	struct fleet_target *ft = target_fleet(t);
	struct fleet *f = fleet_of(t);
	_cleanup_free_ char *key = NULL;
	json_auto_t *reply = NULL;
	long timeout_ms = REQUEST_TIMEOUT_MS;
	char err[256];
	int r;

	if (!f) {
		return 0;
	}
	pthread_mutex_lock(&ft->lock);
	key = strdup(ft->key);
	pthread_mutex_unlock(&ft->lock);
	if (!key) {
		return -ENOMEM;
	}
	if (target_info(t)->timeout * 1000 < timeout_ms) {
		timeout_ms = (long)target_info(t)->timeout * 1000;
	}
	r = fleet_call(f, "kv/deleterange", etcd_key(key, false), timeout_ms, &reply, err, sizeof(err));
	if (r < 0) {
		log_warning("%s/%s: could not remove the session from the fleet store: %s", target_provider(t)->name,
			    auth_target_name(t), err);
		return r;
	}
	pthread_mutex_lock(&ft->lock);
	/* Whatever the watch brought before is gone now, even if the watch has
	 * not said so yet. */
	ft->mod_rev = ft->seen_mod = etcd_int(json_object_get(reply, "header"), "revision");
	free(TAKE_PTR(ft->seen_value));
	fleet_alone_free(TAKE_PTR(ft->parked)); /* the engine ends it */
	pthread_mutex_unlock(&ft->lock);
	return 0;
}

void fleet_session_kept(struct auth_target *t)
{
	struct fleet_target *ft = target_fleet(t);

	if (ft) {
		pthread_mutex_lock(&ft->lock);
		ft->ended_mod = 0;
		fleet_alone_unpark(fleet_of(t), ft);
		pthread_mutex_unlock(&ft->lock);
	}
}

bool fleet_shared_elsewhere(struct auth_target *t)
{
	struct fleet *f = fleet_of(t);
	_cleanup_free_ char *prefix = NULL;
	json_auto_t *reply = NULL;
	json_t *body, *kvs, *kv;
	bool other = false;
	char err[256];
	size_t i;

	if (!f) {
		return false;
	}
	/* Asked once at exit, for every target: the answer is the same. */
	pthread_mutex_lock(&f->lock);
	if (f->others_alive >= 0) {
		other = f->others_alive;
		pthread_mutex_unlock(&f->lock);
		return other;
	}
	pthread_mutex_unlock(&f->lock);
	if (asprintf(&prefix, "%snodes/", f->root) < 0) {
		return false;
	}
	body = etcd_key(prefix, true);
	json_object_set_new(body, "keys_only", json_true());
	if (fleet_call(f, "kv/range", body, REQUEST_TIMEOUT_MS, &reply, err, sizeof(err)) < 0) {
		/* Can't tell: don't end what others may be using. */
		log_warning("Fleet: not logging out of shared sessions: the fleet store cannot say whether other nodes "
			    "use them");
		other = true;
		goto out;
	}
	kvs = json_object_get(reply, "kvs");
	json_array_foreach(kvs, i, kv) {
		_cleanup_free_ unsigned char *k = NULL;
		size_t len;
		if (etcd_unb64(json_string_value(json_object_get(kv, "key")) ?: "", &k, &len) == 0 &&
		    strcmp((char *)k, f->node_key) != 0) {
			other = true;
		}
	}
	if (other) {
		log_info("Fleet: other nodes are alive; leaving the shared sessions on the servers");
	}
out:
	pthread_mutex_lock(&f->lock);
	f->others_alive = other;
	pthread_mutex_unlock(&f->lock);
	return other;
}

/* --- visibility -------------------------------------------------------------- */
