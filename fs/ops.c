/* fuse_lowlevel_ops: every request gets exactly one reply. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fs.h"
#include "handle.h"

static void reply_entry(fuse_req_t req, const struct node *n)
{
	struct fuse_entry_param e = { 0 };
	double timeout;
	int r = tree_stat(FS(req), n, &e.attr, &timeout);

	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	e.ino = e.attr.st_ino;
	e.generation = 1;
	e.attr_timeout = timeout;
	e.entry_timeout = n->kind == NODE_SESSION_ENTRY || n->kind == NODE_STAGING ? 0 : 86400.0;
	fuse_reply_entry(req, &e);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct node n;
	int r = tree_lookup(FS(req), parent, name, &n);

	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	reply_entry(req, &n);
}

static void reply_attr(fuse_req_t req, fuse_ino_t ino)
{
	struct stat st;
	struct node n;
	double timeout;
	int r;

	r = tree_decode(ino, &n);
	if (r == 0) {
		r = tree_stat(FS(req), &n, &st, &timeout);
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fuse_reply_attr(req, &st, timeout);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	reply_attr(req, ino);
}

/* chmod and chown, as audit events of their own. */
static void audit_setattr(fuse_req_t req, const struct node *n, const struct stat *attr, int to_set, int r)
{
	struct fs *fs = FS(req);
	_cleanup_free_ struct caller *c = audit_enabled() ? fs_caller(fs, req) : NULL;
	char detail[64];

	if (!c) {
		return;
	}
	if (to_set & FUSE_SET_ATTR_MODE) {
		snprintf(detail, sizeof(detail), "mode=%04o", (unsigned)(attr->st_mode & 07777));
		fs_audit(fs, n, NULL, "chmod", c, r, detail);
	}
	if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		snprintf(detail, sizeof(detail), "owner=%lld:%lld",
			 to_set & FUSE_SET_ATTR_UID ? (long long)attr->st_uid : -1LL,
			 to_set & FUSE_SET_ATTR_GID ? (long long)attr->st_gid : -1LL);
		fs_audit(fs, n, NULL, "chown", c, r, detail);
	}
}

/* chown and chmod of a target's files and directory, saved; only root (and
 * the mounting user) may: [access] grants reading, and an owner it names must
 * not widen that. Truncation to 0 of a writable file (as `echo >` does) is
 * accepted and means nothing. */
static int setattr_target(struct fs *fs, struct node *n, const struct stat *attr, int to_set, uid_t caller)
{
	struct auth_target *t = auth_target_get(fs->core, n->target_id);
	const struct auth_file_info *info = NULL;
	int f = n->kind == NODE_TARGET_DIR ? AUTH_TARGET_DIR : (int)n->file;
	int r = 0;

	if (!t) {
		return -ENOENT;
	}
	n->provider = auth_target_provider(t);
	if (n->kind == NODE_TARGET_FILE) {
		info = tree_file_info(n);
	}
	if ((to_set & FUSE_SET_ATTR_SIZE) && (!info || attr->st_size != 0 || !(info->mode & 0200))) {
		r = -EPERM;
	}
	if ((to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) && caller != 0 && caller != fs->uid) {
		r = -EPERM;
	}
	/* Write-only files can never be made readable. */
	if (r == 0 && (to_set & FUSE_SET_ATTR_MODE) && info && !(info->mode & 0444) && (attr->st_mode & 0444)) {
		r = -EPERM;
	}
	if (r == 0 && (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
		r = auth_file_set_access(t, f, to_set & FUSE_SET_ATTR_UID ? attr->st_uid : (uid_t)-1,
					 to_set & FUSE_SET_ATTR_GID ? attr->st_gid : (gid_t)-1,
					 to_set & FUSE_SET_ATTR_MODE ? attr->st_mode & 07777 : (mode_t)-1);
	}
	auth_target_unref(t);
	return r;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	struct node n;
	int r;

	/* A temp file: truncation empties it; mode, owner and times (which
	 * copying tools set) change nothing: it stays write-only. */
	if (tree_decode(ino, &n) == 0 && n.kind == NODE_STAGING) {
		r = (to_set & FUSE_SET_ATTR_SIZE) && attr->st_size != 0 ? -EPERM : 0;
		if (r == 0 && (to_set & FUSE_SET_ATTR_SIZE)) {
			r = staging_set(FS(req), &n, "", 0);
		}
		if (r < 0) {
			fuse_reply_err(req, -r);
			return;
		}
		reply_attr(req, ino);
		return;
	}
	if (tree_decode(ino, &n) < 0 || (n.kind != NODE_TARGET_FILE && n.kind != NODE_TARGET_DIR)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	(void)fi;
	r = setattr_target(FS(req), &n, attr, to_set, fuse_req_ctx(req)->uid);
	audit_setattr(req, &n, attr, to_set, r);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	reply_attr(req, ino);
}

struct dirbuf {
	char *data;
	size_t size, used;
	fuse_req_t req;
};

/* Adds one entry; false when the reply buffer is full. */
static bool dir_add(struct dirbuf *b, const char *name, fuse_ino_t ino, mode_t mode, off_t next)
{
	struct stat st = { .st_ino = ino, .st_mode = mode };
	size_t need = fuse_add_direntry(b->req, NULL, 0, name, NULL, 0);

	if (b->used + need > b->size) {
		return false;
	}
	fuse_add_direntry(b->req, b->data + b->used, b->size - b->used, name, &st, next);
	b->used += need;
	return true;
}

static void readdir_root(struct dirbuf *b, off_t off)
{
	size_t np = auth_provider_count();

	for (size_t i = (size_t)off; i < np + 1; i++) {
		if (i < np) {
			if (!dir_add(b, auth_provider_name(i), INO_PROVIDER_BASE + i, S_IFDIR, (off_t)i + 1)) {
				return;
			}
		} else if (!dir_add(b, ".metrics", INO_METRICS, S_IFREG, (off_t)i + 1)) {
			return;
		}
	}
}

static bool add_target_dir(void *userdata, uint32_t id, const char *name)
{
	return dir_add(userdata, name, (fuse_ino_t)id << INO_TARGET_SHIFT, S_IFDIR, (off_t)id);
}

/* Offsets are target ids, so entries added or removed meanwhile don't shift others. */
static void readdir_provider(struct fs *fs, struct dirbuf *b, size_t provider, off_t off)
{
	auth_target_list(fs->core, provider, (uint32_t)off, add_target_dir, b);
}

static void readdir_target(struct fs *fs, struct dirbuf *b, const struct node *dir, off_t off)
{
	struct auth_target *t = auth_target_get(fs->core, dir->target_id);
	const struct auth_file_info *files;
	size_t n;

	if (!t) {
		return;
	}
	files = auth_provider_files(auth_target_provider(t), &n);
	for (size_t i = (size_t)off; i < n; i++) {
		struct node f = { .kind = NODE_TARGET_FILE, .target_id = dir->target_id, .file = (unsigned)i };
		if (!dir_add(b, files[i].name, tree_ino(&f), files[i].mode, (off_t)i + 1)) {
			break;
		}
	}
	auth_target_unref(t);
}

/* An open directory: who opened it, and for sessions/ its listing, made
 * once per opendir (one GET) and served from that. */
struct listing {
	struct open_obj obj;
	pid_t opener;
	struct node dir;
	bool warned;       /* a removal inside it was refused and logged */
	uint32_t target_id;
	char **ids;        /* sessions/ only */
	size_t n;
};

/* Has the file node n (its provider filled in) this role? */
static bool has_role(const struct node *n, enum auth_file_role role)
{
	const struct auth_file_info *fi = n->kind == NODE_TARGET_FILE ? tree_file_info(n) : NULL;

	return fi && fi->role == role;
}

static bool is_sessions_dir(const struct node *n)
{
	return has_role(n, AUTH_FILE_SESSIONS);
}

static void listing_free(struct open_obj *o)
{
	struct listing *l = (struct listing *)o;

	auth_strv_free(l->ids, l->n);
	free(l);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct auth_target *t = NULL;
	struct listing *l;
	struct node n;
	int r;

	fi->fh = 0;
	r = tree_decode(ino, &n);
	if (r == 0 && n.kind == NODE_TARGET_FILE && (tree_node_target(FS(req), &n) < 0 || !is_sessions_dir(&n))) {
		r = -ENOTDIR;
	}
	if (r == 0 && n.kind == NODE_TARGET_DIR) {
		r = tree_node_target(FS(req), &n);
	}
	l = r == 0 ? calloc(1, sizeof(*l)) : NULL;
	if (r == 0 && !l) {
		r = -ENOMEM;
	}
	if (r == 0 && n.kind == NODE_TARGET_FILE) {
		t = auth_target_get(FS(req)->core, n.target_id);
		r = !t ? -ENOENT : auth_sessions_list(t, &l->ids, &l->n);
		auth_target_unref(t);
	}
	if (r < 0) {
		free(l);
		fuse_reply_err(req, -r);
		return;
	}
	l->opener = fuse_req_ctx(req)->pid;
	l->dir = n;
	l->target_id = n.target_id;
	opens_add(FS(req), &l->obj, listing_free);
	fi->fh = (uint64_t)(uintptr_t)l;
	handles_order(FS(req));
	if (fuse_reply_open(req, fi) == -ENOENT) {
		opens_release(FS(req), &l->obj);
	}
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct listing *l = (struct listing *)(uintptr_t)fi->fh;

	(void)ino;
	handles_order(FS(req));
	if (l) {
		opens_release(FS(req), &l->obj);
	}
	fuse_reply_err(req, 0);
}

static void readdir_sessions(struct fs *fs, struct dirbuf *b, const struct listing *l, off_t off)
{
	struct auth_target *t = auth_target_get(fs->core, l->target_id);

	for (size_t i = (size_t)off; t && i < l->n; i++) {
		int slot = auth_sessions_slot(t, l->ids[i]);
		struct node e = { .kind = NODE_SESSION_ENTRY, .target_id = l->target_id, .slot = (unsigned)slot };
		if (slot >= 0 && !dir_add(b, l->ids[i], tree_ino(&e), S_IFREG, (off_t)i + 1)) {
			break;
		}
	}
	auth_target_unref(t);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct dirbuf b = { .size = size, .req = req };
	struct node n;

	handles_order(FS(req));
	if (tree_decode(ino, &n) < 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	b.data = malloc(size);
	if (!b.data) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	switch (n.kind) {
	case NODE_ROOT:
		readdir_root(&b, off);
		break;
	case NODE_PROVIDER_DIR:
		readdir_provider(FS(req), &b, n.provider, off);
		break;
	case NODE_TARGET_DIR:
		readdir_target(FS(req), &b, &n, off);
		break;
	case NODE_TARGET_FILE:
		if (fi->fh) {
			readdir_sessions(FS(req), &b, (struct listing *)(uintptr_t)fi->fh, off);
			break;
		}
		/* fall through */
	default:
		free(b.data);
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	handles_order(FS(req));
	fuse_reply_buf(req, b.data, b.used);
	free(b.data);
}

/* Write-only files (credentials, one-time codes) can't be read, not even by root. */
static bool readable(const struct node *n)
{
	const struct auth_file_info *fi;

	if (n->kind == NODE_STAGING) {
		return false;
	}
	if (n->kind != NODE_TARGET_FILE) {
		return true;
	}
	fi = tree_file_info(n);
	return fi && (fi->mode & 0444);
}

/* Does the kernel hold the size of h's rendering? It splices (sendfile(),
 * whatever direct_io says) through the page cache up to the size it holds:
 * 0 before the first login, the old one after a renewal changed it. */
static bool size_current(struct fs *fs, const struct handle *h)
{
	struct auth_target *t = auth_target_get(fs->core, h->target_id);
	bool current = t && auth_file_size_current(t, h->file, h->blob->gen);

	auth_target_unref(t);
	return current;
}

/* Opens answered ESTALE lately (by target, file and opener), so that the
 * kernel's second try is not answered so again: it retries once, and a
 * second ESTALE would reach the program. */
#define RETRIES 64
static struct retry {
	uint32_t target_id;
	unsigned file;
	pid_t pid;
	double at; /* now_mono(); 0: free */
} retries[RETRIES];
static unsigned retries_next;
static pthread_mutex_t retries_lock = PTHREAD_MUTEX_INITIALIZER;

/* Whether h's open is the kernel's second try after an ESTALE; if not,
 * notes it as a first. */
static bool second_try(const struct handle *h)
{
	double now = now_mono();
	bool found = false;

	pthread_mutex_lock(&retries_lock);
	for (unsigned i = 0; i < RETRIES && !found; i++) {
		struct retry *x = &retries[i];
		if (x->at > now - 1.0 && x->target_id == h->target_id && x->file == h->file && x->pid == h->opener) {
			found = true;
			x->at = 0;
		}
	}
	if (!found) {
		retries[retries_next++ % RETRIES] = (struct retry){ h->target_id, h->file, h->opener, now };
	}
	pthread_mutex_unlock(&retries_lock);
	return found;
}

/* Is h read through the page cache (and may the kernel keep the pages it
 * holds)? Nothing written, and no rendering but a read-only session file's
 * where pagecache.c finds it safe, goes there (an O_TRUNC open of a
 * writable one, `echo > session.json`, sets the size the kernel holds to 0). */
static bool read_cached(struct fs *fs, struct handle *h, bool *ret_keep)
{
	const struct auth_file_info *info = fs->page_cache && h->sized ? tree_file_info(&h->node) : NULL;
	int mode = info && !(info->mode & 0222) && h->blob ? pagecache_open(h->target_id, h->file, h->blob, ret_keep)
							    : PAGECACHE_DIRECT;

	if (mode == PAGECACHE_NEW) {
		cache_drop_target(fs, h->target_id);
		pagecache_ready(h->target_id, h->file);
	}
	return mode == PAGECACHE_CACHED;
}

/* The reply to an open, now or once its login ended. */
static void open_reply(struct fs *fs, fuse_req_t req, struct fuse_file_info *fi, struct handle *h, int r)
{
	bool keep = false;

	/* sendfile() copies through the page cache, up to the size the kernel
	 * holds for the file. Does it hold this rendering's size? If not:
	 * ESTALE, on which the kernel looks the name up again
	 * (LOOKUP_REVAL), which tells it the size, and opens again, which
	 * renders again (a login that just ended is not made twice). If the
	 * size changed once more in between (rm and logins racing the reader),
	 * the second try is served: read() is right whatever the size; only a
	 * sendfile() of that open may then be cut, as before this check. */
	if (r >= 0 && h->sized && h->blob && !size_current(fs, h) && !second_try(h)) {
		r = -ESTALE;
	}
	if (h->caller && fs_carries_secret(&h->node) && r != -ESTALE) { /* the retry is the open recorded */
		r = fs_audit(fs, &h->node, NULL, "open", h->caller, r, NULL);
	}
	if (r < 0) {
		opens_release(fs, &h->obj);
		fuse_reply_err(req, -r);
		return;
	}
	h->cached = read_cached(fs, h, &keep);
	fi->direct_io = !h->cached;
	fi->keep_cache = keep;
	fi->noflush = !h->writing; /* close() of a reader has nothing to tell us */
	fi->fh = (uint64_t)(uintptr_t)h;
	handles_order(fs);
	if (fuse_reply_open(req, fi) == -ENOENT) { /* the opener was interrupted */
		handle_release(fs, h);
	}
}

/* An open waiting for a login: no thread waits with it. */
struct open_wait {
	struct fs *fs;
	fuse_req_t req;
	struct fuse_file_info fi; /* a copy: libfuse's is gone when op_open returns */
	struct handle *h;
};

static void pending_end(struct fs *fs)
{
	pthread_mutex_lock(&fs->pending_lock);
	if (--fs->pending == 0) {
		pthread_cond_broadcast(&fs->pending_cond);
	}
	pthread_mutex_unlock(&fs->pending_lock);
}

/* The login ended, or the read's deadline passed: called once, from the
 * thread that ended it or from the deadline timer. */
static void open_done(void *userdata, int r, struct auth_blob *blob)
{
	struct open_wait *ow = userdata;
	struct fs *fs = ow->fs;

	ow->h->blob = blob;
	open_reply(fs, ow->req, &ow->fi, ow->h, r);
	free(ow);
	pending_end(fs);
}

void ops_drain(struct fs *fs)
{
	pthread_mutex_lock(&fs->pending_lock);
	while (fs->pending > 0) {
		pthread_cond_wait(&fs->pending_cond, &fs->pending_lock);
	}
	pthread_mutex_unlock(&fs->pending_lock);
}

/* A read's open: the content now, or AUTH_PENDING when its login will
 * answer it (open_done()). */
static int open_read(fuse_req_t req, const struct node *n, struct fuse_file_info *fi, struct handle *h)
{
	struct fs *fs = FS(req);
	struct open_wait *ow;
	int r;

	if (!readable(n)) {
		return -EACCES;
	}
	ow = malloc(sizeof(*ow));
	if (!ow) {
		return -ENOMEM;
	}
	*ow = (struct open_wait){ .fs = fs, .req = req, .fi = *fi, .h = h };
	if (n->kind == NODE_TARGET_FILE && tree_file_info(n) && tree_file_info(n)->role == AUTH_FILE_SESSION) {
		h->sized = true;
		h->target_id = n->target_id;
		h->file = n->file;
	}
	pthread_mutex_lock(&fs->pending_lock);
	fs->pending++;
	pthread_mutex_unlock(&fs->pending_lock);
	/* From here ow may be answered and gone as soon as it is pending. */
	r = tree_render_async(fs, n, open_done, ow, &h->blob);
	if (r != AUTH_PENDING) {
		free(ow);
		pending_end(fs);
	}
	return r;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	bool writing = (fi->flags & O_ACCMODE) != O_RDONLY;
	struct handle *h;
	struct node n;
	int r;

	if (tree_decode(ino, &n) < 0 || (n.kind >= NODE_TARGET_DIR && tree_node_target(FS(req), &n) < 0)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (n.kind == NODE_ROOT || n.kind == NODE_PROVIDER_DIR || n.kind == NODE_TARGET_DIR || is_sessions_dir(&n)) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	h = handle_new(FS(req), writing);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	h->opener = fuse_req_ctx(req)->pid;
	h->truncated = fi->flags & O_TRUNC;
	h->node = n;
	/* Now: who opens, not who reads later. Only where an event or a rule needs it. */
	if ((audit_enabled() && (writing || fs_carries_secret(&n))) ||
	    ((n.kind == NODE_TARGET_FILE || n.kind == NODE_METRICS) && auth_core_checks_callers(FS(req)->core))) {
		h->caller = fs_caller(FS(req), req);
	}
	r = fs_check_caller(FS(req), &n, h->caller);
	/* A session file's open is a read: it may log in (within timeout),
	 * and is then answered when the login ends, not here. */
	if (r == 0) {
		r = writing ? 0 : open_read(req, &n, fi, h);
	}
	if (r != AUTH_PENDING) {
		open_reply(FS(req), req, fi, h, r);
	}
}

static void reply_slice(fuse_req_t req, const struct auth_blob *b, size_t size, off_t off)
{
	if ((size_t)off >= b->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	fuse_reply_buf(req, b->data + off, b->len - (size_t)off < size ? b->len - (size_t)off : size);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct auth_blob *b;
	struct node n;
	int r;

	handles_order(FS(req));
	b = h && h->cached ? pagecache_read(FS(req), h->target_id, h->file, !(fi->flags & O_DIRECT)) : NULL;
	if (!b && h && h->sized && h->blob && FS(req)->page_cache) {
		pagecache_direct_read(h->target_id, h->file); /* a splice may fill the page cache from it */
	}
	if (!b && h) {
		b = auth_blob_ref(h->blob);
	}
	if (b) {
		handles_order(FS(req));
		reply_slice(req, b, size, off);
		auth_blob_unref(b);
		return;
	}
	/* Opened for writing too (O_RDWR): the content as it is now. */
	r = tree_decode(ino, &n);
	if (r == 0) {
		r = tree_node_target(FS(req), &n);
	}
	if (r == 0) {
		r = tree_render(FS(req), &n, &b);
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	reply_slice(req, b, size, off);
	auth_blob_unref(b);
}

/* The last close. A value the opener's close did not end (it closed in
 * another thread, or left it to a child) is ended here; an error can't
 * reach anyone, but status and the log have it. */
static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	handles_order(FS(req));
	if (h) {
		if (h->writing) {
			write_close(FS(req), ino, h);
		}
		handle_release(FS(req), h);
	}
	fuse_reply_err(req, 0);
}

/* Does the caller hold open a directory above n (the root, n's provider
 * directory or n's target directory)? rm -r, shutil.rmtree and Ansible's
 * `file: state=absent` do while they remove what is inside; `rm token` and
 * `rm sessions/<id>` don't. Logged once per open directory. */
static bool inside_open_dir(struct fs *fs, const struct node *n, pid_t caller, const char *name)
{
	struct listing *found = NULL;
	bool warn = false;

	pthread_mutex_lock(&fs->opens_lock);
	for (struct open_obj *o = fs->opens.next; o != &fs->opens && !found; o = o->next) {
		struct listing *l = (struct listing *)o;
		if (o->free != listing_free || l->opener != caller) {
			continue;
		}
		if (l->dir.kind == NODE_ROOT || (l->dir.kind == NODE_PROVIDER_DIR && l->dir.provider == n->provider) ||
		    (l->dir.kind == NODE_TARGET_DIR && l->dir.target_id == n->target_id)) {
			found = l;
			warn = !l->warned;
			l->warned = true;
		}
	}
	pthread_mutex_unlock(&fs->opens_lock);
	if (warn) {
		log_warning("Refused to remove %s (and what follows) in a target that the remover holds open, as rm -r "
			    "does: nothing in a target is removed recursively; rm one session at a time, or rmdir the "
			    "target to forget it", name);
	}
	return found;
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	_cleanup_free_ struct caller *c = NULL;
	struct auth_target *t;
	struct node n;
	int r = tree_lookup(FS(req), parent, name, &n);

	if (r == 0 && n.kind == NODE_STAGING) {
		fuse_reply_err(req, -staging_remove(FS(req), n.target_id, name, NULL, NULL));
		return;
	}
	if (r < 0 || (n.kind != NODE_TARGET_FILE && n.kind != NODE_SESSION_ENTRY)) {
		fuse_reply_err(req, r < 0 ? -r : EPERM);
		return;
	}
	c = audit_enabled() ? fs_caller(FS(req), req) : NULL;
	if (inside_open_dir(FS(req), &n, fuse_req_ctx(req)->pid, name)) {
		fs_audit(FS(req), &n, n.kind == NODE_SESSION_ENTRY ? name : NULL, "rm", c, -EPERM, NULL);
		fuse_reply_err(req, EPERM);
		return;
	}
	t = auth_target_get(FS(req)->core, n.target_id);
	if (!t) {
		r = -ENOENT;
	} else if (n.kind == NODE_SESSION_ENTRY) {
		r = auth_sessions_delete(t, name);
	} else {
		r = auth_file_unlink(t, n.file);
		/* Before rm returns, so no reader gets the logged-out token. */
		cache_drop_target(FS(req), n.target_id);
	}
	auth_target_unref(t);
	fs_audit(FS(req), &n, n.kind == NODE_SESSION_ENTRY ? name : NULL, "rm", c, r, NULL);
	fuse_reply_err(req, -r);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct auth_target *t;
	struct node dir, n;
	int r;

	(void)mode;
	if (tree_decode(parent, &dir) < 0 || dir.kind != NODE_PROVIDER_DIR) {
		fuse_reply_err(req, EPERM);
		return;
	}
	r = auth_target_create(FS(req)->core, dir.provider, name, &t);
	if (audit_enabled()) {
		_cleanup_free_ struct caller *c = fs_caller(FS(req), req);
		fs_audit(FS(req), &dir, name, "mkdir", c, r, NULL);
	}
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	n = (struct node){ .kind = NODE_TARGET_DIR, .provider = dir.provider, .target_id = auth_target_id(t) };
	auth_target_unref(t);
	reply_entry(req, &n);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct auth_target *t;
	struct node dir;
	uint32_t id = 0;
	int r;

	if (tree_decode(parent, &dir) < 0 || dir.kind != NODE_PROVIDER_DIR) {
		fuse_reply_err(req, EPERM);
		return;
	}
	t = auth_target_lookup(FS(req)->core, dir.provider, name);
	if (t) {
		id = auth_target_id(t);
		auth_target_unref(t);
	}
	r = auth_target_destroy(FS(req)->core, dir.provider, name);
	if (audit_enabled()) {
		_cleanup_free_ struct caller *c = fs_caller(FS(req), req);
		fs_audit(FS(req), &dir, name, "rmdir", c, r, NULL);
	}
	if (r == 0 && id) {
		staging_drop_target(FS(req), id);
		pagecache_drop_target(id);
	}
	fuse_reply_err(req, -r);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* Files are small. Without readahead a failed read is not tried again
	 * synchronously by the kernel: one login attempt, one timeout. */
	conn->max_readahead = 0;
	/* A changed mtime or size drops cached pages. */
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA) {
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	}
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st = { .f_bsize = 4096, .f_frsize = 4096, .f_namemax = 255 };

	(void)ino;
	fuse_reply_statfs(req, &st);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.create = op_create,
	.rename = op_rename,
	.unlink = op_unlink,
	.mkdir = op_mkdir,
	.rmdir = op_rmdir,
	.statfs = op_statfs,
};
