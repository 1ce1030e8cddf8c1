/* Sessions the fleet lacks become one again. A node that logged in alone
 * while the store was down (on_store_down = local), or could not publish its
 * login, keeps a copy of that session in ft->alone. Once the store is back,
 * a thread goes over those targets: if the fleet has a session this node can
 * serve, the node serves it and ends its own on the server; if not, it
 * publishes its own with a txn fenced on the key's revision and on nobody
 * holding the key's lock. Of several nodes the first txn wins; the others'
 * fail, and they take the winner's and end theirs. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "backoff.h"
#include "reconcile.h"
#include "lib/log.h"

#define RETRY_SECONDS 1.0 /* between passes while a target is left, or the store is down */
#define TRIES 3           /* txns per target and pass, while the key keeps changing */

/* Takes ft->alone if it is still s (by its token): the caller settles it. */
static struct fleet_alone *take_alone(struct auth_target *t, const struct auth_session *s)
{
	struct fleet_target *ft = target_fleet(t);
	struct fleet_alone *taken = NULL;

	pthread_mutex_lock(&ft->lock);
	if (ft->alone && secret_equal(ft->alone->s->token, s->token)) {
		taken = TAKE_PTR(ft->alone);
	}
	pthread_mutex_unlock(&ft->lock);
	return taken;
}

/* The fleet has s now, at revision rev. */
static int settled(struct auth_target *t, const struct auth_session *s, int64_t rev)
{
	fleet_alone_free(take_alone(t, s));
	fleet_target_seen(target_fleet(t), rev);
	return 1;
}

/* s is served here no more, and the fleet never had it: nobody uses it. */
static int end_alone(struct auth_target *t, const struct auth_session *s)
{
	struct fleet_alone *taken = take_alone(t, s);

	if (taken) {
		log_info("%s/%s: serving the fleet's session; ending the one this node logged in alone",
			 target_provider(t)->name, auth_target_name(t));
		fleet_of(t)->engine->end(t, TAKE_PTR(taken->s));
		fleet_alone_free(taken);
	}
	return 1;
}

/* The fleet has theirs (taken over, at revision mod), which this node can
 * serve: served here instead of alone, which then ends. 0: a flight of this
 * node runs (its outcome comes first): later. */
static int take_theirs(struct auth_target *t, const struct auth_session *alone, struct auth_session *theirs, int64_t mod)
{
	const struct fleet_engine *engine = fleet_of(t)->engine;

	if (!engine->serves(t, alone)) {
		auth_session_free(theirs); /* taken already (the watch, a flight), or dropped */
		return end_alone(t, alone);
	}
	if (!engine->install(t, theirs)) {
		return 0;
	}
	fleet_target_seen(target_fleet(t), mod);
	return end_alone(t, alone);
}

/* key's value (a reference, NULL when absent). */
static int read_key(struct fleet *f, const char *key, json_t **ret_kv)
{
	json_auto_t *reply = NULL;
	char err[256];
	int r;

	r = fleet_call(f, "kv/range", etcd_key(key, false), REQUEST_TIMEOUT_MS, &reply, err, sizeof(err));
	if (r < 0) {
		log_debug("Fleet: reconciling: %s", err);
		return r;
	}
	*ret_kv = json_incref(fleet_first_kv(reply));
	return 0;
}

/* Puts s unless the key changed since mod or a node holds its lock (logging
 * in: it will publish). 1 published (*ret_rev), 0 not (*ret_kv: the key's
 * value now, a reference, or NULL), -errno. */
static int publish_alone(struct auth_target *t, const char *key, const char *lock_key, int64_t mod,
			 const struct auth_session *s, int64_t *ret_rev, json_t **ret_kv)
{
	_cleanup_free_ char *value = NULL, *k = etcd_b64(key, strlen(key)), *bk = fleet_backoff_key_b64(key);
	json_auto_t *reply = NULL;
	json_t *body;
	char err[256];
	int r;

	r = fleet_seal_session(t, key, s, &value);
	if (r < 0 || !k || !bk) {
		return r < 0 ? r : -ENOMEM;
	}
	/* Any record of failed logins goes with it, as with every publish. */
	body = json_pack("{s:[o,o], s:[{s:{s:s, s:s}}, {s:{s:s}}], s:[{s:{s:s}}]}", "compare",
			 fleet_compare(key, "MOD", "mod_revision", mod), fleet_compare(lock_key, "CREATE", "create_revision", 0),
			 "success", "request_put", "key", k, "value", value, "request_delete_range", "key", bk, "failure",
			 "request_range", "key", k);
	r = fleet_call(fleet_of(t), "kv/txn", body, REQUEST_TIMEOUT_MS, &reply, err, sizeof(err));
	if (r < 0) {
		log_debug("Fleet: reconciling: %s", err);
		return r;
	}
	if (json_is_true(json_object_get(reply, "succeeded"))) {
		*ret_rev = etcd_int(json_object_get(reply, "header"), "revision");
		return 1;
	}
	*ret_kv = json_incref(fleet_first_kv(json_object_get(json_array_get(json_object_get(reply, "responses"), 0),
							     "response_range")));
	return 0;
}

/* One target whose session (alone, a copy) the fleet lacks: 1 settled, 0
 * later, -errno. What the key holds decides: that session (published
 * already), one to serve instead, or nothing usable (absent, expired, ended
 * here, a refused login's record), which this node's replaces. */
static int reconcile(struct auth_target *t, const struct auth_session *alone)
{
	struct fleet_target *ft = target_fleet(t);
	struct fleet *f = fleet_of(t);
	_cleanup_free_ char *key = NULL, *lock_key = NULL;
	json_auto_t *kv = NULL;
	int64_t ended;
	bool same_key;
	int r;

	pthread_mutex_lock(&ft->lock);
	key = strdup(ft->key);
	lock_key = strdup(ft->lock_key);
	ended = ft->ended_mod;
	same_key = key && ft->alone && streq_ptr(key, ft->alone->key);
	pthread_mutex_unlock(&ft->lock);
	if (!key || !lock_key) {
		return -ENOMEM;
	}
	if (!same_key || !f->engine->can_serve(t, alone)) {
		/* Not the fleet's to have: other credentials since, or expiring
		 * (its renewal, if read, goes through the fleet). */
		if (f->engine->serves(t, alone)) {
			fleet_alone_free(take_alone(t, alone));
			return 1;
		}
		return end_alone(t, alone);
	}
	r = read_key(f, key, &kv);
	for (unsigned i = 0; r >= 0 && i < TRIES; i++) {
		_cleanup_session_ struct auth_session *theirs = NULL;
		int64_t mod = etcd_int(kv, "mod_revision"), rev = 0;
		int o = kv && mod != ended ? fleet_open_session(t, key, json_string_value(json_object_get(kv, "value")) ?: "", &theirs)
					   : -ENOENT;

		if (o == 0 && secret_equal(theirs->token, alone->token)) {
			return settled(t, alone, mod);
		}
		if (o == 0 && f->engine->can_serve(t, theirs)) {
			return take_theirs(t, alone, TAKE_PTR(theirs), mod);
		}
		if (o == -EBADMSG) {
			log_warning("%s/%s: the fleet's session for this target does not decrypt with key_file: this "
				    "node's own stays its own", target_provider(t)->name, auth_target_name(t));
			fleet_alone_free(take_alone(t, alone));
			return 1;
		}
		if (o < 0 && o != -ENOENT && o != -EKEYREJECTED) {
			return o;
		}
		if (!f->engine->serves(t, alone)) {
			return end_alone(t, alone); /* replaced or dropped here meanwhile */
		}
		json_decref(TAKE_PTR(kv));
		r = publish_alone(t, key, lock_key, mod, alone, &rev, &kv);
		if (r == 1) {
			log_info("%s/%s: published the session this node logged in while the fleet store was down",
				 target_provider(t)->name, auth_target_name(t));
			return settled(t, alone, rev);
		}
		if (r == 0 && etcd_int(kv, "mod_revision") == mod) {
			return 0; /* the lock is held: what its holder publishes comes next */
		}
	}
	return r < 0 ? r : 0;
}

/* One pass over the targets whose session the fleet lacks: whether any is
 * left for the next. */
static bool pass(struct fleet *f)
{
	bool left = false;

	for (uint32_t after = 0;;) {
		struct auth_target *t = f->engine->next_target(f->core, after);
		_cleanup_session_ struct auth_session *alone = NULL;
		struct fleet_target *ft;
		int r = 1;

		if (!t) {
			return left;
		}
		after = auth_target_id(t);
		ft = target_fleet(t);
		pthread_mutex_lock(&ft->lock);
		if (ft->alone && !(alone = auth_session_dup(ft->alone->s))) {
			r = -ENOMEM;
		}
		pthread_mutex_unlock(&ft->lock);
		if (alone) {
			r = reconcile(t, alone);
		}
		auth_target_unref(t);
		if (r == -EHOSTDOWN) {
			return true; /* down again: the thread waits until it is back */
		}
		left = left || r <= 0;
	}
}

/* Passes while the store is up and some target was left (or noted since
 * the last pass that left none). */
static void *reconcile_thread(void *userdata)
{
	struct fleet *f = userdata;
	uint64_t done = 0;

	pthread_mutex_lock(&f->lock);
	while (!f->stopping) {
		uint64_t notes = __atomic_load_n(&f->alone_notes, __ATOMIC_RELAXED);
		bool left;
		if (f->down || notes == done) {
			/* Woken as soon as the store is back (fleet_set_down). */
			struct timespec ts = mono_timespec(now_mono() + RETRY_SECONDS);
			pthread_cond_timedwait(&f->event, &f->lock, &ts);
			continue;
		}
		pthread_mutex_unlock(&f->lock);
		left = pass(f);
		secret_wipe_stack(); /* sessions were opened and sealed here */
		pthread_mutex_lock(&f->lock);
		if (left) {
			fleet_pause(f, now_mono() + RETRY_SECONDS);
		} else {
			done = notes;
		}
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

void fleet_alone_note(struct auth_target *t, const struct auth_session *s)
{
	struct fleet_target *ft = target_fleet(t);
	struct fleet *f = fleet_of(t);
	struct fleet_alone *a = calloc(1, sizeof(*a)), *old;
	int r = 0;

	if (a) {
		a->s = auth_session_dup(s);
		pthread_mutex_lock(&ft->lock);
		a->key = strdup(ft->key); /* the flight's: its credentials' */
		pthread_mutex_unlock(&ft->lock);
	}
	if (!a || !a->s || !a->key) {
		fleet_alone_free(a);
		log_warning("%s/%s: out of memory: the session logged in alone will not be reconciled with the fleet's",
			    target_provider(t)->name, auth_target_name(t));
		return;
	}
	pthread_mutex_lock(&ft->lock);
	old = ft->alone;
	ft->alone = a;
	pthread_mutex_unlock(&ft->lock);
	fleet_alone_free(old); /* renewed alone: left to expire, like any renewed session */
	__atomic_add_fetch(&f->alone_notes, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&f->lock);
	if (!f->reconciling && !f->stopping) {
		r = -pthread_create(&f->reconcile_thread, NULL, reconcile_thread, f);
		f->reconciling = r == 0;
	}
	pthread_mutex_unlock(&f->lock);
	if (r < 0) {
		log_error_errno(r, "Fleet: failed to start the thread that reconciles sessions logged in alone: %m");
	}
}

void fleet_alone_park(struct fleet_target *ft)
{
	fleet_alone_free(ft->parked);
	ft->parked = TAKE_PTR(ft->alone);
}

void fleet_alone_unpark(struct fleet *f, struct fleet_target *ft)
{
	if (ft->parked && !ft->alone) {
		ft->alone = TAKE_PTR(ft->parked);
		__atomic_add_fetch(&f->alone_notes, 1, __ATOMIC_RELAXED);
	}
}
