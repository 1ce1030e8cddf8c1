/* Fleet mode, the node's side of etcd: its lease and key (liveness), the
 * live nodes and renewal turns, the one watch on the prefix that keeps every
 * copy current, and credentials shared with share_credentials = true. */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "backoff.h"
#include "internal.h"
#include "lib/log.h"

/* --- shared credentials (share_credentials = true) ----------------------------- */

/* <root>c/<provider>/<host:port>: credentials written on any node. */
static char *credentials_key(const struct fleet *f, const struct auth_target *t)
{
	char *key;

	return asprintf(&key, "%sc/%s/%s:%u", f->root, target_provider(t)->name, target_info(t)->host, target_info(t)->port) < 0 ? NULL : key;
}

void fleet_credentials_written(struct auth_target *t, const char *text, size_t len)
{
	struct fleet *f = fleet_of(t);
	_cleanup_free_ char *key = NULL, *k = NULL, *v = NULL;
	_cleanup_free_ unsigned char *sealed = NULL;
	json_auto_t *reply = NULL;
	size_t sealed_len;
	char err[256];

	if (!f || !f->share_credentials || !(key = credentials_key(f, t)) || !(k = etcd_b64(key, strlen(key))) ||
	    fleet_seal(f->keys, key, text, len, &sealed, &sealed_len) < 0 || !(v = etcd_b64(sealed, sealed_len))) {
		return;
	}
	if (fleet_call(f, "kv/put", json_pack("{s:s, s:s}", "key", k, "value", v), REQUEST_TIMEOUT_MS, &reply, err,
		 sizeof(err)) < 0) {
		log_warning("%s/%s: could not share the credentials with the fleet: %s", target_provider(t)->name, auth_target_name(t), err);
	}
}

/* Credentials another node wrote: the engine saves and uses them. */
static void shared_credentials(struct auth_target *t, const char *key, const char *value_b64)
{
	_cleanup_free_ unsigned char *sealed = NULL;
	_cleanup_secret_ struct secret *text = NULL;
	size_t len;

	if (etcd_unb64(value_b64, &sealed, &len) < 0 || fleet_open(fleet_of(t)->keys, key, sealed, len, &text) < 0) {
		fleet_of(t)->engine->credentials(t, NULL, 0, "the fleet's shared credentials for this target do not "
						 "decrypt with key_file");
		return;
	}
	fleet_of(t)->engine->credentials(t, text->data, text->len, NULL);
}

/* --- lease and node key ------------------------------------------------------ */

static int grant_lease(struct fleet *f)
{
	_cleanup_free_ char *k = etcd_b64(f->node_key, strlen(f->node_key)), *v = etcd_b64(f->node, strlen(f->node));
	json_auto_t *granted = NULL, *put = NULL;
	char err[256], lease[24];
	int64_t id;
	int r;

	r = fleet_call(f, "lease/grant", json_pack("{s:I}", "TTL", (json_int_t)f->lock_ttl), REQUEST_TIMEOUT_MS, &granted,
		       err, sizeof(err));
	if (r < 0) {
		log_warning("Fleet: could not get a lease: %s", err);
		return r;
	}
	id = etcd_int(granted, "ID");
	snprintf(lease, sizeof(lease), "%lld", (long long)id);
	r = fleet_call(f, "kv/put", json_pack("{s:s, s:s, s:s}", "key", k, "value", v, "lease", lease), REQUEST_TIMEOUT_MS,
		       &put, err, sizeof(err));
	if (r < 0) {
		log_warning("Fleet: could not register node %s: %s", f->node, err);
		return r;
	}
	pthread_mutex_lock(&f->lock);
	f->lease = id;
	pthread_mutex_unlock(&f->lock);
	return 0;
}

/* on_store_down = fail: nothing is served that the fleet cannot vouch for.
 * Called by the watch when it breaks, and by the keep-alive when the node
 * lease cannot be kept: a member in the minority keeps a watch open but
 * cannot keep a lease. */
static void store_lost(struct fleet *f)
{
	for (uint32_t after = 0;;) {
		struct auth_target *t = f->engine->next_target(f->core, after);
		if (!t) {
			return;
		}
		after = auth_target_id(t);
		fleet_of(t)->engine->forget(t, 0, NULL);
		auth_target_unref(t);
	}
}

/* Keeps the node lease alive (a third of its TTL apart); a lease that lapsed
 * (etcd down longer than lock_ttl) is replaced. */
static void *keepalive_thread(void *userdata)
{
	struct fleet *f = userdata;

	for (;;) {
		double until = now_mono() + (double)f->lock_ttl / 3;
		bool go_on;
		int64_t lease;
		json_auto_t *reply = NULL;
		char err[256];
		int r;

		pthread_mutex_lock(&f->lock);
		lease = f->lease;
		pthread_mutex_unlock(&f->lock);
		if (!lease) {
			r = grant_lease(f);
		} else {
			__atomic_add_fetch(&f->keepalives, 1, __ATOMIC_RELAXED);
			r = fleet_call(f, "lease/keepalive", json_pack("{s:I}", "ID", (json_int_t)lease), REQUEST_TIMEOUT_MS,
				 &reply, err, sizeof(err));
			/* No TTL: the lease is gone (etcd was away longer than lock_ttl). */
			if (r == -EIO || (r == 0 && etcd_int(json_object_get(reply, "result"), "TTL") <= 0)) {
				log_warning("Fleet: the node lease expired; registering again");
				pthread_mutex_lock(&f->lock);
				f->lease = 0;
				pthread_mutex_unlock(&f->lock);
				r = grant_lease(f);
			}
		}
		if (r == -EHOSTDOWN && f->on_down == DOWN_FAIL) {
			store_lost(f);
		}
		pthread_mutex_lock(&f->lock);
		go_on = fleet_pause(f, until);
		pthread_mutex_unlock(&f->lock);
		if (!go_on) {
			return NULL;
		}
	}
}

/* --- the watch --------------------------------------------------------------- */

static bool is_credentials_key(const struct fleet *f, const struct auth_target *t, const char *key)
{
	_cleanup_free_ char *mine = strncmp(key, f->root, strlen(f->root)) == 0 && key[strlen(f->root)] == 'c' ?
					    credentials_key(f, t) : NULL;

	return streq_ptr(mine, key);
}

/* nodes/<node> appeared or went (f->lock held). */
static void node_seen(struct fleet *f, const char *name, bool alive)
{
	for (size_t i = 0; i < f->n_nodes; i++) {
		if (strcmp(f->nodes[i], name) == 0) {
			if (!alive) {
				free(f->nodes[i]);
				f->nodes[i] = f->nodes[--f->n_nodes];
			}
			return;
		}
	}
	if (alive && f->n_nodes < NODES_MAX) {
		char **n = realloc(f->nodes, (f->n_nodes + 1) * sizeof(*n));
		if (n && (n[f->n_nodes] = strdup(name))) {
			f->nodes = n;
			f->n_nodes++;
		} else if (n) {
			f->nodes = n;
		}
	}
}

static bool node_key(const struct fleet *f, const char *key, const char **ret_name)
{
	size_t len = strlen(f->root);

	if (strncmp(key, f->root, len) != 0 || strncmp(key + len, "nodes/", 6) != 0) {
		return false;
	}
	*ret_name = key + len + 6;
	return true;
}

static uint32_t fnv1a(const char *a, const char *b)
{
	uint32_t h = 2166136261u;

	for (const char *p = a; *p; p++) {
		h = (h ^ (unsigned char)*p) * 16777619u;
	}
	for (const char *p = b; *p; p++) {
		h = (h ^ (unsigned char)*p) * 16777619u;
	}
	return h;
}

time_t fleet_renewal_delay(struct auth_target *t, time_t due, time_t serve_until)
{
	struct fleet *f = fleet_of(t);
	struct fleet_target *ft = target_fleet(t);
	_cleanup_free_ char *key = NULL;
	uint32_t mine;
	time_t window, turn;
	size_t rank = 0, n;

	if (!f || !serve_until || !due) {
		return 0;
	}
	pthread_mutex_lock(&ft->lock);
	key = strdup(ft->key);
	pthread_mutex_unlock(&ft->lock);
	if (!key) {
		return 0;
	}
	/* Rendezvous hashing: every node ranks the live nodes alike for this
	 * target; the first renews at due, the next a turn later (if the first
	 * did not, or is not reading it), and so on. */
	mine = fnv1a(f->node, key);
	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->n_nodes; i++) {
		uint32_t h = fnv1a(f->nodes[i], key);
		if (strcmp(f->nodes[i], f->node) != 0 && (h > mine || (h == mine && strcmp(f->nodes[i], f->node) < 0))) {
			rank++;
		}
	}
	n = f->n_nodes ? f->n_nodes : 1;
	pthread_mutex_unlock(&f->lock);
	window = serve_until - due;
	turn = window / (time_t)(2 * n);
	if (turn > TURN_MAX) {
		turn = TURN_MAX;
	}
	return turn > 0 ? (time_t)rank * turn : 0;
}

/* t's key changed (no lock held): the new session replaces this node's, or
 * this node's goes, unless a flight of its own runs. A refused login's record
 * (-EKEYREJECTED) changes nothing here: what this node has stays until it
 * needs a login, which then sees the record. */
static void changed_session(struct auth_target *t, const char *key, const char *value_b64, bool deleted, int64_t rev)
{
	struct fleet_target *ft = target_fleet(t);
	struct auth_session *s = NULL;
	int r = deleted ? 0 : fleet_open_session(t, key, value_b64 ?: "", &s);
	bool done;

	if (r == -EKEYREJECTED) {
		return;
	}
	if (r == 0 && !deleted) {
		done = fleet_of(t)->engine->install(t, s);
	} else {
		done = fleet_of(t)->engine->forget(t, r < 0 ? -EBADMSG : 0,
						  "the fleet's session for this target does not decrypt with key_file");
	}
	if (done) {
		fleet_target_seen(ft, rev);
	}
}

/* Applies one key's new state to the target it belongs to, if any. */
static void apply(struct fleet *f, const char *key, const char *value_b64, bool deleted, int64_t rev)
{
	const char *node;

	if (node_key(f, key, &node)) {
		pthread_mutex_lock(&f->lock);
		node_seen(f, node, !deleted);
		pthread_mutex_unlock(&f->lock);
		return;
	}
	for (uint32_t after = 0;;) {
		struct auth_target *t = f->engine->next_target(f->core, after);
		struct fleet_target *ft;
		bool changed = false;
		if (!t) {
			return;
		}
		after = auth_target_id(t);
		if (f->share_credentials && !deleted && value_b64 && is_credentials_key(f, t, key)) {
			shared_credentials(t, key, value_b64);
			auth_target_unref(t);
			continue;
		}
		ft = target_fleet(t);
		pthread_mutex_lock(&ft->lock);
		if (fleet_is_backoff_key(ft->key, key)) {
			pthread_mutex_unlock(&ft->lock);
			fleet_backoff_seen(t, key, deleted ? NULL : value_b64);
			auth_target_unref(t);
			continue;
		}
		if (strcmp(ft->key, key) == 0 || strcmp(ft->lock_key, key) == 0) {
			ft->events++;
		}
		if (strcmp(ft->key, key) == 0 && rev >= ft->seen_mod) {
			free(ft->seen_value);
			ft->seen_value = !deleted && value_b64 ? strdup(value_b64) : NULL;
			ft->seen_mod = rev;
		}
		if (strcmp(ft->lock_key, key) == 0) {
			snprintf(ft->holder, sizeof(ft->holder), "%s", "");
			if (!deleted && value_b64) {
				unsigned char *n = NULL;
				size_t len;
				if (etcd_unb64(value_b64, &n, &len) == 0) {
					snprintf(ft->holder, sizeof(ft->holder), "%s", (char *)n);
				}
				free(n);
			}
		} else if (strcmp(ft->key, key) == 0 && rev > ft->mod_rev) {
			changed = true;
		}
		pthread_mutex_unlock(&ft->lock);
		if (changed) {
			changed_session(t, key, value_b64, deleted, rev);
		}
		auth_target_unref(t);
	}
}

static void apply_kv(struct fleet *f, json_t *kv, bool deleted, int64_t rev)
{
	_cleanup_free_ unsigned char *key = NULL;
	size_t len;

	if (etcd_unb64(json_string_value(json_object_get(kv, "key")) ?: "", &key, &len) == 0) {
		apply(f, (char *)key, json_string_value(json_object_get(kv, "value")),
		      deleted, deleted ? rev : etcd_int(kv, "mod_revision"));
		secret_wipe_stack(); /* a session or credentials opened there; this thread lives on */
	}
}

struct watch_state {
	struct fleet *f;
	size_t endpoint;
	bool created;     /* etcd answered the create request */
	bool compacted;
};

static bool on_watch_result(json_t *result, void *userdata)
{
	struct watch_state *w = userdata;
	struct fleet *f = w->f;
	int64_t rev = etcd_int(json_object_get(result, "header"), "revision");
	json_t *events = json_object_get(result, "events"), *ev;
	size_t i;

	if (etcd_int(result, "compact_revision") > 0 || json_is_true(json_object_get(result, "canceled"))) {
		w->compacted = etcd_int(result, "compact_revision") > 0;
		return false;
	}
	/* Any message (created, events, a progress notification) is progress
	 * of this stream; a member without quorum answers "created" too, so
	 * status counts only the others. */
	w->created = true;
	pthread_mutex_lock(&f->lock);
	f->watch_created = true;
	f->watch_endpoint = w->endpoint;
	f->watch_progress = now_mono();
	if (!json_is_true(json_object_get(result, "created"))) {
		f->watch_seen = f->watch_progress;
	}
	pthread_mutex_unlock(&f->lock);
	if (json_array_size(events)) {
		fleet_set_down(f, false); /* events mean a member with quorum (a watch alone does not) */
	}
	json_array_foreach(events, i, ev) {
		json_t *kv = json_object_get(ev, "kv");
		apply_kv(f, kv, streq_ptr(json_string_value(json_object_get(ev, "type")), "DELETE"), etcd_int(kv, "mod_revision"));
	}
	pthread_mutex_lock(&f->lock);
	if (rev > f->revision) {
		f->revision = rev;
	}
	pthread_mutex_unlock(&f->lock);
	if (json_array_size(events)) {
		fleet_wake_waiters(f);
	}
	return true;
}

/* After compaction (or at start): every key read again; targets whose key is
 * gone drop their copy. Returns the revision to watch from. */
static int reread(struct fleet *f, bool drop_missing)
{
	json_auto_t *reply = NULL;
	json_t *kvs, *kv;
	char err[256];
	int64_t rev;
	size_t i;

	if (fleet_call(f, "kv/range", etcd_key(f->root, true), REQUEST_TIMEOUT_MS, &reply, err, sizeof(err)) < 0) {
		return -EHOSTDOWN;
	}
	rev = etcd_int(json_object_get(reply, "header"), "revision");
	kvs = json_object_get(reply, "kvs");
	pthread_mutex_lock(&f->lock);
	for (size_t n = 0; n < f->n_nodes; n++) {
		free(f->nodes[n]);
	}
	f->n_nodes = 0;
	pthread_mutex_unlock(&f->lock);
	if (drop_missing) {
		for (uint32_t after = 0;;) {
			struct auth_target *t = f->engine->next_target(f->core, after);
			bool found = false;
			if (!t) {
				break;
			}
			after = auth_target_id(t);
			struct fleet_target *ft = target_fleet(t);
			pthread_mutex_lock(&ft->lock);
			json_array_foreach(kvs, i, kv) {
				_cleanup_free_ unsigned char *k = NULL;
				size_t len;
				found = found || (etcd_unb64(json_string_value(json_object_get(kv, "key")) ?: "", &k, &len) == 0 &&
						  strcmp((char *)k, ft->key) == 0);
			}
			pthread_mutex_unlock(&ft->lock);
			if (!found) {
				fleet_of(t)->engine->forget(t, 0, NULL); /* nothing, if it has no session */
			}
			auth_target_unref(t);
		}
	}
	json_array_foreach(kvs, i, kv) {
		apply_kv(f, kv, false, rev);
	}
	pthread_mutex_lock(&f->lock);
	f->revision = rev;
	pthread_mutex_unlock(&f->lock);
	fleet_wake_waiters(f);
	return 0;
}

/* One stream, under the guard's eye: a stream the guard ended (its member
 * silent) is a failure, and the next goes to the next member. */
static int watch_once(struct fleet *f, json_t *req, struct watch_state *w, char *err, size_t err_size)
{
	bool guarded;
	int r;

	pthread_mutex_lock(&f->lock);
	if (!f->stopping) {
		http_cancel_reset(&f->watch_cancel);
	}
	f->watch_gen++;
	f->watch_streaming = true;
	f->watch_created = f->watch_confirmed = false;
	f->watch_progress = now_mono();
	pthread_mutex_unlock(&f->lock);
	r = etcd_watch(f->etcd, req, &w->endpoint, on_watch_result, w, &f->watch_cancel, err, err_size);
	pthread_mutex_lock(&f->lock);
	guarded = !f->watch_streaming; /* the guard ended it */
	f->watch_streaming = false;
	pthread_mutex_unlock(&f->lock);
	if (r == -ECANCELED && guarded && !__atomic_load_n(&f->stopping, __ATOMIC_RELAXED)) {
		etcd_avoid(f->etcd, w->endpoint);
		snprintf(err, err_size, "%s: silent past the watch's idle deadline", etcd_endpoint_url(f->etcd, w->endpoint));
		r = -ETIMEDOUT;
	}
	return r;
}

/* One watch on the whole prefix, resumed from the last revision after a
 * disconnect; a full re-read after compaction. */
static void *watch_thread(void *userdata)
{
	struct fleet *f = userdata;
	bool need_reread = true, drop_missing = false;
	unsigned backoff = 0;

	while (!__atomic_load_n(&f->stopping, __ATOMIC_RELAXED)) {
		struct watch_state w = { .f = f };
		json_t *req;
		int64_t from;
		char err[256] = "";
		int r;

		if (need_reread && reread(f, drop_missing) < 0) {
			r = -EHOSTDOWN;
		} else {
			need_reread = false;
			pthread_mutex_lock(&f->lock);
			from = f->revision + 1;
			pthread_mutex_unlock(&f->lock);
			req = etcd_key(f->root, true);
			json_object_set_new(req, "start_revision", json_sprintf("%lld", (long long)from));
			json_object_set_new(req, "progress_notify", json_true());
			r = watch_once(f, req, &w, err, sizeof(err));
			if (w.compacted) {
				log_info("Fleet: the watch's revision was compacted; reading everything again");
				need_reread = drop_missing = true;
				continue;
			}
		}
		if (__atomic_load_n(&f->stopping, __ATOMIC_RELAXED)) {
			break;
		}
		pthread_mutex_lock(&f->lock);
		f->watch_reconnects++;
		pthread_mutex_unlock(&f->lock);
		if (r < 0) {
			fleet_set_down(f, true);
			log_debug("Fleet: watch ended: %s", err);
			if (f->on_down == DOWN_FAIL) {
				store_lost(f);
				need_reread = drop_missing = true;
			}
		}
		/* A member that set the watch up is no reason to wait: the next
		 * may have quorum (during an election, or in a partition). */
		backoff = r < 0 && !w.created ? (backoff < RECONNECT_MAX ? backoff + 1 : RECONNECT_MAX) : 0;
		/* The first retry at once (on the next member), then slower. */
		for (unsigned i = 0; i < (backoff ? backoff - 1 : 0) * 10 && !__atomic_load_n(&f->stopping, __ATOMIC_RELAXED);
		     i++) {
			usleep(100 * 1000);
		}
	}
	return NULL;
}

int fleet_start(struct fleet *f, struct auth_core *core)
{
	int r;

	if (!f) {
		return 0;
	}
	f->core = core;
	f->watch_seen = now_mono();
	grant_lease(f); /* if etcd is down now, the keep-alive thread retries */
	r = -pthread_create(&f->watch_thread, NULL, watch_thread, f);
	if (r == 0) {
		r = -pthread_create(&f->keepalive_thread, NULL, keepalive_thread, f);
		if (r == 0) {
			r = -pthread_create(&f->guard_thread, NULL, fleet_watch_guard, f);
			if (r < 0) {
				__atomic_store_n(&f->stopping, true, __ATOMIC_RELAXED);
				pthread_join(f->keepalive_thread, NULL);
			}
		}
		if (r < 0) {
			__atomic_store_n(&f->stopping, true, __ATOMIC_RELAXED);
			http_cancel(&f->watch_cancel);
			pthread_join(f->watch_thread, NULL);
		}
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to start the fleet threads: %m");
	}
	f->threads = true;
	return 0;
}


