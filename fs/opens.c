/* What open files and directories hold (a handle, a sessions/ listing). The
 * kernel's RELEASE of a closed file comes asynchronously and is dropped when
 * the mount goes away, so what it would have freed is freed at exit. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs.h"

void opens_init(struct fs *fs)
{
	pthread_mutex_init(&fs->opens_lock, NULL);
	fs->opens.prev = fs->opens.next = &fs->opens;
}

void opens_add(struct fs *fs, struct open_obj *o, void (*free_fn)(struct open_obj *o))
{
	o->free = free_fn;
	pthread_mutex_lock(&fs->opens_lock);
	o->next = &fs->opens;
	o->prev = fs->opens.prev;
	o->prev->next = o;
	fs->opens.prev = o;
	pthread_mutex_unlock(&fs->opens_lock);
}

void opens_release(struct fs *fs, struct open_obj *o)
{
	pthread_mutex_lock(&fs->opens_lock);
	o->prev->next = o->next;
	o->next->prev = o->prev;
	pthread_mutex_unlock(&fs->opens_lock);
	o->free(o);
}

static void staging_free_all(struct fs *fs);

void opens_free_all(struct fs *fs)
{
	while (fs->opens.next && fs->opens.next != &fs->opens) {
		opens_release(fs, fs->opens.next);
	}
	staging_free_all(fs);
}

struct staging {
	struct staging *next;
	uint32_t target_id;
	unsigned slot;
	uid_t uid;
	gid_t gid;
	time_t mtime;
	size_t len;
	char *data;
	char name[];
};

void staging_data_free(char *data, size_t len)
{
	if (data) {
		explicit_bzero(data, len);
		free(data);
	}
}

static void staging_free(struct staging *e)
{
	if (e) {
		staging_data_free(e->data, e->len);
		free(e);
	}
}

/* opens_lock held. */
static struct staging **staging_find(struct fs *fs, uint32_t target_id, const char *name)
{
	struct staging **p = &fs->staging;

	while (*p && ((*p)->target_id != target_id || strcmp((*p)->name, name) != 0)) {
		p = &(*p)->next;
	}
	return p;
}

static struct staging **staging_find_slot(struct fs *fs, uint32_t target_id, unsigned slot)
{
	struct staging **p = &fs->staging;

	while (*p && ((*p)->target_id != target_id || (*p)->slot != slot)) {
		p = &(*p)->next;
	}
	return p;
}

static void staging_node(const struct staging *e, struct node *ret)
{
	*ret = (struct node){ .kind = NODE_STAGING, .target_id = e->target_id, .slot = e->slot };
}

/* Drops the temp files of a target (target_id), or those nothing was
 * written to for STAGING_TTL (target_id 0): a temp file no tool renamed
 * (`echo x > typo`) doesn't stay. opens_lock held. */
static void staging_expire(struct fs *fs, uint32_t target_id)
{
	time_t now = time(NULL);

	for (struct staging **p = &fs->staging; *p;) {
		struct staging *e = *p;
		if (target_id ? e->target_id == target_id : now - e->mtime > STAGING_TTL) {
			*p = e->next;
			staging_free(e);
		} else {
			p = &e->next;
		}
	}
}

void staging_drop_target(struct fs *fs, uint32_t target_id)
{
	pthread_mutex_lock(&fs->opens_lock);
	staging_expire(fs, target_id);
	pthread_mutex_unlock(&fs->opens_lock);
}

int staging_create(struct fs *fs, uint32_t target_id, const char *name, uid_t uid, gid_t gid, struct node *ret)
{
	struct staging *e;
	unsigned used = 0;
	int r = 0;

	pthread_mutex_lock(&fs->opens_lock);
	staging_expire(fs, 0);
	for (e = fs->staging; e; e = e->next) {
		if (e->target_id == target_id) {
			used |= 1u << e->slot;
			if (strcmp(e->name, name) == 0) {
				r = -EEXIST;
			}
		}
	}
	if (r == 0 && used == (1u << STAGING_MAX) - 1) {
		r = -ENOSPC;
	}
	e = r == 0 ? calloc(1, sizeof(*e) + strlen(name) + 1) : NULL;
	if (r == 0 && !e) {
		r = -ENOMEM;
	}
	if (r == 0) {
		e->target_id = target_id;
		while (used & (1u << e->slot)) {
			e->slot++;
		}
		e->uid = uid;
		e->gid = gid;
		e->mtime = time(NULL);
		strcpy(e->name, name);
		e->next = fs->staging;
		fs->staging = e;
		staging_node(e, ret);
	}
	pthread_mutex_unlock(&fs->opens_lock);
	return r;
}

int staging_lookup(struct fs *fs, uint32_t target_id, const char *name, struct node *ret)
{
	struct staging *e;

	pthread_mutex_lock(&fs->opens_lock);
	e = *staging_find(fs, target_id, name);
	if (e) {
		staging_node(e, ret);
	}
	pthread_mutex_unlock(&fs->opens_lock);
	return e ? 0 : -ENOENT;
}

/* Write-only, and empty to stat: not even the length of what it holds shows. */
int staging_stat(struct fs *fs, const struct node *n, struct stat *st)
{
	struct staging *e;

	pthread_mutex_lock(&fs->opens_lock);
	e = *staging_find_slot(fs, n->target_id, n->slot);
	if (e) {
		st->st_mode = S_IFREG | 0200;
		st->st_uid = e->uid;
		st->st_gid = e->gid;
		st->st_mtime = st->st_ctime = e->mtime;
	}
	pthread_mutex_unlock(&fs->opens_lock);
	return e ? 0 : -ENOENT;
}

int staging_set(struct fs *fs, const struct node *n, const char *data, size_t len)
{
	struct staging *e;
	char *copy = malloc(len + 1);

	if (!copy) {
		return -ENOMEM;
	}
	memcpy(copy, data, len);
	pthread_mutex_lock(&fs->opens_lock);
	e = *staging_find_slot(fs, n->target_id, n->slot);
	if (e) {
		staging_data_free(e->data, e->len);
		e->data = copy;
		e->len = len;
		e->mtime = time(NULL);
		copy = NULL;
	}
	pthread_mutex_unlock(&fs->opens_lock);
	staging_data_free(copy, len);
	return e ? 0 : -ENOENT;
}

int staging_remove(struct fs *fs, uint32_t target_id, const char *name, char **ret_data, size_t *ret_len)
{
	struct staging **p, *e;

	pthread_mutex_lock(&fs->opens_lock);
	p = staging_find(fs, target_id, name);
	e = *p;
	if (e) {
		*p = e->next;
	}
	pthread_mutex_unlock(&fs->opens_lock);
	if (!e) {
		return -ENOENT;
	}
	if (ret_data) {
		*ret_data = TAKE_PTR(e->data);
		*ret_len = e->len;
	}
	staging_free(e);
	return 0;
}

int staging_rename(struct fs *fs, uint32_t target_id, const char *name, const char *newname)
{
	struct staging **p, *e, *renamed = NULL;
	int r = 0;

	pthread_mutex_lock(&fs->opens_lock);
	e = *staging_find(fs, target_id, name);
	p = staging_find(fs, target_id, newname);
	if (!e) {
		r = -ENOENT;
	} else if (*p != e) {
		renamed = calloc(1, sizeof(*renamed) + strlen(newname) + 1);
		r = renamed ? 0 : -ENOMEM;
	}
	if (renamed) {
		struct staging *old = *p;
		*renamed = *e;
		strcpy(renamed->name, newname);
		e->data = NULL;
		e->len = 0;
		if (old) { /* replaced: its slot and content go */
			*p = old->next;
			staging_free(old);
		}
		*staging_find(fs, target_id, name) = e->next;
		renamed->next = fs->staging;
		fs->staging = renamed;
		free(e);
	}
	pthread_mutex_unlock(&fs->opens_lock);
	return r;
}

int staging_copy(struct fs *fs, uint32_t target_id, const char *name, char **ret_data, size_t *ret_len)
{
	struct staging *e;
	char *copy = NULL;
	size_t len = 0;

	pthread_mutex_lock(&fs->opens_lock);
	e = *staging_find(fs, target_id, name);
	if (e) {
		len = e->len;
		copy = malloc(len + 1);
		if (copy && len) {
			memcpy(copy, e->data, len);
		}
	}
	pthread_mutex_unlock(&fs->opens_lock);
	if (!e) {
		return -ENOENT;
	}
	if (!copy) {
		return -ENOMEM;
	}
	*ret_data = copy;
	*ret_len = len;
	return 0;
}

static void staging_free_all(struct fs *fs)
{
	while (fs->staging) {
		struct staging *e = fs->staging;
		fs->staging = e->next;
		staging_free(e);
	}
}
