/* What open files and directories hold (a handle, a sessions/ listing). The
 * kernel's RELEASE of a closed file comes asynchronously and is dropped when
 * the mount goes away, so what it would have freed is freed at exit. */
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

void opens_free_all(struct fs *fs)
{
	while (fs->opens.next && fs->opens.next != &fs->opens) {
		opens_release(fs, fs->opens.next);
	}
}
