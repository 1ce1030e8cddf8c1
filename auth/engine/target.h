/* Internal to the engine: a target and the struct auth_core that owns it
 * (and what the engine publishes for the fleet, auth/fleet/). */
#pragma once

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "auth.h"
#include "fleet/fleet.h"
#include "fleet-api.h"
#include "providers/provider.h"

struct read_waiter; /* waiters.c */

/* What the registry finds a target by (its by_name tree holds &t->key). */
struct target_key {
	size_t provider;
	const char *name;
};

struct target_counters {
	uint64_t logins;
	uint64_t failures;
	uint64_t refreshes;    /* background renewals and checks (no reader waited) */
	uint64_t reads;
	uint64_t reader_waits; /* reads that waited for the network */
};

/* An owner or mode override of one file; unset fields keep the default. */
struct file_access {
	bool has_uid, has_gid, has_mode;
	uid_t uid;
	gid_t gid;
	mode_t mode;
};

/* Owners and modes of a target's files by index, then of its directory:
 * in effect, and the chown/chmod saved on top of [access]. Most targets have
 * none: allocated only for those that do (access.c). */
struct target_access {
	pthread_mutex_t lock;         /* access and saved */
	struct file_access access[AUTH_FILES_MAX + 1];
	struct file_access saved[AUTH_FILES_MAX + 1];
};

/* The sessions/ entries' inode slots and the server's last listing
 * (server-sessions.c): allocated at a target's first use of sessions/. */
struct target_slots {
	pthread_mutex_t lock;         /* all of it */
	char **slot_ids;              /* sessions/ entries by slot */
	uint64_t *slot_used;          /* when each slot was last used (slot_clock) */
	uint64_t slot_clock;
	size_t n_slots;
	char **listed;                /* the server's session ids, as last listed */
	size_t n_listed;
	double listed_at;             /* when (monotonic; 0: never) */
	double list_tried_at;         /* when a listing was last asked for */
};

/* Longest status.last_error (and warning), with its NUL. */
#define TARGET_ERROR_MAX 512

/* A target. Its fields fall in groups by what guards them; each lock's
 * comment says what it protects. Locks are never nested, except that
 * core->sched_lock and the fleet's state's lock (t->fleet->lock) may be
 * taken with t->lock held. At 100,000 targets every byte here counts:
 * within a group, the fields smaller than a pointer come last, so that
 * no padding sits between them, and what only some targets need
 * (owners and modes, sessions/) is allocated when first needed. */
struct auth_target {
	/* Fixed at creation, read without a lock. */
	struct auth_core *core;
	const struct auth_provider *provider;
	char *name;                   /* in name_buf */
	struct target_key key;        /* its provider's index and name, for the registry's tree */
	struct target_info info;
	struct fleet_target *fleet;   /* fleet mode's state (fleet-owned), else NULL */
	unsigned refs;                /* atomic */
	uint32_t id;

	/* lock: the session and everything a login reads or changes: the
	 * credentials, the single flight, the error state, the counters. */
	pthread_mutex_t lock;
	pthread_cond_t cond;          /* a login finished */
	char *user;
	struct secret *password;
	struct secret *one_time;      /* written to the AUTH_FILE_ONE_TIME file, used by one login */
	struct auth_session *session;
	struct auth_session *pending; /* to validate before first use (saved, or from the environment) */
	uint64_t gen;                 /* bumped whenever the session changes */
	uint64_t told_gen;            /* the generation whose sizes the kernel was told (told_files) */
	uint64_t flight_seq;
	double failed_at;             /* monotonic time of the last failed flight */
	char *last_error;             /* NULL or at most TARGET_ERROR_MAX bytes (heap: most targets have none) */
	time_t last_error_at;
	time_t last_login;
	time_t last_renew;            /* last login or in-place renewal */
	time_t expiry_due;            /* when the session itself needs renewing */
	time_t skew;
	struct read_waiter *waiters;  /* opens waiting for the flight, without a thread (waiters.c) */
	struct target_counters counters;
	char *warning;                /* for status: insecure inherited settings, withheld defaults */
	const char *last_write;       /* for status: the file last written to (its table's name) */
	time_t last_write_at;         /* when (0: never) */
	struct secret *save_text;     /* the session to save (its saved form), NULL: remove the saved one */
	uint64_t save_want;           /* changes of the saved session asked for */
	uint64_t save_done;           /* and written (session_persist(), without the lock) */
	uint32_t told_files;          /* the files told (bits by index; auth_file_size_told()) */
	int flight_result;
	int last_errno;
	unsigned failures_in_row;
	int last_write_errno;         /* that write: applied (0), unchanged (1) or refused (-errno) */
	bool removed;
	bool pending_loaded;          /* the store was checked for a saved session */
	bool flight;                  /* a login or refresh is running */
	bool rejected;                /* credentials refused: no automatic retry */
	bool hot;                     /* read since the last renewal started */
	bool dormant;                 /* background refresh paused until the next read */
	bool skew_known;              /* the server's clock against ours (target_note_skew()) */
	bool skew_warned;
	bool saving;                  /* a thread is writing save_text */
	bool armed;                   /* core->waiters_lock: in the alarms (below) */
	bool refreshing;              /* atomic: claimed by a refresh worker (below) */

	/* core->waiters_lock: t's place among the deadline timer's alarms
	 * (waiters.c), while it has waiters; the list holds a reference. */
	struct auth_target *alarm_prev, *alarm_next;
	double alarm_at;              /* now_mono() of its waiters' earliest deadline */

	/* No lock, atomics: what the refresh scheduler scans (scheduler.c). */
	time_t refresh_due;           /* 0: nothing scheduled */
	time_t retry_at;              /* background retries wait until then */

	/* Atomic pointers, set once when first needed, freed with the target. */
	struct target_access *access; /* owners and modes (access.c); NULL while there are none */
	struct target_slots *slots;   /* sessions/ (server-sessions.c); NULL until used */

	char name_buf[];              /* the name, in the same allocation */
};

/* One provider's targets by id, ascending: ids only grow, so a new target
 * goes at the end; a removed one is cut out. */
struct provider_ids {
	uint32_t *ids;
	size_t n, cap;
};

struct auth_core {
	const struct config *cfg;
	struct store *store;
	bool http_up;                 /* HTTP initialized by this core */

	/* registry_lock: the targets array (read: lookups, scans; write: add, remove). */
	pthread_rwlock_t registry_lock;
	struct auth_target **targets; /* indexed by id - 1; NULL once removed */
	uint32_t n_targets;
	uint32_t cap_targets;         /* room in targets */
	void *by_name;                /* tsearch tree of the targets' keys (&t->key) */
	struct provider_ids *by_provider; /* each provider's target ids (readdir of its directory) */
	void (*notify)(void *userdata, uint32_t target_id, uint64_t gen);
	void *notify_userdata;

	/* sched_lock: the refresh workers' wake-ups and stop. */
	pthread_mutex_t sched_lock;
	pthread_cond_t sched_cond;
	uint64_t sched_epoch;         /* bumped whenever a schedule changes */
	bool stopping;
	unsigned flights;             /* readers' logins queued or running in the login pool */
	unsigned logouts;             /* background logouts running (logout.c) */
	unsigned flight_threads;      /* the login pool's threads (at most FLIGHT_THREADS) */
	struct auth_target **flight_queue; /* readers' logins not started yet, oldest first (a ring) */
	size_t flight_queue_head, flight_queue_len, flight_queue_cap;
	struct sched_entry *due_heap; /* targets by when they are due, earliest first (scheduler.c) */
	size_t due_len, due_cap;
	void (*refresh)(struct auth_target *t); /* what the workers call for a due target */
	void (*flight_ended)(struct auth_target *t); /* after a flight ended, no lock held (waiters.c) */
	pthread_t *workers;
	size_t n_workers;
	struct fleet *fleet;          /* fleet mode ([fleet] in the config), else NULL */

	/* waiters_lock: the deadline timer of opens waiting for a login
	 * (waiters.c). Taken with a target's lock held, never the reverse. */
	pthread_mutex_t waiters_lock;
	pthread_cond_t waiters_cond;
	struct auth_target *alarms, *alarms_tail; /* targets with waiters, earliest deadline first */
	bool waiters_closed;          /* stopping: no new waiters, the pending ones were answered */
	pthread_t timer;
	bool timer_running;
};

extern const struct auth_provider *const auth_providers[];

/* The file of t's table with that index, or NULL. */
const struct auth_file_info *target_file(const struct auth_target *t, unsigned f);

/* files.c */
/* Where the value a program writes to a file ends: data is what it wrote
 * since open, final that it closes. 0 and the value's length in *ret_len
 * when the value is complete (JSON: when the object is; one line: at its
 * newline, or at close; key = value lines: at close), -ENODATA when more
 * may follow, -EINVAL when nothing can mend it. */
int file_value_end(const struct auth_file_info *fi, const char *data, size_t len, bool final, size_t *ret_len);

/* flight.c */
int session_acquire(struct auth_target *t); /* returns with t->lock held on success */
/* Where one read stands in the rules of session_acquire(): whether it
 * started the flight it waits for, and which one that is. */
struct read_state {
	bool led;      /* it started that flight: it gets that flight's result */
	bool waited;   /* counted in reader_waits */
	bool waiting;  /* it waits for the flight numbered seq */
	uint64_t seq;
};
/* One step of a read (lock held): 0 when the session may be served to it
 * now (touched), -errno when the read fails now, 1 when it must wait for
 * the flight rs->seq to end (starting one if none runs). */
int session_read_step(struct auth_target *t, struct read_state *rs);
/* Whether the flight that rs waits for is still running (lock held). */
bool session_read_waits(const struct auth_target *t, const struct read_state *rs);
/* A read's deadline passed while it waited (lock held): -ETIMEDOUT, and
 * status says the login goes on. */
int session_read_timeout(struct auth_target *t);
int session_resume(struct auth_target *t, const char *text, size_t len);
/* Ends the session on the server, every request done by deadline (now_mono()). */
int session_logout(struct auth_target *t, double deadline);
/* The two halves of a logout, for one done in the background (logout.c):
 * begin forgets the session here (returns it, taken over), end drops the
 * fleet's copy and ends the single flight if begin took it (*ret_flight).
 * When the fleet cannot be told, end returns its error and, with keep, puts
 * *keep back as the target's session (*keep NULL then). */
struct auth_session *session_logout_begin(struct auth_target *t, double wait_until, bool *ret_flight);
int session_logout_end(struct auth_target *t, bool flight, struct auth_session **keep);
/* The last moment s may be served (0: no expiry), by the lifetime rule; and
 * whether that is still ahead. */
time_t session_serve_until(const struct auth_target *t, const struct auth_session *s);
bool session_usable(const struct auth_target *t, const struct auth_session *s);
/* A read of any kind happened: renewal follows it (lock held). */
void session_touch(struct auth_target *t);
/* A copy of the current session (logging in if needed) and a context, for a call
 * made without the lock. */
int session_borrow(struct auth_target *t, struct auth_session **ret, struct auth_ctx *ctx);
/* The server refused the session with this id: renew it at next use. */
void session_mark_stale(struct auth_target *t, const char *token_id);
/* Fleet mode (lock not held): another node's session (taken over) replaces
 * ours; the fleet dropped the session (rm or a 401 elsewhere): forget ours,
 * the server's is gone. Both do nothing (false) while a flight runs. */
bool session_install(struct auth_target *t, struct auth_session *s);
bool session_forget(struct auth_target *t, int r, const char *msg);
/* Is s (by its token) the session this node serves now? */
bool session_serves(struct auth_target *t, const struct auth_session *s);
/* A renewal the scheduler found due. */
void flight_refresh(struct auth_target *t);
/* Lock not held. Credentials written (taken over); a value written to the
 * one-time file, for the next login (taken over); credentials another node
 * wrote (fleet, share_credentials; text NULL: they do not open, msg says
 * why): saved and used here too. */
void session_credentials(struct auth_target *t, char *user, struct secret *password);
/* Are these the credentials in effect? */
bool session_credentials_same(struct auth_target *t, const char *user, const struct secret *password);
/* What became of a value written to file (a name in the provider's table:
 * applied 0, unchanged 1, refused -errno, with msg for last_error), for status. */
void session_write_recorded(struct auth_target *t, const char *file, int r, const char *msg);
void session_one_time(struct auth_target *t, struct secret *value);
void session_credentials_shared(struct auth_target *t, const char *text, size_t len, const char *msg);
/* Writes the session's last change to the state dir (called without t->lock,
 * after a change made under it): see flight.c. */
void session_persist(struct auth_target *t);

/* files.c */
/* A session file of t rendered from the current session (lock held). */
int file_render_locked(struct auth_target *t, unsigned f, struct auth_blob **ret);

/* waiters.c: opens waiting for a login without holding a thread. */
/* Decides t's waiters that can be: their flight ended, their deadline
 * passed, or t was removed; answers them (takes and drops t->lock). Called
 * after anything that ends a flight (through core->flight_ended). */
void waiters_settle(struct auth_target *t);
/* Starts the deadline timer and sets core->flight_ended. */
int waiters_start(struct auth_core *core);
/* Answers every waiter (-ENOTCONN) and refuses new ones; stops the timer. */
void waiters_stop(struct auth_core *core);

/* logout.c */
/* Forgets t's session at once (lock not held) and ends it on the server in
 * a thread of its own, under the usual timeout; failures go to status and
 * the log. Nobody waits for the server. */
int session_logout_background(struct auth_target *t);
/* Ends s (taken over), a session this node no longer serves and the fleet
 * never had, on the server in the same way; nothing else changes. */
void session_end_background(struct auth_target *t, struct auth_session *s);
/* Waits for the background logouts to end (each is bounded by the timeout). */
void logouts_wait(struct auth_core *core);

/* scheduler.c */
/* When t's session is next renewed or checked (t->lock held). */
void scheduler_update(struct auth_target *t);
/* The workers, which call refresh for each target when due. */
int scheduler_start(struct auth_core *core, void (*refresh)(struct auth_target *t));
void scheduler_stop(struct auth_core *core);

/* audit.c */
int target_audit_open(const struct config *cfg);
/* An act of the engine on t (login, renewal, logout, session_delete): r is its result. */
void target_audit(struct auth_target *t, const char *op, const char *file, int r);
void audit_status(json_t *status); /* status's "audit" member, when auditing */
void audit_metrics(FILE *f);

/* access.c */
/* The config's rules, and the saved chown/chmod when stored (the state dir
 * has something of t's). */
int target_load_access(struct auth_target *t, bool stored);

/* target.c */
void target_free(struct auth_target *t);
void target_notify(struct auth_target *t);
struct auth_target *target_ref(struct auth_target *t);
/* A context for one operation; ctx_done() wipes the credential copies. */
int ctx_init(struct auth_target *t, struct auth_ctx *ctx); /* call with t->lock held */
void ctx_done(struct auth_ctx *ctx);
void target_set_error(struct auth_target *t, int r, const char *msg); /* with t->lock held */
/* The skew a flight measured (lock held): kept for status, warned of once
 * when over SKEW_WARN; a failure's message says so when it is that large. */
void target_note_skew(struct auth_target *t, struct auth_ctx *ctx, int r);
/* New credentials (taken over), and the errors they end (t->lock held). */
void target_set_credentials(struct auth_target *t, char *user, struct secret *password);
/* Lock not held: is the session due for renewal (not merely a check)? */
bool target_renewal_due(struct auth_target *t);


