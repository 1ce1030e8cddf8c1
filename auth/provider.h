/* What a provider (aos, redfish, sts) implements, and what the core gives it.
 * Providers know nothing of FUSE; they reach the network only through http.h. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <time.h>

#include "auth.h"
#include "config.h"
#include "http.h"
#include "secret.h"

/* A live session. The token is what `token` shows; extra holds the provider's
 * details as JSON text (may contain secrets, so it is a secret too). */
struct auth_session {
	struct secret *token;
	struct secret *extra;
	char *id;          /* server-side id (Redfish session Id), or NULL */
	char *location;    /* server-side URI path (Redfish), assumed-role ARN (STS), or NULL */
	time_t expires_at; /* 0: unknown, valid until the server says otherwise */
	time_t obtained_at;
};

struct auth_session *auth_session_new(void);
void auth_session_free(struct auth_session *s);
static inline void auth_session_freep(struct auth_session **s)
{
	auth_session_free(*s);
}
#define _cleanup_session_ _cleanup_(auth_session_freep)

/* Immutable facts about a target, fixed when it is created. */
struct target_info {
	const char *provider;
	const char *name;
	char *scheme;     /* "https" or "http" */
	char *host;
	unsigned port;
	char *base_url;   /* scheme://host:port */
	struct http_tls tls;
	int timeout;
	bool logout_on_exit;
	const struct target_config *section;  /* its config section, or NULL */
	const struct target_config *defaults; /* the provider's unnamed section, or NULL */
};

/* One operation's view of a target: its facts, a copy of its credentials, its
 * HTTP client, and room for an error message in words. */
struct auth_ctx {
	const struct target_info *info;
	const char *user;              /* NULL when none configured */
	const struct secret *password; /* NULL when none configured */
	const struct secret *mfa_code; /* STS: the one-time code, if written */
	double deadline;               /* now_mono() by which every request must end; 0: none */
	char error[512];
};

/* What is left of ctx's deadline for one request, in ms (at least 1); without
 * a deadline, the target's timeout. */
long auth_ctx_timeout_ms(const struct auth_ctx *ctx);

/* Records a message for status.last_error (control characters made spaces)
 * and returns r. */
int auth_ctx_fail(struct auth_ctx *ctx, int r, const char *fmt, ...) _printf_(3, 4);
/* The start of a response body, for an error message when it is no JSON. */
void auth_body_excerpt(const struct http_response *resp, char *buf, size_t size);

/* Setting key of a target, falling back to its provider's defaults section. */
const char *target_setting(const struct target_info *info, const char *key);
/* May the target get its provider's default credentials (defaults section,
 * environment)? Configured targets: yes; others only when their host matches
 * the defaults' `hosts` shell patterns (hosts.c). */
bool target_defaults_allowed(const struct target_info *info);

struct auth_provider {
	const char *name;
	const struct auth_file_info *files;
	size_t n_files;
	unsigned default_port;
	bool default_logout_on_exit;
	int min_validity;        /* never hand out a session with this little left (s) */

	/* Obtain a new session. -EKEYREJECTED when credentials are refused. */
	int (*login)(struct auth_ctx *ctx, struct auth_session **ret);
	/* Is s still accepted by the server? 0 yes (with its new expiry, or 0 for
	 * unchanged, in *ret_expires_at), -ESTALE no, other -errno: can't tell. */
	int (*validate)(struct auth_ctx *ctx, const struct auth_session *s, time_t *ret_expires_at);
	/* End s on the server. Already gone counts as success. */
	int (*logout)(struct auth_ctx *ctx, const struct auth_session *s);
	/* Renders a session-derived file into a newly allocated blob. */
	int (*render)(const struct target_info *info, const struct auth_session *s, enum auth_file f,
		      struct auth_blob **ret);
	/* The session as saved in the store (JSON text). */
	int (*session_save)(const struct target_info *info, const struct auth_session *s, struct secret **ret);
	/* Parses a saved session or a write to session.json; -EINVAL when malformed. */
	int (*session_load)(const struct target_info *info, const char *text, size_t len,
			    struct auth_session **ret);
	/* Optional: check s with the server every check_interval while it is read,
	 * as validate(); -ESTALE makes the daemon log in again. */
	int (*refresh)(struct auth_ctx *ctx, const struct auth_session *s, time_t *ret_expires_at);
	/* refresh() also extends s (Redfish: resets the idle timer); otherwise a
	 * session due for renewal gets a new login. */
	bool renews_in_place;
	/* Delete a stale session before replacing it (Redfish: never leak a slot). */
	bool logout_replaced;
	/* Environment variables with default credentials for every target. */
	const char *env_user;
	const char *env_password;
	/* Optional: when to refresh s; NULL means margin before expiry. */
	time_t (*refresh_at)(const struct target_info *info, const struct auth_session *s, int margin);
	/* Optional: fix up a new target's facts (STS: base_url is the endpoint). */
	int (*init_info)(struct target_info *info);
	/* Optional: credentials when the config has none (STS: the AWS shared files). */
	int (*default_credentials)(const struct target_info *info, char **ret_user, struct secret **ret_password);
	/* Optional: parse a write to credentials; NULL means credentials_parse(). */
	int (*parse_credentials)(const char *data, size_t len, char **ret_user, struct secret **ret_password);
	/* Optional: targets that exist without a config section (STS: AWS profiles). */
	int (*discover_targets)(char ***ret_names, size_t *ret_n);
	/* Optional: does the next login need a one-time code written to `mfa`? */
	bool (*needs_mfa)(const struct target_info *info);
	/* How to provide credentials, for the ENOKEY message. */
	const char *credentials_hint;
	/* Optional: the sessions/ directory, using session s to authenticate.
	 * -ESTALE when s itself is no longer accepted. */
	int (*sessions_list)(struct auth_ctx *ctx, const struct auth_session *s, char ***ret_ids, size_t *ret_n);
	int (*sessions_get)(struct auth_ctx *ctx, const struct auth_session *s, const char *id, struct auth_blob **ret);
	int (*sessions_delete)(struct auth_ctx *ctx, const struct auth_session *s, const char *id);
	/* Optional (STS: role ARNs, MFA sessions): more members for `status`,
	 * from memory only. status is borrowed; s may be NULL. */
	void (*status_extra)(const struct target_info *info, const struct auth_session *s, json_t *status);
};

extern const struct auth_provider aos_provider;
extern const struct auth_provider redfish_provider;
extern const struct auth_provider sts_provider;

struct auth_session *auth_session_dup(const struct auth_session *s);

/* One HTTP request of a provider. path is relative to the target's base URL,
 * or an absolute http(s) URL. Transport failures are put in words in ctx. */
struct auth_call {
	const char *method;
	const char *path;
	const struct secret *auth_header; /* "Name: value" carrying a token, or NULL */
	const char *const *headers;
	const char *body;
	size_t body_len;
	const char *content_type;
};
int auth_call(struct auth_ctx *ctx, const struct auth_call *call, struct http_response *resp);

/* Maps an HTTP status to -errno (401/403 → EKEYREJECTED, 5xx → EIO, ...). */
int auth_http_status_errno(long status);
/* j (a reference taken over, may be NULL) as JSON text in a secret. */
int auth_json_secret(json_t *j, size_t flags, struct secret **ret);
/* JSON parse of a response body (borrowed text); -EBADMSG with a message on failure. */
int auth_parse_json(struct auth_ctx *ctx, const struct http_response *resp, json_t **ret);
/* The transport failure of an http_perform() call, in words. */
int auth_ctx_transport_fail(struct auth_ctx *ctx, int r, const struct http_response *resp);

/* The providers' response parsers, exposed for the unit tests and fuzzers. */
int aos_login_reply(struct auth_ctx *ctx, const struct http_response *resp, struct auth_session **ret);
int redfish_session_reply(struct auth_ctx *ctx, const char *sessions_uri, json_int_t timeout,
			  const struct http_response *resp, struct auth_session **ret);
int redfish_members_reply(struct auth_ctx *ctx, const struct http_response *resp, char ***ret_ids, size_t *ret_n);
int redfish_error_reply(struct auth_ctx *ctx, const char *what, const struct http_response *resp);
int sts_login_reply(struct auth_ctx *ctx, const struct http_response *resp, struct auth_session **ret);

/* JWT: the exp claim of token. -ENODATA if it has none, -EBADMSG if malformed. */
int jwt_expiry(const char *token, time_t *ret);
/* base64url (no padding needed) → bytes, NUL-terminated. */
int base64url_decode(const char *in, size_t len, char **ret, size_t *ret_len);

/* A credentials write: "user:password" or {"username","password"}; -EINVAL otherwise.
 * Also the format credentials are saved in. */
int credentials_parse(const char *data, size_t len, char **ret_user, struct secret **ret_password);
