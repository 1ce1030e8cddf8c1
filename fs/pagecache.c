/* Page-cache reads of session files, where they are safe (issue 22 item 3).
 *
 * Every open still reaches the daemon (renewal sees every reader); an open
 * answered here is read through the kernel's page cache, with keep_cache
 * when the bytes the kernel may hold are the current rendering. Per file of
 * a target:
 *
 * - Only a file whose renderings all had one length, CACHED_MAX at most:
 *   the kernel cuts a page-cache read at the size it holds, which it learns
 *   from LOOKUP and GETATTR, not with the pages. The file's first open is
 *   direct, and the kernel is made to ask for the size before any other
 *   (`ready`). The first rendering of another length ends the page-cache
 *   path for the file (`varied`); until the page-cache opens still open are
 *   closed, the size told stays `len` and their READs get the newest
 *   rendering of that length (`blob`, never older than what they opened).
 *   With no session (a renewal due) the size told is `len`, never 0.
 * - A READ of a page-cache open serves the current rendering, not the one
 *   taken at its open: it may fill the page cache for later opens.
 *   `page_gen` is the generation of the bytes last served to the page
 *   cache; an open gets keep_cache only when it is the current one, else
 *   the kernel drops the pages at that open.
 * - A READ that may fill the page cache with something else, or not fill
 *   it (direct I/O, O_DIRECT; a direct open's splice fills it from that
 *   open's rendering), makes page_gen unknown.
 * - The kernel fills a page under its lock and drops pages under it too,
 *   so fills of one page never overlap; page_gen is set before the reply.
 *
 * Left open: a program that reads one in several read() calls may get parts
 * of two renderings when a renewal falls between them (the pages it read
 * from are dropped and filled again); a splice of a direct
 * open while page-cache opens of the old length are still open may fill the
 * page with a rendering of another length. */
#include <errno.h>
#include <stdlib.h>

#include "fs.h"

/* Renderings this long at most: one page, and taken whole by one read() of
 * the usual readers (dd's default block is 512 bytes; see "Left open"). */
#define CACHED_MAX 512
#define BUCKETS 1024

struct pc_file {
	struct pc_file *next;
	uint32_t target_id;
	unsigned file;
	size_t len;             /* the length of every rendering seen */
	bool ready;             /* the kernel was made to ask for the size since it was made */
	bool varied;            /* one of another length was seen: direct from then on */
	unsigned readers;       /* page-cache opens not yet released */
	uint64_t page_gen;      /* the generation last served to the page cache; 0: unknown */
	struct auth_blob *blob; /* the newest rendering of length len, while readers */
};

static struct pc_file *buckets[BUCKETS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static struct pc_file **find(uint32_t target_id, unsigned file)
{
	struct pc_file **p = &buckets[(target_id * 31u + file) % BUCKETS];

	while (*p && ((*p)->target_id != target_id || (*p)->file != file)) {
		p = &(*p)->next;
	}
	return p;
}

/* Keeps b as the newest rendering of e's length. Lock held. */
static void note(struct pc_file *e, struct auth_blob *b)
{
	if (b->len != e->len) {
		e->varied = true;
	} else if (!e->blob || b->gen > e->blob->gen) {
		auth_blob_unref(e->blob);
		e->blob = auth_blob_ref(b);
	}
}

int pagecache_open(uint32_t target_id, unsigned file, struct auth_blob *b, bool *ret_keep)
{
	struct pc_file **p, *e;
	bool cached = false;

	pthread_mutex_lock(&lock);
	p = find(target_id, file);
	if (!*p && b->len > 0 && b->len <= CACHED_MAX && (*p = calloc(1, sizeof(**p)))) {
		**p = (struct pc_file){ .target_id = target_id, .file = file, .len = b->len };
		pthread_mutex_unlock(&lock);
		return PAGECACHE_NEW;
	}
	e = *p;
	if (e) {
		note(e, b);
		cached = e->ready && !e->varied;
	}
	if (cached) {
		e->readers++;
		*ret_keep = e->page_gen == b->gen;
	}
	pthread_mutex_unlock(&lock);
	return cached ? PAGECACHE_CACHED : PAGECACHE_DIRECT;
}

void pagecache_ready(uint32_t target_id, unsigned file)
{
	struct pc_file *e;

	pthread_mutex_lock(&lock);
	e = *find(target_id, file);
	if (e) {
		e->ready = true;
	}
	pthread_mutex_unlock(&lock);
}

struct auth_blob *pagecache_read(struct fs *fs, uint32_t target_id, unsigned file, bool fill)
{
	struct auth_target *t = auth_target_get(fs->core, target_id);
	struct auth_blob *cur = NULL, *b = NULL;
	struct pc_file *e;

	/* From memory: a session due for renewal serves the newest one there is. */
	if (t && auth_file_peek(t, file, &cur) < 0) {
		cur = NULL;
	}
	auth_target_unref(t);
	pthread_mutex_lock(&lock);
	e = *find(target_id, file);
	if (e && cur) {
		note(e, cur);
	}
	if (e && e->blob) {
		b = auth_blob_ref(e->blob);
		e->page_gen = fill ? b->gen : 0;
	}
	pthread_mutex_unlock(&lock);
	auth_blob_unref(cur);
	return b;
}

void pagecache_direct_read(uint32_t target_id, unsigned file)
{
	struct pc_file *e;

	pthread_mutex_lock(&lock);
	e = *find(target_id, file);
	if (e) {
		e->page_gen = 0;
	}
	pthread_mutex_unlock(&lock);
}

bool pagecache_close(uint32_t target_id, unsigned file)
{
	struct pc_file *e;
	bool ended = false;

	pthread_mutex_lock(&lock);
	e = *find(target_id, file);
	if (e && e->readers > 0 && --e->readers == 0) {
		auth_blob_unref(e->blob); /* no token kept for nobody (after rm, say) */
		e->blob = NULL;
		ended = e->varied; /* no reader relies on the old length any more */
	}
	pthread_mutex_unlock(&lock);
	return ended;
}

bool pagecache_size(uint32_t target_id, unsigned file, const struct auth_blob *cur, off_t *ret_size)
{
	struct pc_file *e;
	bool held = false;

	pthread_mutex_lock(&lock);
	e = *find(target_id, file);
	if (e && cur && cur->len != e->len) {
		e->varied = true;
	}
	if (e && (e->readers > 0 || !e->varied)) {
		*ret_size = (off_t)e->len;
		held = true;
	}
	pthread_mutex_unlock(&lock);
	return held;
}

void pagecache_drop_target(uint32_t target_id)
{
	pthread_mutex_lock(&lock);
	for (unsigned i = 0; i < BUCKETS; i++) {
		for (struct pc_file **p = &buckets[i]; *p;) {
			struct pc_file *e = *p;
			if (target_id == 0 || e->target_id == target_id) {
				*p = e->next;
				auth_blob_unref(e->blob);
				free(e);
			} else {
				p = &e->next;
			}
		}
	}
	pthread_mutex_unlock(&lock);
}
