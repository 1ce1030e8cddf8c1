/* Fleet mode internals shared by its files: fleet.c (the [fleet] settings,
 * the etcd client), values.c (keys, sealed values), flight.c (the
 * fleet-wide single flight), watch.c (the node lease, the watch, shared
 * credentials), reconcile.c (sessions the fleet lacks) and status.c. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/etcd.h"
#include "fleet.h"
#include "crypt.h"
#include "engine/fleet-api.h"

#define REQUEST_TIMEOUT_MS 5000
#define WAIT_SLICE 2.0        /* seconds a lock waiter waits for the watch before it looks itself */
#define TURN_MAX 5            /* seconds between the renewal turns of two nodes, at most */
#define NODES_MAX 1024
#define RECONNECT_MAX 5       /* seconds between watch reconnects, at most */
/* The watch's idle deadline: after WATCH_PROBE_AFTER s without a message its
 * member is asked (a linearizable read there), and a member that does not
 * answer within WATCH_PROBE_TIMEOUT_MS ends the watch, which moves on to the
 * next member. etcd's own progress notifications come every 10 minutes by
 * default, too seldom for this. */
#define WATCH_PROBE_AFTER 1.0
#define WATCH_PROBE_TIMEOUT_MS 700
#define WATCH_IDLE (WATCH_PROBE_AFTER + WATCH_PROBE_TIMEOUT_MS / 1000.0)

enum store_down_mode { DOWN_STALE, DOWN_LOCAL, DOWN_FAIL };
extern const char *const fleet_down_modes[];

struct fleet {
	struct auth_core *core;
	const struct fleet_engine *engine;
	struct etcd *etcd;
	struct etcd_settings es;
	struct secret *etcd_password;
	struct fleet_keys *keys;
	char *root;            /* <prefix>v1/<fleet>/ */
	char *node;
	char *node_key;
	int lock_ttl;
	enum store_down_mode on_down;
	bool share_credentials;

	pthread_mutex_t lock;  /* guards what follows, and is the waiters' */
	pthread_cond_t event;  /* something changed under root */
	uint64_t events;
	int64_t lease;         /* 0: none */
	int64_t revision;      /* the watch's */
	bool down;
	bool warned_local;
	int others_alive;      /* at exit: other nodes alive? -1 not asked yet */
	bool stopping;
	pthread_t watch_thread, keepalive_thread, guard_thread;
	bool threads;

	/* The watch stream, as the guard sees it. */
	struct http_cancel watch_cancel;
	uint64_t watch_gen;       /* one per stream */
	bool watch_streaming;
	bool watch_created;       /* etcd answered its create request */
	bool watch_confirmed;     /* and the member answered a probe since */
	size_t watch_endpoint;
	double watch_progress;    /* monotonic: its last message, or the start of a probe its member answered */
	double watch_seen;        /* the same for any stream, for status (not reset by a new stream) */

	uint64_t lock_waits;
	double lock_wait_seconds;
	uint64_t watch_reconnects;
	uint64_t keepalives;
	uint64_t probes;          /* of the watch's member (atomic) */
	char **nodes;          /* live nodes, as the watch sees nodes/ */
	size_t n_nodes;
	uint64_t alone_notes;  /* sessions noted as the fleet lacks them (reconcile.c) */
	pthread_t reconcile_thread;
	bool reconciling;      /* its thread runs */
};


static inline struct fleet *fleet_of(const struct auth_target *t)
{
	return target_fleet_of(t);
}

/* fleet.c */
int fleet_call(struct fleet *f, const char *path, json_t *body, long timeout_ms, json_t **ret, char *err, size_t size);
void fleet_set_down(struct fleet *f, bool down);
void fleet_wake_waiters(struct fleet *f);
/* Waits (f->lock held) until until (now_mono()) passes or the fleet stops:
 * false when it stops. */
bool fleet_pause(struct fleet *f, double until);
/* t's fleet state has the key's value of revision rev, or a newer one. */
void fleet_target_seen(struct fleet_target *ft, int64_t rev);

/* watch-guard.c: the watch's idle deadline (a thread). */
void *fleet_watch_guard(void *userdata);

/* values.c */
/* The target's keys for user (set in its fleet state, whose lock it takes),
 * and copies of them. */
int fleet_target_keys(struct auth_target *t, const char *user, char **ret_key, char **ret_lock_key);
/* Values of keys under root: JSON sealed with the fleet key and the etcd key
 * as associated data, base64 for the gateway. j is taken over. */
int fleet_seal_value(struct fleet *f, const char *key, json_t *j, char **ret_b64);
int fleet_open_value(struct fleet *f, const char *key, const char *b64, json_t **ret);
/* The sealed value of s: its saved form and its times. */
int fleet_seal_session(struct auth_target *t, const char *key, const struct auth_session *s, char **ret_b64);
/* A target's session; -EKEYREJECTED when the value records a refused login. */
int fleet_open_session(struct auth_target *t, const char *key, const char *b64, struct auth_session **ret);
/* A value of t's key, for a node that would log in with ctx's credentials:
 * 0 with *ret its session; -EKEYREJECTED (ctx says whose login, when) when it
 * records the refusal of these credentials, -ENOENT of others; -EBADMSG when
 * it does not open. */
int fleet_open_for(struct auth_target *t, struct auth_ctx *ctx, const char *key, const char *b64,
		   struct auth_session **ret);
/* The first kv of a range reply (borrowed), or NULL. */
json_t *fleet_first_kv(json_t *range_reply);
/* A txn compare: key's field (version, mod_revision, ...) equal to value. */
json_t *fleet_compare(const char *key, const char *target, const char *field, int64_t value);
