/* The renewal scheduler: when each session is due (the lifetime rule, a
 * provider's regular checks, jitter, the fleet's turns), and the workers
 * that hand due targets to the single flight. */
#include <errno.h>
#include <stdlib.h>

#include "lib/log.h"
#include "lifetime.h"
#include "target.h"

#define REFRESH_WORKERS 4

struct sched_entry;
static void file_due(struct auth_core *core, struct auth_target *t, time_t due);

void scheduler_update(struct auth_target *t)
{
	const struct auth_session *s = t->session;
	int margin = t->core->cfg->refresh_margin;
	time_t due = s ? lifetime_renewal_due(s->obtained_at, s->expires_at, t->provider->min_validity, margin,
						  t->last_renew) : 0;

	t->expiry_due = due;
	/* Providers that can check a session: do so regularly, to notice one the
	 * server dropped (restart, deleted elsewhere) before readers do. */
	if (s && (t->provider->features & AUTH_PROVIDER_CHECKS_REGULARLY)) {
		time_t check = (t->last_renew > 0 ? t->last_renew : now_real()) + t->core->cfg->check_interval;
		if (!due || check < due) {
			due = check;
		}
	}
	/* Jitter (earlier, by up to a tenth of the wait, at most the margin), so
	 * that targets logged in together don't all refresh together. */
	if (due > now_real() + 10) {
		time_t span = (due - now_real()) / 10;
		due -= (time_t)arc4random_uniform((uint32_t)(span < margin ? span : margin) + 1);
	}
	due += fleet_renewal_delay(t, due,
				   s ? lifetime_serve_until(s->obtained_at, s->expires_at, t->provider->min_validity) : 0);
	__atomic_store_n(&t->refresh_due, due, __ATOMIC_RELAXED);
	pthread_mutex_lock(&t->core->sched_lock);
	if (due) {
		file_due(t->core, t, due);
	}
	t->core->sched_epoch++;
	pthread_cond_broadcast(&t->core->sched_cond);
	pthread_mutex_unlock(&t->core->sched_lock);
}

/* Targets by when they are due: a binary min-heap under sched_lock, so that
 * a worker finds the next one without a scan of every target (100,000
 * targets, one wake-up per renewal). An entry holds a reference and the due
 * time it was filed at; what a target's fields say when it reaches the top
 * is what counts (flight.c changes them without the heap): an entry of a
 * target with nothing scheduled is dropped, one whose time moved is filed
 * again. A target may have several entries; the refreshing flag lets one
 * worker at a time have it. */
struct sched_entry {
	time_t due;
	struct auth_target *t;
};

static void heap_swap(struct sched_entry *h, size_t a, size_t b)
{
	struct sched_entry x = h[a];

	h[a] = h[b];
	h[b] = x;
}

/* Takes e's reference (sched_lock held); false when out of memory. */
static bool heap_push(struct auth_core *core, struct sched_entry e)
{
	struct sched_entry *h = core->due_heap;
	size_t i = core->due_len;

	if (i == core->due_cap) {
		size_t cap = core->due_cap ? 2 * core->due_cap : 256;
		if (!(h = realloc(h, cap * sizeof(*h)))) {
			return false;
		}
		core->due_heap = h;
		core->due_cap = cap;
	}
	h[core->due_len++] = e;
	for (; i > 0 && h[(i - 1) / 2].due > h[i].due; i = (i - 1) / 2) {
		heap_swap(h, i, (i - 1) / 2);
	}
	return true;
}

static struct sched_entry heap_pop(struct auth_core *core)
{
	struct sched_entry *h = core->due_heap, top = h[0];
	size_t n = --core->due_len;

	h[0] = h[n];
	for (size_t i = 0;;) {
		size_t l = 2 * i + 1, m = i;
		if (l < n && h[l].due < h[m].due) {
			m = l;
		}
		if (l + 1 < n && h[l + 1].due < h[m].due) {
			m = l + 1;
		}
		if (m == i) {
			break;
		}
		heap_swap(h, i, m);
		i = m;
	}
	return top;
}

/* When t is due now by its fields (0: nothing scheduled). */
static time_t due_of(struct auth_target *t)
{
	time_t due = __atomic_load_n(&t->refresh_due, __ATOMIC_RELAXED);
	time_t retry = __atomic_load_n(&t->retry_at, __ATOMIC_RELAXED);

	return due == 0 ? 0 : retry > due ? retry : due;
}

/* Files t at due (sched_lock held). Out of memory: the target waits for its
 * next update, as it would without a worker. */
static void file_due(struct auth_core *core, struct auth_target *t, time_t due)
{
	if (!heap_push(core, (struct sched_entry){ due, target_ref(t) })) {
		auth_target_unref(t);
	}
}

/* The target due first, claimed, or NULL with *ret_due the next time one
 * is due (0: none). */
static struct auth_target *next_due(struct auth_core *core, time_t *ret_due)
{
	time_t now = now_real();

	*ret_due = 0;
	pthread_mutex_lock(&core->sched_lock);
	while (core->due_len > 0) {
		struct sched_entry e = core->due_heap[0];
		time_t due = due_of(e.t);
		if (due != 0 && due != e.due) {
			heap_pop(core);
			e.due = due;
			if (!heap_push(core, e)) {
				auth_target_unref(e.t);
			}
			continue;
		}
		if (due > now) {
			*ret_due = due;
			break;
		}
		heap_pop(core);
		/* Nothing scheduled, or another worker has it (and files it again). */
		if (due == 0 || __atomic_exchange_n(&e.t->refreshing, true, __ATOMIC_ACQ_REL)) {
			auth_target_unref(e.t); /* may free a removed target: target_free() takes no scheduler lock */
			continue;
		}
		pthread_mutex_unlock(&core->sched_lock);
		return e.t;
	}
	pthread_mutex_unlock(&core->sched_lock);
	return NULL;
}

static void *refresh_worker(void *userdata)
{
	struct auth_core *core = userdata;

	for (;;) {
		struct timespec ts;
		uint64_t epoch;
		time_t due = 0, wait;
		struct auth_target *t;

		pthread_mutex_lock(&core->sched_lock);
		epoch = core->sched_epoch;
		if (core->stopping) {
			pthread_mutex_unlock(&core->sched_lock);
			return NULL;
		}
		pthread_mutex_unlock(&core->sched_lock);

		t = next_due(core, &due);
		if (t) {
			core->refresh(t);
			__atomic_store_n(&t->refreshing, false, __ATOMIC_RELEASE);
			/* Still scheduled (a reader's login runs: retry in a second): filed again. */
			pthread_mutex_lock(&core->sched_lock);
			if ((due = due_of(t)) != 0) {
				file_due(core, t, due);
			}
			pthread_mutex_unlock(&core->sched_lock);
			auth_target_unref(t);
			secret_wipe_stack(); /* the renewal's leftovers, before this thread sleeps */
			continue;
		}
		wait = due ? due - now_real() : 60;
		ts = mono_timespec(now_mono() + (double)(wait < 1 ? 1 : wait > 60 ? 60 : wait));
		pthread_mutex_lock(&core->sched_lock);
		/* Sleep only if no schedule changed since the scan. */
		if (!core->stopping && epoch == core->sched_epoch) {
			pthread_cond_timedwait(&core->sched_cond, &core->sched_lock, &ts);
		}
		pthread_mutex_unlock(&core->sched_lock);
	}
}

int scheduler_start(struct auth_core *core, void (*refresh)(struct auth_target *t))
{
	core->refresh = refresh;
	core->workers = calloc(REFRESH_WORKERS, sizeof(pthread_t));
	if (!core->workers) {
		return -ENOMEM;
	}
	for (size_t i = 0; i < REFRESH_WORKERS; i++) {
		int r = pthread_create(&core->workers[i], NULL, refresh_worker, core);
		if (r != 0) {
			return log_error_errno(-r, "Failed to start refresh worker: %m");
		}
		core->n_workers++;
	}
	return 0;
}

void scheduler_stop(struct auth_core *core)
{
	pthread_mutex_lock(&core->sched_lock);
	core->stopping = true;
	pthread_cond_broadcast(&core->sched_cond);
	pthread_mutex_unlock(&core->sched_lock);
	for (size_t i = 0; i < core->n_workers; i++) {
		pthread_join(core->workers[i], NULL);
	}
	/* Readers' logins still running: they end by their requests' timeouts;
	 * those still queued end at once. Then the pool's threads are gone. */
	pthread_mutex_lock(&core->sched_lock);
	while (core->flights > 0 || core->flight_threads > 0) {
		pthread_cond_wait(&core->sched_cond, &core->sched_lock);
	}
	pthread_mutex_unlock(&core->sched_lock);
	while (core->due_len > 0) {
		auth_target_unref(heap_pop(core).t);
	}
	free(core->due_heap);
	core->due_heap = NULL;
	core->due_cap = 0;
	free(core->workers);
	core->workers = NULL;
	free(core->flight_queue);
	core->flight_queue = NULL;
	core->flight_queue_cap = 0;
	core->n_workers = 0;
}
