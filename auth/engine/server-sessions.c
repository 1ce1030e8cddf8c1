/* The sessions/ directory: every session on the server, read and deleted
 * through the provider. Uses the daemon's own session to authenticate; when
 * none can be had (the BMC is full), the provider falls back to the
 * credentials themselves, so stale sessions can still be removed. */
#include <errno.h>

#include "lib/log.h"
#include "target.h"
#include "lib/validate.h"

#define MAX_SLOTS 4000 /* inode slots per target (fs: 12 bits less the files) */
#define LISTING_FRESH 3.0 /* seconds a listing answers whether an id exists */
#define LISTING_GAP 1.0   /* at most one listing a second for ids not in it */

/* Ids that stay inside the Sessions collection: "..", "%2e%2e", '?', '#' and
 * '/' are refused before any request. */
bool auth_session_id_valid(const char *id)
{
	return validate_redfish_id(id);
}

int session_borrow(struct auth_target *t, struct auth_session **ret, struct auth_ctx *ctx)
{
	struct auth_session *s;
	int r = session_acquire(t);

	if (r < 0) {
		return r;
	}
	s = auth_session_dup(t->session);
	r = s ? ctx_init(t, ctx) : -ENOMEM;
	pthread_mutex_unlock(&t->lock);
	if (r < 0) {
		auth_session_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

void session_mark_stale(struct auth_target *t, const char *token_id)
{
	pthread_mutex_lock(&t->lock);
	if (t->session && streq_ptr(t->session->id, token_id)) {
		t->session->expires_at = 1; /* unusable: the next use renews or logs in */
	}
	pthread_mutex_unlock(&t->lock);
}

/* Calls op with the daemon's session, once more after a renewal if the server
 * no longer takes it, or with no session (credentials) when none can be had. */
typedef int (*sessions_op)(struct auth_target *t, struct auth_ctx *ctx, const struct auth_session *s, void *arg);

static int with_session(struct auth_target *t, sessions_op op, void *arg)
{
	int r = -ESTALE;

	for (int attempt = 0; attempt < 2 && r == -ESTALE; attempt++) {
		struct auth_session *s = NULL;
		struct auth_ctx ctx;
		r = session_borrow(t, &s, &ctx);
		if (r == -EUSERS) {
			pthread_mutex_lock(&t->lock);
			r = ctx_init(t, &ctx);
			pthread_mutex_unlock(&t->lock);
		}
		if (r < 0) {
			return r;
		}
		r = op(t, &ctx, s, arg);
		if (r == -ESTALE && s) {
			session_mark_stale(t, s->id);
		}
		if (r < 0 && r != -ESTALE && r != -ENOENT) {
			pthread_mutex_lock(&t->lock);
			target_set_error(t, r, ctx.error);
			pthread_mutex_unlock(&t->lock);
		}
		ctx_done(&ctx);
		auth_session_free(s);
	}
	return r;
}

struct list_arg {
	char **ids;
	size_t n;
};

static int op_list(struct auth_target *t, struct auth_ctx *ctx, const struct auth_session *s, void *arg)
{
	struct list_arg *a = arg;

	return t->provider->sessions->list(ctx, s, &a->ids, &a->n);
}

/* t's sessions/ state, made at its first use: most targets never have one.
 * Published once and kept until the target is freed. NULL: out of memory. */
static struct target_slots *slots_get(struct auth_target *t)
{
	struct target_slots *sl = __atomic_load_n(&t->slots, __ATOMIC_ACQUIRE), *expected = NULL;

	if (sl) {
		return sl;
	}
	sl = calloc(1, sizeof(*sl));
	if (!sl) {
		return NULL;
	}
	pthread_mutex_init(&sl->lock, NULL);
	if (!__atomic_compare_exchange_n(&t->slots, &expected, sl, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		pthread_mutex_destroy(&sl->lock); /* another thread's came first */
		free(sl);
		return expected;
	}
	return sl;
}

/* Keeps a copy of a listing, for lookups (the slots' lock not held). */
static void listing_keep(struct auth_target *t, char **ids, size_t n)
{
	struct target_slots *sl = slots_get(t);
	char **copy = sl ? calloc(n + 1, sizeof(*copy)) : NULL;
	size_t i;

	if (!sl) {
		return;
	}
	for (i = 0; copy && i < n; i++) {
		if (!(copy[i] = strdup(ids[i]))) {
			auth_strv_free(copy, i);
			copy = NULL;
		}
	}
	pthread_mutex_lock(&sl->lock);
	auth_strv_free(sl->listed, sl->n_listed);
	sl->listed = copy;
	sl->n_listed = copy ? n : 0;
	sl->listed_at = copy ? now_mono() : 0;
	pthread_mutex_unlock(&sl->lock);
}

static bool listed(const struct target_slots *sl, const char *id)
{
	for (size_t i = 0; i < sl->n_listed; i++) {
		if (strcmp(sl->listed[i], id) == 0) {
			return true;
		}
	}
	return false;
}

/* A deleted session is gone from the listing at once. */
static void listing_drop(struct auth_target *t, const char *id)
{
	struct target_slots *sl = __atomic_load_n(&t->slots, __ATOMIC_ACQUIRE);

	if (!sl) {
		return; /* never listed: nothing to drop */
	}
	pthread_mutex_lock(&sl->lock);
	for (size_t i = 0; i < sl->n_listed; i++) {
		if (strcmp(sl->listed[i], id) == 0) {
			free(sl->listed[i]);
			sl->listed[i] = sl->listed[--sl->n_listed];
			sl->listed[sl->n_listed] = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&sl->lock);
}

int auth_sessions_list(struct auth_target *t, char ***ret_ids, size_t *ret_n)
{
	struct list_arg a = { 0 };
	int r;

	if (!t->provider->sessions) {
		return -ENOTDIR;
	}
	r = with_session(t, op_list, &a);
	if (r < 0) {
		return r;
	}
	listing_keep(t, a.ids, a.n);
	*ret_ids = a.ids;
	*ret_n = a.n;
	return 0;
}

int auth_sessions_exists(struct auth_target *t, const char *id)
{
	struct target_slots *sl;
	bool fresh, found, may_list;
	char **ids = NULL;
	size_t n = 0;
	double now = now_mono();
	int r;

	if (!t->provider->sessions) {
		return -ENOENT;
	}
	if (!auth_session_id_valid(id)) {
		return -EINVAL;
	}
	sl = slots_get(t);
	if (!sl) {
		return -ENOMEM;
	}
	pthread_mutex_lock(&sl->lock);
	fresh = sl->listed_at > 0 && now - sl->listed_at < LISTING_FRESH;
	found = listed(sl, id);
	may_list = sl->list_tried_at == 0 || now - sl->list_tried_at >= LISTING_GAP;
	if ((!fresh || !found) && may_list) {
		sl->list_tried_at = now; /* concurrent misses share this one */
	}
	pthread_mutex_unlock(&sl->lock);
	if ((fresh && found) || !may_list) {
		return found ? 0 : -ENOENT;
	}
	r = auth_sessions_list(t, &ids, &n);
	if (r < 0) {
		return r;
	}
	found = false;
	for (size_t i = 0; i < n && !found; i++) {
		found = strcmp(ids[i], id) == 0;
	}
	auth_strv_free(ids, n);
	return found ? 0 : -ENOENT;
}

struct get_arg {
	const char *id;
	struct auth_blob *blob;
};

static int op_get(struct auth_target *t, struct auth_ctx *ctx, const struct auth_session *s, void *arg)
{
	struct get_arg *a = arg;

	return t->provider->sessions->get(ctx, s, a->id, &a->blob);
}

int auth_sessions_read(struct auth_target *t, const char *id, struct auth_blob **ret)
{
	struct get_arg a = { .id = id };
	int r;

	if (!t->provider->sessions) {
		return -ENOENT;
	}
	if (!auth_session_id_valid(id)) {
		return -EINVAL;
	}
	r = with_session(t, op_get, &a);
	if (r == 0) {
		*ret = a.blob;
	}
	return r;
}

static int op_delete(struct auth_target *t, struct auth_ctx *ctx, const struct auth_session *s, void *arg)
{
	return t->provider->sessions->delete(ctx, s, arg);
}

int auth_sessions_delete(struct auth_target *t, const char *id)
{
	bool own;
	int r;

	if (!t->provider->sessions) {
		return -ENOENT;
	}
	if (!auth_session_id_valid(id)) {
		return -EINVAL;
	}
	pthread_mutex_lock(&t->lock);
	own = t->session && streq_ptr(t->session->id, id);
	pthread_mutex_unlock(&t->lock);
	if (own) {
		return session_logout(t, now_mono() + t->info.timeout); /* the daemon's own: forget it too */
	}
	r = with_session(t, op_delete, (void *)id);
	target_audit(t, "session_delete", id, r);
	if (r == 0) {
		listing_drop(t, id);
		log_info("%s/%s: deleted session %s on the server", t->provider->name, t->name, id);
		pthread_mutex_lock(&t->lock);
		t->failed_at = 0; /* a slot was freed: the next read may try again */
		pthread_mutex_unlock(&t->lock);
	}
	return r;
}

/* A slot per id seen (listed or looked up); when all are taken, the one used
 * longest ago is given to the new id, so made-up names can't fill the table. */
int auth_sessions_slot(struct auth_target *t, const char *id)
{
	struct target_slots *sl = slots_get(t);
	size_t victim = 0;
	char *copy;
	int slot = -ENOMEM;

	if (!sl) {
		return -ENOMEM;
	}
	pthread_mutex_lock(&sl->lock);
	for (size_t i = 0; i < sl->n_slots; i++) {
		if (strcmp(sl->slot_ids[i], id) == 0) {
			sl->slot_used[i] = ++sl->slot_clock;
			slot = (int)i;
			goto out;
		}
		if (sl->slot_used[i] < sl->slot_used[victim]) {
			victim = i;
		}
	}
	copy = strdup(id);
	if (!copy) {
		goto out;
	}
	if (sl->n_slots < MAX_SLOTS) {
		char **ids = realloc(sl->slot_ids, (sl->n_slots + 1) * sizeof(*ids));
		uint64_t *used = ids ? realloc(sl->slot_used, (sl->n_slots + 1) * sizeof(*used)) : NULL;
		if (ids) {
			sl->slot_ids = ids;
		}
		if (!used) {
			free(copy);
			goto out;
		}
		sl->slot_used = used;
		victim = sl->n_slots++;
	} else {
		free(sl->slot_ids[victim]);
	}
	sl->slot_ids[victim] = copy;
	sl->slot_used[victim] = ++sl->slot_clock;
	slot = (int)victim;
out:
	pthread_mutex_unlock(&sl->lock);
	return slot;
}

char *auth_sessions_id(struct auth_target *t, unsigned slot)
{
	struct target_slots *sl = __atomic_load_n(&t->slots, __ATOMIC_ACQUIRE);
	char *id = NULL;

	if (!sl) {
		return NULL; /* no slot was ever given out */
	}
	pthread_mutex_lock(&sl->lock);
	if (slot < sl->n_slots) {
		id = strdup(sl->slot_ids[slot]);
	}
	pthread_mutex_unlock(&sl->lock);
	return id;
}
