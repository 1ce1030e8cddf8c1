/* Audit events of the FUSE layer: who (the caller, read from /proc at the
 * request) did what to which file, and the caller rules of [access]. */
#include <errno.h>
#include <stdio.h>

#include "fs.h"

struct caller *fs_caller(struct fs *fs, fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct caller *c;

	if (!audit_enabled() && !auth_core_checks_callers(fs->core)) {
		return NULL;
	}
	c = malloc(sizeof(*c));
	if (c) {
		caller_read(ctx->pid, ctx->uid, ctx->gid, c);
	}
	return c;
}

/* "provider/target" and the file's name (sessions/<id> for an entry). */
static int names(struct fs *fs, const struct node *n, const char *name, char *target, size_t tsize, char *file,
		 size_t fsize)
{
	struct auth_target *t;
	const struct auth_file_info *fi;
	char *id;

	if (n->kind == NODE_PROVIDER_DIR) {
		snprintf(target, tsize, "%s/%s", auth_provider_name(n->provider), name);
		file[0] = 0;
		return 0;
	}
	t = auth_target_get(fs->core, n->target_id);
	if (!t) {
		return -ENOENT;
	}
	snprintf(target, tsize, "%s/%s", auth_provider_name(auth_target_provider(t)), auth_target_name(t));
	file[0] = 0;
	if (n->kind == NODE_TARGET_FILE && (fi = tree_file_info(n))) {
		snprintf(file, fsize, "%s", fi->name);
	} else if (n->kind == NODE_SESSION_ENTRY) {
		id = name ? NULL : auth_sessions_id(t, n->slot);
		snprintf(file, fsize, "sessions/%s", name ? name : id ? id : "?");
		free(id);
	}
	auth_target_unref(t);
	return 0;
}

bool fs_carries_secret(const struct node *n)
{
	const struct auth_file_info *fi = n->kind == NODE_TARGET_FILE ? tree_file_info(n) : NULL;

	return n->kind == NODE_SESSION_ENTRY || (fi && fi->role == AUTH_FILE_SESSION);
}

static time_t last_warned;

int fs_audit(struct fs *fs, const struct node *n, const char *name, const char *op, const struct caller *c, int r,
	     const char *detail)
{
	char target[600], file[300];
	int q;

	if (!audit_enabled() || names(fs, n, name, target, sizeof(target), file, sizeof(file)) < 0) {
		return r;
	}
	q = audit_emit(&(struct audit_event){ .target = target, .file = file[0] ? file : NULL, .op = op, .result = r,
					      .caller = c, .detail = detail });
	if (q < 0 && r >= 0 && audit_required() && strcmp(op, "open") == 0 && fs_carries_secret(n)) {
		char why[1024];
		snprintf(why, sizeof(why), "%s/%s not served: its audit event could not be recorded (%s)", target, file,
			 q == -ENOBUFS ? "queue full" : "audit sink failing");
		audit_note_refusal(why);
		if (__atomic_exchange_n(&last_warned, time(NULL), __ATOMIC_RELAXED) != time(NULL)) {
			log_warning("%s", why); /* at most about once a second: the queue may stay full */
		}
		return -EIO;
	}
	return r;
}

int fs_check_caller(struct fs *fs, const struct node *n, const struct caller *c)
{
	struct auth_target *t;
	int r;

	if (!c || !auth_core_checks_callers(fs->core)) {
		return 0;
	}
	if (n->kind == NODE_METRICS) {
		return auth_metrics_check_caller(fs->core, c);
	}
	if (n->kind != NODE_TARGET_FILE) {
		return 0;
	}
	t = auth_target_get(fs->core, n->target_id);
	if (!t) {
		return -ENOENT;
	}
	r = auth_file_check_caller(t, (int)n->file, c);
	auth_target_unref(t);
	return r;
}
