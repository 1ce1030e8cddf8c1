/* What a provider implements, and all it sees of the engine: a provider's
 * sources include this header, replies.h, lib/ and their own headers, no
 * header of the engine or the fleet (tests/layering.py).
 * Providers know nothing of FUSE; they reach the network only through
 * auth_call(). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <time.h>

#include "auth.h"
#include "lib/config.h"
#include "lib/http.h"
#include "lib/secret.h"

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
	const char *scheme; /* "https" or "http", a string literal */
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
	const struct secret *one_time; /* what was written to the AUTH_FILE_ONE_TIME file (STS: the MFA code) */
	double deadline;               /* now_mono() by which every request must end; 0: none */
	bool skew_known;               /* a response carried the server's Date */
	time_t skew;                   /* server's clock minus ours, by the last Date seen */
	char error[512];
};

/* A time on the server's clock (a JWT's exp) as a time on ours: lifetimes
 * are measured on the server's clock (its Date header), as the AWS SDKs
 * correct for skew. Unchanged when no Date was seen. */
time_t auth_ctx_local_time(const struct auth_ctx *ctx, time_t server_time);

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

/* A target found outside the config: by the environment variables the
 * provider's own tools read (AOS_SERVER, ...), or in files of theirs (the
 * AWS profiles). Every field but name may be empty. */
struct auth_found {
	char *name;
	unsigned port;          /* overrides the name's and the config's (0: none) */
	char *user;             /* default credentials, used when the target has none */
	struct secret *password;
	struct secret *session; /* session_load() text of a session to resume (validated first) */
};
void auth_found_free(struct auth_found *f, size_t n);

/* Features a provider has (its `features` bitmask). */
#define AUTH_PROVIDER_HOST_NAMES (1u << 0)       /* target names may be host, host:port, [v6]:port (mkdir) */
#define AUTH_PROVIDER_RENEWS_IN_PLACE (1u << 1)  /* with CHECKS_REGULARLY: validate() extends the session
						    * (Redfish keep-alive); otherwise a session due for
						    * renewal gets a new login */
#define AUTH_PROVIDER_LOGOUT_REPLACED (1u << 2)  /* end a stale session before replacing it (never leak a BMC slot) */
#define AUTH_PROVIDER_LOGOUT_ON_EXIT (1u << 3)   /* logout_on_exit defaults to true */
#define AUTH_PROVIDER_CHECKS_REGULARLY (1u << 4) /* check the session with validate() every check_interval
						    * while it is read; -ESTALE makes the daemon log in again */

/* Every session on the server (Redfish's Sessions collection), for the
 * sessions/ directory: all three hooks or none. Each uses session s to
 * authenticate (NULL: the credentials) and returns -ESTALE when s itself is
 * no longer accepted. */
struct auth_sessions_ops {
	int (*list)(struct auth_ctx *ctx, const struct auth_session *s, char ***ret_ids, size_t *ret_n);
	int (*get)(struct auth_ctx *ctx, const struct auth_session *s, const char *id, struct auth_blob **ret);
	int (*delete)(struct auth_ctx *ctx, const struct auth_session *s, const char *id);
};

/* A provider: one file (auth/providers/<name>.c) and one line in the table in
 * engine/providers.c.
 * Data first, then the hooks every provider has, then the optional ones
 * (NULL when not needed). Hooks run without any lock and may block on the
 * network (within ctx's deadline); they know nothing of targets or FUSE. */
struct auth_provider {
	/* --- data --- */
	const char *name;                   /* the top directory, and [name "target"] in the config */
	const struct auth_file_info *files; /* what a target directory holds (at most AUTH_FILES_MAX) */
	size_t n_files;
	unsigned features;                  /* AUTH_PROVIDER_* */
	unsigned default_port;              /* 0: 443 (https) */
	int min_validity;                   /* never hand out a session with this little left (s) */
	const char *credentials_hint;       /* how to provide credentials, for the ENOKEY message */
	const char *one_time_hint;          /* why a login waits for the AUTH_FILE_ONE_TIME file */
	const char *env_user;               /* environment variables with default credentials */
	const char *env_password;
	const struct config_range *settings; /* ranges of numeric settings, checked at mount (NULL key ends) */
	/* Settings that, besides the user, make a different credential (NULL
	 * ends; NULL: none): sessions are shared only where they are alike. */
	const char *const *identity_settings;

	/* --- hooks every provider has --- */
	/* Obtain a new session. -EKEYREJECTED when credentials are refused. */
	int (*login)(struct auth_ctx *ctx, struct auth_session **ret);
	/* Is s still accepted by the server? 0 yes (with its new expiry, or 0 for
	 * unchanged, in *ret_expires_at), -ESTALE no, other -errno: can't tell. */
	int (*validate)(struct auth_ctx *ctx, const struct auth_session *s, time_t *ret_expires_at);
	/* End s on the server. Already gone counts as success. */
	int (*logout)(struct auth_ctx *ctx, const struct auth_session *s);
	/* Renders the AUTH_FILE_SESSION file f of the table into a new blob. */
	int (*render)(const struct target_info *info, const struct auth_session *s, const struct auth_file_info *f,
		      struct auth_blob **ret);
	/* The session as saved in the store (JSON text). */
	int (*session_save)(const struct target_info *info, const struct auth_session *s, struct secret **ret);
	/* Parses a saved session or a write to session.json; -EINVAL when malformed. */
	int (*session_load)(const struct target_info *info, const char *text, size_t len,
			    struct auth_session **ret);

	/* --- optional hooks --- */
	/* Fix up a new target's facts (STS, OAuth 2.0: base_url is the endpoint). */
	int (*init_info)(struct target_info *info);
	/* Credentials when the config has none (STS: the AWS shared files), both
	 * new. Like every ret_ in this header: written only on success (0), never
	 * read; -ENOENT when there are none. The caller replaces user and
	 * password with them. */
	int (*default_credentials)(const struct target_info *info, char **ret_user, struct secret **ret_password);
	/* Parse a write to credentials; NULL means credentials_parse(). */
	int (*parse_credentials)(const char *data, size_t len, char **ret_user, struct secret **ret_password);
	/* Targets that exist without a config section. */
	int (*discover)(struct auth_found **ret, size_t *ret_n);
	/* Does the next login need a value written to the AUTH_FILE_ONE_TIME file? */
	bool (*needs_one_time)(const struct target_info *info);
	/* The sessions/ directory (an AUTH_FILE_SESSIONS file); NULL without one. */
	const struct auth_sessions_ops *sessions;
	/* More members for `status`, from memory only (STS: role ARNs, MFA
	 * sessions). status is borrowed; s may be NULL. */
	void (*status_extra)(const struct target_info *info, const struct auth_session *s, json_t *status);
};

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
	const char *aws_sigv4;          /* "aws:amz:REGION:SERVICE": sign with SigV4 using userpwd */
	const struct secret *userpwd;   /* "key:secret" for SigV4 */
};
int auth_call(struct auth_ctx *ctx, const struct auth_call *call, struct http_response *resp);

/* Maps an HTTP status to -errno (401/403 → EKEYREJECTED, 5xx → EIO, ...). */
int auth_http_status_errno(long status);
/* j (a reference taken over, may be NULL) as JSON text in a secret. */
int auth_json_secret(json_t *j, size_t flags, struct secret **ret);
/* What a file shows: the session's token as it is, or JSON text (j taken
 * over) and a newline. */
int auth_render_token(const struct auth_session *s, struct auth_blob **ret);
int auth_render_json(json_t *j, size_t flags, struct auth_blob **ret);
/* JSON parse of a response body (borrowed text); -EBADMSG with a message on failure. */
int auth_parse_json(struct auth_ctx *ctx, const struct http_response *resp, json_t **ret);
/* The transport failure of a request, in words. */
int auth_ctx_transport_fail(struct auth_ctx *ctx, int r, const struct http_response *resp);

/* JWT: the exp claim of token. -ENODATA if it has none, -EBADMSG if malformed. */
int jwt_expiry(const char *token, time_t *ret);
/* base64url (no padding needed) → bytes, NUL-terminated. */
int base64url_decode(const char *in, size_t len, char **ret, size_t *ret_len);

/* -EINVAL or -ENAMETOOLONG for a name that cannot be a target. */
int auth_name_valid(const char *name);
void auth_strv_free(char **v, size_t n);

/* A credentials write: "user:password" or {"username","password"}; -EINVAL otherwise.
 * Also the format credentials are saved in. */
int credentials_parse(const char *data, size_t len, char **ret_user, struct secret **ret_password);
