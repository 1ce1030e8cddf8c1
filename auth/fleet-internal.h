/* Fleet mode internals shared by fleet.c (config, the fleet-wide single
 * flight, status) and fleetwatch.c (the node lease, the watch, shared
 * credentials). */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "etcd.h"
#include "fleet.h"
#include "fleetcrypt.h"
#include "target.h"

#define REQUEST_TIMEOUT_MS 5000
#define WAIT_SLICE 2.0        /* seconds a lock waiter waits for the watch before it looks itself */
#define TURN_MAX 5            /* seconds between the renewal turns of two nodes, at most */
#define NODES_MAX 1024
#define TAKE_FLAG(b) ({ bool _b = (b); (b) = false; _b; })
#define TAKE_INT(i) ({ __typeof__(i) _i = (i); (i) = 0; _i; })
#define RECONNECT_MAX 5       /* seconds between watch reconnects, at most */

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
	pthread_t watch_thread, keepalive_thread;
	bool threads;

	uint64_t lock_waits;
	double lock_wait_seconds;
	uint64_t watch_reconnects;
	uint64_t keepalives;
	char **nodes;          /* live nodes, as the watch sees nodes/ */
	size_t n_nodes;
};


static inline struct fleet *fleet_of(const struct auth_target *t)
{
	return t->core->fleet;
}

/* fleet.c */
int fleet_call(struct fleet *f, const char *path, json_t *body, long timeout_ms, json_t **ret, char *err, size_t size);
void fleet_set_down(struct fleet *f, bool down);
void fleet_wake_waiters(struct fleet *f);
/* A target's session; -EKEYREJECTED when the value records a refused login. */
int fleet_open_session(struct auth_target *t, const char *key, const char *b64, struct auth_session **ret);
