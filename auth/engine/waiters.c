/* Opens waiting for a login, without a thread each: a FUSE request that
 * needs a login is a waiter on its target, answered when the flight ends
 * (by the thread that ended it) or at the read's deadline (by the timer
 * here), whichever comes first. The rules of a read are session_acquire()'s
 * (session_read_step()): one login for many readers, at most one attempt per
 * read, none longer than `timeout`. */
#include <errno.h>
#include <stdlib.h>

#include "lib/log.h"
#include "target.h"

struct read_waiter {
	struct read_waiter *next;
	unsigned f;
	double deadline; /* now_mono() */
	struct read_state rs;
	auth_read_done_fn done;
	void *userdata;
	int result;
	struct auth_blob *blob;
};

/* Puts t among the alarms at deadline, unless it is there earlier
 * (waiters_lock held). Deadlines mostly come in order: inserted from the end. */
static void alarm_arm(struct auth_target *t, double deadline)
{
	struct auth_core *core = t->core;
	struct auth_target *after;

	if (t->armed && t->alarm_at <= deadline) {
		return;
	}
	if (t->armed) { /* earlier now: move it */
		*(t->alarm_prev ? &t->alarm_prev->alarm_next : &core->alarms) = t->alarm_next;
		*(t->alarm_next ? &t->alarm_next->alarm_prev : &core->alarms_tail) = t->alarm_prev;
	} else {
		target_ref(t);
		t->armed = true;
	}
	t->alarm_at = deadline;
	for (after = core->alarms_tail; after && after->alarm_at > deadline; after = after->alarm_prev) {
	}
	t->alarm_prev = after;
	t->alarm_next = after ? after->alarm_next : core->alarms;
	*(after ? &after->alarm_next : &core->alarms) = t;
	*(t->alarm_next ? &t->alarm_next->alarm_prev : &core->alarms_tail) = t;
	if (!after) {
		pthread_cond_signal(&core->waiters_cond); /* the earliest now */
	}
}

/* Takes t off the alarms (waiters_lock held); whether it was on them (then
 * the caller drops the list's reference). */
static bool alarm_disarm(struct auth_target *t)
{
	struct auth_core *core = t->core;

	if (!t->armed) {
		return false;
	}
	*(t->alarm_prev ? &t->alarm_prev->alarm_next : &core->alarms) = t->alarm_next;
	*(t->alarm_next ? &t->alarm_next->alarm_prev : &core->alarms_tail) = t->alarm_prev;
	t->alarm_prev = t->alarm_next = NULL;
	t->armed = false;
	return true;
}

static int waiters_add(struct auth_target *t, unsigned f, const struct read_state *rs, double deadline,
		auth_read_done_fn done, void *userdata)
{
	struct auth_core *core = t->core;
	struct read_waiter *w = calloc(1, sizeof(*w));
	int r = 0;

	if (!w) {
		return -ENOMEM;
	}
	pthread_mutex_lock(&core->waiters_lock);
	if (core->waiters_closed) {
		r = -ENOTCONN;
	} else {
		alarm_arm(t, deadline);
	}
	pthread_mutex_unlock(&core->waiters_lock);
	if (r < 0) {
		free(w);
		return r;
	}
	*w = (struct read_waiter){ .next = t->waiters, .f = f, .deadline = deadline, .rs = *rs, .done = done,
				   .userdata = userdata };
	t->waiters = w;
	return 0;
}

/* The outcome for w now (lock held): 1 while it still waits. What it is
 * served is rendered once per file for all the waiters decided with it
 * (rendered[], the caller's, unchanged while the lock is held): one copy of
 * the token for a herd of readers, not one each. */
static int decide(struct auth_target *t, struct read_waiter *w, int cancel, double now,
		  struct auth_blob *rendered[AUTH_FILES_MAX])
{
	int r;

	if (cancel < 0) {
		return cancel;
	}
	if (t->removed) {
		return -ENOENT; /* rmdir: its flight, still running, ends its own session */
	}
	if (session_read_waits(t, &w->rs)) {
		return now < w->deadline ? 1 : session_read_timeout(t);
	}
	r = session_read_step(t, &w->rs); /* the flight ended: served, failed, or one more */
	if (r == 0 && !rendered[w->f]) {
		r = file_render_locked(t, w->f, &rendered[w->f]);
	}
	if (r == 0) {
		w->blob = auth_blob_ref(rendered[w->f]);
	}
	return r;
}

/* Decides t's waiters (cancel < 0: all of them, with that error) and
 * answers those decided, outside the lock. */
static void settle(struct auth_target *t, int cancel)
{
	struct auth_core *core = t->core;
	struct read_waiter *done = NULL, **p;
	struct auth_blob *rendered[AUTH_FILES_MAX] = { 0 };
	double now = now_mono(), next;
	unsigned drop = 0;

	pthread_mutex_lock(&t->lock);
	for (;;) {
		next = 0;
		for (p = &t->waiters; *p;) {
			struct read_waiter *w = *p;
			int r = decide(t, w, cancel, now, rendered);
			if (r > 0) {
				next = next == 0 || w->deadline < next ? w->deadline : next;
				p = &w->next;
				continue;
			}
			w->result = r;
			*p = w->next;
			w->next = done;
			done = w;
		}
		pthread_mutex_lock(&core->waiters_lock);
		drop += alarm_disarm(t);
		if (next > 0 && !core->waiters_closed) {
			alarm_arm(t, next); /* takes a reference of its own */
		}
		cancel = next > 0 && core->waiters_closed ? -ENOTCONN : 0;
		pthread_mutex_unlock(&core->waiters_lock);
		if (cancel == 0) {
			break;
		}
		/* Stopping, and nobody would answer those left: now. */
	}
	pthread_mutex_unlock(&t->lock);
	for (unsigned f = 0; f < AUTH_FILES_MAX; f++) {
		auth_blob_unref(rendered[f]); /* each waiter served holds its own reference */
	}

	while (done) {
		struct read_waiter *w = done;
		done = w->next;
		w->done(w->userdata, w->result, w->result < 0 ? NULL : w->blob);
		if (w->result < 0) {
			auth_blob_unref(w->blob);
		}
		free(w);
	}
	while (drop-- > 0) {
		auth_target_unref(t); /* the alarm's; the caller holds one */
	}
}

void waiters_settle(struct auth_target *t)
{
	settle(t, 0);
}

int auth_file_read_async(struct auth_target *t, unsigned f, auth_read_done_fn done, void *userdata,
			 struct auth_blob **ret)
{
	const struct auth_file_info *fi = target_file(t, f);
	struct read_state rs = { 0 };
	int r;

	if (!fi || fi->role != AUTH_FILE_SESSION) {
		return auth_file_read(t, f, ret); /* status from memory, or refused */
	}
	pthread_mutex_lock(&t->lock);
	t->counters.reads++;
	r = session_read_step(t, &rs);
	if (r == 0) {
		r = file_render_locked(t, f, ret);
	} else if (r > 0) {
		r = waiters_add(t, f, &rs, now_mono() + t->info.timeout, done, userdata);
		r = r < 0 ? r : AUTH_PENDING;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

/* Answers each read whose deadline passed (its target's alarm rang). */
static void *timer_thread(void *userdata)
{
	struct auth_core *core = userdata;

	pthread_mutex_lock(&core->waiters_lock);
	while (!core->waiters_closed) {
		struct auth_target *t = core->alarms;
		if (!t) {
			pthread_cond_wait(&core->waiters_cond, &core->waiters_lock);
			continue;
		}
		if (t->alarm_at > now_mono()) {
			struct timespec ts = mono_timespec(t->alarm_at);
			pthread_cond_timedwait(&core->waiters_cond, &core->waiters_lock, &ts);
			continue;
		}
		target_ref(t); /* settle() may drop the alarm's */
		pthread_mutex_unlock(&core->waiters_lock);
		settle(t, 0);
		auth_target_unref(t);
		pthread_mutex_lock(&core->waiters_lock);
	}
	pthread_mutex_unlock(&core->waiters_lock);
	return NULL;
}

int waiters_start(struct auth_core *core)
{
	int r;

	core->flight_ended = waiters_settle; /* before any flight: fs/ sends no request yet */
	r = -pthread_create(&core->timer, NULL, timer_thread, core);

	if (r < 0) {
		return log_error_errno(r, "Failed to start the read deadline timer: %m");
	}
	core->timer_running = true;
	return 0;
}

void waiters_stop(struct auth_core *core)
{
	pthread_mutex_lock(&core->waiters_lock);
	core->waiters_closed = true;
	pthread_cond_broadcast(&core->waiters_cond);
	pthread_mutex_unlock(&core->waiters_lock);
	if (core->timer_running) {
		pthread_join(core->timer, NULL);
		core->timer_running = false;
	}
	/* Every target with waiters is among the alarms (a removed one too). */
	for (;;) {
		struct auth_target *t;
		pthread_mutex_lock(&core->waiters_lock);
		t = core->alarms;
		if (t) {
			target_ref(t);
		}
		pthread_mutex_unlock(&core->waiters_lock);
		if (!t) {
			return;
		}
		settle(t, -ENOTCONN); /* the daemon is going: as the kernel says once it is gone */
		auth_target_unref(t);
	}
}
