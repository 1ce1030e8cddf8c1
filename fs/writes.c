/* The write path: credentials, passwords and sessions written as files, and
 * temp files renamed over them (Ansible's copy, install, mv). */
#include <errno.h>
#include <string.h>

#include "handle.h"

/* Has the file node n (its provider filled in) this flag? */
static bool has_flag(const struct node *n, unsigned flag)
{
	const struct auth_file_info *fi = n->kind == NODE_TARGET_FILE ? tree_file_info(n) : NULL;

	return fi && (fi->flags & flag);
}

static bool only_space(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!memchr(" \t\r\n", p[i], 4)) {
			return false;
		}
	}
	return true;
}

/* Applies what h holds when it is a complete value not applied yet. final:
 * the writer closes, so a value still incomplete is malformed. */
static int write_apply(struct fs *fs, const struct node *n, struct handle *h, bool final)
{
	struct auth_target *t;
	int r;

	if (h->error) {
		return h->error;
	}
	/* An applied value may be followed by white space (print's separate
	 * "\n"), nothing else: it is wiped from buf once it took effect. */
	if (h->applied > 0) {
		return only_space(h->buf + h->applied, h->len - h->applied) ? 0 : -EINVAL;
	}
	if (h->len == 0) {
		return 0; /* nothing written (`: > credentials`): nothing to do */
	}
	t = auth_target_get(fs->core, n->target_id);
	if (!t) {
		return -ENOENT;
	}
	r = auth_file_write(t, n->file, h->buf, h->len, final);
	if (r != -ENODATA) {
		fs_audit(fs, n, NULL, "write", h->caller, r, NULL);
	}
	if (r == -ENODATA) {
		r = 0; /* more may follow */
	} else if (r == 0) {
		h->applied = h->len;
		explicit_bzero(h->buf, h->len); /* it may be a password */
	}
	auth_target_unref(t);
	h->error = r;
	return r;
}

/* What a program writes between open and close is the value; each write()
 * appends, and the value takes effect as soon as it is complete, so that a
 * refusal reaches the write() (shells ignore close()'s errors). */
void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct node n;
	int r = 0;

	handles_order(FS(req));
	if (!h || !h->writing || tree_decode(ino, &n) < 0 || (n.kind != NODE_TARGET_FILE && n.kind != NODE_STAGING)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if (tree_node_target(FS(req), &n) < 0) {
		fuse_reply_err(req, ENOENT); /* the target is gone */
		return;
	}
	if (h->error) {
		r = h->error;
	} else if ((size_t)off != h->len) {
		r = -EINVAL; /* a value is written from start to end */
	} else if (h->len + size > AUTH_WRITE_MAX) {
		r = -EFBIG;
	} else {
		memcpy(h->buf + h->len, buf, size);
		h->len += size;
		r = n.kind == NODE_STAGING ? 0 : write_apply(FS(req), &n, h, false);
	}
	if (r == 0 && has_flag(&n, AUTH_FILE_RESUME) && h->applied == h->len) {
		/* A resumed session: the next read must not get the old one. */
		cache_drop_target(FS(req), n.target_id);
	}
	explicit_bzero((char *)buf, size); /* libfuse's receive buffer: no password left in it */
	if (r < 0) {
		h->error = r;
	}
	handles_order(FS(req));
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fuse_reply_write(req, size);
}

int write_close(struct fs *fs, fuse_ino_t ino, struct handle *h)
{
	struct node n;
	int r;

	if (tree_decode(ino, &n) < 0) {
		return 0;
	}
	if (n.kind == NODE_STAGING) {
		/* A temp file holds what the last writer wrote, until renamed. */
		if (h->error || (h->len == 0 && !h->truncated)) {
			return h->error;
		}
		h->error = staging_set(fs, &n, h->buf, h->len); /* all of it, at each close */
		return h->error;
	}
	if (tree_node_target(fs, &n) < 0) {
		return h->len > h->applied ? -ENOENT : 0; /* the target went away with the value unapplied */
	}
	r = write_apply(fs, &n, h, true);
	if (r == 0 && has_flag(&n, AUTH_FILE_RESUME)) {
		cache_drop_target(fs, n.target_id);
	}
	return r;
}

/* close(), where its error can reach the writer. Only the opener's close
 * ends the value: in `{ printf a; printf b; } > f` each child that inherited
 * the descriptor closes it too, before the rest is written. */
void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	int r = 0;

	handles_order(FS(req));
	if (h && h->writing) {
		r = fuse_req_ctx(req)->pid == h->opener ? write_close(FS(req), ino, h) : h->error;
	}
	handles_order(FS(req));
	fuse_reply_err(req, -r);
}

/* O_CREAT of a new name in a target directory: a temp file (mkstemp). */
void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fuse_entry_param e = { 0 };
	struct handle *h = NULL;
	struct node dir, n;
	double timeout;
	unsigned index;
	int r;

	(void)mode;
	r = tree_decode(parent, &dir) < 0 || dir.kind != NODE_TARGET_DIR ? -EPERM : tree_node_target(FS(req), &dir);
	if (r == 0 && auth_provider_file(dir.provider, name, &index)) {
		r = -EEXIST;
	}
	if (r == 0) {
		r = staging_create(FS(req), dir.target_id, name, ctx->uid, ctx->gid, &n);
	}
	if (r == 0 && !(h = handle_new(FS(req), true))) {
		r = -ENOMEM;
	}
	if (r == 0) {
		r = tree_stat(FS(req), &n, &e.attr, &timeout);
	}
	if (r < 0) {
		if (h) {
			opens_release(FS(req), &h->obj);
			staging_remove(FS(req), dir.target_id, name, NULL, NULL);
		}
		fuse_reply_err(req, -r);
		return;
	}
	h->opener = ctx->pid;
	h->truncated = true;
	e.ino = e.attr.st_ino;
	e.generation = 1;
	fi->direct_io = 1;
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		opens_release(FS(req), &h->obj);
		staging_remove(FS(req), dir.target_id, name, NULL, NULL);
	}
}

/* A temp file renamed over a writable file: its content is written to it,
 * as one value written and closed (the rename fails as that close would).
 * Temp files may also be renamed to other new names; nothing else moves. */
static int rename_apply(fuse_req_t req, struct fs *fs, const struct node *dst, const char *name)
{
	const struct auth_file_info *info = tree_file_info(dst);
	struct auth_target *t;
	char *data = NULL;
	size_t len = 0;
	int r;

	if (!info || !(info->mode & 0200)) {
		return -EPERM;
	}
	r = staging_copy(fs, dst->target_id, name, &data, &len);
	if (r < 0) {
		return r;
	}
	t = auth_target_get(fs->core, dst->target_id);
	r = !t ? -ENOENT : len == 0 ? -EINVAL : auth_file_write(t, dst->file, data, len, true);
	auth_target_unref(t);
	if (audit_enabled()) {
		_cleanup_free_ struct caller *c = fs_caller(fs, req);
		fs_audit(fs, dst, NULL, "write", c, r, "rename");
	}
	staging_data_free(data, len);
	if (r == 0) {
		staging_remove(fs, dst->target_id, name, NULL, NULL);
		if (info->flags & AUTH_FILE_RESUME) {
			cache_drop_target(fs, dst->target_id);
		}
	}
	return r;
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	struct node src, dst;
	int r = flags ? -EINVAL : tree_lookup(FS(req), parent, name, &src);

	if (r == 0 && src.kind != NODE_STAGING) {
		r = -EPERM;
	}
	if (r == 0 && newparent != parent) {
		r = -EXDEV; /* copying tools then write a temp file in the destination's directory */
	}
	if (r == 0) {
		r = tree_lookup(FS(req), newparent, newname, &dst);
		if (r == -ENOENT || (r == 0 && dst.kind == NODE_STAGING)) {
			r = staging_rename(FS(req), src.target_id, name, newname);
		} else if (r == 0 && dst.kind == NODE_TARGET_FILE) {
			r = rename_apply(req, FS(req), &dst, name);
		} else if (r == 0) {
			r = -EPERM;
		}
	}
	fuse_reply_err(req, -r);
}
