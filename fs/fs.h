/* The FUSE layer: path → node, the ops table, attributes, kernel cache
 * invalidation. Knows nothing of HTTP. */
#pragma once

/* 3.12: fuse_session_loop_mt() then binds libfuse's FUSE_3.12 symbol, which
 * takes the opaque loop config (fuse_loop_cfg_*). Below 312 it binds the
 * FUSE_3.2 one, which reads that config as the old two-field struct:
 * max_threads silently 10, no idle thread kept, so every request made a
 * thread of its own. */
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../auth/auth.h"

/* FUSE worker threads at most. Reads never wait on the network in them;
 * explicit actions still may (rm of a token logs out, a written
 * session.json is validated, sessions/ is listed from the server), each for
 * at most `timeout`: this many of those at once before others queue. */
#define FS_MAX_THREADS 64u

/* Inode numbers are computed, not allocated: a target's files are
 * (target id << 12) | slot, so forget() has nothing to free. */
#define INO_ROOT 1
#define INO_METRICS 2
#define INO_PROVIDER_BASE 3 /* + provider index, below 1 << INO_TARGET_SHIFT */
#define INO_TARGET_SHIFT 12
#define SLOT_DIR 0
#define SLOT_FILE_BASE 1     /* + index in the provider's file table */
#define SLOT_SESSION_BASE (SLOT_FILE_BASE + AUTH_FILES_MAX) /* + index of a sessions/ entry */
#define SLOT_STAGING_BASE 4032 /* + index of a temp file (above every sessions/ slot) */
#define STAGING_MAX 8          /* temp files per target at a time */
#define STAGING_TTL 300        /* seconds a temp file stays unrenamed after its last write */

enum node_kind {
	NODE_ROOT,
	NODE_PROVIDER_DIR,
	NODE_METRICS,
	NODE_TARGET_DIR,
	NODE_TARGET_FILE,
	NODE_SESSION_ENTRY,
	NODE_STAGING,      /* a temp file in a target directory, to rename over a writable file */
};

struct node {
	enum node_kind kind;
	size_t provider;
	uint32_t target_id;
	unsigned file;     /* index in the provider's file table */
	unsigned slot;
};

/* Something an open file or directory holds; the first member of it. */
struct open_obj {
	struct open_obj *prev, *next;
	void (*free)(struct open_obj *o);
};

struct fs {
	struct auth_core *core;
	struct fuse_session *se;
	uid_t uid;
	gid_t gid;
	time_t started; /* the times every node shows */
	bool page_cache; /* page_cache = true: pagecache.c may serve reads */

	uint64_t dynamic_version; /* bumped per getattr of a dynamic file (atomic) */

	unsigned long handles_order; /* atomic: see handles_order() in handle.h */

	pthread_mutex_t opens_lock;
	struct open_obj opens; /* every open handle and listing (list head) */
	struct staging *staging; /* temp files in target directories (opens_lock) */

	/* Invalidation queue, served by one thread so that no request handler
	 * ever blocks on the kernel. */
	pthread_mutex_t inval_lock;
	pthread_cond_t inval_cond;
	struct inval_item *inval_head;
	bool inval_stop;
	pthread_t inval_thread;
	bool inval_running;

	/* Opens answered later, from the thread that ends their login (ops.c):
	 * the mount stays until each got its reply. */
	pthread_mutex_t pending_lock;
	pthread_cond_t pending_cond;
	unsigned pending;
};

/* tree.c */
fuse_ino_t tree_ino(const struct node *n);
int tree_decode(fuse_ino_t ino, struct node *ret);
int tree_lookup(struct fs *fs, fuse_ino_t parent, const char *name, struct node *ret);
/* Attributes, from memory: never touches the network. */
int tree_stat(struct fs *fs, const struct node *n, struct stat *st, double *ret_timeout);
/* The file of a NODE_TARGET_FILE whose provider is filled in, or NULL. */
const struct auth_file_info *tree_file_info(const struct node *n);
/* Fills n's provider from its target (tree_decode can't know it). */
int tree_node_target(struct fs *fs, struct node *n);
/* A readable node's content, rendered now (a session file may log in). */
int tree_render(struct fs *fs, const struct node *n, struct auth_blob **ret);
/* The same without waiting for a login: AUTH_PENDING, and done() is called
 * once when the content is ready or the read failed (auth_file_read_async). */
int tree_render_async(struct fs *fs, const struct node *n, auth_read_done_fn done, void *userdata,
		      struct auth_blob **ret);
/* Content that changes on its own (status, .metrics, sessions/ entries). */
bool tree_is_dynamic(const struct node *n);

/* cache.c */
int cache_start(struct fs *fs);
void cache_stop(struct fs *fs);
void cache_on_change(void *userdata, uint32_t target_id, uint64_t gen);
/* Marks a target's session files' attributes stale in the kernel, now.
 * Safe from any thread, request handlers included. */
void cache_drop_target(struct fs *fs, uint32_t target_id);
/* The same for every target. */
void cache_drop_all(struct fs *fs);

/* opens.c */
void opens_init(struct fs *fs);
void opens_add(struct fs *fs, struct open_obj *o, void (*free_fn)(struct open_obj *o));
/* Unlinks o and frees it. */
void opens_release(struct fs *fs, struct open_obj *o);
/* At exit: what the kernel never released, and the temp files. */
void opens_free_all(struct fs *fs);
/* Temp files in a target directory: what tools that write a temp file and
 * rename it over the destination (Ansible's copy, install, mv) create. They
 * hold what was written (wiped when dropped), are never readable and never
 * listed; renamed over a writable file, their content is written to it. */
int staging_create(struct fs *fs, uint32_t target_id, const char *name, uid_t uid, gid_t gid, struct node *ret);
int staging_lookup(struct fs *fs, uint32_t target_id, const char *name, struct node *ret);
int staging_stat(struct fs *fs, const struct node *n, struct stat *st);
/* Replaces the content of n with data (what one open wrote). */
int staging_set(struct fs *fs, const struct node *n, const char *data, size_t len);
/* Removes name; with ret_data, hands its content over (free with staging_data_free). */
int staging_remove(struct fs *fs, uint32_t target_id, const char *name, char **ret_data, size_t *ret_len);
int staging_rename(struct fs *fs, uint32_t target_id, const char *name, const char *newname);
/* A copy of name's content (free with staging_data_free). */
int staging_copy(struct fs *fs, uint32_t target_id, const char *name, char **ret_data, size_t *ret_len);
void staging_data_free(char *data, size_t len);
/* rmdir of a target: its temp files go too. */
void staging_drop_target(struct fs *fs, uint32_t target_id);

/* audit.c */
/* Who is calling req (cgroup.h), read now, when auditing or caller rules
 * need it; else NULL. Free with free(). */
struct caller *fs_caller(struct fs *fs, fuse_req_t req);
/* Does n carry a secret (a session file, a sessions/ entry)? */
bool fs_carries_secret(const struct node *n);
/* Records op on n (name: a mkdir'd or rmdir'd target's, or a sessions/
 * entry's) by c with result r; returns r, or -EIO for an open of a secret
 * that audit_required refuses because its event could not be recorded. */
int fs_audit(struct fs *fs, const struct node *n, const char *name, const char *op, const struct caller *c, int r,
	     const char *detail);
/* [access] unit:/cgroup: rules: may c open n? 0 or -EACCES. */
int fs_check_caller(struct fs *fs, const struct node *n, const struct caller *c);

/* pagecache.c: page-cache reads of session files, where safe. */
/* How an open whose rendering is b is read: through the page cache (and
 * then *ret_keep: may the kernel keep the pages it holds; each such open
 * is closed with pagecache_close()), with direct I/O, or with direct I/O
 * as the file's first: the kernel may still hold a size from before, so
 * make it ask again (cache_drop_target()), then call pagecache_ready(). */
enum { PAGECACHE_DIRECT, PAGECACHE_CACHED, PAGECACHE_NEW };
int pagecache_open(uint32_t target_id, unsigned file, struct auth_blob *b, bool *ret_keep);
void pagecache_ready(uint32_t target_id, unsigned file);
/* What a READ of such an open serves (a new reference, or NULL); fill: the
 * READ may fill the page cache (not O_DIRECT). */
struct auth_blob *pagecache_read(struct fs *fs, uint32_t target_id, unsigned file, bool fill);
/* A READ of a direct-I/O open: what the page cache holds is unknown. */
void pagecache_direct_read(uint32_t target_id, unsigned file);
/* true: the last of them closed after a rendering of another length; the
 * kernel must be made to ask for the size again. */
bool pagecache_close(uint32_t target_id, unsigned file);
/* The size to tell the kernel instead of cur's (NULL: no session), if any. */
bool pagecache_size(uint32_t target_id, unsigned file, const struct auth_blob *cur, off_t *ret_size);
/* rmdir of a target (0: every target, at exit). */
void pagecache_drop_target(uint32_t target_id);

/* ops.c */
extern const struct fuse_lowlevel_ops fs_ops;
/* Waits until every open answered later got its reply (after auth_core_stop(),
 * which answers those still waiting). */
void ops_drain(struct fs *fs);
