/* The engine's side of auditing: its own acts (login, renewal, logout, a
 * session deleted on the server) as events, the sinks opened from the
 * config, the caller rules of [access] (unit:, cgroup:), and what status and
 * .metrics say about auditing. */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>

#include "lib/log.h"
#include "target.h"

int target_audit_open(const struct config *cfg)
{
	struct audit_settings s = {
		.log_path = cfg->audit_log,
		.max_size = cfg->audit_log_max_size,
		.keep = cfg->audit_log_keep,
		.journal = cfg->audit_journal,
		.required = cfg->audit_required,
		.queue = cfg->audit_queue,
	};

	return audit_open(&s);
}

void target_audit(struct auth_target *t, const char *op, const char *file, int r)
{
	char target[600];

	if (!audit_enabled()) {
		return;
	}
	snprintf(target, sizeof(target), "%s/%s", t->provider->name, t->name);
	audit_emit(&(struct audit_event){ .target = target, .file = file, .op = op, .result = r,
					  .server = t->info.base_url });
}

bool auth_core_checks_callers(const struct auth_core *core)
{
	return core->cfg->access_callers;
}

/* Like owners and modes: the last matching rule that names callers decides. */
static int check_caller(const struct config *cfg, const char *path, const struct caller *c)
{
	const struct access_rule *last = NULL;

	for (size_t i = 0; i < cfg->n_access; i++) {
		if (cfg->access[i].n_callers > 0 && fnmatch(cfg->access[i].path, path, FNM_PATHNAME) == 0) {
			last = &cfg->access[i];
		}
	}
	if (!last) {
		return 0;
	}
	for (size_t i = 0; i < last->n_callers; i++) {
		if (caller_selector_match(last->callers[i], c)) {
			return 0;
		}
	}
	return -EACCES;
}

int auth_file_check_caller(struct auth_target *t, int f, const struct caller *c)
{
	const struct config *cfg = t->core->cfg;
	const struct auth_file_info *fi = f == AUTH_TARGET_DIR ? NULL : target_file(t, (unsigned)f);
	char path[600];

	if (!cfg->access_callers) {
		return 0;
	}
	snprintf(path, sizeof(path), "%s/%s%s%s", t->provider->name, t->name, fi ? "/" : "", fi ? fi->name : "");
	return check_caller(cfg, path, c);
}

int auth_metrics_check_caller(struct auth_core *core, const struct caller *c)
{
	return core->cfg->access_callers ? check_caller(core->cfg, ".metrics", c) : 0;
}

void audit_status(json_t *status)
{
	char problem[256], refused[256], at[21];
	time_t when;

	if (!audit_enabled()) {
		return;
	}
	when = audit_last_refusal(refused, sizeof(refused));
	json_object_set_new(status, "audit",
			    json_pack("{s:s?, s:I, s:s?, s:s?}", "error",
				      audit_problem(problem, sizeof(problem)) ? problem : NULL, "dropped",
				      (json_int_t)audit_dropped(), "last_refusal", when ? refused : NULL,
				      "last_refusal_at", when ? format_iso8601(when, at) : NULL));
}

/* Like the fleet's: there only when auditing is on. */
void audit_metrics(FILE *f)
{
	if (!audit_enabled()) {
		return;
	}
	fprintf(f, "# HELP sessionfs_audit_dropped_total Audit events dropped because the queue was full.\n"
		   "# TYPE sessionfs_audit_dropped_total counter\nsessionfs_audit_dropped_total %llu\n",
		(unsigned long long)audit_dropped());
	fprintf(f, "# HELP sessionfs_audit_written_total Audit events written.\n"
		   "# TYPE sessionfs_audit_written_total counter\nsessionfs_audit_written_total %llu\n",
		(unsigned long long)audit_written());
}
