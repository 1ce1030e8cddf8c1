/* Fleet mode: logins that failed back off fleet-wide. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "providers/provider.h"

struct auth_target;

/* The key of t's record beside its session key: key + "/backoff"; and
 * the same in base64, for a txn. */
char *fleet_backoff_key(const char *key);
char *fleet_backoff_key_b64(const char *key);
bool fleet_is_backoff_key(const char *session_key, const char *key);
/* The record of ctx's failed login (r), sealed for etcd, which no node
 * tries again before: 1, 2, 4 ... 60 s after failures in a row (counted
 * from the record the watch last brought). -errno when none applies (a
 * refused login has its own record; no credentials is this node's own). */
int fleet_backoff_record(struct auth_target *t, const struct auth_ctx *ctx, const char *key, int r, char **ret_b64);
/* The watch brought t's record (NULL: it went). */
void fleet_backoff_seen(struct auth_target *t, const char *key, const char *value_b64);
/* -errno (ctx says whose login failed, and until when) while the fleet
 * backs off t's logins, else 0. */
int fleet_backoff_check(struct auth_target *t, struct auth_ctx *ctx);
