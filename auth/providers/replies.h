/* The providers' reply parsers and provider structs, for the unit tests and
 * fuzzers (and the providers that define them). The engine knows providers
 * only through the table in engine/providers.c, and includes none of this. */
#pragma once

#include "provider.h"

extern const struct auth_provider aos_provider;
extern const struct auth_provider redfish_provider;
extern const struct auth_provider sts_provider;
extern const struct auth_provider oauth2_provider;

/* Each parses one HTTP response: on success a new session (or list) in ret,
 * else -errno with ctx->error in words. */
int aos_login_reply(struct auth_ctx *ctx, const struct http_response *resp, struct auth_session **ret);
int redfish_session_reply(struct auth_ctx *ctx, const char *sessions_uri, json_int_t timeout,
			  const struct http_response *resp, struct auth_session **ret);
int redfish_members_reply(struct auth_ctx *ctx, const struct http_response *resp, char ***ret_ids, size_t *ret_n);
int redfish_error_reply(struct auth_ctx *ctx, const char *what, const struct http_response *resp);
int sts_login_reply(struct auth_ctx *ctx, const struct http_response *resp, struct auth_session **ret);
/* The token endpoint's answer (RFC 6749 §5.1, errors §5.2). */
int oauth2_token_reply(struct auth_ctx *ctx, const struct http_response *resp, struct auth_session **ret);
/* An error answer of the token or revocation endpoint (§5.2); what names the request. */
int oauth2_error_reply(struct auth_ctx *ctx, const char *what, const struct http_response *resp);
