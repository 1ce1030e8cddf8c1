/* Logouts that nobody waits for: `rm token` and `rmdir` forget the session
 * at once, from local state, and the server's logout goes on in a thread of
 * its own; so does the end of a session a fleet node logged in alone, once
 * it serves the fleet's instead. The kernel holds a directory's lock for the whole of an unlink
 * or rmdir in it, so a logout done in place would hold `ls` of that
 * directory for as long as the server takes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/log.h"
#include "target.h"

#define LOGOUT_ATTEMPTS 4 /* a logout refused before it was sent is tried again after 1, 2, 4 s */
#define LOGOUT_STACK_SIZE (256 * 1024)

struct logout {
	struct auth_target *t; /* a reference */
	struct auth_session *s;
};

/* Whether a failed logout certainly never reached the server, so that
 * sending it again can't end a session twice. A timed-out one may have
 * arrived: it is not sent again. */
static bool never_sent(int r)
{
	return r == -ECONNREFUSED || r == -EHOSTUNREACH || r == -ENETUNREACH;
}

/* Sleeps until the retry, or less when the daemon stops; whether to retry. */
static bool retry_wait(struct auth_core *core, double seconds)
{
	struct timespec ts = mono_timespec(now_mono() + seconds);
	bool stopping;

	pthread_mutex_lock(&core->sched_lock);
	while (!core->stopping && pthread_cond_timedwait(&core->sched_cond, &core->sched_lock, &ts) == 0) {
	}
	stopping = core->stopping;
	pthread_mutex_unlock(&core->sched_lock);
	return !stopping;
}

static int logout_run(struct auth_target *t, struct auth_session *s)
{
	char error[sizeof(((struct auth_ctx *)0)->error)] = "";
	struct auth_ctx ctx;
	bool removed;
	int r = 0;

	for (unsigned attempt = 0; attempt < LOGOUT_ATTEMPTS; attempt++) {
		if (attempt > 0 && !retry_wait(t->core, (double)(1u << (attempt - 1)))) {
			break;
		}
		pthread_mutex_lock(&t->lock);
		r = ctx_init(t, &ctx);
		pthread_mutex_unlock(&t->lock);
		if (r < 0) {
			snprintf(error, sizeof(error), "no memory for the logout");
			break;
		}
		ctx.deadline = now_mono() + t->info.timeout;
		r = t->provider->logout(&ctx, s);
		snprintf(error, sizeof(error), "%s", ctx.error);
		ctx_done(&ctx);
		if (r >= 0 || !never_sent(r)) {
			break;
		}
		log_info("%s/%s: logout not sent (%s)", t->provider->name, t->name, error);
	}
	target_audit(t, "logout", NULL, r);
	pthread_mutex_lock(&t->lock);
	removed = t->removed;
	if (r < 0 && !removed) {
		target_set_error(t, r, error);
	}
	pthread_mutex_unlock(&t->lock);
	if (r < 0) {
		log_warning("%s/%s: logout%s failed: %s", t->provider->name, t->name,
			    removed ? " of a removed target" : "", error);
	} else {
		log_info("%s/%s: logged out%s", t->provider->name, t->name, removed ? " (removed target)" : "");
	}
	return r;
}

static void *logout_thread(void *userdata)
{
	struct logout *l = userdata;
	struct auth_core *core = l->t->core;

	logout_run(l->t, l->s);
	auth_session_free(l->s);
	auth_target_unref(l->t);
	free(l);
	secret_wipe_stack();
	pthread_mutex_lock(&core->sched_lock);
	core->logouts--;
	pthread_cond_broadcast(&core->sched_cond);
	pthread_mutex_unlock(&core->sched_lock);
	return NULL;
}

/* Ends s (taken over) on the server in a thread of its own. */
static int logout_spawn(struct auth_target *t, struct auth_session *s)
{
	struct auth_core *core = t->core;
	pthread_attr_t attr;
	pthread_t thread;
	struct logout *l;
	int r;

	l = calloc(1, sizeof(*l));
	if (!l) {
		auth_session_free(s);
		return log_error_errno(-ENOMEM, "%s/%s: failed to log out: %m", t->provider->name, t->name);
	}
	*l = (struct logout){ .t = target_ref(t), .s = s };
	pthread_mutex_lock(&core->sched_lock);
	core->logouts++;
	pthread_mutex_unlock(&core->sched_lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, LOGOUT_STACK_SIZE);
	r = -pthread_create(&thread, &attr, logout_thread, l);
	pthread_attr_destroy(&attr);
	if (r < 0) {
		/* No thread: log out here rather than leave the session behind. */
		logout_thread(l);
	}
	return 0;
}

int session_logout_background(struct auth_target *t)
{
	struct auth_session *s;
	bool flight;
	int r;

	/* Local state, and the fleet's copy (etcd, within the timeout): a read
	 * anywhere right after rm returns gets a new session. When etcd cannot
	 * be told (no quorum), rm token changes nothing and says so; rmdir goes
	 * on (the target goes). */
	s = session_logout_begin(t, 0, &flight);
	r = session_logout_end(t, flight, &s);
	if (!s) {
		return r < 0 ? r : 0;
	}
	return logout_spawn(t, s);
}

void session_end_background(struct auth_target *t, struct auth_session *s)
{
	logout_spawn(t, s);
}

void logouts_wait(struct auth_core *core)
{
	pthread_mutex_lock(&core->sched_lock);
	while (core->logouts > 0) {
		pthread_cond_wait(&core->sched_cond, &core->sched_lock);
	}
	pthread_mutex_unlock(&core->sched_lock);
}
