/* Redfish BMCs (iDRAC, iLO, OpenBMC): one daemon session per BMC, created by
 * POST to the Sessions collection, kept alive while it is read, deleted on
 * logout (DSP0266; DESIGN.md §3). */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <strings.h>
#include <sys/stat.h>

#include "lib/log.h"
#include "provider.h"
#include "replies.h"
#include "lib/validate.h"

#define DEFAULT_SESSION_TIMEOUT 1800 /* DSP0266's usual default, when the BMC won't say */

enum { FILE_TOKEN, FILE_SESSION_JSON };

static const struct auth_file_info redfish_files[] = {
	{ "token", S_IFREG | 0400, AUTH_FILE_SESSION, AUTH_FILE_LOGOUT, FILE_TOKEN, NULL },
	/* Read-only to users; root's write resumes a session, as for AOS. */
	{ "session.json", S_IFREG | 0400, AUTH_FILE_SESSION, AUTH_FILE_RESUME, FILE_SESSION_JSON, NULL },
	{ "credentials", S_IFREG | 0200, AUTH_FILE_CREDENTIALS, 0, 0, NULL },
	{ "status", S_IFREG | 0400, AUTH_FILE_STATUS, 0, 0, NULL },
	{ "sessions", S_IFDIR | 0700, AUTH_FILE_SESSIONS, 0, 0, NULL },
};

static const char *const fallback_uris[] = {
	"/redfish/v1/SessionService/Sessions",
	"/redfish/v1/Sessions", /* old iDRAC firmware */
};

/* SessionService.SessionTimeout is 30..86400 s (DSP0266); anything else from a
 * BMC (or a corrupt saved session) is not trusted. */
static json_int_t clamp_timeout(json_int_t t)
{
	return t >= 1 && t <= 86400 ? t : DEFAULT_SESSION_TIMEOUT;
}

/* The provider's details kept with a session (its extra secret). */
struct details {
	const char *sessions_uri;
	json_int_t timeout;
	json_t *data;
};

static json_t *details_load(const struct auth_session *s, struct details *ret)
{
	json_t *j = s->extra ? json_loads(s->extra->data, 0, NULL) : NULL;

	ret->sessions_uri = json_string_value(json_object_get(j, "sessions_uri"));
	ret->timeout = clamp_timeout(json_integer_value(json_object_get(j, "session_timeout")));
	ret->data = json_object_get(j, "session_data");
	return j;
}

/* The BMC's own words: error.@Message.ExtendedInfo[].Message, else error.message. */
static void bmc_message(const struct http_response *resp, char *buf, size_t size, bool *ret_limit)
{
	json_auto_t *j = json_loadb(resp->body, resp->len, 0, NULL);
	json_t *err = json_object_get(j, "error"), *info = json_object_get(err, "@Message.ExtendedInfo"), *e;
	size_t i, used = 0;

	buf[0] = 0;
	*ret_limit = strstr(resp->body, "SessionLimitExceeded") || strstr(resp->body, "RAC0218");
	json_array_foreach(info, i, e) {
		const char *m = json_string_value(json_object_get(e, "Message"));
		const char *id = json_string_value(json_object_get(e, "MessageId"));
		if (m && used < size) {
			used += (size_t)snprintf(buf + used, size - used, "%s%s%s%s%s", used ? "; " : "", m,
						 id ? " (" : "", id ? id : "", id ? ")" : "");
		}
	}
	if (!buf[0] && json_is_string(json_object_get(err, "message"))) {
		snprintf(buf, size, "%s", json_string_value(json_object_get(err, "message")));
	}
	if (!buf[0] && !j) {
		auth_body_excerpt(resp, buf, size);
	}
}

int redfish_error_reply(struct auth_ctx *ctx, const char *what, const struct http_response *resp)
{
	char msg[384];
	bool limit;

	bmc_message(resp, msg, sizeof(msg), &limit);
	if (limit || resp->status == 503) {
		return auth_ctx_fail(ctx, -EUSERS,
				     "%s: too many sessions on the BMC (HTTP %ld: %s); remove stale ones with rm %s/%s/sessions/<id>",
				     ctx->info->base_url, resp->status, msg[0] ? msg : "no message", ctx->info->provider, ctx->info->name);
	}
	/* Only a refused login is about the credentials; a 403 on anything else
	 * means this user may not do that. */
	if (resp->status == 401 || (resp->status == 403 && strcmp(what, "login") == 0)) {
		return auth_ctx_fail(ctx, -EKEYREJECTED, "%s rejected the %s (HTTP %ld): %s", ctx->info->base_url, what,
				     resp->status, msg[0] ? msg : "the BMC sent an empty body; the user name or password is wrong");
	}
	if (resp->status == 403) {
		return auth_ctx_fail(ctx, -EACCES, "%s refused the %s: the user may not do this (HTTP 403): %s",
				     ctx->info->base_url, what, msg[0] ? msg : "no message");
	}
	return auth_ctx_fail(ctx, auth_http_status_errno(resp->status) == -EAGAIN ? -EAGAIN : -EIO,
			     "%s failed the %s with HTTP %ld: %s", ctx->info->base_url, what, resp->status, msg);
}

/* X-Auth-Token of s, or Basic auth with the credentials when s is NULL. */
static struct secret *auth_header(const struct auth_ctx *ctx, const struct auth_session *s)
{
	_cleanup_secret_ struct secret *pair = NULL;
	_cleanup_erase_ char *b64 = NULL;

	if (s) {
		return secret_printf("X-Auth-Token: %s", secret_str(s->token));
	}
	if (!ctx->user || !ctx->password) {
		return NULL;
	}
	pair = secret_printf("%s:%s", ctx->user, secret_str(ctx->password));
	b64 = pair ? malloc(4 * ((pair->len + 2) / 3) + 1) : NULL;
	if (!b64) {
		return NULL;
	}
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)pair->data, (int)pair->len);
	return secret_printf("Authorization: Basic %s", b64);
}

static int request(struct auth_ctx *ctx, const char *method, const char *path, const struct secret *hdr,
		   const char *body, struct http_response *resp)
{
	static const char *const headers[] = { "OData-Version: 4.0", "Accept: application/json", NULL };

	return auth_call(ctx, &(struct auth_call){
		.method = method, .path = path, .auth_header = hdr, .headers = headers,
		.body = body, .body_len = body ? strlen(body) : 0,
		.content_type = body ? "application/json" : NULL,
	}, resp);
}

static const char *last_segment(const char *uri)
{
	const char *slash = strrchr(uri, '/');

	return slash ? slash + 1 : uri;
}

/* The last segment of a session path, ignoring one trailing '/' (iLO). */
static const char *last_segment_of_path(const char *path)
{
	size_t len = strlen(path);

	while (len > 1 && path[len - 1] == '/') {
		len--;
	}
	while (len > 0 && path[len - 1] != '/') {
		len--;
	}
	return path + len;
}

/* Links.Sessions of the service root, or NULL to try the usual places. */
static int discover(struct auth_ctx *ctx, char **ret)
{
	struct http_response resp = { 0 };
	json_auto_t *root = NULL;
	const char *uri;
	char *copy = NULL;
	int r;

	r = request(ctx, "GET", "/redfish/v1/", NULL, NULL, &resp);
	if (r == 0 && resp.status >= 200 && resp.status < 300 && (root = json_loadb(resp.body, resp.len, 0, NULL))) {
		uri = json_string_value(json_object_get(json_object_get(json_object_get(root, "Links"), "Sessions"), "@odata.id"));
		if (uri && !validate_uri_path(uri)) {
			r = auth_ctx_fail(ctx, -EBADMSG, "%s has a malformed Links.Sessions in its service root",
					  ctx->info->base_url);
		} else if (uri && !(copy = strdup(uri))) {
			r = -ENOMEM;
		}
	}
	http_response_done(&resp);
	if (r == 0) {
		*ret = copy;
	}
	return r;
}

static json_int_t session_timeout(struct auth_ctx *ctx, const struct secret *hdr)
{
	struct http_response resp = { 0 };
	json_int_t timeout = DEFAULT_SESSION_TIMEOUT;
	json_auto_t *j = NULL;

	if (request(ctx, "GET", "/redfish/v1/SessionService", hdr, NULL, &resp) == 0 && resp.status == 200 &&
	    (j = json_loadb(resp.body, resp.len, 0, NULL))) {
		timeout = clamp_timeout(json_integer_value(json_object_get(j, "SessionTimeout")));
	}
	http_response_done(&resp);
	return timeout;
}

/* Members named Password (any case, at any depth) made null, as DSP0266
 * says a read shows them: some BMCs echo the POSTed body. */
static void redact_passwords(json_t *j)
{
	const char *key;
	json_t *v;
	size_t i;

	if (json_is_array(j)) {
		json_array_foreach(j, i, v) {
			redact_passwords(v);
		}
		return;
	}
	json_object_foreach(j, key, v) {
		if (strcasecmp(key, "Password") == 0) {
			json_object_set_new(j, key, json_null());
		} else {
			redact_passwords(v);
		}
	}
}

/* session_data: the session resource without its @odata annotations, nor a password. */
static json_t *session_data(const struct http_response *resp)
{
	json_auto_t *j = json_loadb(resp->body, resp->len, 0, NULL);
	json_t *data = json_object(), *v;
	const char *key;

	redact_passwords(j);
	json_object_foreach(j, key, v) {
		if (strncmp(key, "@odata.", 7) != 0) {
			json_object_set(data, key, v);
		}
	}
	return data;
}

/* 201 from a POST to the Sessions collection: X-Auth-Token, Location (or the
 * body's @odata.id) and the session resource. */
int redfish_session_reply(struct auth_ctx *ctx, const char *sessions_uri, json_int_t timeout,
			  const struct http_response *resp, struct auth_session **ret)
{
	_cleanup_session_ struct auth_session *s = auth_session_new();
	_cleanup_free_ char *token = http_response_header(resp, "X-Auth-Token");
	_cleanup_free_ char *location = http_response_header(resp, "Location");
	json_auto_t *body = json_loadb(resp->body, resp->len, 0, NULL), *details = NULL;
	const char *id = json_string_value(json_object_get(body, "Id"));
	const char *bad = NULL, *last;
	char *extra;
	int r;

	if (!location && json_is_string(json_object_get(body, "@odata.id"))) {
		location = strdup(json_string_value(json_object_get(body, "@odata.id")));
	}
	if (!s || !token || !*token || !location) {
		erase_and_free_str(TAKE_PTR(token));
		return auth_ctx_fail(ctx, -EBADMSG, "%s created a session without %s", ctx->info->base_url,
				     !token || !*token ? "an X-Auth-Token header" : "a Location or @odata.id");
	}
	r = validate_session_location(location, ctx->info->base_url, sessions_uri, &s->location);
	if (!validate_token(token)) {
		bad = "a malformed X-Auth-Token header (control characters, spaces or quotes)";
	} else if (r == -EBADMSG) {
		bad = "a Location that is not a session under its Sessions collection";
	} else if (id && !validate_redfish_id(id)) {
		bad = "a malformed Id";
	}
	if (bad || r < 0) {
		erase_and_free_str(TAKE_PTR(token));
		return bad ? auth_ctx_fail(ctx, -EBADMSG, "%s created a session with %s", ctx->info->base_url, bad) : r;
	}
	s->token = secret_new_str(token);
	erase_and_free_str(TAKE_PTR(token));
	last = last_segment_of_path(s->location);
	s->id = id ? strdup(id) : strndup(last, strcspn(last, "/"));
	if (!s->token || !s->id) {
		return -ENOMEM;
	}
	timeout = clamp_timeout(timeout);
	details = json_pack("{s:s, s:I, s:o}", "sessions_uri", sessions_uri, "session_timeout", timeout,
			    "session_data", session_data(resp));
	extra = details ? json_dumps(details, JSON_COMPACT) : NULL;
	s->expires_at = now_real() + json_integer_value(json_object_get(details, "session_timeout"));
	s->extra = secret_new_str(extra);
	erase_and_free_str(extra);
	if (!s->extra) {
		return -ENOMEM;
	}
	*ret = TAKE_PTR(s);
	return 0;
}

static int post_session(struct auth_ctx *ctx, const char *uri, const char *body, struct auth_session **ret)
{
	struct http_response resp = { 0 };
	int r = request(ctx, "POST", uri, NULL, body, &resp);

	if (r == 0 && (resp.status == 404 || resp.status == 405)) {
		r = -ENOENT; /* not here: try the next place */
	} else if (r == 0 && (resp.status < 200 || resp.status >= 300)) {
		r = redfish_error_reply(ctx, "login", &resp);
	} else if (r == 0) {
		/* The idle timeout is the SessionService's, asked with the new session. */
		_cleanup_free_ char *token = http_response_header(&resp, "X-Auth-Token");
		_cleanup_secret_ struct secret *hdr = token ? secret_printf("X-Auth-Token: %s", token) : NULL;
		erase_and_free_str(TAKE_PTR(token));
		r = redfish_session_reply(ctx, uri, hdr ? session_timeout(ctx, hdr) : DEFAULT_SESSION_TIMEOUT, &resp, ret);
	}
	http_response_done(&resp);
	return r;
}

static int redfish_login(struct auth_ctx *ctx, struct auth_session **ret)
{
	_cleanup_free_ char *linked = NULL;
	_cleanup_erase_ char *body = NULL;
	json_t *j;
	int r;

	r = discover(ctx, &linked);
	if (r < 0) {
		return r;
	}
	j = json_pack("{s:s, s:s}", "UserName", ctx->user, "Password", secret_str(ctx->password));
	body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j); /* the password's copy: wiped now, not at return */
	if (!body) {
		return -ENOMEM;
	}
	if (linked) {
		return post_session(ctx, linked, body, ret);
	}
	r = -ENOENT;
	for (size_t i = 0; i < ELEMENTSOF(fallback_uris) && r == -ENOENT; i++) {
		r = post_session(ctx, fallback_uris[i], body, ret);
	}
	if (r == -ENOENT) {
		r = auth_ctx_fail(ctx, -EIO, "%s has no Redfish Sessions collection", ctx->info->base_url);
	}
	return r;
}

/* GET on the session itself: proves it alive and resets the BMC's idle timer. */
static int redfish_validate(struct auth_ctx *ctx, const struct auth_session *s, time_t *ret_expires_at)
{
	_cleanup_secret_ struct secret *hdr = secret_printf("X-Auth-Token: %s", secret_str(s->token));
	struct http_response resp = { 0 };
	struct details d;
	_unused_ json_auto_t *j = details_load(s, &d);
	int r;

	r = hdr ? request(ctx, "GET", s->location, hdr, NULL, &resp) : -ENOMEM;
	if (r == 0 && (resp.status == 401 || resp.status == 404)) {
		r = auth_ctx_fail(ctx, -ESTALE, "%s no longer knows session %s", ctx->info->base_url, s->id);
	} else if (r == 0 && (resp.status < 200 || resp.status >= 300)) {
		r = redfish_error_reply(ctx, "session check", &resp);
	}
	http_response_done(&resp);
	if (r == 0) {
		*ret_expires_at = now_real() + (time_t)d.timeout;
	}
	return r;
}

static int redfish_logout(struct auth_ctx *ctx, const struct auth_session *s)
{
	_cleanup_secret_ struct secret *hdr = secret_printf("X-Auth-Token: %s", secret_str(s->token));
	_cleanup_free_ char *checked = NULL;
	struct http_response resp = { 0 };
	struct details d;
	_unused_ json_auto_t *j = details_load(s, &d);
	int r = validate_session_location(s->location, ctx->info->base_url, d.sessions_uri, &checked);

	/* A DELETE only ever goes to a member of the Sessions collection. */
	if (r == -EBADMSG) {
		return auth_ctx_fail(ctx, r, "%s: session %s is not under the Sessions collection; not deleted",
				     ctx->info->base_url, s->id);
	}
	if (r == 0) {
		r = hdr ? request(ctx, "DELETE", checked, hdr, NULL, &resp) : -ENOMEM;
	}

	/* 401/404: already gone, which is what we wanted. */
	if (r == 0 && (resp.status < 200 || resp.status >= 300) && resp.status != 401 && resp.status != 404) {
		r = redfish_error_reply(ctx, "logout", &resp);
	}
	http_response_done(&resp);
	return r;
}

static json_t *session_json(const struct auth_session *s, bool for_store)
{
	struct details d;
	_unused_ json_auto_t *details = details_load(s, &d);
	json_t *j;

	j = json_pack("{s:s, s:s, s:s, s:O?}", "id", s->id, "location", s->location, "x_auth_token",
		      secret_str(s->token), "session_data", d.data);
	if (j && for_store) {
		json_object_set_new(j, "sessions_uri", json_string(d.sessions_uri ? d.sessions_uri : fallback_uris[0]));
		json_object_set_new(j, "session_timeout", json_integer(d.timeout));
	}
	return j;
}

static int redfish_session_save(const struct target_info *info, const struct auth_session *s, struct secret **ret)
{
	(void)info;
	return auth_json_secret(session_json(s, true), JSON_COMPACT, ret);
}

static int redfish_render(const struct target_info *info, const struct auth_session *s,
			  const struct auth_file_info *f, struct auth_blob **ret)
{
	(void)info;
	if (f->id == FILE_TOKEN) {
		return auth_render_token(s, ret);
	}
	return auth_render_json(session_json(s, false), JSON_INDENT(2), ret);
}

/* A saved session, as written by redfish_session_save(). Its expiry is unknown
 * after a restart: it is validated before first use. */
static int redfish_session_load(const struct target_info *info, const char *text, size_t len,
				struct auth_session **ret)
{
	_cleanup_session_ struct auth_session *s = auth_session_new();
	json_auto_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL), *details = NULL;
	const char *id = json_string_value(json_object_get(j, "id"));
	const char *location = json_string_value(json_object_get(j, "location"));
	const char *token = json_string_value(json_object_get(j, "x_auth_token"));
	const char *uri = json_string_value(json_object_get(j, "sessions_uri"));
	_cleanup_free_ char *checked = NULL;
	char *extra;

	if (!s || !validate_redfish_id(id) || !validate_token(token) || !uri || !location ||
	    validate_session_location(location, info->base_url, uri, &checked) < 0) {
		return -EINVAL;
	}
	details = json_pack("{s:s, s:I, s:O?}", "sessions_uri", uri, "session_timeout",
			    clamp_timeout(json_integer_value(json_object_get(j, "session_timeout"))), "session_data",
			    json_object_get(j, "session_data"));
	extra = details ? json_dumps(details, JSON_COMPACT) : NULL;
	s->token = secret_new_str(token);
	s->extra = secret_new_str(extra);
	erase_and_free_str(extra);
	s->id = strdup(id);
	s->location = strdup(location);
	s->expires_at = now_real() + 60; /* provisional; validation sets the real one */
	if (!s->token || !s->extra || !s->id || !s->location) {
		return -ENOMEM;
	}
	*ret = TAKE_PTR(s);
	return 0;
}

/* The collection URI: from the session's details, or discovered again. */
static int sessions_uri(struct auth_ctx *ctx, const struct auth_session *s, char **ret)
{
	struct details d;
	char *uri = NULL;
	json_t *j;
	int r;

	if (s) {
		j = details_load(s, &d);
		uri = d.sessions_uri ? strdup(d.sessions_uri) : NULL;
		json_decref(j);
		if (uri) {
			*ret = uri;
			return 0;
		}
	}
	r = discover(ctx, &uri);
	if (r < 0) {
		return r;
	}
	if (!uri && !(uri = strdup(fallback_uris[0]))) {
		return -ENOMEM;
	}
	*ret = uri;
	return 0;
}

/* One authenticated call on the collection or a member of it. */
static int member_call(struct auth_ctx *ctx, const struct auth_session *s, const char *method, const char *id,
		       struct http_response *resp)
{
	_cleanup_secret_ struct secret *hdr = auth_header(ctx, s);
	_cleanup_free_ char *uri = NULL, *path = NULL;
	int r;

	if (id && !validate_redfish_id(id)) {
		return -EINVAL; /* never leave the Sessions collection */
	}
	if (!hdr) {
		return auth_ctx_fail(ctx, -ENOKEY, "no session and no credentials to list sessions with");
	}
	r = sessions_uri(ctx, s, &uri);
	if (r < 0) {
		return r;
	}
	if (id && asprintf(&path, "%s/%s", uri, id) < 0) {
		return -ENOMEM;
	}
	r = request(ctx, method, id ? path : uri, hdr, NULL, resp);
	if (r == 0 && resp->status == 401 && s) {
		r = -ESTALE; /* our session died: renew and retry */
	}
	return r;
}

/* The Sessions collection: the Id (last path segment) of every member. */
int redfish_members_reply(struct auth_ctx *ctx, const struct http_response *resp, char ***ret_ids, size_t *ret_n)
{
	json_auto_t *j = NULL;
	json_t *members, *m;
	char **ids;
	size_t i, n = 0;
	int r;

	if (resp->status < 200 || resp->status >= 300) {
		return redfish_error_reply(ctx, "session listing", resp);
	}
	r = auth_parse_json(ctx, resp, &j);
	if (r < 0) {
		return r;
	}
	members = json_object_get(j, "Members");
	ids = calloc(json_array_size(members) + 1, sizeof(*ids));
	json_array_foreach(members, i, m) {
		const char *uri = json_string_value(json_object_get(m, "@odata.id"));
		if (ids && uri && validate_redfish_id(last_segment(uri)) && (ids[n] = strdup(last_segment(uri)))) {
			n++;
		}
	}
	if (!ids) {
		return -ENOMEM;
	}
	*ret_ids = ids;
	*ret_n = n;
	return 0;
}

static int redfish_sessions_list(struct auth_ctx *ctx, const struct auth_session *s, char ***ret_ids, size_t *ret_n)
{
	struct http_response resp = { 0 };
	int r = member_call(ctx, s, "GET", NULL, &resp);

	if (r == 0) {
		r = redfish_members_reply(ctx, &resp, ret_ids, ret_n);
	}
	http_response_done(&resp);
	return r;
}

static int redfish_sessions_get(struct auth_ctx *ctx, const struct auth_session *s, const char *id,
				struct auth_blob **ret)
{
	struct http_response resp = { 0 };
	json_auto_t *j = NULL;
	struct auth_blob *b;
	char *text;
	int r = member_call(ctx, s, "GET", id, &resp);

	if (r == 0 && resp.status == 404) {
		r = -ENOENT;
	} else if (r == 0 && (resp.status < 200 || resp.status >= 300)) {
		r = redfish_error_reply(ctx, "session read", &resp);
	} else if (r == 0 && (r = auth_parse_json(ctx, &resp, &j)) == 0) {
		redact_passwords(j);
		text = json_dumps(j, JSON_INDENT(2));
		b = text ? auth_blob_new_line(text) : NULL;
		free(text);
		if (b) {
			*ret = b;
		} else {
			r = -ENOMEM;
		}
	}
	http_response_done(&resp);
	return r;
}

static int redfish_sessions_delete(struct auth_ctx *ctx, const struct auth_session *s, const char *id)
{
	struct http_response resp = { 0 };
	int r = member_call(ctx, s, "DELETE", id, &resp);

	/* 404: already gone, which is what was asked for. */
	if (r == 0 && (resp.status < 200 || resp.status >= 300) && resp.status != 404) {
		r = redfish_error_reply(ctx, "session delete", &resp);
	}
	http_response_done(&resp);
	return r;
}

static const struct auth_sessions_ops redfish_sessions = {
	.list = redfish_sessions_list,
	.get = redfish_sessions_get,
	.delete = redfish_sessions_delete,
};

const struct auth_provider redfish_provider = {
	.name = "idrac",
	.files = redfish_files,
	.n_files = ELEMENTSOF(redfish_files),
	.features = AUTH_PROVIDER_HOST_NAMES | AUTH_PROVIDER_CHECKS_REGULARLY | AUTH_PROVIDER_RENEWS_IN_PLACE |
		    AUTH_PROVIDER_LOGOUT_REPLACED | AUTH_PROVIDER_LOGOUT_ON_EXIT,
	.min_validity = 0,
	.credentials_hint = "write user:password to credentials, or set user and password (or password_file, password_env) in the config",
	.env_user = "IDRAC_USERNAME",
	.env_password = "IDRAC_PASSWORD",
	.login = redfish_login,
	.validate = redfish_validate,
	.logout = redfish_logout,
	.render = redfish_render,
	.session_save = redfish_session_save,
	.session_load = redfish_session_load,
	.sessions = &redfish_sessions,
};
