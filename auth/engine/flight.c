/* The single flight: one login or renewal at a time per target, shared by
 * every reader; resume of saved and written sessions; logout. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/http.h"
#include "lib/log.h"
#include "lifetime.h"
#include "target.h"

#define BACKOFF_BASE 5   /* seconds; doubled per failure in a row */
#define BACKOFF_MAX 120
#define READ_BACKOFF_MAX 60 /* seconds */
#define FLIGHT_STACK_SIZE (256 * 1024)
#define FLIGHT_THREADS HTTP_MAX_IN_FLIGHT /* the login pool */

/* The lifetime rule (lifetime.c) applied to a target's session. */
time_t session_serve_until(const struct auth_target *t, const struct auth_session *s)
{
	return lifetime_serve_until(s->obtained_at, s->expires_at, t->provider->min_validity);
}

static bool usable(const struct auth_target *t, const struct auth_session *s, time_t now)
{
	return s && lifetime_usable(s->obtained_at, s->expires_at, t->provider->min_validity, now);
}

bool session_usable(const struct auth_target *t, const struct auth_session *s)
{
	return usable(t, s, now_real());
}

/* A read of any kind (an open, a stat): renewal follows it. Lock held. */
void session_touch(struct auth_target *t)
{
	t->hot = true;
	if (t->dormant && t->session) {
		t->dormant = false; /* hot again: resume background refresh */
		scheduler_update(t);
	}
}

/* The session changed (lock held): the state dir is to hold it now (or
 * none). Written by session_persist() once the lock is released. */
static void save_later(struct auth_target *t)
{
	struct secret *text = NULL;

	if (t->session && t->provider->session_save(&t->info, t->session, &text) < 0) {
		target_set_error(t, -ENOMEM, "the session could not be saved in the state dir; a restart will log in again");
		return;
	}
	secret_free(t->save_text);
	t->save_text = text;
	t->save_want++;
}

/* Writes what save_later() recorded, without t->lock: a slow disk (two
 * fsyncs) delays no reader. One writer at a time per target, writing the
 * newest change asked for until none is left; a thread that finds a writer
 * at work leaves its change to it rather than wait (a refresh worker is
 * never held up by another's disk). So an older session never overwrites
 * a newer one and a removal is never undone by a late save; a crash leaves
 * the last write whole (store_save(): temp file, fsync, rename). */
void session_persist(struct auth_target *t)
{
	pthread_mutex_lock(&t->lock);
	if (t->saving) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	t->saving = true;
	while (t->save_done != t->save_want) {
		_cleanup_secret_ struct secret *text = NULL;
		uint64_t want = t->save_want;
		int r = 0;
		if (t->save_text && !(text = secret_dup(t->save_text))) {
			r = -ENOMEM;
		}
		pthread_mutex_unlock(&t->lock);
		if (r == 0) {
			r = text ? store_save(t->core->store, t->provider->name, t->name, "session", text->data, text->len)
				 : store_remove(t->core->store, t->provider->name, t->name, "session"); /* log their failures */
		}
		pthread_mutex_lock(&t->lock);
		t->save_done = want;
		if (r < 0 && text) {
			/* The session works; only a restart will have to log in again. */
			target_set_error(t, r, "the session could not be saved in the state dir; a restart will log in again");
		}
	}
	t->saving = false;
	pthread_cond_broadcast(&t->cond); /* for a removal waiting on the last write (session_logout()) */
	pthread_mutex_unlock(&t->lock);
}

/* Installs s as the current session (lock held); returns the old one. */
static struct auth_session *adopt(struct auth_target *t, struct auth_session *s, bool fresh_login)
{
	struct auth_session *old = t->session;

	t->session = s;
	t->gen++;
	/* A saved session not yet looked at is this one's elder (or this one,
	 * saved when another node's came in): never resumed in its place. */
	auth_session_free(TAKE_PTR(t->pending));
	t->pending_loaded = true;
	if (fresh_login) {
		t->last_login = now_real();
		t->counters.logins++;
	}
	t->rejected = false;
	t->dormant = false;
	t->last_renew = now_real();
	t->failures_in_row = 0;
	__atomic_store_n(&t->retry_at, 0, __ATOMIC_RELAXED);
	t->last_errno = 0;
	free(TAKE_PTR(t->last_error));
	save_later(t);
	scheduler_update(t);
	target_notify(t);
	return old;
}

static void record_failure(struct auth_target *t, int r, const char *msg)
{
	unsigned shift = t->failures_in_row < 5 ? t->failures_in_row : 5;
	time_t backoff = BACKOFF_BASE << shift;

	if (backoff > BACKOFF_MAX) {
		backoff = BACKOFF_MAX;
	}
	t->counters.failures++;
	t->failures_in_row++;
	t->failed_at = now_mono();
	/* Jitter: somewhere in [backoff/2, backoff], so a fleet does not retry in step. */
	__atomic_store_n(&t->retry_at, now_real() + backoff / 2 + (time_t)arc4random_uniform((uint32_t)(backoff / 2 + 1)),
			 __ATOMIC_RELAXED);
	if (r == -EKEYREJECTED) {
		t->rejected = true; /* accounts lock after repeated failures: never retry by ourselves */
	}
	if (r == -ENOKEY || r == -EKEYREJECTED) {
		/* Nothing to retry in the background until the user acts. */
		__atomic_store_n(&t->refresh_due, 0, __ATOMIC_RELAXED);
		t->dormant = true;
	}
	target_set_error(t, r, msg);
	log_warning("%s/%s: %s", t->provider->name, t->name, t->last_error ? t->last_error : strerror(-r));
}

/* After a flight ended, without the lock: the opens waiting for it without
 * a thread (waiters.c) are answered. */
static void flight_ended(struct auth_target *t)
{
	if (t->core->flight_ended) {
		t->core->flight_ended(t);
	}
}

/* Ends the single flight (lock held): its waiters wake and share its result. */
static void flight_end(struct auth_target *t, int r)
{
	t->flight = false;
	t->flight_seq++;
	t->flight_result = r;
	pthread_cond_broadcast(&t->cond);
}

/* A new login. A session that arrives expired (on the server's own clock,
 * by its Date header) can't be served, and logging in again at once would
 * only get another: end it on the server, never leave it behind, and refuse
 * it; reads back off (read_backoff()). */
static int login(struct auth_target *t, struct auth_ctx *ctx, struct auth_session **ret)
{
	struct auth_session *s = NULL;
	char exp[21], now[21];
	int r;

	log_debug("%s/%s: logging in as %s", t->provider->name, t->name, ctx->user ? ctx->user : "(key)");
	r = t->provider->login(ctx, &s);
	if (r < 0) {
		return r;
	}
	if (s->expires_at && s->expires_at <= now_real()) {
		r = auth_ctx_fail(ctx, -EBADMSG,
				  "the server issued a session that has already expired (expires %s, now %s): check the clocks",
				  format_iso8601(s->expires_at, exp), format_iso8601(now_real(), now));
		if (t->provider->logout(ctx, s) < 0) {
			log_warning("%s/%s: failed to end the expired session: %s", t->provider->name, t->name, ctx->error);
		}
		auth_session_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

/* The name of the provider's AUTH_FILE_ONE_TIME file. */
static const char *one_time_file(const struct auth_target *t)
{
	for (size_t i = 0; i < t->provider->n_files; i++) {
		if (t->provider->files[i].role == AUTH_FILE_ONE_TIME) {
			return t->provider->files[i].name;
		}
	}
	return "?";
}

/* Validate a saved session (or one from the environment), else log in. Runs
 * without the lock. *tried_login is set when a login was sent, whether or not
 * it succeeded (a one-time value is spent either way): not a ret_. */
static int obtain(struct auth_target *t, struct auth_ctx *ctx, struct auth_session **pending,
		  struct auth_session **ret, bool *tried_login)
{
	int r;

	/* One that looks expired may only look so on this clock (its expiry
	 * is the server's, and the skew is not known before the server
	 * answers): where the server can be asked, it is, which measures the
	 * skew too. One unusable on the server's clock as well is ended. */
	if (*pending && (usable(t, *pending, now_real()) || (t->provider->features & AUTH_PROVIDER_CHECKS_REGULARLY))) {
		bool looked_usable = usable(t, *pending, now_real());
		time_t exp = 0;
		r = t->provider->validate(ctx, *pending, &exp);
		if (r == 0) {
			if (exp) {
				(*pending)->expires_at = exp;
				(*pending)->obtained_at = now_real();
			} else if (!looked_usable && (*pending)->expires_at) {
				(*pending)->expires_at = auth_ctx_local_time(ctx, (*pending)->expires_at);
			}
			if (usable(t, *pending, now_real())) {
				log_info("%s/%s: resumed the saved session", t->provider->name, t->name);
				*ret = TAKE_PTR(*pending);
				*tried_login = false;
				return 0;
			}
			log_info("%s/%s: saved session has expired; ending it and logging in", t->provider->name, t->name);
			t->provider->logout(ctx, *pending); /* best effort: never leave it behind */
		} else if (r != -ESTALE) {
			return r; /* can't tell: keep it for the next try */
		} else {
			log_info("%s/%s: saved session is no longer valid; logging in", t->provider->name, t->name);
		}
	}
	auth_session_free(TAKE_PTR(*pending));
	if (!ctx->user || !ctx->password) {
		return auth_ctx_fail(ctx, -ENOKEY, "no credentials: %s (%s/%s/credentials)",
				     t->provider->credentials_hint, t->provider->name, t->name);
	}
	if (t->provider->needs_one_time && t->provider->needs_one_time(&t->info) && !ctx->one_time) {
		return auth_ctx_fail(ctx, -ENOKEY, "%s %s/%s/%s", t->provider->one_time_hint, t->provider->name, t->name,
				     one_time_file(t));
	}
	*tried_login = true;
	return login(t, ctx, ret);
}

static void load_pending(struct auth_target *t)
{
	_cleanup_secret_ struct secret *saved = NULL;

	if (t->pending_loaded) {
		return;
	}
	t->pending_loaded = true;
	if (store_load(t->core->store, t->provider->name, t->name, "session", &saved) == 0 &&
	    t->provider->session_load(&t->info, saved->data, saved->len, &t->pending) < 0) {
		log_warning("%s/%s: ignoring a corrupt saved session", t->provider->name, t->name);
	}
}

/* Check the current session (a copy of it, so nothing shared is used
 * unlocked) and renew it in place where the provider can; else, when it is
 * due for renewal or gone, log in. */
static int renew_or_obtain(struct auth_target *t, struct auth_ctx *ctx, struct auth_session *current, bool renewal_due,
			   struct auth_session **pending, struct auth_session **ret_fresh, bool *tried_login,
			   time_t *ret_expires_at)
{
	int r = -ESTALE;

	if (current && (t->provider->features & AUTH_PROVIDER_CHECKS_REGULARLY) &&
	    ((t->provider->features & AUTH_PROVIDER_RENEWS_IN_PLACE) || !renewal_due)) {
		r = t->provider->validate(ctx, current, ret_expires_at);
		if (r != -ESTALE) {
			return r;
		}
		log_info("%s/%s: the session is gone on the server; logging in again", t->provider->name, t->name);
		if (t->provider->features & AUTH_PROVIDER_LOGOUT_REPLACED) {
			t->provider->logout(ctx, current); /* best effort: never leave it behind */
		}
	}
	return obtain(t, ctx, pending, ret_fresh, tried_login);
}

/* Ends s on the server, best effort, without the lock (lock held on entry and
 * return): a login that finished after its target was removed. */
static void discard(struct auth_target *t, struct auth_ctx *ctx, struct auth_session *s)
{
	pthread_mutex_unlock(&t->lock);
	if (t->provider->logout(ctx, s) < 0) {
		log_warning("%s/%s: failed to end a session of a removed target: %s", t->provider->name, t->name,
			    ctx->error);
	} else {
		log_info("%s/%s: ended the session of a removed target", t->provider->name, t->name);
	}
	pthread_mutex_lock(&t->lock);
	auth_session_free(s);
}

/* Installs what a flight brought (lock held): a new session, or a later expiry. */
static struct auth_session *flight_result(struct auth_target *t, struct auth_session *fresh, bool is_login, time_t exp)
{
	if (fresh) {
		return adopt(t, fresh, is_login);
	}
	if (t->session) {
		/* Renewed in place: same token, later expiry. */
		if (exp) {
			t->session->expires_at = exp;
			t->session->obtained_at = now_real();
		}
		t->last_renew = now_real();
		t->failures_in_row = 0;
		__atomic_store_n(&t->retry_at, 0, __ATOMIC_RELAXED);
		scheduler_update(t);
	}
	return NULL;
}

/* Runs one login or refresh as the single flight; called and returns with
 * the lock held. Each request gets the whole timeout: a flight is never cut
 * short between sending a login and reading its answer, which would leave a
 * session on the server that nobody knows of (a BMC slot). Readers wait for
 * it no longer than their own deadline. */
static int lead(struct auth_target *t, bool background)
{
	struct auth_session *pending, *current = NULL, *fresh = NULL, *old = NULL;
	struct auth_ctx ctx;
	bool is_login = false, due;
	time_t exp = 0;
	int r;

	load_pending(t);
	r = ctx_init(t, &ctx);
	if (r == 0 && t->session && !(current = auth_session_dup(t->session))) {
		ctx_done(&ctx);
		r = -ENOMEM;
	}
	if (r < 0) {
		if (t->flight) {
			flight_end(t, r); /* a reader's, started for this lead */
		}
		return r;
	}
	due = t->expiry_due && now_real() >= t->expiry_due;
	pending = TAKE_PTR(t->pending);
	t->flight = true;
	t->hot = false; /* reads from now on count towards the next renewal */
	pthread_mutex_unlock(&t->lock);

	r = fleet_flight_begin(t, &ctx, current, &fresh);
	if (r == 0) {
		r = renew_or_obtain(t, &ctx, current, due, &pending, &fresh, &is_login, &exp);
		r = fleet_flight_end(t, &ctx, r, current, exp, &fresh, &is_login);
	} else if (r > 0) {
		r = 0; /* the fleet's session: adopted, no login */
	}

	pthread_mutex_lock(&t->lock);
	target_note_skew(t, &ctx, r);
	if (t->removed) {
		r = -ENOENT; /* rmdir meanwhile: nothing of this flight may stay */
		if (fresh) {
			discard(t, &ctx, TAKE_PTR(fresh));
		}
	}
	if (pending && !t->pending && !t->removed) {
		t->pending = TAKE_PTR(pending);
	}
	if (is_login && ctx.one_time && secret_equal(ctx.one_time, t->one_time)) {
		secret_free(TAKE_PTR(t->one_time)); /* a one-time value is used once */
	}
	if (r < 0 && !t->removed) {
		record_failure(t, r, ctx.error);
	} else if (r == 0) {
		old = flight_result(t, TAKE_PTR(fresh), is_login, exp);
		if (background) {
			t->counters.refreshes++;
		}
	}
	/* Saved without the lock, before the flight ends: readers of the
	 * session as it was are served meanwhile, and those that waited for
	 * this flight get a session a crash will not lose (a restart resumes
	 * it: no second login, no session left behind on a BMC). */
	pthread_mutex_unlock(&t->lock);
	session_persist(t);
	pthread_mutex_lock(&t->lock);
	flight_end(t, r);
	if (!t->removed) {
		target_audit(t, is_login ? "login" : "renewal", NULL, r);
	}
	ctx_done(&ctx);
	auth_session_free(pending);
	auth_session_free(current);
	auth_session_free(old); /* replaced, not logged out: readers may still use the old one until it expires */
	return r;
}

/* Takes the oldest queued login off the queue, or NULL (sched_lock held). */
static struct auth_target *flight_next(struct auth_core *core)
{
	struct auth_target *t;

	if (core->flight_queue_len == 0) {
		return NULL;
	}
	t = core->flight_queue[core->flight_queue_head];
	core->flight_queue_head = (core->flight_queue_head + 1) % core->flight_queue_cap;
	core->flight_queue_len--;
	return t;
}

/* A thread of the login pool: runs queued logins until none is left. Each
 * ends its flight, then answers the opens that waited for it. */
static void *flight_thread(void *userdata)
{
	struct auth_core *core = userdata;

	for (;;) {
		struct auth_target *t;
		bool stopping;

		pthread_mutex_lock(&core->sched_lock);
		t = flight_next(core);
		stopping = core->stopping;
		if (!t) {
			core->flight_threads--;
			pthread_cond_broadcast(&core->sched_cond);
			pthread_mutex_unlock(&core->sched_lock);
			return NULL;
		}
		pthread_mutex_unlock(&core->sched_lock);

		pthread_mutex_lock(&t->lock);
		if (stopping) {
			flight_end(t, -ESHUTDOWN); /* never started: nobody waits any more */
		} else {
			lead(t, false);
		}
		pthread_mutex_unlock(&t->lock);
		flight_ended(t);
		auth_target_unref(t);
		pthread_mutex_lock(&core->sched_lock);
		core->flights--;
		pthread_cond_broadcast(&core->sched_cond);
		pthread_mutex_unlock(&core->sched_lock);
		secret_wipe_stack(); /* the login's leftovers, before the next one or the thread's end */
	}
}

/* Queues t's login (sched_lock held). */
static int flight_queue(struct auth_core *core, struct auth_target *t)
{
	if (core->flight_queue_len == core->flight_queue_cap) {
		size_t cap = core->flight_queue_cap ? 2 * core->flight_queue_cap : 64;
		struct auth_target **q = calloc(cap, sizeof(*q));
		if (!q) {
			return -ENOMEM;
		}
		for (size_t i = 0; i < core->flight_queue_len; i++) {
			q[i] = core->flight_queue[(core->flight_queue_head + i) % core->flight_queue_cap];
		}
		free(core->flight_queue);
		core->flight_queue = q;
		core->flight_queue_cap = cap;
		core->flight_queue_head = 0;
	}
	core->flight_queue[(core->flight_queue_head + core->flight_queue_len) % core->flight_queue_cap] = t;
	core->flight_queue_len++;
	return 0;
}

/* Takes t's queued login back (sched_lock held); whether it was there. */
static bool flight_unqueue(struct auth_core *core, struct auth_target *t)
{
	for (size_t i = 0; i < core->flight_queue_len; i++) {
		if (core->flight_queue[(core->flight_queue_head + i) % core->flight_queue_cap] != t) {
			continue;
		}
		for (; i + 1 < core->flight_queue_len; i++) {
			core->flight_queue[(core->flight_queue_head + i) % core->flight_queue_cap] =
				core->flight_queue[(core->flight_queue_head + i + 1) % core->flight_queue_cap];
		}
		core->flight_queue_len--;
		core->flights--;
		return true;
	}
	return false;
}

/* A reader's login runs in the login pool (lock held): its readers wait for
 * it until their deadlines, and it finishes even when every reader has
 * given up, so that what it got on the server is kept, or ended. At most
 * FLIGHT_THREADS run at once (as many as HTTP runs requests at once: more
 * would only wait in libcurl's queue); the others wait their turn, oldest
 * first, their readers' deadlines running. */
static int flight_start(struct auth_target *t)
{
	struct auth_core *core = t->core;
	pthread_attr_t attr;
	pthread_t thread;
	bool spawn;
	int r;

	pthread_mutex_lock(&core->sched_lock);
	r = flight_queue(core, target_ref(t));
	spawn = r == 0 && core->flight_threads < FLIGHT_THREADS;
	if (r == 0) {
		core->flights++;
	}
	if (spawn) {
		core->flight_threads++;
	}
	pthread_mutex_unlock(&core->sched_lock);
	if (r < 0) {
		auth_target_unref(t);
		return log_error_errno(r, "%s/%s: failed to start a login: %m", t->provider->name, t->name);
	}
	t->flight = true;
	if (!spawn) {
		return 0;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, FLIGHT_STACK_SIZE);
	r = -pthread_create(&thread, &attr, flight_thread, core);
	pthread_attr_destroy(&attr);
	if (r == 0) {
		return 0;
	}
	/* No thread: the pool's others run it, or else nobody will (until the
	 * next login starts a thread for the queue). */
	pthread_mutex_lock(&core->sched_lock);
	core->flight_threads--;
	spawn = core->flight_threads == 0 && flight_unqueue(core, t);
	pthread_mutex_unlock(&core->sched_lock);
	if (!spawn) {
		return 0;
	}
	t->flight = false;
	auth_target_unref(t);
	return log_error_errno(r, "%s/%s: failed to start a login: %m", t->provider->name, t->name);
}

/* How long after a failed flight reads get its error instead of a login. */
static double read_backoff(const struct auth_target *t)
{
	unsigned n = t->failures_in_row ? t->failures_in_row - 1 : 0;

	return n >= 6 ? READ_BACKOFF_MAX : (double)(1u << n);
}

bool session_read_waits(const struct auth_target *t, const struct read_state *rs)
{
	return rs->waiting && t->flight && t->flight_seq == rs->seq;
}

int session_read_step(struct auth_target *t, struct read_state *rs)
{
	time_t now = now_real();

	if (rs->waiting) {
		/* Back from a wait: the flight ended. */
		rs->waiting = false;
		if (!rs->led && t->flight_result < 0 && !usable(t, t->session, now)) {
			return t->flight_result; /* share the leader's failure: one attempt for all */
		}
	}
	if (t->removed) {
		return -ENOENT;
	}
	/* A session this read logged in for is served, however short its life. */
	if (usable(t, t->session, now) || (rs->led && t->session && (!t->session->expires_at || t->session->expires_at > now))) {
		session_touch(t);
		return 0;
	}
	if (rs->led && t->flight_result < 0) {
		return t->flight_result;
	}
	rs->led = false; /* logged in, and logged out since (rm token): once more */
	if (t->rejected) {
		return t->last_errno < 0 ? t->last_errno : -EKEYREJECTED;
	}
	/* A read right after a failure (the kernel's getattr, then its read)
	 * gets that failure instead of a second wait for the network; failures
	 * in a row space reads' logins 1, 2, 4 ... 60 s apart. */
	if (t->last_errno < 0 && now_mono() - t->failed_at < read_backoff(t)) {
		return t->last_errno;
	}
	if (!rs->waited) {
		rs->waited = true;
		t->counters.reader_waits++;
	}
	rs->seq = t->flight_seq;
	if (!t->flight) {
		int r = flight_start(t);
		if (r < 0) {
			return r;
		}
		rs->led = true;
	}
	rs->waiting = true;
	return 1;
}

int session_read_timeout(struct auth_target *t)
{
	char msg[TARGET_ERROR_MAX];

	/* The flight goes on without this reader; status says so until it ends. */
	snprintf(msg, sizeof(msg), "%s: no answer within %d s; the login goes on in the background", t->info.base_url,
		 t->info.timeout);
	target_set_error(t, -ETIMEDOUT, msg);
	return -ETIMEDOUT;
}

/* One read: at most one login attempt, and done by deadline. Returns with the
 * lock held on success. */
int session_acquire(struct auth_target *t)
{
	struct timespec ts = mono_timespec(now_mono() + t->info.timeout);
	struct read_state rs = { 0 };
	int r;

	pthread_mutex_lock(&t->lock);
	t->counters.reads++;
	while ((r = session_read_step(t, &rs)) > 0) {
		int w = 0;
		while (session_read_waits(t, &rs) && w == 0) {
			w = pthread_cond_timedwait(&t->cond, &t->lock, &ts);
		}
		if (w != 0) {
			r = session_read_timeout(t);
			break;
		}
	}
	if (r == 0) {
		return 0;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

/* A renewal the scheduler found due (its workers call it). */
void flight_refresh(struct auth_target *t)
{
	pthread_mutex_lock(&t->lock);
	if (t->removed || t->rejected || !t->session) {
		__atomic_store_n(&t->refresh_due, 0, __ATOMIC_RELAXED);
	} else if (!t->hot) {
		/* Not read since the last renewal: let it lapse (frees a server slot);
		 * the next read renews it or logs in. */
		__atomic_store_n(&t->refresh_due, 0, __ATOMIC_RELAXED);
		t->dormant = true;
	} else if (t->flight) {
		__atomic_store_n(&t->retry_at, now_real() + 1, __ATOMIC_RELAXED); /* a reader is logging in already */
	} else {
		log_debug("%s/%s: refreshing ahead of expiry", t->provider->name, t->name);
		lead(t, true);
	}
	pthread_mutex_unlock(&t->lock);
	flight_ended(t); /* opens that waited for this renewal */
}

/* Waits for a running flight to end (lock held). */
static void wait_flight(struct auth_target *t, double deadline)
{
	struct timespec ts = mono_timespec(deadline);

	while (t->flight) {
		if (pthread_cond_timedwait(&t->cond, &t->lock, &ts) == ETIMEDOUT) {
			break;
		}
	}
}

int session_resume(struct auth_target *t, const char *text, size_t len)
{
	struct auth_session *s = NULL, *old = NULL;
	double deadline = now_mono() + t->info.timeout;
	struct auth_ctx ctx;
	time_t exp = 0;
	int r;

	r = t->provider->session_load(&t->info, text, len, &s);
	if (r < 0) {
		return r;
	}
	pthread_mutex_lock(&t->lock);
	wait_flight(t, deadline);
	r = t->removed ? -ENOENT : t->flight ? -EBUSY : ctx_init(t, &ctx);
	if (r < 0) {
		pthread_mutex_unlock(&t->lock);
		auth_session_free(s);
		return r;
	}
	ctx.deadline = deadline;
	t->flight = true;
	pthread_mutex_unlock(&t->lock);

	r = t->provider->validate(&ctx, s, &exp);
	if (r == 0 && exp) {
		s->expires_at = exp;
		s->obtained_at = now_real();
	}
	if (r == -ESTALE) {
		r = -EKEYREJECTED; /* the server does not accept the written session */
	}

	pthread_mutex_lock(&t->lock);
	if (t->removed) {
		r = -ENOENT;
	}
	flight_end(t, r);
	if (r == 0) {
		auth_session_free(TAKE_PTR(t->pending));
		t->pending_loaded = true;
		old = adopt(t, TAKE_PTR(s), false);
		s = auth_session_dup(t->session);
		log_info("%s/%s: resumed the session written to session.json", t->provider->name, t->name);
	} else if (!t->removed) {
		target_set_error(t, r, ctx.error);
	}
	pthread_mutex_unlock(&t->lock);
	session_persist(t);
	flight_ended(t);
	if (r == 0 && s) {
		fleet_session_written(t, ctx.user, s);
	}
	ctx_done(&ctx);
	auth_session_free(s);
	auth_session_free(old);
	return r;
}

bool session_install(struct auth_target *t, struct auth_session *s)
{
	struct auth_session *old = s;
	bool done;

	pthread_mutex_lock(&t->lock);
	done = !t->flight && !t->removed; /* a flight's own result (or its adoption) comes next */
	if (done) {
		t->hot = false; /* another node renewed: reads from now on count towards the next renewal */
		old = adopt(t, s, false);
	}
	pthread_mutex_unlock(&t->lock);
	auth_session_free(old);
	if (done) {
		session_persist(t);
	}
	return done;
}

bool session_forget(struct auth_target *t, int r, const char *msg)
{
	bool done;

	pthread_mutex_lock(&t->lock);
	done = !t->flight;
	if (done && t->session) {
		auth_session_free(TAKE_PTR(t->session));
		t->gen++;
		__atomic_store_n(&t->refresh_due, 0, __ATOMIC_RELAXED);
		save_later(t);
		target_notify(t);
	}
	if (done && r < 0) {
		target_set_error(t, r, msg);
	}
	pthread_mutex_unlock(&t->lock);
	if (done) {
		session_persist(t);
	}
	return done;
}

bool session_serves(struct auth_target *t, const struct auth_session *s)
{
	bool serves;

	pthread_mutex_lock(&t->lock);
	serves = t->session && secret_equal(t->session->token, s->token);
	pthread_mutex_unlock(&t->lock);
	return serves;
}

/* The session is taken out first, under the lock, and only then is the
 * fleet's copy removed: this node's own watch, seeing that removal, finds
 * nothing left to drop, and this logout ends the session at the server
 * (once: the other nodes drop their copies without a logout). Meanwhile the
 * logout holds the single flight, so no read logs in and publishes before
 * the fleet's copy is gone; a login already running (waited for until
 * wait_until, 0: not at all) goes on, and its session is kept. */
struct auth_session *session_logout_begin(struct auth_target *t, double wait_until, bool *ret_flight)
{
	struct auth_session *s;

	pthread_mutex_lock(&t->lock);
	if (wait_until > 0) {
		wait_flight(t, wait_until);
	}
	*ret_flight = !t->flight;
	if (*ret_flight) {
		t->flight = true;
	}
	s = TAKE_PTR(t->session);
	auth_session_free(TAKE_PTR(t->pending));
	t->pending_loaded = true;
	t->rejected = false; /* an explicit user action: the next read may try again */
	t->failed_at = 0;
	t->gen++;
	__atomic_store_n(&t->refresh_due, 0, __ATOMIC_RELAXED);
	save_later(t);
	fleet_session_ending(t);
	target_notify(t);
	pthread_mutex_unlock(&t->lock);
	session_persist(t);
	pthread_mutex_lock(&t->lock);
	while (t->removed && t->saving) {
		pthread_cond_wait(&t->cond, &t->lock); /* rmdir: no write of another thread outlives its dir */
	}
	pthread_mutex_unlock(&t->lock);
	return s;
}

int session_logout_end(struct auth_target *t, bool flight, struct auth_session **keep)
{
	int r = fleet_session_ended(t);
	bool kept = false;

	if (r < 0 && keep && *keep) {
		pthread_mutex_lock(&t->lock);
		if (!t->session && !t->removed) {
			t->session = TAKE_PTR(*keep);
			t->gen++;
			save_later(t);
			scheduler_update(t);
			fleet_session_kept(t);
			target_set_error(t, r, "not logged out: the fleet store (etcd) could not be told, so the other "
					       "nodes would go on serving the session");
			target_notify(t);
			kept = true;
		}
		pthread_mutex_unlock(&t->lock);
	}
	if (kept) {
		session_persist(t);
	}
	if (flight) {
		pthread_mutex_lock(&t->lock);
		flight_end(t, 0);
		pthread_mutex_unlock(&t->lock);
		flight_ended(t);
	}
	return r;
}

int session_logout(struct auth_target *t, double deadline)
{
	struct auth_session *s;
	struct auth_ctx ctx;
	bool flight;
	int r;

	s = session_logout_begin(t, deadline, &flight);
	pthread_mutex_lock(&t->lock);
	r = s ? ctx_init(t, &ctx) : 0;
	pthread_mutex_unlock(&t->lock);
	session_logout_end(t, flight, NULL); /* exit, or a BMC session deleted: the logout goes on */
	if (!s || r < 0) {
		auth_session_free(s);
		return r;
	}
	ctx.deadline = deadline;
	r = t->provider->logout(&ctx, s);
	target_audit(t, "logout", NULL, r);
	if (r < 0) {
		pthread_mutex_lock(&t->lock);
		target_set_error(t, r, ctx.error);
		pthread_mutex_unlock(&t->lock);
		log_warning("%s/%s: logout failed: %s", t->provider->name, t->name, ctx.error);
	} else {
		log_info("%s/%s: logged out", t->provider->name, t->name);
	}
	ctx_done(&ctx);
	auth_session_free(s);
	return r;
}

/* --- credentials ---------------------------------------------------------------- */

void session_credentials(struct auth_target *t, char *user, struct secret *password)
{
	pthread_mutex_lock(&t->lock);
	target_set_credentials(t, user, password);
	pthread_mutex_unlock(&t->lock);
}

bool session_credentials_same(struct auth_target *t, const char *user, const struct secret *password)
{
	bool same;

	pthread_mutex_lock(&t->lock);
	same = t->user && t->password && streq_ptr(t->user, user) && secret_equal(t->password, password);
	pthread_mutex_unlock(&t->lock);
	return same;
}

void session_write_recorded(struct auth_target *t, const char *file, int r, const char *msg)
{
	pthread_mutex_lock(&t->lock);
	t->last_write = file;
	t->last_write_errno = r;
	t->last_write_at = now_real();
	/* An error that says why reads fail (no code yet, rejected) stays: reads
	 * return it. Then last_write says what became of the write. */
	if (r < 0 && t->last_errno == 0) {
		target_set_error(t, r, msg);
	}
	pthread_mutex_unlock(&t->lock);
}

void session_one_time(struct auth_target *t, struct secret *value)
{
	pthread_mutex_lock(&t->lock);
	secret_free(t->one_time);
	t->one_time = value;
	t->rejected = false; /* a new value is a new user action */
	t->failed_at = 0;
	if (t->last_errno == -ENOKEY || t->last_errno == -EKEYREJECTED) {
		t->last_errno = 0;
	}
	pthread_mutex_unlock(&t->lock);
}

void session_credentials_shared(struct auth_target *t, const char *text, size_t len, const char *msg)
{
	_cleanup_secret_ struct secret *password = NULL;
	_cleanup_free_ char *user = NULL;
	bool same;

	if (!text || credentials_parse(text, len, &user, &password) < 0) {
		pthread_mutex_lock(&t->lock);
		target_set_error(t, -EBADMSG, msg ?: "the fleet's shared credentials for this target are malformed");
		pthread_mutex_unlock(&t->lock);
		return;
	}
	pthread_mutex_lock(&t->lock);
	same = streq_ptr(user, t->user) && secret_equal(password, t->password);
	pthread_mutex_unlock(&t->lock);
	if (same) {
		return;
	}
	if (store_save(t->core->store, t->provider->name, t->name, "credentials", text, len) < 0) {
		log_warning("%s/%s: failed to save the fleet's shared credentials", t->provider->name, t->name);
	}
	log_info("%s/%s: using credentials shared by another node (user %s)", t->provider->name, t->name, user);
	session_credentials(t, TAKE_PTR(user), TAKE_PTR(password));
}
