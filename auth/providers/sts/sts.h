/* Internal to the STS provider: sts.c (GetSessionToken, the provider),
 * role.c (AssumeRole profiles, chains, MFA sessions) and request.c (what
 * both use: profiles, signing credentials, one request and its reply). */
#pragma once

#include "awsfiles.h"
#include "providers/provider.h"

/* Credentials a request is signed with. */
struct sts_creds {
	char *id;
	struct secret *secret;
	struct secret *token; /* NULL: long-term keys */
	time_t expires_at;    /* 0: unknown */
	char *origin;         /* where they come from, in words, for messages */
};

/* request.c */
void sts_creds_done(struct sts_creds *c);
/* A copy of the given values, origin in words; token may be NULL. */
int sts_creds_new(const char *id, const char *secret, size_t secret_len, const char *token, const char *origin,
		  struct sts_creds *ret);
int sts_creds_copy(const struct sts_creds *c, const char *origin, struct sts_creds *ret);
/* The key pair of p (with its session token), -ENOENT when it has none. */
int sts_creds_from_profile(const struct aws_profile *p, const char *origin, struct sts_creds *ret);
/* The credentials in a session STS issued. */
int sts_creds_from_session(const struct auth_session *s, const char *origin, struct sts_creds *ret);
/* The daemon's AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN. */
int sts_creds_from_env(struct sts_creds *ret);

/* The AWS profile behind a target: its section's `profile`, else its name. */
const char *sts_profile_name(const struct target_info *info);
/* A setting of the target's section, else of its AWS profile (aws_key), else
 * of the environment variable env; NULL when none. */
char *sts_setting(const struct target_info *info, const char *key, const char *aws_key, const char *env);
/* The section's region, AWS_REGION, AWS_DEFAULT_REGION, the profile's, us-east-1. */
char *sts_region(const struct target_info *info);
/* The first field of temporary credentials that breaks its grammar, or NULL. */
const char *sts_credentials_invalid(const char *id, const char *secret, const char *token, const char *expiration);
/* "2026-11-23T16:00:00Z" or "2026-11-23T16:00:00.000Z". */
int sts_parse_expiration(const char *s, time_t *ret);

/* One STS action: body (form encoded, Action and Version included) POSTed to
 * the target's endpoint, signed with c. The reply's credentials become a
 * session; an AssumedRoleUser's Arn goes to its location. */
int sts_request(struct auth_ctx *ctx, const char *action, const char *body, const struct sts_creds *c,
		struct auth_session **ret);

/* Why profile p, which has no keys, gives none: EOPNOTSUPP for
 * credential_process and sso_* (not run by the daemon), else ENOKEY. */
int sts_unsupported_source(struct auth_ctx *ctx, const char *profile, const struct aws_profile *p);

/* role.c: the role credentials of a target whose profile has role_arn.
 * source: credentials written or configured for the target itself, or NULL
 * to follow source_profile / credential_source. */
int sts_role_login(struct auth_ctx *ctx, const struct sts_creds *source, struct auth_session **ret);
/* What status adds for STS: the role, the assumed role, the MFA sessions
 * the target's profile is the source of. */
void sts_role_status(const struct target_info *info, const struct auth_session *s, json_t *status);
