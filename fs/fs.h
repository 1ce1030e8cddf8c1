/* The FUSE layer: path → node, the ops table, attributes, kernel cache
 * invalidation. Knows nothing of HTTP. */
#pragma once

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../auth/auth.h"

/* Inode numbers are computed, not allocated: a target's files are
 * (target id << 12) | slot, so forget() has nothing to free. */
#define INO_ROOT 1
#define INO_PROVIDER_BASE 2 /* + provider index */
#define INO_METRICS 10
#define INO_TARGET_SHIFT 12
#define SLOT_DIR 0
#define SLOT_FILE_BASE 1     /* + enum auth_file */
#define SLOT_SESSION_BASE 16 /* + index of a sessions/ entry */

enum node_kind {
	NODE_ROOT,
	NODE_PROVIDER_DIR,
	NODE_METRICS,
	NODE_TARGET_DIR,
	NODE_TARGET_FILE,
	NODE_SESSION_ENTRY,
};

struct node {
	enum node_kind kind;
	size_t provider;
	uint32_t target_id;
	enum auth_file file;
	unsigned slot;
};

/* What the kernel may have cached of one target's session files. */
struct kernel_view {
	uint64_t attr_gen;  /* generation whose sizes the kernel was last given */
	uint64_t inval_gen; /* generation up to which its pages were invalidated */
};

struct fs {
	struct auth_core *core;
	const struct config *cfg;
	struct fuse_session *se;
	uid_t uid;
	gid_t gid;
	time_t started; /* the times every node shows */

	pthread_mutex_t view_lock;
	struct kernel_view *views; /* indexed by target id */
	size_t n_views;

	/* Invalidation queue, served by one thread so that no request handler
	 * ever blocks on the kernel. */
	pthread_mutex_t inval_lock;
	pthread_cond_t inval_cond;
	struct inval_item *inval_head;
	bool inval_stop;
	pthread_t inval_thread;
	bool inval_running;
};

/* tree.c */
fuse_ino_t tree_ino(const struct node *n);
int tree_decode(fuse_ino_t ino, struct node *ret);
int tree_lookup(struct fs *fs, fuse_ino_t parent, const char *name, struct node *ret);
int tree_stat(struct fs *fs, const struct node *n, struct stat *st, double *ret_timeout);
const struct auth_file_info *tree_file_info(const struct node *n);

/* cache.c */
int cache_start(struct fs *fs);
void cache_stop(struct fs *fs);
void cache_on_change(void *userdata, uint32_t target_id, uint64_t gen);
void cache_attr_given(struct fs *fs, uint32_t target_id, uint64_t gen);
/* May the kernel keep pages of a blob of generation gen? */
bool cache_may_keep(struct fs *fs, uint32_t target_id, uint64_t gen);
void cache_invalidate(struct fs *fs, uint32_t target_id, uint64_t gen);

/* ops.c */
extern const struct fuse_lowlevel_ops fs_ops;
