/* Open files' handles: made at open or create, freed at release. */
#include <stdlib.h>
#include <string.h>

#include "handle.h"

static void handle_free(struct open_obj *o)
{
	struct handle *h = (struct handle *)o;

	auth_blob_unref(h->blob);
	free(h->caller);
	explicit_bzero(h->buf, h->len);
	free(h);
}

void handle_release(struct fs *fs, struct handle *h)
{
	if (h->cached && pagecache_close(h->target_id, h->file)) {
		cache_drop_target(fs, h->target_id);
	}
	opens_release(fs, &h->obj);
}

struct handle *handle_new(struct fs *fs, bool writing)
{
	struct handle *h = calloc(1, sizeof(*h) + (writing ? AUTH_WRITE_MAX : 0));

	if (h) {
		h->writing = writing;
		opens_add(fs, &h->obj, handle_free);
	}
	return h;
}
