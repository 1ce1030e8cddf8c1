/* Keeping the kernel's attributes honest. Every file is read with direct I/O
 * from what its open rendered, so no content is cached by the kernel; what it
 * caches is attributes (sizes, for stat). Every session change (login,
 * refresh, logout, rm) queues an invalidation of that target's attributes,
 * served by one thread. Attributes only: no daemon thread ever waits on a
 * page lock, which a reader waiting for us may hold (a deadlock, and a
 * daemon that kill -9 can't end). */
#include <errno.h>
#include <stdlib.h>

#include "fs.h"

struct inval_item {
	uint32_t target_id;     /* all its session files */
	struct inval_item *next;
};

static void enqueue(struct fs *fs, uint32_t target_id)
{
	struct inval_item *item = malloc(sizeof(*item));

	if (!item) {
		return;
	}
	*item = (struct inval_item){ .target_id = target_id };
	pthread_mutex_lock(&fs->inval_lock);
	item->next = fs->inval_head;
	fs->inval_head = item;
	pthread_cond_signal(&fs->inval_cond);
	pthread_mutex_unlock(&fs->inval_lock);
}

void cache_on_change(void *userdata, uint32_t target_id, uint64_t gen)
{
	(void)gen;
	enqueue(userdata, target_id);
}

/* Attributes only (offset < 0): never a page lock. -ENOENT means the kernel
 * holds nothing of it, which is fine. */
static void inval_attr(struct fs *fs, fuse_ino_t ino)
{
	fuse_lowlevel_notify_inval_inode(fs->se, ino, -1, 0);
}

void cache_drop_target(struct fs *fs, uint32_t target_id)
{
	struct auth_target *t = auth_target_get(fs->core, target_id);
	const struct auth_file_info *files;
	size_t n;

	if (!t) {
		return;
	}
	files = auth_provider_files(auth_target_provider(t), &n);
	for (size_t i = 0; i < n; i++) {
		struct node node = { .kind = NODE_TARGET_FILE, .target_id = target_id, .file = (unsigned)i };
		if (files[i].role == AUTH_FILE_SESSION) {
			inval_attr(fs, tree_ino(&node));
		}
	}
	auth_target_unref(t);
}

void cache_drop_all(struct fs *fs)
{
	for (uint32_t after = 0;;) {
		struct auth_target *t = auth_target_next(fs->core, after);
		if (!t) {
			return;
		}
		after = auth_target_id(t);
		auth_target_unref(t);
		cache_drop_target(fs, after);
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
		cache_drop_target(fs, item->target_id);
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
}
