/* Fleet mode over etcd: the fleet itself (its [fleet] settings, its etcd
 * client, whether the store is reachable). Keys (all under <prefix>v1/<fleet>/):
 *   t/<provider>/<host:port>@<hash of user>        the target's session, sealed
 *   t/<provider>/<host:port>@<hash of user>/lock   the node logging in (its lease)
 *   nodes/<node>                                   a live node (its lease)
 * flight.c: the fleet-wide single flight; values.c: keys and sealed values;
 * watch.c: the node's lease, the watch, shared credentials; reconcile.c:
 * sessions logged in while the store was down; status.c. */
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "lib/log.h"

const char *const fleet_down_modes[] = { "stale", "local", "fail" };

static int split_endpoints(const char *list, struct etcd_settings *es)
{
	_cleanup_free_ char *copy = strdup(list);
	char *save = NULL;

	if (!copy) {
		return -ENOMEM;
	}
	for (char *w = strtok_r(copy, ", \t", &save); w; w = strtok_r(NULL, ", \t", &save)) {
		char **n = realloc(es->endpoints, (es->n_endpoints + 1) * sizeof(*n));
		size_t len = strlen(w);
		if (!n) {
			return -ENOMEM;
		}
		es->endpoints = n;
		while (len > 0 && w[len - 1] == '/') {
			w[--len] = 0;
		}
		if (strncmp(w, "http://", 7) && strncmp(w, "https://", 8)) {
			return log_error_errno(-EINVAL, "[fleet] endpoints: %s is no http:// or https:// URL", w);
		}
		if (!(n[es->n_endpoints] = strdup(w))) {
			return -ENOMEM;
		}
		es->n_endpoints++;
	}
	return es->n_endpoints ? 0 : log_error_errno(-EINVAL, "[fleet] endpoints is empty");
}

static int read_settings(struct fleet *f, const struct target_config *c)
{
	static const char *const known[] = { "endpoints", "prefix", "name", "node", "key_file", "ca_path", "cert", "key",
					     "user", "password_file", "lock_ttl", "on_store_down", "share_credentials" };
	const char *v, *prefix = target_config_get(c, "prefix") ?: "sessionfs/";
	char host[HOST_NAME_MAX + 1] = "";
	long ttl = 10;
	int r;

	for (size_t i = 0; i < c->n_kv; i++) {
		bool ok = false;
		for (size_t k = 0; k < ELEMENTSOF(known); k++) {
			ok = ok || strcmp(c->kv[i].key, known[k]) == 0;
		}
		if (!ok) {
			return log_error_errno(-EINVAL, "[fleet]: unknown key %s", c->kv[i].key);
		}
	}
	if (!(v = target_config_get(c, "endpoints")) || (r = split_endpoints(v, &f->es)) < 0) {
		return v ? r : log_error_errno(-EINVAL, "[fleet]: endpoints is required");
	}
	if (!(v = target_config_get(c, "key_file"))) {
		return log_error_errno(-EINVAL, "[fleet]: key_file is required (32 random bytes, e.g. openssl rand -base64 32)");
	}
	r = fleet_keys_load(v, &f->keys);
	if (r < 0) {
		return log_error_errno(r, "[fleet]: key_file %s: not one or two keys of 32 bytes (base64 or hex lines), "
				       "or not a root-only file: %m", v);
	}
	if ((v = target_config_get(c, "lock_ttl")) && parse_int(v, 2, 600, &ttl) < 0) {
		return log_error_errno(-EINVAL, "[fleet]: lock_ttl = %s: expected a whole number from 2 to 600", v);
	}
	f->lock_ttl = (int)ttl;
	f->on_down = DOWN_STALE;
	if ((v = target_config_get(c, "on_store_down"))) {
		bool found = false;
		for (size_t i = 0; i < ELEMENTSOF(fleet_down_modes); i++) {
			if (strcmp(v, fleet_down_modes[i]) == 0) {
				f->on_down = (enum store_down_mode)i;
				found = true;
			}
		}
		if (!found) {
			return log_error_errno(-EINVAL, "[fleet]: on_store_down = %s: expected stale, local or fail", v);
		}
	}
	if ((v = target_config_get(c, "share_credentials")) && parse_bool(v, &f->share_credentials) < 0) {
		return log_error_errno(-EINVAL, "[fleet]: share_credentials = %s: expected true or false", v);
	}
	if (f->on_down == DOWN_LOCAL) {
		log_warning("[fleet] on_store_down = local: while etcd is down every node logs in by itself, "
			    "which can exhaust a BMC's session slots");
	}
	gethostname(host, sizeof(host) - 1);
	if (!(v = target_config_get(c, "node")) && !(v = getenv("SESSIONFS_NODE_NAME"))) {
		v = host;
	}
	f->node = strdup(v);
	v = target_config_get(c, "name") ?: "default";
	if (!f->node || !*f->node || strchr(f->node, '/') || strchr(v, '/')) {
		return log_error_errno(-EINVAL, "[fleet]: node and name must be non-empty and without '/'");
	}
	if (asprintf(&f->root, "%sv1/%s/", prefix, v) < 0 || asprintf(&f->node_key, "%snodes/%s", f->root, f->node) < 0) {
		return -ENOMEM;
	}
	f->es.tls.validate_certs = true;
	f->es.tls.ca_path = target_config_get(c, "ca_path");
	f->es.tls.cert = target_config_get(c, "cert");
	f->es.tls.key = target_config_get(c, "key");
	if ((f->es.user = target_config_get(c, "user"))) {
		if (!(v = target_config_get(c, "password_file"))) {
			return log_error_errno(-EINVAL, "[fleet]: user needs password_file");
		}
		r = read_secret_file(v, &f->etcd_password);
		if (r < 0) {
			return log_error_errno(r, "[fleet]: password_file %s: %m", v);
		}
		f->es.password = f->etcd_password;
	}
	return etcd_new(&f->es, &f->etcd);
}

int fleet_new(const struct config *cfg, const struct fleet_engine *engine, struct fleet **ret)
{
	const struct target_config *c = config_find_defaults(cfg, "fleet");
	struct fleet *f;
	int r;

	*ret = NULL;
	if (!c) {
		return 0;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		return -ENOMEM;
	}
	f->engine = engine;
	f->others_alive = -1;
	pthread_mutex_init(&f->lock, NULL);
	pthread_mutex_init(&f->watch_cancel.lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->event, &ca);
	pthread_condattr_destroy(&ca);
	r = read_settings(f, c);
	if (r < 0) {
		fleet_free(f);
		return r;
	}
	log_info("Fleet mode: node %s in %s, key id %s", f->node, f->root, fleet_keys_id(f->keys));
	*ret = f;
	return 0;
}

void fleet_set_down(struct fleet *f, bool down)
{
	pthread_mutex_lock(&f->lock);
	if (f->down != down) {
		if (down) {
			log_warning("Fleet store (etcd) unavailable: serving cached sessions (on_store_down = %s)",
				    fleet_down_modes[f->on_down]);
		} else {
			log_info("Fleet store (etcd) reachable again");
			pthread_cond_broadcast(&f->event); /* sessions logged in alone meanwhile: reconcile.c */
		}
	}
	f->down = down;
	pthread_mutex_unlock(&f->lock);
}

int fleet_call(struct fleet *f, const char *path, json_t *body, long timeout_ms, json_t **ret, char *err, size_t size)
{
	int r = etcd_call(f->etcd, path, body, timeout_ms, ret, err, size);

	fleet_set_down(f, r == -EHOSTDOWN);
	return r;
}

bool fleet_pause(struct fleet *f, double until)
{
	struct timespec ts = mono_timespec(until);

	while (!f->stopping && pthread_cond_timedwait(&f->event, &f->lock, &ts) != ETIMEDOUT) {
	}
	return !f->stopping;
}

void fleet_wake_waiters(struct fleet *f)
{
	pthread_mutex_lock(&f->lock);
	f->events++;
	pthread_cond_broadcast(&f->event);
	pthread_mutex_unlock(&f->lock);
}

void fleet_stop(struct fleet *f)
{
	if (!f) {
		return;
	}
	pthread_mutex_lock(&f->lock);
	__atomic_store_n(&f->stopping, true, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&f->event);
	http_cancel(&f->watch_cancel);
	pthread_mutex_unlock(&f->lock);
	if (f->threads) {
		pthread_join(f->watch_thread, NULL);
		pthread_join(f->keepalive_thread, NULL);
		pthread_join(f->guard_thread, NULL);
		f->threads = false;
	}
	if (f->reconciling) {
		pthread_join(f->reconcile_thread, NULL);
		f->reconciling = false;
	}
}

void fleet_free(struct fleet *f)
{
	if (!f) {
		return;
	}
	fleet_stop(f);
	if (f->lease && f->etcd) {
		json_auto_t *reply = NULL;
		char err[256];
		etcd_call(f->etcd, "lease/revoke", json_pack("{s:I}", "ID", (json_int_t)f->lease), 2000, &reply, err,
			  sizeof(err));
	}
	etcd_free(f->etcd);
	for (size_t i = 0; i < f->es.n_endpoints; i++) {
		free(f->es.endpoints[i]);
	}
	free(f->es.endpoints);
	secret_free(f->etcd_password);
	fleet_keys_free(f->keys);
	for (size_t i = 0; i < f->n_nodes; i++) {
		free(f->nodes[i]);
	}
	free(f->nodes);
	free(f->root);
	free(f->node);
	free(f->node_key);
	pthread_mutex_destroy(&f->lock);
	pthread_mutex_destroy(&f->watch_cancel.lock);
	pthread_cond_destroy(&f->event);
	free(f);
}
