/* Keeping the kernel's page cache honest. With no-open support the kernel
 * keeps every file's pages (FOPEN_KEEP_CACHE) and reads of a hot token never
 * reach the daemon. Every session change (login, refresh, logout, rm) queues
 * an invalidation of that target's pages and attributes, served by one thread
 * so that no request handler ever blocks on the kernel. Dynamic files (status,
 * .metrics, sessions/ entries) show a new mtime on every getattr, which makes
 * the kernel drop their pages before each read (auto_inval_data). */
#include <errno.h>
#include <stdlib.h>

#include "../auth/log.h"
#include "fs.h"

#define SNAPSHOTS 64

struct inval_item {
	fuse_ino_t ino;         /* one inode, or 0 for all session files of target_id */
	uint32_t target_id;
	struct inval_item *next;
};

static void enqueue(struct fs *fs, uint32_t target_id, fuse_ino_t ino)
{
	struct inval_item *item = malloc(sizeof(*item));

	if (!item) {
		return;
	}
	*item = (struct inval_item){ .ino = ino, .target_id = target_id };
	pthread_mutex_lock(&fs->inval_lock);
	item->next = fs->inval_head;
	fs->inval_head = item;
	pthread_cond_signal(&fs->inval_cond);
	pthread_mutex_unlock(&fs->inval_lock);
}

void cache_on_change(void *userdata, uint32_t target_id, uint64_t gen)
{
	(void)gen;
	enqueue(userdata, target_id, 0);
}

void cache_invalidate_ino(struct fs *fs, fuse_ino_t ino)
{
	enqueue(fs, 0, ino);
}

void cache_drop_target(struct fs *fs, uint32_t target_id, fuse_ino_t skip)
{
	struct auth_target *t = auth_target_get(fs->core, target_id);
	const struct auth_file_info *files;
	size_t n;

	if (!t) {
		return;
	}
	files = auth_provider_files(auth_target_provider(t), &n);
	for (size_t i = 0; i < n; i++) {
		struct node node = { .kind = NODE_TARGET_FILE, .target_id = target_id, .file = files[i].file };
		if (files[i].from_session && tree_ino(&node) != skip) {
			fuse_lowlevel_notify_inval_inode(fs->se, tree_ino(&node), 0, 0);
		}
	}
	auth_target_unref(t);
}

static void invalidate(struct fs *fs, const struct inval_item *item)
{
	/* -ENOENT: the kernel holds nothing of it, which is fine. */
	if (item->ino) {
		fuse_lowlevel_notify_inval_inode(fs->se, item->ino, 0, 0);
		return;
	}
	cache_drop_target(fs, item->target_id, 0);
}

void cache_drop_all(struct fs *fs)
{
	for (uint32_t after = 0;;) {
		struct auth_target *t = auth_target_next(fs->core, AUTH_ANY_PROVIDER, after);
		if (!t) {
			return;
		}
		after = auth_target_id(t);
		auth_target_unref(t);
		cache_drop_target(fs, after, 0);
	}
}

static void *inval_thread(void *userdata)
{
	struct fs *fs = userdata;

	pthread_mutex_lock(&fs->inval_lock);
	while (!fs->inval_stop) {
		struct inval_item *item = fs->inval_head;
		if (!item) {
			pthread_cond_wait(&fs->inval_cond, &fs->inval_lock);
			continue;
		}
		fs->inval_head = item->next;
		pthread_mutex_unlock(&fs->inval_lock);
		invalidate(fs, item);
		free(item);
		pthread_mutex_lock(&fs->inval_lock);
	}
	pthread_mutex_unlock(&fs->inval_lock);
	return NULL;
}

int cache_start(struct fs *fs)
{
	int r = pthread_create(&fs->inval_thread, NULL, inval_thread, fs);

	if (r != 0) {
		return log_error_errno(-r, "Failed to start the invalidation thread: %m");
	}
	fs->inval_running = true;
	return 0;
}

void cache_stop(struct fs *fs)
{
	if (fs->inval_running) {
		pthread_mutex_lock(&fs->inval_lock);
		fs->inval_stop = true;
		pthread_cond_signal(&fs->inval_cond);
		pthread_mutex_unlock(&fs->inval_lock);
		pthread_join(fs->inval_thread, NULL);
		fs->inval_running = false;
	}
	while (fs->inval_head) {
		struct inval_item *next = fs->inval_head->next;
		free(fs->inval_head);
		fs->inval_head = next;
	}
	for (size_t i = 0; i < SNAPSHOTS && fs->snapshots; i++) {
		auth_blob_unref(fs->snapshots[i].blob);
	}
	free(fs->snapshots);
	fs->snapshots = NULL;
}

/* A dynamic file read in several requests must read one rendering: offset 0
 * renders anew, later offsets reuse it. */
void cache_snapshot_put(struct fs *fs, fuse_ino_t ino, struct auth_blob *b)
{
	struct snapshot *slot = NULL;

	pthread_mutex_lock(&fs->snapshot_lock);
	if (!fs->snapshots) {
		fs->snapshots = calloc(SNAPSHOTS, sizeof(*fs->snapshots));
	}
	for (size_t i = 0; fs->snapshots && i < SNAPSHOTS && !slot; i++) {
		if (fs->snapshots[i].ino == ino) {
			slot = &fs->snapshots[i];
		}
	}
	if (fs->snapshots && !slot && b) {
		slot = &fs->snapshots[fs->snapshot_next++ % SNAPSHOTS];
	}
	if (slot) {
		auth_blob_unref(slot->blob);
		slot->ino = b ? ino : 0; /* NULL: forget what ino had */
		slot->blob = auth_blob_ref(b);
	}
	pthread_mutex_unlock(&fs->snapshot_lock);
}

struct auth_blob *cache_snapshot_get(struct fs *fs, fuse_ino_t ino)
{
	struct auth_blob *b = NULL;

	pthread_mutex_lock(&fs->snapshot_lock);
	for (size_t i = 0; fs->snapshots && i < SNAPSHOTS && !b; i++) {
		if (fs->snapshots[i].ino == ino) {
			b = auth_blob_ref(fs->snapshots[i].blob);
		}
	}
	pthread_mutex_unlock(&fs->snapshot_lock);
	return b;
}
