/* The renewal scheduler: when each session is due (the lifetime rule, a
 * provider's regular checks, jitter, the fleet's turns), and the workers
 * that hand due targets to the single flight. */
#include <errno.h>
#include <stdlib.h>

#include "lib/log.h"
#include "lifetime.h"
#include "target.h"

#define REFRESH_WORKERS 4

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
	t->core->sched_epoch++;
	pthread_cond_broadcast(&t->core->sched_cond);
	pthread_mutex_unlock(&t->core->sched_lock);
}

/* The target due first, or NULL with *ret_due the next time one is due. */
static struct auth_target *next_due(struct auth_core *core, time_t *ret_due)
{
	struct auth_target *best = NULL;
	time_t best_due = 0;

	pthread_rwlock_rdlock(&core->registry_lock);
	for (uint32_t i = 0; i < core->n_targets; i++) {
		struct auth_target *t = core->targets[i];
		time_t due, retry;
		if (!t || __atomic_load_n(&t->refreshing, __ATOMIC_RELAXED)) {
			continue;
		}
		due = __atomic_load_n(&t->refresh_due, __ATOMIC_RELAXED);
		retry = __atomic_load_n(&t->retry_at, __ATOMIC_RELAXED);
		if (due == 0) {
			continue;
		}
		due = retry > due ? retry : due;
		if (!best || due < best_due) {
			best = t;
			best_due = due;
		}
	}
	/* Claim it; another worker may have been faster. */
	if (best && best_due <= now_real() && !__atomic_exchange_n(&best->refreshing, true, __ATOMIC_ACQ_REL)) {
		target_ref(best);
	} else {
		best = NULL;
	}
	pthread_rwlock_unlock(&core->registry_lock);
	*ret_due = best_due;
	return best;
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
	free(core->workers);
	core->workers = NULL;
	free(core->flight_queue);
	core->flight_queue = NULL;
	core->flight_queue_cap = 0;
	core->n_workers = 0;
}
