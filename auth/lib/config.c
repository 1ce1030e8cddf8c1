/* INI parsing is libinih's; this file maps sections and keys onto struct config. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <search.h>
#include <ini.h>
#include <openssl/crypto.h>
#include <strings.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

struct sections;
static void sections_free(struct sections *s);

static int kv_add(struct target_config *t, const char *key, const char *value, bool numeric, long number)
{
	struct config_kv *kv = realloc(t->kv, (t->n_kv + 1) * sizeof(*kv));

	if (!kv) {
		return -ENOMEM;
	}
	t->kv = kv;
	kv[t->n_kv].key = strdup(key);
	kv[t->n_kv].value = strdup(value);
	kv[t->n_kv].numeric = numeric;
	kv[t->n_kv].number = number;
	if (!kv[t->n_kv].key || !kv[t->n_kv].value) {
		free(kv[t->n_kv].key);
		erase_and_free_str(kv[t->n_kv].value);
		return -ENOMEM;
	}
	t->n_kv++;
	return 0;
}

static void target_config_done(struct target_config *t)
{
	for (size_t i = 0; i < t->n_kv; i++) {
		free(t->kv[i].key);
		erase_and_free_str(t->kv[i].value); /* may be a password */
	}
	free(t->kv);
	free(t->provider);
	free(t->name);
}

void config_free(struct config *c)
{
	if (!c) {
		return;
	}
	for (size_t i = 0; i < c->n_targets; i++) {
		target_config_done(&c->targets[i]);
	}
	for (size_t i = 0; i < c->n_defaults; i++) {
		target_config_done(&c->defaults[i]);
	}
	for (size_t i = 0; i < c->n_access; i++) {
		access_rule_done(&c->access[i]);
	}
	free(c->audit_log);
	sections_free(c->sections);
	free(c->targets);
	free(c->defaults);
	free(c->access);
	free(c->state_dir);
	free(c);
}

int parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off" };

	for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

int parse_int(const char *s, long min, long max, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != 0 || v < min || v > max) {
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

void access_rule_done(struct access_rule *a)
{
	for (size_t i = 0; i < a->n_callers; i++) {
		free(a->callers[i]);
	}
	free(a->callers);
	free(a->path);
}

/* "unit:NAME" (a unit name, no slash) or "cgroup:/PATH". */
static int caller_add(struct access_rule *a, const char *w)
{
	bool unit = strncmp(w, "unit:", 5) == 0;
	char **v;

	if (unit ? (!w[5] || strchr(w + 5, '/')) : w[7] != '/') {
		return -EINVAL;
	}
	v = realloc(a->callers, (a->n_callers + 1) * sizeof(*v));
	if (!v) {
		return -ENOMEM;
	}
	a->callers = v;
	v[a->n_callers] = strdup(w);
	if (!v[a->n_callers]) {
		return -ENOMEM;
	}
	a->n_callers++;
	return 0;
}

int access_rule_parse(const char *path, const char *value, struct access_rule *ret)
{
	_cleanup_(access_rule_done) struct access_rule a = { 0 };
	_cleanup_free_ char *copy = strdup(value);
	char *save = NULL;

	if (!copy) {
		return -ENOMEM;
	}
	for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		long v;
		if (strncmp(w, "uid:", 4) == 0 && parse_int(w + 4, 0, 0x7fffffff, &v) == 0) {
			a.uid = (uid_t)v;
			a.has_uid = true;
		} else if (strncmp(w, "gid:", 4) == 0 && parse_int(w + 4, 0, 0x7fffffff, &v) == 0) {
			a.gid = (gid_t)v;
			a.has_gid = true;
		} else if (strncmp(w, "mode:", 5) == 0) {
			char *end;
			errno = 0;
			v = strtol(w + 5, &end, 8);
			if (errno || *end || end == w + 5 || v < 0 || v > 07777) {
				return -EINVAL;
			}
			a.mode = (mode_t)v;
			a.has_mode = true;
		} else if (strncmp(w, "unit:", 5) == 0 || strncmp(w, "cgroup:", 7) == 0) {
			int r = caller_add(&a, w);
			if (r < 0) {
				return r;
			}
		} else {
			return -EINVAL;
		}
	}
	a.path = strdup(path);
	if (!a.path) {
		return -ENOMEM;
	}
	*ret = a;
	a = (struct access_rule){ 0 };
	return 0;
}

/* Splits a section header: `aos "lab"` → ("aos", "lab"); `aos` → ("aos", NULL). */
static int split_section(const char *section, char **ret_provider, char **ret_name)
{
	const char *q = strchr(section, '"');
	size_t plen = q ? (size_t)(q - section) : strlen(section);
	_cleanup_free_ char *provider = NULL, *name = NULL;

	while (plen > 0 && isspace((unsigned char)section[plen - 1])) {
		plen--;
	}
	provider = strndup(section, plen);
	if (!provider) {
		return -ENOMEM;
	}
	if (q) {
		const char *end = strchr(q + 1, '"');
		if (!end || end[1] != 0 || end == q + 1) {
			return -EINVAL;
		}
		name = strndup(q + 1, (size_t)(end - q - 1));
		if (!name) {
			return -ENOMEM;
		}
	}
	*ret_provider = TAKE_PTR(provider);
	*ret_name = TAKE_PTR(name);
	return 0;
}

/* Sections by provider and name while the file is read, so that each line
 * finds its section in constant time (a config of 100,000 targets): glibc's
 * hsearch_r, which has no delete (none is needed: the table lives only
 * while parsing) and no growth (it is made again, twice the size, when it
 * fills). Keys are "provider\nname" ("provider\n" for defaults, which are
 * few); the value is the section's index + 1 in its array. glibc's
 * hsearch_r hashes only the first few characters of a key (each one shifts
 * those after it out), so that "t000001" and "t000002" collide: a key
 * starts with a hash of its own of the rest (FNV-1a, as 8 hex digits). */
static uint32_t key_hash(const char *provider, const char *name)
{
	uint32_t h = 2166136261u;

	for (const char *p = provider; *p; p++) {
		h = (h ^ (unsigned char)*p) * 16777619u;
	}
	h = (h ^ '\n') * 16777619u;
	for (const char *p = name; *p; p++) {
		h = (h ^ (unsigned char)*p) * 16777619u;
	}
	return h;
}
struct section_key {
	char *key;
	size_t index;
};

struct sections {
	struct hsearch_data table;
	size_t size, used;
	struct section_key *keys; /* every key, to free them and to fill a bigger table */
};

/* Room for n + 1 elements of an array grown by doubling (n is its length). */
static int grow(void **array, size_t n, size_t elem)
{
	void *p;

	if (n & (n - 1)) {
		return 0; /* not a power of two: there is room */
	}
	p = realloc(*array, (n ? 2 * n : 1) * elem);
	if (!p) {
		return -ENOMEM;
	}
	*array = p;
	return 0;
}

static void sections_free(struct sections *s)
{
	if (!s) {
		return;
	}
	if (s->size) {
		hdestroy_r(&s->table);
	}
	for (size_t i = 0; i < s->used; i++) {
		free(s->keys[i].key);
	}
	free(s->keys);
	free(s);
}

/* An index for key, or -ENOENT. */
static ssize_t sections_find(struct sections *s, const char *key)
{
	ENTRY *e = NULL;

	if (!s->size || !hsearch_r((ENTRY){ .key = (char *)key }, FIND, &e, &s->table) || !e) {
		return -ENOENT;
	}
	return (ssize_t)(uintptr_t)e->data - 1;
}

static int sections_enter(struct sections *s, const struct section_key *k)
{
	ENTRY *e;

	if (!hsearch_r((ENTRY){ .key = k->key, .data = (void *)(uintptr_t)(k->index + 1) }, ENTER, &e, &s->table)) {
		return -ENOMEM;
	}
	return 0;
}

/* Takes key (its index is the next one of its array). */
static int sections_add(struct sections *s, char *key, size_t index)
{
	/* hsearch_r wants room to spare: at most half full. */
	if (2 * (s->used + 1) > s->size) {
		size_t size = s->size ? 2 * s->size : 1024;
		struct hsearch_data table = { 0 };
		if (!hcreate_r(size, &table)) {
			free(key);
			return -ENOMEM;
		}
		if (s->size) {
			hdestroy_r(&s->table);
		}
		s->table = table;
		s->size = size;
		for (size_t i = 0; i < s->used; i++) {
			sections_enter(s, &s->keys[i]); /* cannot fail: there is room */
		}
	}
	if (grow((void **)&s->keys, s->used, sizeof(*s->keys)) < 0) {
		free(key);
		return -ENOMEM;
	}
	s->keys[s->used] = (struct section_key){ key, index };
	return sections_enter(s, &s->keys[s->used++]);
}

static struct target_config *section_get(struct config *c, const char *section)
{
	_cleanup_free_ char *provider = NULL, *name = NULL;
	struct target_config **list, *t;
	char *key;
	ssize_t found;
	size_t *n;

	if (split_section(section, &provider, &name) < 0) {
		return NULL;
	}
	list = name ? &c->targets : &c->defaults;
	n = name ? &c->n_targets : &c->n_defaults;
	if (asprintf(&key, "%08x\n%s\n%s", key_hash(provider, name ?: ""), provider, name ?: "") < 0) {
		return NULL;
	}
	if (!c->sections && !(c->sections = calloc(1, sizeof(*c->sections)))) {
		free(key);
		return NULL;
	}
	found = sections_find(c->sections, key);
	if (found >= 0) {
		free(key);
		return &(*list)[found];
	}
	if (grow((void **)list, *n, sizeof(**list)) < 0) {
		free(key);
		return NULL;
	}
	if (sections_add(c->sections, key, *n) < 0) {
		return NULL;
	}
	t = &(*list)[(*n)++];
	*t = (struct target_config){ .provider = TAKE_PTR(provider), .name = TAKE_PTR(name) };
	return t;
}

#define TIMEOUT_MIN 1
#define TIMEOUT_MAX 3600

/* Numbers, checked as the file is read: a value out of range stops the
 * mount, naming the line (a misread number could storm a server). The one
 * place their ranges are: the [sessionfs] ones land in struct config, the
 * others in their section's config_kv (target_config_get_number()). */
static const struct numeric_key {
	const char *section; /* "sessionfs", a provider, or NULL for any provider */
	const char *key;
	long min, max;
	size_t offset; /* [sessionfs]: of the int in struct config */
} numeric_keys[] = {
	{ "sessionfs", "timeout", TIMEOUT_MIN, TIMEOUT_MAX, offsetof(struct config, timeout) },
	{ "sessionfs", "refresh_margin", 0, 86400, offsetof(struct config, refresh_margin) },
	{ "sessionfs", "check_interval", 1, 86400, offsetof(struct config, check_interval) },
	{ "sessionfs", "audit_log_max_size", 4096, 0x7fffffff, offsetof(struct config, audit_log_max_size) },
	{ "sessionfs", "audit_log_keep", 0, 1000, offsetof(struct config, audit_log_keep) },
	{ "sessionfs", "audit_queue", 1, 1000000, offsetof(struct config, audit_queue) },
	{ NULL, "timeout", TIMEOUT_MIN, TIMEOUT_MAX, 0 },
	{ NULL, "port", 1, 65535, 0 },
	{ "fleet", "lock_ttl", 2, 600, 0 },
};

/* A provider's own ranges (c->ranges), for keys of its sections. */
static const struct config_range *provider_range(const struct config *c, const char *provider, const char *key)
{
	const struct config_range *r = c->ranges ? c->ranges(provider) : NULL;

	for (; r && r->key; r++) {
		if (strcmp(r->key, key) == 0) {
			return r;
		}
	}
	return NULL;
}

static int range_fail(struct config *c, const char *key, const char *value, long min, long max)
{
	if (!c->error[0]) {
		snprintf(c->error, sizeof(c->error), "%s = %s: expected a whole number from %ld to %ld", key, value, min,
			 max);
	}
	return -EINVAL;
}

/* Parses value if key of provider's section has a range: the provider's
 * own, else one of numeric_keys (*ret_key, NULL for a provider's). 0 with
 * *ret_numeric false for a key without one. */
static int check_numeric(struct config *c, const char *provider, const char *key, const char *value,
			 bool *ret_numeric, long *ret_number, const struct numeric_key **ret_key)
{
	const struct config_range *range = strcmp(provider, "sessionfs") ? provider_range(c, provider, key) : NULL;
	const struct numeric_key *found = NULL;
	bool numeric = false;
	long v = 0;

	if (range) {
		if (parse_int(value, range->min, range->max, &v) < 0) {
			return range_fail(c, key, value, range->min, range->max);
		}
		numeric = true;
	}
	for (size_t i = 0; i < ELEMENTSOF(numeric_keys); i++) {
		const struct numeric_key *k = &numeric_keys[i];
		bool global = strcmp(provider, "sessionfs") == 0;
		if (strcmp(k->key, key) != 0 || (k->section ? strcmp(k->section, provider) != 0 : global)) {
			continue;
		}
		if (parse_int(value, k->min, k->max, &v) < 0) {
			return range_fail(c, key, value, k->min, k->max);
		}
		numeric = true;
		found = k;
		break;
	}
	*ret_numeric = numeric;
	*ret_number = v;
	*ret_key = found;
	return 0;
}

static int global_set(struct config *c, const char *key, const char *value, const struct numeric_key *k, long v)
{
	if (strcmp(key, "state_dir") == 0) {
		free(c->state_dir);
		c->state_dir = strdup(value);
		return c->state_dir ? 0 : -ENOMEM;
	}
	if (strcmp(key, "audit_log") == 0) {
		free(c->audit_log);
		c->audit_log = value[0] == '/' ? strdup(value) : NULL;
		return c->audit_log ? 0 : -EINVAL;
	}
	if (strcmp(key, "audit_required") == 0) {
		return parse_bool(value, &c->audit_required);
	}
	if (strcmp(key, "audit_journal") == 0) {
		return parse_bool(value, &c->audit_journal);
	}
	if (strcmp(key, "page_cache") == 0) {
		return parse_bool(value, &c->page_cache);
	}
	if (k) {
		*(int *)((char *)c + k->offset) = (int)v;
		return 0;
	}
	if (!c->error[0]) {
		snprintf(c->error, sizeof(c->error), "unknown key %s in [sessionfs]", key);
	}
	return -EINVAL;
}

static int access_add(struct config *c, const char *path, const char *value)
{
	struct access_rule *a = realloc(c->access, (c->n_access + 1) * sizeof(*a));

	if (!a) {
		return -ENOMEM;
	}
	c->access = a;
	if (access_rule_parse(path, value, &a[c->n_access]) < 0) {
		return -EINVAL;
	}
	c->access_callers |= a[c->n_access].n_callers > 0;
	c->n_access++;
	return 0;
}

/* inih splits a line at its first '=' or ':', so "aos/h:8443/token = uid:1"
 * arrives as key "aos/h" and value "8443/token = uid:1": rejoin it. */
static int access_add_line(struct config *c, const char *key, const char *value)
{
	_cleanup_free_ char *path = NULL;
	const char *eq = strchr(value, '=');
	size_t n;

	if (!eq) {
		return access_add(c, key, value);
	}
	n = (size_t)(eq - value);
	while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t')) {
		n--;
	}
	if (asprintf(&path, "%s:%.*s", key, (int)n, value) < 0) {
		path = NULL;
		return -ENOMEM;
	}
	eq++;
	while (*eq == ' ' || *eq == '\t') {
		eq++;
	}
	return access_add(c, path, eq);
}

/* inih callback: nonzero means success. */
static int on_line(void *user, const char *section, const char *key, const char *value)
{
	struct config *c = user;
	const struct numeric_key *k;
	struct target_config *t;
	bool numeric;
	long v;

	if (strcmp(section, "sessionfs") == 0) {
		return check_numeric(c, section, key, value, &numeric, &v, &k) == 0 && global_set(c, key, value, k, v) == 0;
	}
	if (strcmp(section, "access") == 0) {
		return access_add_line(c, key, value) == 0;
	}
	if (!*section) {
		return 0; /* a key before any section */
	}
	t = section_get(c, section);
	return t && check_numeric(c, t->provider, key, value, &numeric, &v, &k) == 0 &&
	       kv_add(t, key, value, numeric, v) == 0;
}

static struct config *config_new(void)
{
	struct config *c = calloc(1, sizeof(*c));

	if (!c) {
		return NULL;
	}
	c->state_dir = strdup(CONFIG_DEFAULT_STATE_DIR);
	c->timeout = CONFIG_DEFAULT_TIMEOUT;
	c->refresh_margin = CONFIG_DEFAULT_REFRESH_MARGIN;
	c->check_interval = CONFIG_DEFAULT_CHECK_INTERVAL;
	c->audit_log_max_size = CONFIG_DEFAULT_AUDIT_LOG_MAX_SIZE;
	c->audit_log_keep = CONFIG_DEFAULT_AUDIT_LOG_KEEP;
	c->audit_queue = CONFIG_DEFAULT_AUDIT_QUEUE;
	if (!c->state_dir) {
		free(c);
		return NULL;
	}
	return c;
}

static int config_finish(struct config *c, int line, const char *origin, struct config **ret)
{
	sections_free(TAKE_PTR(c->sections)); /* only lines needed it */
	if (line < 0) {
		config_free(c);
		return log_error_errno(-errno ?: -EIO, "Failed to read config %s: %m", origin);
	}
	if (line > 0) {
		log_error("%s:%d: %s", origin, line, c->error[0] ? c->error : "invalid line");
		config_free(c);
		return -EINVAL;
	}
	*ret = c;
	return 0;
}

int config_parse_string(const char *text, config_ranges_fn ranges, struct config **ret)
{
	struct config *c = config_new();

	if (!c) {
		return -ENOMEM;
	}
	c->ranges = ranges;
	return config_finish(c, ini_parse_string(text, on_line, c), "string", ret);
}

int config_load(const char *path, config_ranges_fn ranges, struct config **ret)
{
	struct config *c = config_new();

	if (!c) {
		return -ENOMEM;
	}
	c->ranges = ranges;
	if (!path) {
		*ret = c;
		return 0;
	}
	errno = 0;
	return config_finish(c, ini_parse(path, on_line, c), path, ret);
}

const char *target_config_get(const struct target_config *t, const char *key)
{
	if (!t) {
		return NULL;
	}
	for (size_t i = t->n_kv; i > 0; i--) { /* the last assignment wins */
		if (strcmp(t->kv[i - 1].key, key) == 0) {
			return t->kv[i - 1].value;
		}
	}
	return NULL;
}

int config_parse_number(const char *key, const char *value, long *ret)
{
	for (size_t i = 0; i < ELEMENTSOF(numeric_keys); i++) {
		const struct numeric_key *k = &numeric_keys[i];
		if (!k->section && strcmp(k->key, key) == 0) {
			return parse_int(value, k->min, k->max, ret);
		}
	}
	return -ENOENT;
}

int target_config_get_number(const struct target_config *t, const char *key, long *ret)
{
	if (!t) {
		return -ENOENT;
	}
	for (size_t i = t->n_kv; i > 0; i--) { /* the last assignment wins */
		if (strcmp(t->kv[i - 1].key, key) == 0) {
			if (!t->kv[i - 1].numeric) {
				return -EINVAL;
			}
			*ret = t->kv[i - 1].number;
			return 0;
		}
	}
	return -ENOENT;
}

const struct target_config *config_find_defaults(const struct config *c, const char *provider)
{
	for (size_t i = 0; c && i < c->n_defaults; i++) {
		if (strcmp(c->defaults[i].provider, provider) == 0) {
			return &c->defaults[i];
		}
	}
	return NULL;
}

int read_secret_file(const char *path, struct secret **ret)
{
	_cleanup_free_ char *real = NULL;
	char buf[65536];
	struct secret *s;
	struct stat st;
	ssize_t n;
	int fd;

	/* The admin's path may go through symlinks (Kubernetes Secret volumes
	 * are made of them); the file it ends at is opened without following. */
	real = realpath(path, NULL);
	if (!real) {
		return log_error_errno(-errno, "Failed to open secret file %s: %m", path);
	}
	fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		return log_error_errno(-errno, "Failed to open secret file %s: %m", path);
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (st.st_mode & 0077)) {
		close(fd);
		return log_error_errno(-EPERM, "Refusing secret file %s: not a regular file, or readable by group or others", path);
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0) {
		return log_error_errno(-errno, "Failed to read secret file %s: %m", path);
	}
	if ((size_t)n == sizeof(buf)) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return log_error_errno(-EFBIG, "Secret file %s is larger than %zu bytes", path, sizeof(buf) - 1);
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
		n--;
	}
	s = secret_new(buf, (size_t)n);
	OPENSSL_cleanse(buf, sizeof(buf));
	if (!s) {
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

/* s (NULL: out of memory) into *ret, which is written only on success. */
static int secret_take(struct secret *s, struct secret **ret)
{
	if (!s) {
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

/* prefix "password" → password, password_file, password_env. */
int config_resolve_secret(const struct target_config *t, const char *prefix, struct secret **ret)
{
	char key[64];
	const char *v;

	if ((v = target_config_get(t, prefix))) {
		return secret_take(secret_new_str(v), ret);
	}
	snprintf(key, sizeof(key), "%s_file", prefix);
	/* A named file or variable that is not there is an error, not "unset". */
	if ((v = target_config_get(t, key))) {
		int r = read_secret_file(v, ret);
		return r == -ENOENT ? -EINVAL : r;
	}
	snprintf(key, sizeof(key), "%s_env", prefix);
	if ((v = target_config_get(t, key))) {
		const char *e = getenv(v);
		if (!e) {
			return log_error_errno(-EINVAL, "Environment variable %s named by %s is not set", v, key);
		}
		return secret_take(secret_new_str(e), ret);
	}
	return -ENOENT;
}
