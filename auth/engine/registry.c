/* The target registry: targets from the config, the state dir (mkdir'd ones),
 * the environment and mkdir; lookups by name and by id; rmdir. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <libxml/xmlmemory.h>
#include <limits.h>
#include <malloc.h>
#include <search.h>
#include <stddef.h>
#include <stdio.h>

#include "lib/http.h"
#include "lib/log.h"
#include "target.h"

/* "host", "host:port", "[v6]" or "[v6]:port" → host and port (0 if none). */
static int parse_host_port(const char *name, char **ret_host, unsigned *ret_port)
{
	const char *host = name, *end, *colon;
	char *copy;
	size_t hlen;
	long port = 0;

	if (name[0] == '[') {
		end = strchr(name, ']');
		if (!end) {
			return -EINVAL;
		}
		host = name + 1;
		hlen = (size_t)(end - host);
		colon = end[1] == ':' ? end + 1 : NULL;
		if (!colon && end[1]) {
			return -EINVAL;
		}
		for (size_t i = 0; i < hlen; i++) {
			if (!isxdigit((unsigned char)host[i]) && host[i] != ':' && host[i] != '.') {
				return -EINVAL;
			}
		}
	} else {
		size_t label = 0;
		colon = strchr(name, ':');
		hlen = colon ? (size_t)(colon - name) : strlen(name);
		/* DNS labels: 1..63 characters, none empty ("a..b", "x."). */
		for (size_t i = 0; i < hlen; i++) {
			if (host[i] == '.') {
				if (label == 0) {
					return -EINVAL;
				}
				label = 0;
			} else if ((isalnum((unsigned char)host[i]) || host[i] == '-' || host[i] == '_') && ++label <= 63) {
				continue;
			} else {
				return -EINVAL;
			}
		}
		if (label == 0) {
			return -EINVAL;
		}
	}
	if (hlen == 0 || hlen > 253 || host[0] == '-' || host[0] == '.') {
		return -EINVAL;
	}
	if (colon && config_parse_number("port", colon + 1, &port) < 0) {
		return -EINVAL;
	}
	copy = strndup(host, hlen);
	if (!copy) {
		return -ENOMEM;
	}
	*ret_host = copy;
	*ret_port = (unsigned)port;
	return 0;
}

/* A target without a section of its own (mkdir) that inherits plain http or
 * validate_certs = false from the defaults: said in the log and in status. */
static void warn_inherited(struct auth_target *t)
{
	const struct target_info *i = &t->info;
	bool http = strcmp(i->scheme, "http") == 0, no_verify = !i->tls.validate_certs && !http;

	if (i->section || !i->defaults || (!http && !no_verify)) {
		return;
	}
	free(t->warning);
	if (asprintf(&t->warning, "inherits %s from the [%s] defaults: a spoofed server gets the credentials",
		     http ? "scheme = http" : "validate_certs = false", i->provider) < 0) {
		t->warning = NULL;
		return;
	}
	log_warning("Target %s/%s %s", i->provider, t->name, t->warning);
}

/* Connection facts from the config section (or the name, for mkdir'd targets).
 * A port_override (from the environment) beats both. */
static int target_info_init(struct auth_target *t, const struct config *cfg, const struct target_config *section,
			    const char *host, unsigned port, unsigned port_override)
{
	struct target_info *i = &t->info;
	const char *v;
	long n;
	bool b;
	int r;

	i->provider = t->provider->name;
	i->name = t->name;
	i->section = section;
	i->defaults = config_find_defaults(cfg, t->provider->name);
	/* A literal, not a copy per target. */
	v = target_setting(i, "scheme");
	i->scheme = !v || strcmp(v, "https") == 0 ? "https" : strcmp(v, "http") == 0 ? "http" : NULL;
	if (!i->scheme) {
		return log_error_errno(-EINVAL, "Target %s/%s: scheme must be https or http", i->provider, t->name);
	}
	if ((v = target_config_get(section, "server")) || (v = target_config_get(section, "host"))) {
		host = v;
	}
	i->host = strdup(host);
	if (!i->host) {
		return -ENOMEM;
	}
	if (port) {
		i->port = port;
	} else if (strcmp(i->scheme, "http") == 0) {
		i->port = 80;
	} else {
		i->port = t->provider->default_port ? t->provider->default_port : 443;
	}
	/* The section's port, else the one in the name, else the defaults'
	 * (numbers as config.c parsed and checked them). */
	if (target_config_get_number(section, "port", &n) == 0 ||
	    (!port && target_config_get_number(i->defaults, "port", &n) == 0)) {
		i->port = (unsigned)n;
	}
	if (port_override) {
		i->port = port_override;
	}
	if (asprintf(&i->base_url, strchr(i->host, ':') ? "%s://[%s]:%u" : "%s://%s:%u", i->scheme, i->host, i->port) < 0) {
		i->base_url = NULL;
		return -ENOMEM;
	}
	i->tls.validate_certs = true;
	if ((v = target_setting(i, "validate_certs")) && parse_bool(v, &b) == 0) {
		i->tls.validate_certs = b;
	}
	/* No ca_path: the CA bundle the curl tool and OpenSSL take from the environment. */
	if (!(v = target_setting(i, "ca_path")) && !(v = getenv("CURL_CA_BUNDLE"))) {
		v = getenv("SSL_CERT_FILE");
	}
	if (v && *v) {
		i->tls.ca_path = v; /* the config's or the environment's: both outlive the target */
	}
	i->timeout = cfg->timeout;
	if (target_config_get_number(section, "timeout", &n) == 0 ||
	    target_config_get_number(i->defaults, "timeout", &n) == 0) {
		i->timeout = (int)n;
	}
	i->logout_on_exit = t->provider->features & AUTH_PROVIDER_LOGOUT_ON_EXIT;
	if ((v = target_setting(i, "logout_on_exit")) && parse_bool(v, &b) == 0) {
		i->logout_on_exit = b;
	}
	if (t->provider->init_info && (r = t->provider->init_info(i)) < 0) {
		return log_error_errno(r, "Target %s/%s: invalid settings", i->provider, t->name);
	}
	if (!i->tls.validate_certs && strcmp(i->scheme, "https") == 0) {
		log_warning("Target %s/%s: TLS certificate validation is OFF (validate_certs = false)", i->provider, t->name);
	}
	warn_inherited(t);
	return 0;
}

/* Waits on it take CLOCK_MONOTONIC deadlines. */
static void cond_init_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(c, &ca);
	pthread_condattr_destroy(&ca);
}

/* A state file of the target that cannot be trusted or read (why: "<path>:
 * <problem>"): it is ignored and the target stays, in an error state that
 * reads report, without logging in with credentials that may not be the ones
 * meant, until new credentials are written. The daemon serves the rest. */
static void state_fault(struct auth_target *t, const char *why, const char *problem)
{
	char msg[TARGET_ERROR_MAX];

	log_error("%s/%s: ignoring untrusted or corrupt state: %s%s", t->provider->name, t->name, why, problem);
	snprintf(msg, sizeof(msg), "untrusted or corrupt state: %s%s; ignored: write new credentials to %s/%s/credentials",
		 why, problem, t->provider->name, t->name);
	target_set_error(t, -EBADMSG, msg);
	t->rejected = true;
	/* Not even after an rm token: only written credentials count now. */
	free(TAKE_PTR(t->user));
	secret_free(TAKE_PTR(t->password));
}

static bool has_default_credentials(const struct auth_target *t)
{
	const struct target_config *d = t->info.defaults;

	return target_config_get(d, "password") || target_config_get(d, "password_file") ||
	       target_config_get(d, "password_env") || (t->provider->env_password && getenv(t->provider->env_password));
}

/* Written credentials (in the store) win over configured ones; default
 * credentials go only where target_defaults_allowed() says. *ret_stored
 * becomes false when the state dir has nothing of t's. */
static int target_load_credentials(struct auth_target *t, bool *ret_stored)
{
	_cleanup_secret_ struct secret *saved = NULL;
	bool defaults = target_defaults_allowed(&t->info);
	char why[PATH_MAX + 100];
	int r;

	if ((t->user = (char *)(defaults ? target_setting(&t->info, "user") : target_config_get(t->info.section, "user")))) {
		t->user = strdup(t->user);
	}
	r = config_resolve_secret(t->info.section, "password", &t->password);
	if (r == -ENOENT && defaults) {
		r = config_resolve_secret(t->info.defaults, "password", &t->password);
	}
	if (r < 0 && r != -ENOENT) {
		/* The target stays, without credentials; status says why. */
		target_set_error(t, -ENOKEY, "the configured password_file or password_env cannot be read (see the log)");
		return 0;
	}
	/* The environment variables the provider's own tools read (IDRAC_USERNAME, ...). */
	if (!defaults && has_default_credentials(t)) {
		free(t->warning);
		if (asprintf(&t->warning, "default credentials withheld: %s matches no [%s] hosts pattern; "
			     "write this target's own credentials", t->info.host, t->provider->name) < 0) {
			t->warning = NULL;
		} else {
			log_warning("Target %s/%s: %s", t->provider->name, t->name, t->warning);
		}
	}
	if (defaults && !t->password && t->provider->env_password && getenv(t->provider->env_password)) {
		const char *user = t->provider->env_user ? getenv(t->provider->env_user) : NULL;
		if (user || t->user) {
			if (user) {
				free(t->user);
				t->user = strdup(user);
			}
			t->password = secret_new_str(getenv(t->provider->env_password));
		}
	}
	if (!t->password && t->provider->default_credentials) {
		char *user = NULL;
		struct secret *password = NULL;
		r = t->provider->default_credentials(&t->info, &user, &password);
		if (r < 0 && r != -ENOENT) {
			return r;
		}
		if (r >= 0) {
			free(t->user);
			t->user = user;
			t->password = password;
		}
	}
	r = store_check_target(t->core->store, t->provider->name, t->name, why, sizeof(why));
	if (r == -ENOENT) {
		*ret_stored = false; /* most targets: nothing more to look for */
		return 0;
	}
	if (r < 0) {
		state_fault(t, why, "");
		return 0;
	}
	snprintf(why, sizeof(why), "%s/%s/%s/credentials", store_path(t->core->store), t->provider->name, t->name);
	r = store_load(t->core->store, t->provider->name, t->name, "credentials", &saved);
	if (r == 0) {
		char *user = NULL;
		struct secret *password = NULL;
		if (credentials_parse(saved->data, saved->len, &user, &password) < 0) {
			state_fault(t, why, ": corrupt (not user:password or {\"username\",\"password\"})");
			return 0;
		}
		free(t->user);
		secret_free(t->password);
		t->user = user;
		t->password = password;
	} else if (r != -ENOENT) {
		state_fault(t, why, ": cannot be read or trusted (see the log)");
	}
	return 0;
}

static int target_new(struct auth_core *core, size_t provider, const char *name,
		      const struct target_config *section, unsigned port_override, struct auth_target **ret)
{
	size_t len = strlen(name) + 1;
	struct auth_target *t = calloc(1, sizeof(*t) + len);
	_cleanup_free_ char *host = NULL;
	unsigned port = 0;
	bool stored = true;
	int r;

	if (!t) {
		return -ENOMEM;
	}
	t->core = core;
	t->refs = 1;
	t->provider = auth_providers[provider];
	pthread_mutex_init(&t->lock, NULL);
	cond_init_monotonic(&t->cond);
	t->name = memcpy(t->name_buf, name, len);
	t->key = (struct target_key){ provider, t->name };
	/* A name that is no host (a config alias, a profile) is fine: the
	 * section or the provider's init_info() says where the server is. */
	if (!(t->provider->features & AUTH_PROVIDER_HOST_NAMES) || parse_host_port(name, &host, &port) < 0) {
		host = strdup(name);
	}
	if (!host) {
		target_free(t);
		return -ENOMEM;
	}
	r = target_info_init(t, core->cfg, section, host, port, port_override);
	if (r == 0) {
		r = target_load_credentials(t, &stored);
	}
	if (r == 0) {
		r = target_load_access(t, stored);
	}
	if (r == 0) {
		r = fleet_target_new(t, t->user, &t->fleet);
	}
	if (r < 0) {
		target_free(t);
		return r;
	}
	*ret = t;
	return 0;
}

/* Targets by provider and name: a glibc tsearch tree (balanced, with
 * delete, which rmdir needs and hsearch_r lacks): O(log n) per lookup,
 * add and remove, where a scan of every target made a config of 100,000
 * targets take minutes to load. */
static int key_compare(const void *a, const void *b)
{
	const struct target_key *x = a, *y = b;

	if (x->provider != y->provider) {
		return x->provider < y->provider ? -1 : 1;
	}
	return strcmp(x->name, y->name);
}

static struct auth_target *lookup_locked(struct auth_core *core, size_t provider, const char *name)
{
	struct target_key key = { provider, name };
	struct target_key **found = tfind(&key, &core->by_name, key_compare);

	return found ? (struct auth_target *)((char *)*found - offsetof(struct auth_target, key)) : NULL;
}

/* The index in p's ids of the first id above after (p->n: none). */
static size_t ids_after(const struct provider_ids *p, uint32_t after)
{
	size_t lo = 0, hi = p->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (p->ids[mid] <= after) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

/* Room for one more id in p. */
static int ids_reserve(struct provider_ids *p)
{
	size_t cap = p->cap ? 2 * p->cap : 64;
	uint32_t *n;

	if (p->n < p->cap) {
		return 0;
	}
	n = realloc(p->ids, cap * sizeof(*n));
	if (!n) {
		return -ENOMEM;
	}
	p->ids = n;
	p->cap = cap;
	return 0;
}

static void ids_remove(struct provider_ids *p, uint32_t id)
{
	size_t i = ids_after(p, id - 1);

	if (i < p->n && p->ids[i] == id) {
		memmove(&p->ids[i], &p->ids[i + 1], (p->n - i - 1) * sizeof(*p->ids));
		p->n--;
	}
}

/* Takes the caller's reference into the registry. -EEXIST if the name is taken. */
static int registry_add(struct auth_core *core, struct auth_target *t)
{
	struct provider_ids *ids = &core->by_provider[t->key.provider];
	struct target_key **slot;
	int r = 0;

	pthread_rwlock_wrlock(&core->registry_lock);
	r = ids_reserve(ids);
	if (r < 0) {
		goto out;
	}
	if (core->n_targets == core->cap_targets) {
		uint32_t cap = core->cap_targets ? 2 * core->cap_targets : 64;
		struct auth_target **n = cap > core->cap_targets ? realloc(core->targets, cap * sizeof(*n)) : NULL;
		if (!n) {
			r = -ENOMEM;
			goto out;
		}
		core->targets = n;
		core->cap_targets = cap;
	}
	slot = tsearch(&t->key, &core->by_name, key_compare);
	if (!slot) {
		r = -ENOMEM;
	} else if (*slot != &t->key) {
		r = -EEXIST;
	} else {
		t->id = ++core->n_targets;
		core->targets[t->id - 1] = t;
		ids->ids[ids->n++] = t->id; /* the largest id yet */
	}
out:
	pthread_rwlock_unlock(&core->registry_lock);
	return r;
}

/* Takes t out of the registry (registry_lock held for writing); its id
 * stays unused. */
static void registry_unlink(struct auth_core *core, struct auth_target *t)
{
	core->targets[t->id - 1] = NULL;
	tdelete(&t->key, &core->by_name, key_compare);
	ids_remove(&core->by_provider[t->key.provider], t->id);
}

static int add_target(struct auth_core *core, size_t provider, const char *name,
		      const struct target_config *section, unsigned port_override, struct auth_target **ret)
{
	struct auth_target *t;
	int r = target_new(core, provider, name, section, port_override, &t);

	if (r < 0) {
		return r;
	}
	r = registry_add(core, t);
	if (r < 0) {
		target_free(t);
		return r;
	}
	if (ret) {
		*ret = target_ref(t);
	}
	return 0;
}

struct auth_target *auth_target_lookup(struct auth_core *core, size_t provider, const char *name)
{
	struct auth_target *t;

	pthread_rwlock_rdlock(&core->registry_lock);
	t = lookup_locked(core, provider, name);
	if (t) {
		target_ref(t);
	}
	pthread_rwlock_unlock(&core->registry_lock);
	return t;
}

struct auth_target *auth_target_get(struct auth_core *core, uint32_t id)
{
	struct auth_target *t = NULL;

	pthread_rwlock_rdlock(&core->registry_lock);
	if (id >= 1 && id <= core->n_targets && (t = core->targets[id - 1])) {
		target_ref(t);
	}
	pthread_rwlock_unlock(&core->registry_lock);
	return t;
}

struct auth_target *auth_target_next(struct auth_core *core, uint32_t after)
{
	struct auth_target *t = NULL;

	pthread_rwlock_rdlock(&core->registry_lock);
	for (uint32_t i = after; i < core->n_targets; i++) {
		if (core->targets[i]) {
			t = target_ref(core->targets[i]);
			break;
		}
	}
	pthread_rwlock_unlock(&core->registry_lock);
	return t;
}

void auth_target_list(struct auth_core *core, size_t provider, uint32_t after,
		      bool (*fn)(void *userdata, uint32_t id, const char *name), void *userdata)
{
	const struct provider_ids *ids = &core->by_provider[provider];

	pthread_rwlock_rdlock(&core->registry_lock);
	for (size_t i = ids_after(ids, after); i < ids->n; i++) {
		if (!fn(userdata, ids->ids[i], core->targets[ids->ids[i] - 1]->name)) {
			break;
		}
	}
	pthread_rwlock_unlock(&core->registry_lock);
}

/* Drops t from the registry; false if it was not there. */
static bool registry_remove(struct auth_core *core, struct auth_target *t)
{
	bool found;

	pthread_rwlock_wrlock(&core->registry_lock);
	found = core->targets[t->id - 1] == t;
	if (found) {
		registry_unlink(core, t);
	}
	pthread_rwlock_unlock(&core->registry_lock);
	return found;
}

int auth_target_create(struct auth_core *core, size_t provider, const char *name, struct auth_target **ret)
{
	_cleanup_free_ char *host = NULL, *marker = NULL;
	struct auth_target *t;
	unsigned port = 0;
	int r;

	r = auth_name_valid(name);
	if (r < 0) {
		return r;
	}
	if (auth_providers[provider]->features & AUTH_PROVIDER_HOST_NAMES) {
		if (parse_host_port(name, &host, &port) < 0) {
			return -EINVAL;
		}
		r = asprintf(&marker, "{\"host\":\"%s\",\"port\":%u}", host, port);
	} else {
		r = asprintf(&marker, "{}");
	}
	/* Remembered across restarts: a target that can't be saved is not made. */
	if (r < 0) {
		marker = NULL;
		return -ENOMEM;
	}
	r = add_target(core, provider, name, NULL, 0, &t);
	if (r < 0) {
		return r;
	}
	r = store_save(core->store, auth_providers[provider]->name, name, "target", marker, strlen(marker));
	if (r < 0) {
		/* store_save() said why; mkdir fails with it. */
		if (registry_remove(core, t)) {
			auth_target_unref(t); /* the registry's reference */
		}
		auth_target_unref(t);
		return r;
	}
	log_info("Added target %s/%s", auth_providers[provider]->name, name);
	*ret = t;
	return 0;
}

/* Marks t removed (a flight still running ends its own session) and logs
 * out in the background. */
static void target_retire(struct auth_target *t)
{
	pthread_mutex_lock(&t->lock);
	t->removed = true;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	waiters_settle(t); /* opens waiting for its login: ENOENT now */
	session_logout_background(t); /* rmdir answers at once */
}

int auth_target_destroy(struct auth_core *core, size_t provider, const char *name)
{
	struct auth_target *t;
	int r;

	pthread_rwlock_wrlock(&core->registry_lock);
	t = lookup_locked(core, provider, name);
	if (t && t->info.section) {
		/* It would be back at the next start. */
		pthread_rwlock_unlock(&core->registry_lock);
		log_warning("Not removing target %s/%s: it is configured; remove it from the config", t->provider->name, t->name);
		return -EBUSY;
	}
	if (t) {
		registry_unlink(core, t);
	}
	pthread_rwlock_unlock(&core->registry_lock);
	if (!t) {
		return -ENOENT;
	}
	target_retire(t);
	r = store_remove_target(core->store, t->provider->name, t->name); /* logs its failure */
	if (r == 0) {
		log_info("Removed target %s/%s", t->provider->name, t->name);
	}
	target_notify(t);
	auth_target_unref(t);
	return r;
}

struct store_scan {
	struct auth_core *core;
	size_t provider;
};

static void add_stored_target(const char *name, void *userdata)
{
	struct store_scan *s = userdata;

	if (auth_name_valid(name) == 0) {
		add_target(s->core, s->provider, name, NULL, 0, NULL); /* EEXIST: also configured */
	}
}

/* Default credentials and a session to resume, for a found target that has
 * none of its own. */
static void adopt_found(struct auth_target *t, struct auth_found *f)
{
	pthread_mutex_lock(&t->lock);
	if (!t->password && f->user && f->password) {
		free(t->user);
		t->user = TAKE_PTR(f->user);
		t->password = TAKE_PTR(f->password);
	}
	/* Validated before first use, like a session.json write. */
	if (f->session &&
	    t->provider->session_load(&t->info, f->session->data, f->session->len, &t->pending) == 0) {
		t->pending_loaded = true;
	}
	pthread_mutex_unlock(&t->lock);
}

/* Targets a provider finds by itself (its discover hook): in its tools'
 * files or environment variables. */
static int add_found_targets(struct auth_core *core, size_t provider)
{
	const struct auth_provider *p = auth_providers[provider];
	struct auth_found *found = NULL;
	struct auth_target *t;
	size_t n = 0;
	int r;

	if (!p->discover) {
		return 0;
	}
	r = p->discover(&found, &n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (auth_name_valid(found[i].name) < 0) {
			continue;
		}
		r = add_target(core, provider, found[i].name, NULL, found[i].port, &t);
		if (r == 0) {
			adopt_found(t, &found[i]);
			auth_target_unref(t);
		} else if (r == -EEXIST) {
			r = 0; /* configured or mkdir'd as well */
		} else {
			log_warning("Skipping %s target %s: %s", p->name, found[i].name, strerror(-r));
			r = 0;
		}
	}
	auth_found_free(found, n);
	return r;
}

/* Fleet mode's view of the engine. */
static const struct fleet_engine fleet_engine = {
	.next_target = auth_target_next,
	.can_serve = session_usable,
	.install = session_install,
	.forget = session_forget,
	.credentials = session_credentials_shared,
	.renewal_due = target_renewal_due,
	.serves = session_serves,
	.end = session_end_background,
};

/* Before the mount is up: OpenSSL's set-up for a first login, with the CA
 * file of the first target that verifies certificates (one file is enough:
 * the decoders it needs read every CA file). */
static void warm_up_tls(struct auth_core *core)
{
	for (uint32_t i = 0; i < core->n_targets; i++) {
		const struct auth_target *t = core->targets[i];
		if (t && t->info.tls.validate_certs) {
			http_warm_up(t->info.tls.ca_path);
			return;
		}
	}
	http_warm_up(NULL);
}

int auth_core_new(const struct config *cfg, struct store *store, struct auth_core **ret)
{
	struct auth_core *core = calloc(1, sizeof(*core));
	int r = 0;

	if (!core) {
		return -ENOMEM;
	}
	core->cfg = cfg;
	core->store = store;
	core->by_provider = calloc(auth_provider_count(), sizeof(*core->by_provider));
	if (!core->by_provider) {
		free(core);
		return -ENOMEM;
	}
	pthread_rwlock_init(&core->registry_lock, NULL);
	pthread_mutex_init(&core->sched_lock, NULL);
	cond_init_monotonic(&core->sched_cond);
	pthread_mutex_init(&core->waiters_lock, NULL);
	cond_init_monotonic(&core->waiters_cond);
	/* Their buffers may hold tokens: wiped before they go back to malloc,
	 * and when realloc moves them (wiped_realloc). Once per process, before
	 * any of them allocates. */
	json_set_alloc_funcs(malloc, wiped_free);
	xmlMemSetup(wiped_free, malloc, wiped_realloc, strdup);
	r = http_global_init();
	if (r < 0) {
		log_error_errno(r, "Failed to initialize HTTP: %m");
	}
	core->http_up = true; /* cleaned up even when half done */
	for (size_t p = 0; p < auth_provider_count() && r == 0; p++) {
		if (auth_providers[p]->n_files > AUTH_FILES_MAX) {
			r = log_error_errno(-E2BIG, "Provider %s has more than %d files", auth_providers[p]->name,
					    AUTH_FILES_MAX);
		}
	}
	for (size_t i = 0; i < cfg->n_defaults && r == 0; i++) {
		if (auth_provider_index(cfg->defaults[i].provider) < 0 && strcmp(cfg->defaults[i].provider, "fleet") != 0) {
			r = log_error_errno(-EINVAL, "Unknown section [%s] in config", cfg->defaults[i].provider);
		}
	}
	if (r == 0) {
		r = fleet_new(cfg, &fleet_engine, &core->fleet); /* before any target: each has its fleet state */
	}
	for (size_t i = 0; i < cfg->n_targets && r == 0; i++) {
		const struct target_config *tc = &cfg->targets[i];
		int p = auth_provider_index(tc->provider);
		if (p < 0) {
			r = log_error_errno(-EINVAL, "Unknown provider [%s \"%s\"] in config", tc->provider, tc->name);
		} else if ((r = auth_name_valid(tc->name)) < 0) {
			log_error_errno(r, "Invalid target name \"%s\" in config", tc->name);
		} else {
			r = add_target(core, (size_t)p, tc->name, tc, 0, NULL);
		}
	}
	for (size_t p = 0; p < auth_provider_count() && r == 0; p++) {
		r = store_list(store, auth_providers[p]->name, "target", add_stored_target,
			       &(struct store_scan){ core, p });
		if (r == 0) {
			r = add_found_targets(core, p);
		}
	}
	if (r == 0) {
		r = target_audit_open(cfg);
	}
	if (r == 0) {
		warm_up_tls(core);
	}
	/* What reading the config and loading the targets freed (the parse's
	 * tables, the store's paths) goes back to the system: a daemon of
	 * 100,000 targets would otherwise keep it all its life. */
	malloc_trim(0);
	if (r < 0) {
		auth_core_free(core);
		return r;
	}
	*ret = core;
	return 0;
}

void auth_core_set_notify(struct auth_core *core, void (*fn)(void *userdata, uint32_t target_id, uint64_t gen),
			  void *userdata)
{
	core->notify = fn;
	core->notify_userdata = userdata;
}

int auth_core_start(struct auth_core *core)
{
	int r = audit_start(); /* after daemonizing: a thread */

	if (r == 0) {
		r = http_start();
	}
	if (r == 0) {
		r = waiters_start(core);
	}
	if (r == 0) {
		r = scheduler_start(core, flight_refresh);
	}
	return r < 0 ? r : fleet_start(core->fleet, core);
}

void auth_core_stop(struct auth_core *core)
{
	if (core) {
		waiters_stop(core); /* first: the opens still waiting are answered at once */
		fleet_stop(core->fleet);
		scheduler_stop(core);
	}
}

#define EXIT_LOGOUT_THREADS 16

struct exit_logouts {
	struct auth_target **targets;
	size_t n;
	size_t next; /* atomic */
	double deadline;
};

static void *exit_logout_worker(void *userdata)
{
	struct exit_logouts *x = userdata;

	for (size_t i; (i = __atomic_fetch_add(&x->next, 1, __ATOMIC_RELAXED)) < x->n;) {
		session_logout(x->targets[i], x->deadline);
	}
	secret_wipe_stack();
	return NULL;
}

/* The logouts logout_on_exit asks for, in parallel: all of them together take
 * at most one timeout, however many servers hang. */
static void exit_logouts(struct auth_core *core)
{
	struct exit_logouts x = { .deadline = now_mono() + core->cfg->timeout };
	pthread_t threads[EXIT_LOGOUT_THREADS];
	size_t n_threads = 0;

	x.targets = calloc(core->n_targets ?: 1, sizeof(*x.targets));
	if (!x.targets) {
		return;
	}
	for (uint32_t i = 0; i < core->n_targets; i++) {
		struct auth_target *t = core->targets[i];
		if (t && t->info.logout_on_exit && !fleet_shared_elsewhere(t)) {
			x.targets[x.n++] = t;
		}
	}
	while (n_threads < EXIT_LOGOUT_THREADS && n_threads < x.n &&
	       pthread_create(&threads[n_threads], NULL, exit_logout_worker, &x) == 0) {
		n_threads++;
	}
	if (n_threads == 0) {
		exit_logout_worker(&x);
	}
	for (size_t i = 0; i < n_threads; i++) {
		pthread_join(threads[i], NULL);
	}
	free(x.targets);
}

static void noop_free(void *p)
{
	(void)p; /* the tree's keys are in the targets */
}

void auth_core_free(struct auth_core *core)
{
	if (!core) {
		return;
	}
	waiters_stop(core);
	fleet_stop(core->fleet);
	scheduler_stop(core);
	logouts_wait(core); /* rm and rmdir's, still running */
	exit_logouts(core);
	audit_close(); /* after the exit logouts, which it records */
	fleet_free(core->fleet);
	tdestroy(core->by_name, noop_free);
	for (uint32_t i = 0; i < core->n_targets; i++) {
		auth_target_unref(core->targets[i]);
	}
	free(core->targets);
	for (size_t p = 0; p < auth_provider_count(); p++) {
		free(core->by_provider[p].ids);
	}
	free(core->by_provider);
	if (core->http_up) {
		http_global_cleanup();
	}
	pthread_rwlock_destroy(&core->registry_lock);
	pthread_mutex_destroy(&core->sched_lock);
	pthread_cond_destroy(&core->sched_cond);
	pthread_mutex_destroy(&core->waiters_lock);
	pthread_cond_destroy(&core->waiters_cond);
	free(core);
}
