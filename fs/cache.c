/* Keeping the kernel's page cache honest. Session files are served with
 * FOPEN_KEEP_CACHE once the kernel's view matches the current session; every
 * change (login, refresh, logout) invalidates that target's cached pages and
 * attributes from a dedicated thread, and until that is done opens use
 * direct_io, so no reader ever sees a stale token. */
#include <errno.h>
#include <stdlib.h>

#include "../auth/log.h"
#include "fs.h"

struct inval_item {
	uint32_t target_id;
	uint64_t gen;
	struct inval_item *next;
};

/* The view of target_id, growing the table as ids grow (view_lock held). */
static struct kernel_view *view(struct fs *fs, uint32_t target_id)
{
	if (target_id >= fs->n_views) {
		size_t n = (target_id + 1) * 2;
		struct kernel_view *v = realloc(fs->views, n * sizeof(*v));
		if (!v) {
			return NULL;
		}
		memset(v + fs->n_views, 0, (n - fs->n_views) * sizeof(*v));
		fs->views = v;
		fs->n_views = n;
	}
	return &fs->views[target_id];
}

void cache_attr_given(struct fs *fs, uint32_t target_id, uint64_t gen)
{
	struct kernel_view *v;

	pthread_mutex_lock(&fs->view_lock);
	if ((v = view(fs, target_id))) {
		v->attr_gen = gen;
	}
	pthread_mutex_unlock(&fs->view_lock);
}

bool cache_may_keep(struct fs *fs, uint32_t target_id, uint64_t gen)
{
	struct kernel_view *v;
	bool keep = false, heal = false;

	pthread_mutex_lock(&fs->view_lock);
	if ((v = view(fs, target_id))) {
		keep = v->attr_gen == gen && v->inval_gen >= gen;
		/* Sizes of an older generation slipped in after the invalidation:
		 * invalidate again so the next getattr reports the current one. */
		heal = !keep && v->inval_gen >= gen;
	}
	pthread_mutex_unlock(&fs->view_lock);
	if (heal) {
		cache_invalidate(fs, target_id, gen);
	}
	return keep;
}

void cache_invalidate(struct fs *fs, uint32_t target_id, uint64_t gen)
{
	struct inval_item *item = malloc(sizeof(*item));

	if (!item) {
		return;
	}
	*item = (struct inval_item){ .target_id = target_id, .gen = gen };
	pthread_mutex_lock(&fs->inval_lock);
	item->next = fs->inval_head;
	fs->inval_head = item;
	pthread_cond_signal(&fs->inval_cond);
	pthread_mutex_unlock(&fs->inval_lock);
}

void cache_on_change(void *userdata, uint32_t target_id, uint64_t gen)
{
	cache_invalidate(userdata, target_id, gen);
}

static void invalidate_target(struct fs *fs, const struct inval_item *item)
{
	struct auth_target *t = auth_target_get(fs->core, item->target_id);
	const struct auth_file_info *files;
	struct kernel_view *v;
	size_t n;

	if (t) {
		files = auth_provider_files(auth_target_provider(t), &n);
		for (size_t i = 0; i < n; i++) {
			struct node node = { .kind = NODE_TARGET_FILE, .target_id = item->target_id, .file = files[i].file };
			if (files[i].from_session) {
				/* -ENOENT: the kernel holds nothing of it, which is fine. */
				fuse_lowlevel_notify_inval_inode(fs->se, tree_ino(&node), 0, 0);
			}
		}
		auth_target_unref(t);
	}
	pthread_mutex_lock(&fs->view_lock);
	if ((v = view(fs, item->target_id)) && v->inval_gen < item->gen) {
		v->inval_gen = item->gen;
	}
	pthread_mutex_unlock(&fs->view_lock);
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
		invalidate_target(fs, item);
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
	if (!fs->inval_running) {
		return;
	}
	pthread_mutex_lock(&fs->inval_lock);
	fs->inval_stop = true;
	pthread_cond_signal(&fs->inval_cond);
	pthread_mutex_unlock(&fs->inval_lock);
	pthread_join(fs->inval_thread, NULL);
	fs->inval_running = false;
	while (fs->inval_head) {
		struct inval_item *next = fs->inval_head->next;
		free(fs->inval_head);
		fs->inval_head = next;
	}
}
