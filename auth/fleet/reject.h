/* Fleet mode: the record of a login the server refused (EKEYREJECTED),
 * stored in place of the target's session, so that no other node tries the
 * same credentials again. */
#pragma once

#include <jansson.h>

#include "providers/provider.h"

/* The record of ctx's refused login (ctx->error says why) by node. */
int fleet_rejection_record(const struct auth_ctx *ctx, const char *node, int r, json_t **ret);
/* -EKEYREJECTED (ctx says whose login, when) when record is of the
 * credentials ctx holds; 0 when of others. */
int fleet_rejection_check(const json_t *record, struct auth_ctx *ctx);
