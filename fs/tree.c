/* The path scheme: root → provider dirs → target dirs → files, plus .metrics. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fs.h"

#define TIMEOUT_STATIC 86400.0 /* the tree's shape changes only through us */
/* Sizes are exact where there is content: the kernel reads a file only up to
 * its size. Where there is none (a write-only file, a sessions/ entry that is
 * gone), a page, so that a read reaches us and gets the error. */
#define SIZE_UNKNOWN 4096
/* How long the kernel may serve a session file without asking: short, so that
 * a mount whose daemon died stops serving tokens within a second. */
#define SESSION_ATTR_TIMEOUT 1.0

fuse_ino_t tree_ino(const struct node *n)
{
	switch (n->kind) {
	case NODE_ROOT:
		return INO_ROOT;
	case NODE_PROVIDER_DIR:
		return INO_PROVIDER_BASE + n->provider;
	case NODE_METRICS:
		return INO_METRICS;
	case NODE_TARGET_DIR:
		return (fuse_ino_t)n->target_id << INO_TARGET_SHIFT | SLOT_DIR;
	case NODE_TARGET_FILE:
		return (fuse_ino_t)n->target_id << INO_TARGET_SHIFT | (SLOT_FILE_BASE + n->file);
	case NODE_SESSION_ENTRY:
		return (fuse_ino_t)n->target_id << INO_TARGET_SHIFT | (SLOT_SESSION_BASE + n->slot);
	case NODE_STAGING:
		return (fuse_ino_t)n->target_id << INO_TARGET_SHIFT | (SLOT_STAGING_BASE + n->slot);
	}
	return 0;
}

int tree_decode(fuse_ino_t ino, struct node *ret)
{
	unsigned slot;

	*ret = (struct node){ 0 };
	if (ino == INO_ROOT) {
		ret->kind = NODE_ROOT;
		return 0;
	}
	if (ino == INO_METRICS) {
		ret->kind = NODE_METRICS;
		return 0;
	}
	if (ino >= INO_PROVIDER_BASE && ino < INO_PROVIDER_BASE + auth_provider_count() &&
	    ino < (1u << INO_TARGET_SHIFT)) {
		ret->kind = NODE_PROVIDER_DIR;
		ret->provider = ino - INO_PROVIDER_BASE;
		return 0;
	}
	if (ino >> INO_TARGET_SHIFT == 0 || ino >> INO_TARGET_SHIFT > UINT32_MAX) {
		return -ENOENT;
	}
	ret->target_id = (uint32_t)(ino >> INO_TARGET_SHIFT);
	slot = ino & ((1u << INO_TARGET_SHIFT) - 1);
	if (slot == SLOT_DIR) {
		ret->kind = NODE_TARGET_DIR;
	} else if (slot < SLOT_FILE_BASE + AUTH_FILES_MAX) {
		ret->kind = NODE_TARGET_FILE;
		ret->file = slot - SLOT_FILE_BASE;
	} else if (slot >= SLOT_STAGING_BASE) {
		ret->kind = NODE_STAGING;
		ret->slot = slot - SLOT_STAGING_BASE;
	} else if (slot >= SLOT_SESSION_BASE) {
		ret->kind = NODE_SESSION_ENTRY;
		ret->slot = slot - SLOT_SESSION_BASE;
	} else {
		return -ENOENT;
	}
	return 0;
}

const struct auth_file_info *tree_file_info(const struct node *n)
{
	size_t count;
	const struct auth_file_info *files = auth_provider_files(n->provider, &count);

	return n->file < count ? &files[n->file] : NULL;
}

int tree_node_target(struct fs *fs, struct node *n)
{
	struct auth_target *t = auth_target_get(fs->core, n->target_id);

	if (!t) {
		return -ENOENT;
	}
	n->provider = auth_target_provider(t);
	auth_target_unref(t);
	return 0;
}

static int lookup_in_target(struct fs *fs, const struct node *dir, const char *name, struct node *ret)
{
	struct auth_target *t = auth_target_get(fs->core, dir->target_id);
	const struct auth_file_info *fi;
	unsigned index = 0;
	int r;

	if (!t) {
		return -ENOENT;
	}
	fi = auth_provider_file(auth_target_provider(t), name, &index);
	*ret = (struct node){ .kind = NODE_TARGET_FILE, .provider = auth_target_provider(t),
			      .target_id = dir->target_id, .file = index };
	r = fi ? 0 : staging_lookup(fs, dir->target_id, name, ret);
	ret->provider = auth_target_provider(t);
	auth_target_unref(t);
	return r;
}

/* An id resolves when it is on the server (a listing a few seconds old at
 * most), so stat, rm and rm -f of one that is gone say ENOENT. */
static int lookup_in_sessions(struct fs *fs, const struct node *dir, const char *name, struct node *ret)
{
	struct auth_target *t;
	int slot;

	if (!auth_session_id_valid(name)) {
		return -EINVAL; /* "%2e%2e", "a?b", "a#b": never a request */
	}
	t = auth_target_get(fs->core, dir->target_id);
	if (!t) {
		return -ENOENT;
	}
	slot = auth_sessions_exists(t, name);
	if (slot == 0) {
		slot = auth_sessions_slot(t, name);
	}
	*ret = (struct node){ .kind = NODE_SESSION_ENTRY, .provider = auth_target_provider(t),
			      .target_id = dir->target_id, .slot = (unsigned)slot };
	auth_target_unref(t);
	return slot < 0 ? slot : 0;
}

int tree_lookup(struct fs *fs, fuse_ino_t parent, const char *name, struct node *ret)
{
	struct node dir;
	struct auth_target *t;
	int p, r;

	r = tree_decode(parent, &dir);
	if (r < 0) {
		return r;
	}
	switch (dir.kind) {
	case NODE_ROOT:
		if (strcmp(name, ".metrics") == 0) {
			*ret = (struct node){ .kind = NODE_METRICS };
			return 0;
		}
		p = auth_provider_index(name);
		if (p < 0) {
			return -ENOENT;
		}
		*ret = (struct node){ .kind = NODE_PROVIDER_DIR, .provider = (size_t)p };
		return 0;
	case NODE_PROVIDER_DIR:
		t = auth_target_lookup(fs->core, dir.provider, name);
		if (!t) {
			return -ENOENT;
		}
		*ret = (struct node){ .kind = NODE_TARGET_DIR, .provider = dir.provider, .target_id = auth_target_id(t) };
		auth_target_unref(t);
		return 0;
	case NODE_TARGET_DIR:
		return lookup_in_target(fs, &dir, name, ret);
	case NODE_TARGET_FILE:
		if (tree_node_target(fs, &dir) == 0 && tree_file_info(&dir) &&
		    tree_file_info(&dir)->role == AUTH_FILE_SESSIONS) {
			return lookup_in_sessions(fs, &dir, name, ret);
		}
		return -ENOTDIR;
	default:
		return -ENOTDIR;
	}
}

/* A node inside a target: checks the target still exists, fills the node's
 * provider, and gives st the node's type and default mode with the owner and
 * mode set for it (config [access], chown, chmod) applied. */
static int stat_in_target(struct fs *fs, struct node *n, struct stat *st)
{
	struct auth_target *t = auth_target_get(fs->core, n->target_id);
	const struct auth_file_info *fi = NULL;
	mode_t perm;

	if (!t) {
		return -ENOENT;
	}
	n->provider = auth_target_provider(t);
	if (n->kind == NODE_TARGET_FILE && !(fi = tree_file_info(n))) {
		auth_target_unref(t);
		return -ENOENT;
	}
	st->st_mode = n->kind == NODE_TARGET_DIR ? S_IFDIR | 0755 : fi ? fi->mode : S_IFREG | 0600;
	perm = st->st_mode & 07777;
	if (n->kind != NODE_SESSION_ENTRY) {
		auth_file_access(t, fi ? (int)n->file : AUTH_TARGET_DIR, &st->st_uid, &st->st_gid, &perm);
	}
	if (fi && !(fi->mode & 0444)) {
		perm &= ~0444; /* write-only files stay unreadable, whatever the config */
	}
	st->st_mode = (st->st_mode & S_IFMT) | perm;
	auth_target_unref(t);
	return 0;
}

int tree_render(struct fs *fs, const struct node *n, struct auth_blob **ret)
{
	struct auth_target *t;
	int r;

	if (n->kind == NODE_METRICS) {
		return auth_core_metrics(fs->core, ret);
	}
	if (n->kind == NODE_STAGING) {
		return -EACCES; /* temp files are write-only, as what they are renamed over */
	}
	if (n->kind != NODE_TARGET_FILE && n->kind != NODE_SESSION_ENTRY) {
		return -EISDIR;
	}
	t = auth_target_get(fs->core, n->target_id);
	if (!t) {
		return -ENOENT;
	}
	if (n->kind == NODE_SESSION_ENTRY) {
		_cleanup_free_ char *id = auth_sessions_id(t, n->slot);
		r = id ? auth_sessions_read(t, id, ret) : -ENOENT;
	} else {
		r = auth_file_read(t, n->file, ret);
	}
	auth_target_unref(t);
	return r;
}

int tree_render_async(struct fs *fs, const struct node *n, auth_read_done_fn done, void *userdata,
		      struct auth_blob **ret)
{
	struct auth_target *t;
	int r;

	if (n->kind != NODE_TARGET_FILE) {
		return tree_render(fs, n, ret);
	}
	t = auth_target_get(fs->core, n->target_id);
	if (!t) {
		return -ENOENT;
	}
	r = auth_file_read_async(t, n->file, done, userdata, ret);
	auth_target_unref(t);
	return r;
}

bool tree_is_dynamic(const struct node *n)
{
	const struct auth_file_info *fi = n->kind == NODE_TARGET_FILE ? tree_file_info(n) : NULL;

	return n->kind == NODE_METRICS || n->kind == NODE_SESSION_ENTRY || (fi && fi->role == AUTH_FILE_STATUS);
}

/* Session files: sized by the session there is now, from memory: a stat
 * never logs in. (The kernel lets one lookup at a time into a directory, so a
 * lookup that waited for a hanging server would hold up every name beside
 * it.) A direct-I/O read() doesn't depend on the size: it is served from
 * what the open rendered. Page-cache reads (pagecache.c), sendfile() and
 * splice() do: FUSE splices even a direct-I/O file
 * through the page cache, up to the size the kernel holds (busybox cat,
 * Python's shutil.copyfile), so what each reply tells is noted, and an open
 * whose rendering has another size makes the kernel look again (in ops.c).
 * With no session, or one due for renewal, the size is 0 (or what
 * page-cache readers rely on, pagecache.c). The kernel keeps attributes at
 * most a second, and no longer than the session may be served; a size of 0
 * too: the login or renewal that ends it drops them (cache.c), and an open
 * served after it made the kernel learn the new size first (ops.c). Were
 * they stale at once, each opener's permission check would be a GETATTR of
 * its own: 256 cold readers at once, 256 requests ahead of their opens. */
static void stat_session_file(struct fs *fs, const struct node *n, struct stat *st, double *ret_timeout)
{
	struct auth_target *t = auth_target_get(fs->core, n->target_id);
	struct auth_blob *b = NULL;
	int r = t ? auth_file_peek(t, n->file, &b) : -ENOENT;
	off_t held = 0;
	bool holds = fs->page_cache && pagecache_size(n->target_id, n->file, r == 0 ? b : NULL, &held);

	/* Page-cache readers rely on the length they were told (pagecache.c). */
	if (holds && (r < 0 || (off_t)b->len != held)) {
		if (t) {
			auth_file_size_told(t, n->file, 0, false);
		}
		auth_target_unref(t);
		auth_blob_unref(b);
		st->st_size = held;
		*ret_timeout = 0;
		return;
	}
	/* What the kernel will hold (ops.c's open checks it). */
	if (t) {
		auth_file_size_told(t, n->file, r == 0 ? b->gen : 0, r == 0);
	}
	auth_target_unref(t);
	*ret_timeout = SESSION_ATTR_TIMEOUT;
	if (r < 0) {
		st->st_size = 0;
		return;
	}
	st->st_size = (off_t)b->len;
	st->st_mtim.tv_nsec = (long)(b->gen % 1000000000);
	if (b->valid_until) {
		double left = difftime(b->valid_until, now_real());
		*ret_timeout = left < 0 ? 0 : left < *ret_timeout ? left : *ret_timeout;
	}
	auth_blob_unref(b);
}

/* Status, .metrics, sessions/ entries: a new mtime on every getattr, and a
 * size from a rendering where that costs no request (a sessions/ entry would
 * be a GET on the BMC: its size is a guess, as reads don't depend on it). */
static void stat_dynamic(struct fs *fs, const struct node *n, struct stat *st, double *ret_timeout)
{
	uint64_t v = __atomic_add_fetch(&fs->dynamic_version, 1, __ATOMIC_RELAXED);
	struct auth_blob *b = NULL;

	st->st_mtim.tv_sec = fs->started + (time_t)(v / 1000000000);
	st->st_mtim.tv_nsec = (long)(v % 1000000000);
	*ret_timeout = 0;
	if (n->kind != NODE_SESSION_ENTRY && tree_render(fs, n, &b) == 0) {
		st->st_size = (off_t)b->len;
	} else {
		st->st_size = SIZE_UNKNOWN; /* the read reports the error */
	}
	auth_blob_unref(b);
}

int tree_stat(struct fs *fs, const struct node *n_in, struct stat *st, double *ret_timeout)
{
	const struct auth_file_info *fi;
	struct node n = *n_in;
	int r;

	memset(st, 0, sizeof(*st));
	st->st_ino = tree_ino(&n);
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_nlink = 1;
	st->st_atime = st->st_mtime = st->st_ctime = fs->started;
	*ret_timeout = TIMEOUT_STATIC;
	switch (n.kind) {
	case NODE_ROOT:
	case NODE_PROVIDER_DIR:
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	case NODE_METRICS: {
		mode_t perm = 0400; /* it names every target: [access] may open it up */
		auth_metrics_access(fs->core, &st->st_uid, &st->st_gid, &perm);
		st->st_mode = S_IFREG | (perm & 07777);
		stat_dynamic(fs, &n, st, ret_timeout);
		return 0;
	}
	case NODE_TARGET_DIR:
		st->st_nlink = 2;
		return stat_in_target(fs, &n, st);
	case NODE_TARGET_FILE:
		r = stat_in_target(fs, &n, st);
		if (r < 0) {
			return r;
		}
		fi = tree_file_info(&n);
		if (S_ISDIR(fi->mode)) {
			st->st_nlink = 2;
		}
		if (fi->role == AUTH_FILE_SESSION) {
			stat_session_file(fs, &n, st, ret_timeout);
		} else if (fi->role == AUTH_FILE_STATUS) {
			stat_dynamic(fs, &n, st, ret_timeout);
		} else if (S_ISREG(fi->mode)) {
			/* Write-only: not empty, so that a read reaches us and gets EACCES
			 * even for root, whom the kernel lets open it. */
			st->st_size = SIZE_UNKNOWN;
			*ret_timeout = 0;
		}
		return 0;
	case NODE_SESSION_ENTRY:
		r = stat_in_target(fs, &n, st);
		if (r == 0) {
			stat_dynamic(fs, &n, st, ret_timeout);
		}
		return r;
	case NODE_STAGING:
		*ret_timeout = 0;
		return tree_node_target(fs, &n) < 0 ? -ENOENT : staging_stat(fs, &n, st);
	}
	return -ENOENT;
}
