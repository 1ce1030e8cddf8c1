/* Apstra AOS: POST /api/user/login, AUTHTOKEN header, JWT expiry,
 * GET /api/user to validate, POST /api/user/logout (DESIGN.md §3). */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "lib/log.h"
#include "provider.h"
#include "replies.h"
#include "lib/validate.h"

enum { FILE_TOKEN, FILE_SESSION_JSON };

static const struct auth_file_info aos_files[] = {
	{ "token", S_IFREG | 0400, AUTH_FILE_SESSION, AUTH_FILE_LOGOUT, FILE_TOKEN, NULL },
	{ "session.json", S_IFREG | 0600, AUTH_FILE_SESSION, AUTH_FILE_RESUME, FILE_SESSION_JSON, NULL },
	{ "credentials", S_IFREG | 0200, AUTH_FILE_CREDENTIALS, 0, 0, NULL },
	{ "status", S_IFREG | 0400, AUTH_FILE_STATUS, 0, 0, NULL },
};

/* The server's own words from an error body, or a short excerpt of it. */
static void server_message(const struct http_response *resp, char *buf, size_t size)
{
	json_auto_t *j = json_loadb(resp->body, resp->len, 0, NULL);
	json_t *m = json_object_get(j, "errors");

	if (!m) {
		m = json_object_get(j, "message");
	}
	if (json_is_string(m)) {
		snprintf(buf, size, "%s", json_string_value(m));
	} else if (m) {
		_cleanup_free_ char *dump = json_dumps(m, JSON_COMPACT);
		snprintf(buf, size, "%s", dump ? dump : "");
	} else {
		auth_body_excerpt(resp, buf, size);
	}
}

static int fail_status(struct auth_ctx *ctx, const char *what, const struct http_response *resp)
{
	char msg[256];
	int r = auth_http_status_errno(resp->status);

	server_message(resp, msg, sizeof(msg));
	if (r == -EKEYREJECTED) {
		return auth_ctx_fail(ctx, r, "%s rejected the %s (HTTP %ld): %s", ctx->info->base_url, what,
				     resp->status, msg[0] ? msg : "no message");
	}
	return auth_ctx_fail(ctx, r == -ENOENT ? -EIO : r, "%s failed the %s with HTTP %ld: %s",
			     ctx->info->base_url, what, resp->status, msg);
}

/* "AUTHTOKEN: <token>", as a secret. */
static struct secret *auth_header(const struct auth_session *s)
{
	return secret_printf("AUTHTOKEN: %s", secret_str(s->token));
}

static int request(struct auth_ctx *ctx, const char *method, const char *path, const struct auth_session *s,
		   const char *body, size_t body_len, struct http_response *resp)
{
	_cleanup_secret_ struct secret *hdr = s ? auth_header(s) : NULL;
	const char *headers[] = { "Accept: application/json", NULL };

	if (s && !hdr) {
		return -ENOMEM;
	}
	return auth_call(ctx, &(struct auth_call){
		.method = method, .path = path, .auth_header = hdr, .headers = headers,
		.body = body, .body_len = body_len, .content_type = body ? "application/json" : NULL,
	}, resp);
}

static int session_from_token(const char *token, struct auth_session **ret)
{
	_cleanup_session_ struct auth_session *s = auth_session_new();
	time_t exp = 0;
	int r;

	if (!s || !(s->token = secret_new_str(token))) {
		return -ENOMEM;
	}
	r = jwt_expiry(token, &exp);
	if (r < 0 && r != -ENODATA) {
		log_debug("Token is not a JWT with exp; treating it as valid until a 401");
	}
	s->expires_at = r == 0 ? exp : 0;
	*ret = TAKE_PTR(s);
	return 0;
}

/* 2xx with {"token","id"}: a session; else the server's error in words. */
int aos_login_reply(struct auth_ctx *ctx, const struct http_response *resp, struct auth_session **ret)
{
	json_auto_t *reply = NULL;
	const char *token;
	int r;

	if (resp->status < 200 || resp->status >= 300) {
		return fail_status(ctx, "login", resp);
	}
	r = auth_parse_json(ctx, resp, &reply);
	if (r < 0) {
		return r;
	}
	token = json_string_value(json_object_get(reply, "token"));
	if (!token || !*token) {
		r = auth_ctx_fail(ctx, -EBADMSG, "%s answered the login without a token", ctx->info->base_url);
	} else if (!validate_token(token)) {
		r = auth_ctx_fail(ctx, -EBADMSG, "%s answered the login with a malformed token field "
				  "(control characters, spaces or quotes)", ctx->info->base_url);
	} else if ((r = session_from_token(token, ret)) == 0 && (*ret)->expires_at) {
		/* exp is on the server's clock. */
		(*ret)->expires_at = auth_ctx_local_time(ctx, (*ret)->expires_at);
	}
	return r;
}

static int aos_login(struct auth_ctx *ctx, struct auth_session **ret)
{
	struct http_response resp = { 0 };
	_cleanup_erase_ char *body = NULL;
	json_auto_t *req = json_pack("{s:s, s:s}", "username", ctx->user, "password", secret_str(ctx->password));
	int r;

	body = req ? json_dumps(req, JSON_COMPACT) : NULL;
	if (!body) {
		return -ENOMEM;
	}
	r = request(ctx, "POST", "/api/user/login", NULL, body, strlen(body), &resp);
	if (r == 0) {
		r = aos_login_reply(ctx, &resp, ret);
	}
	http_response_done(&resp);
	return r;
}

static int aos_validate(struct auth_ctx *ctx, const struct auth_session *s, time_t *ret_expires_at)
{
	struct http_response resp = { 0 };
	int r = request(ctx, "GET", "/api/user", s, NULL, 0, &resp);

	if (r == 0 && (resp.status < 200 || resp.status >= 300)) {
		r = fail_status(ctx, "token", &resp);
		if (r == -EKEYREJECTED) {
			r = -ESTALE; /* this token is dead; the credentials may be fine */
		}
	}
	http_response_done(&resp);
	if (r == 0) {
		*ret_expires_at = 0;
	}
	return r;
}

static int aos_logout(struct auth_ctx *ctx, const struct auth_session *s)
{
	struct http_response resp = { 0 };
	int r = request(ctx, "POST", "/api/user/logout", s, NULL, 0, &resp);

	/* 401: the token is already dead, which is what we wanted. */
	if (r == 0 && (resp.status < 200 || resp.status >= 300) && resp.status != 401) {
		r = fail_status(ctx, "logout", &resp);
	}
	http_response_done(&resp);
	return r;
}

static json_t *session_json(const struct target_info *info, const struct auth_session *s)
{
	char exp[21];

	return json_pack("{s:s, s:I, s:s, s:s?}", "server", info->host, "port", (json_int_t)info->port,
			 "token", secret_str(s->token),
			 "expires_at", s->expires_at ? format_iso8601(s->expires_at, exp) : NULL);
}

static int aos_session_save(const struct target_info *info, const struct auth_session *s, struct secret **ret)
{
	return auth_json_secret(session_json(info, s), JSON_COMPACT, ret);
}

static int aos_render(const struct target_info *info, const struct auth_session *s, const struct auth_file_info *f,
		      struct auth_blob **ret)
{
	if (f->id == FILE_TOKEN) {
		return auth_render_token(s, ret);
	}
	return auth_render_json(session_json(info, s), JSON_COMPACT, ret);
}

/* {"server","port","token"} (aos-pyez Session.session); server and port, when
 * given, must name this target. */
static int aos_session_load(const struct target_info *info, const char *text, size_t len,
			    struct auth_session **ret)
{
	json_auto_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	json_t *server = json_object_get(j, "server"), *port = json_object_get(j, "port");
	const char *token = json_string_value(json_object_get(j, "token"));

	if (!json_is_object(j) || !validate_token(token)) {
		return -EINVAL;
	}
	if (server && (!json_is_string(server) || strcmp(json_string_value(server), info->host) != 0)) {
		return -EINVAL;
	}
	if (port && !(json_is_integer(port) && json_integer_value(port) == info->port) &&
	    !(json_is_string(port) && atol(json_string_value(port)) == (long)info->port)) {
		return -EINVAL;
	}
	return session_from_token(token, ret);
}

/* The server the AOS tools' environment names (aos-pyez: AOS_SERVER,
 * AOS_SERVER_PORT, AOS_USER, AOS_PASSWD, AOS_SESSION_TOKEN). */
static int aos_discover(struct auth_found **ret, size_t *ret_n)
{
	struct auth_found *f;
	const char *server = getenv("AOS_SERVER"), *v;
	long port = 0;

	if (!server || !*server) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	f = calloc(1, sizeof(*f));
	if (!f || !(f->name = strdup(server))) {
		free(f);
		return -ENOMEM;
	}
	if ((v = getenv("AOS_SERVER_PORT")) && config_parse_number("port", v, &port) == 0) {
		f->port = (unsigned)port;
	}
	if ((v = getenv("AOS_USER")) && getenv("AOS_PASSWD")) {
		f->user = strdup(v);
		f->password = secret_new_str(getenv("AOS_PASSWD"));
	}
	if ((v = getenv("AOS_SESSION_TOKEN"))) {
		json_auto_t *j = json_pack("{s:s}", "token", v);
		auth_json_secret(json_incref(j), JSON_COMPACT, &f->session);
	}
	*ret = f;
	*ret_n = 1;
	return 0;
}

const struct auth_provider aos_provider = {
	.name = "aos",
	.files = aos_files,
	.n_files = ELEMENTSOF(aos_files),
	/* Checked regularly: a 401 for a live token (server restart) means log in
	 * again. No LOGOUT_ON_EXIT: the saved session is resumed after a restart. */
	.features = AUTH_PROVIDER_HOST_NAMES | AUTH_PROVIDER_CHECKS_REGULARLY,
	.min_validity = 2,
	.credentials_hint = "write user:password to credentials, or set user and password (or password_file, password_env) in the config",
	.login = aos_login,
	.validate = aos_validate,
	.logout = aos_logout,
	.render = aos_render,
	.session_save = aos_session_save,
	.session_load = aos_session_load,
	.discover = aos_discover,
};
