/* Who may use a target's files: the config's [access] rules (shell patterns
 * on "provider/target/file"), overridden by root's chown/chmod, which are saved
 * in the state dir so they survive a restart; and who may read .metrics. */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>

#include "lib/log.h"
#include "target.h"

static const char *file_name(const struct auth_target *t, int f)
{
	const struct auth_file_info *fi = target_file(t, (unsigned)f);

	return fi ? fi->name : NULL;
}

static void apply_rule(struct file_access *a, const struct access_rule *rule)
{
	if (rule->has_uid) {
		a->uid = rule->uid;
		a->has_uid = true;
	}
	if (rule->has_gid) {
		a->gid = rule->gid;
		a->has_gid = true;
	}
	if (rule->has_mode) {
		a->mode = rule->mode & 07777;
		a->has_mode = true;
	}
}

static void apply_json(struct file_access *a, json_t *j)
{
	json_t *v;

	if (json_is_integer(v = json_object_get(j, "uid"))) {
		a->uid = (uid_t)json_integer_value(v);
		a->has_uid = true;
	}
	if (json_is_integer(v = json_object_get(j, "gid"))) {
		a->gid = (gid_t)json_integer_value(v);
		a->has_gid = true;
	}
	if (json_is_integer(v = json_object_get(j, "mode"))) {
		a->mode = (mode_t)json_integer_value(v) & 07777;
		a->has_mode = true;
	}
}

/* Config rules first, then the saved chown/chmod on top (lock not needed: the
 * target is not yet shared). */
int target_load_access(struct auth_target *t, bool stored)
{
	const struct config *cfg = t->core->cfg;
	_cleanup_secret_ struct secret *saved = NULL;
	struct target_access acc = { 0 };
	json_auto_t *j = NULL;
	bool any = false;

	/* No [access] rules (most configs): no path to make for each file. */
	for (int f = 0; f <= AUTH_FILES_MAX && cfg->n_access > 0; f++) {
		const char *name = f == AUTH_TARGET_DIR ? "" : file_name(t, f);
		char path[600];
		if (!name) {
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s%s%s", t->provider->name, t->name, *name ? "/" : "", name);
		for (size_t i = 0; i < cfg->n_access; i++) {
			if (fnmatch(cfg->access[i].path, path, FNM_PATHNAME) == 0) {
				apply_rule(&acc.access[f], &cfg->access[i]);
				any = true;
			}
		}
	}
	if (stored && store_load(t->core->store, t->provider->name, t->name, "access", &saved) == 0) {
		j = json_loadb(saved->data, saved->len, 0, NULL);
		for (int f = 0; f <= AUTH_FILES_MAX; f++) {
			const char *name = f == AUTH_TARGET_DIR ? "." : file_name(t, f);
			if (name) {
				apply_json(&acc.saved[f], json_object_get(j, name));
				apply_json(&acc.access[f], json_object_get(j, name));
			}
		}
		any = true;
	}
	if (any && !(t->access = malloc(sizeof(acc)))) {
		return -ENOMEM;
	}
	if (any) {
		*t->access = acc;
		pthread_mutex_init(&t->access->lock, NULL);
	}
	return 0;
}

/* t's overrides, made at the first chown or chmod when the config and the
 * state dir set none. Published once and kept until the target is freed.
 * NULL: out of memory. */
static struct target_access *access_get(struct auth_target *t)
{
	struct target_access *a = __atomic_load_n(&t->access, __ATOMIC_ACQUIRE), *expected = NULL;

	if (a) {
		return a;
	}
	a = calloc(1, sizeof(*a));
	if (!a) {
		return NULL;
	}
	pthread_mutex_init(&a->lock, NULL);
	if (!__atomic_compare_exchange_n(&t->access, &expected, a, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		pthread_mutex_destroy(&a->lock); /* another thread's came first */
		free(a);
		return expected;
	}
	return a;
}

void auth_metrics_access(struct auth_core *core, uid_t *uid, gid_t *gid, mode_t *mode)
{
	struct file_access a = { 0 };

	for (size_t i = 0; i < core->cfg->n_access; i++) {
		if (fnmatch(core->cfg->access[i].path, ".metrics", FNM_PATHNAME) == 0) {
			apply_rule(&a, &core->cfg->access[i]);
		}
	}
	if (a.has_uid) {
		*uid = a.uid;
	}
	if (a.has_gid) {
		*gid = a.gid;
	}
	if (a.has_mode) {
		*mode = a.mode;
	}
}

int auth_file_access(struct auth_target *t, int f, uid_t *uid, gid_t *gid, mode_t *mode)
{
	struct target_access *acc = __atomic_load_n(&t->access, __ATOMIC_ACQUIRE);
	struct file_access a = { 0 };

	if (f < 0 || f > AUTH_FILES_MAX) {
		return -EINVAL;
	}
	if (acc) {
		pthread_mutex_lock(&acc->lock);
		a = acc->access[f];
		pthread_mutex_unlock(&acc->lock);
	}
	if (a.has_uid) {
		*uid = a.uid;
	}
	if (a.has_gid) {
		*gid = a.gid;
	}
	if (a.has_mode) {
		*mode = a.mode;
	}
	return 0;
}

static json_t *access_json(const struct file_access *a)
{
	json_t *j = json_object();

	if (a->has_uid) {
		json_object_set_new(j, "uid", json_integer(a->uid));
	}
	if (a->has_gid) {
		json_object_set_new(j, "gid", json_integer(a->gid));
	}
	if (a->has_mode) {
		json_object_set_new(j, "mode", json_integer(a->mode));
	}
	return j;
}

/* Saves every override of the target (t->access->lock held). */
static int save_access(struct auth_target *t)
{
	json_auto_t *j = json_object();
	char *text;
	int r;

	for (int f = 0; f <= AUTH_FILES_MAX; f++) {
		const char *name = f == AUTH_TARGET_DIR ? "." : file_name(t, f);
		const struct file_access *a = &t->access->saved[f];
		if (name && (a->has_uid || a->has_gid || a->has_mode)) {
			json_object_set_new(j, name, access_json(a));
		}
	}
	text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text) {
		return -ENOMEM;
	}
	r = store_save(t->core->store, t->provider->name, t->name, "access", text, strlen(text));
	free(text);
	return r;
}

int auth_file_set_access(struct auth_target *t, int f, uid_t uid, gid_t gid, mode_t mode)
{
	struct target_access *acc;
	struct file_access old;
	struct file_access *a;
	int r;

	if (f < 0 || f > AUTH_FILES_MAX) {
		return -EINVAL;
	}
	acc = access_get(t);
	if (!acc) {
		return -ENOMEM;
	}
	pthread_mutex_lock(&acc->lock);
	a = &acc->saved[f];
	old = *a;
	if (uid != (uid_t)-1) {
		a->uid = uid;
		a->has_uid = true;
	}
	if (gid != (gid_t)-1) {
		a->gid = gid;
		a->has_gid = true;
	}
	if (mode != (mode_t)-1) {
		a->mode = mode & 07777;
		a->has_mode = true;
	}
	r = save_access(t);
	if (r < 0) {
		*a = old; /* nothing changes unless it is saved */
	} else {
		struct access_rule rule = { .uid = a->uid, .gid = a->gid, .mode = a->mode,
					    .has_uid = a->has_uid, .has_gid = a->has_gid, .has_mode = a->has_mode };
		apply_rule(&acc->access[f], &rule);
	}
	pthread_mutex_unlock(&acc->lock);
	return r;
}
