/* What the engine publishes for fleet mode: fleet/ reaches the engine only
 * through this header (tests/layering.py). A target's fixed facts, and the
 * transitions of its session the fleet may ask for (struct fleet_engine,
 * handed to fleet_new()). Each transition takes the target's lock itself:
 * the engine alone changes a target's session, credentials and error state;
 * the fleet never takes a target's lock nor sets its fields. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "providers/provider.h"

struct auth_core;
struct auth_target;
struct fleet;
struct fleet_target;

/* Fixed at creation, read without a lock (target.c). */
const struct auth_provider *target_provider(const struct auth_target *t);
const struct target_info *target_info(const struct auth_target *t);
struct fleet *target_fleet_of(const struct auth_target *t);      /* the core's fleet, or NULL */
struct fleet_target *target_fleet(const struct auth_target *t);  /* t's fleet state (fleet-owned), or NULL */

/* The engine's side, called without any lock of the fleet's held (the engine
 * calls fleet mode with t's lock held, so the other order would deadlock). */
struct fleet_engine {
	/* Targets in id order after after (a reference), NULL at the end. */
	struct auth_target *(*next_target)(struct auth_core *core, uint32_t after);
	bool (*can_serve)(const struct auth_target *t, const struct auth_session *s);
	/* Another node's session (taken over) replaces this node's. */
	bool (*install)(struct auth_target *t, struct auth_session *s);
	/* The fleet's session is gone (rm token or a 401 elsewhere, r == 0:
	 * the server's is gone too, no logout) or unusable here (r < 0, msg
	 * for status): this node's copy goes. install and forget do nothing
	 * (false) while a flight of this node runs: its own outcome comes next. */
	bool (*forget)(struct auth_target *t, int r, const char *msg);
	/* Credentials another node wrote (share_credentials; their text, or
	 * NULL when they do not open: msg says why): saved and used here too. */
	void (*credentials)(struct auth_target *t, const char *text, size_t len, const char *msg);
	/* Its session is due for renewal (not merely for a check). */
	bool (*renewal_due)(struct auth_target *t);
	/* Is s (by its token) the session this node serves now? */
	bool (*serves)(struct auth_target *t, const struct auth_session *s);
	/* s (taken over), which this node logged in alone and serves no more,
	 * is ended on the server in the background (reconcile.c). */
	void (*end)(struct auth_target *t, struct auth_session *s);
};
