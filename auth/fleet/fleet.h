/* Fleet mode: daemons on many hosts share one session per target through
 * etcd (README, "Fleet mode"). One fleet-wide single flight per target (a
 * lock under the node's lease, a fenced publish), one watch on the prefix
 * that keeps every node's copy current. */
#pragma once

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>

#include "lib/config.h"
#include "providers/provider.h"

struct auth_core;
struct auth_ctx;
struct auth_session;
struct auth_target;
struct fleet;
struct fleet_engine;

/* A session this node logged in that the fleet lacks, and the key it belongs
 * to (its credentials'): reconcile.c. */
struct fleet_alone {
	struct auth_session *s;
	char *key;
};

static inline void fleet_alone_free(struct fleet_alone *a)
{
	if (a) {
		auth_session_free(a->s);
		free(a->key);
		free(a);
	}
}

/* A target's fleet state: made with the target, owned by fleet/ and guarded
 * by its own lock, which may be taken with the target's lock held (never the
 * other way round). */
struct fleet_target {
	pthread_mutex_t lock;
	char *key;
	char *lock_key;
	int64_t mod_rev;       /* the value's revision this node has (published or adopted) */
	int64_t lock_rev;      /* our lock's create revision while leading */
	int64_t ended_mod;     /* the value this node ended (rm token): never adopted again */
	bool leading;
	bool checking;         /* a check of a session not yet due for renewal: no lock */
	char holder[64];       /* node holding the lock, as the watch last saw */
	uint64_t events;       /* watch events on its keys */
	char *seen_value;      /* the value the watch last delivered (base64, sealed), or NULL */
	int64_t seen_mod;
	json_t *backoff;       /* the fleet's record of failed logins (backoff.c), or NULL */
	struct fleet_alone *alone;  /* or NULL */
	struct fleet_alone *parked; /* rm token under way: alone again if the session is kept */
};

static inline void fleet_target_free(struct fleet_target *ft)
{
	if (ft) {
		pthread_mutex_destroy(&ft->lock);
		free(ft->key);
		free(ft->lock_key);
		free(ft->seen_value);
		json_decref(ft->backoff);
		fleet_alone_free(ft->alone);
		fleet_alone_free(ft->parked);
		free(ft);
	}
}

/* From the [fleet] section; *ret stays NULL when there is none. engine: what
 * fleet mode may ask of the engine (engine/fleet-api.h); the engine calls
 * fleet mode, never the other way round. */
int fleet_new(const struct config *cfg, const struct fleet_engine *engine, struct fleet **ret);
/* A new target's fleet state (user: whom it logs in as), *ret NULL without
 * fleet mode. */
int fleet_target_new(struct auth_target *t, const char *user, struct fleet_target **ret);
/* The node's lease and key, the watch and keep-alive threads. */
int fleet_start(struct fleet *f, struct auth_core *core);
/* Stops the threads (nothing is notified afterwards). */
void fleet_stop(struct fleet *f);
/* Revokes the node's lease: its key and any lock it holds go at once. */
void fleet_free(struct fleet *f);

/* The engine's hooks; called without t->lock. fleet_flight_begin: 0 when this
 * node is to log in or renew (holding the fleet lock, or fleet mode off), 1
 * when *ret_shared is the fleet's session to adopt instead, -errno on failure
 * (message in ctx). fleet_flight_end publishes what the flight brought (r is
 * its result); if another node published first, this node's new session is
 * ended on the server and *fresh becomes the published one. */
int fleet_flight_begin(struct auth_target *t, struct auth_ctx *ctx, const struct auth_session *current,
		       struct auth_session **ret_shared);
int fleet_flight_end(struct auth_target *t, struct auth_ctx *ctx, int r, const struct auth_session *current,
		     time_t expires_at, struct auth_session **fresh, bool *is_login);
/* Renewal turns (t->lock held): how much later than due this node renews t
 * (its session served until serve_until), so that one node renews and the
 * others adopt what it publishes. */
time_t fleet_renewal_delay(struct auth_target *t, time_t due, time_t serve_until);
/* A session written to session.json (checked with the server): the fleet's
 * now, whatever it had. */
void fleet_session_written(struct auth_target *t, const char *user, const struct auth_session *s);
/* rm token, rmdir (t->lock held, the session just taken out): the value
 * this node had is never adopted again. Then, without the lock,
 * fleet_session_ended(): the fleet's copy goes too (within the target's
 * timeout), or -EHOSTDOWN when etcd cannot be told; fleet_session_kept()
 * when the engine then keeps the session after all (t->lock held). */
void fleet_session_ending(struct auth_target *t);
int fleet_session_ended(struct auth_target *t);
void fleet_session_kept(struct auth_target *t);
/* share_credentials = true: credentials written here (normalized JSON text)
 * reach every node, sealed. */
void fleet_credentials_written(struct auth_target *t, const char *text, size_t len);
/* Exit: is the shared session still used by other live nodes? */
bool fleet_shared_elsewhere(struct auth_target *t);

/* status "fleet" member (t->lock held) and the .metrics lines. */
void fleet_status(struct auth_target *t, json_t *status);
void fleet_metrics(struct fleet *f, FILE *out);
