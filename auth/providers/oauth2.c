/* OAuth 2.0 client credentials (RFC 6749 §4.4): the machine-to-machine flow
 * of Keycloak, Okta, Entra ID and most APIs. A bearer token from the token
 * endpoint, renewed ahead of expiry by asking again (the grant has no
 * refresh token, §4.4.3); logout is revocation (RFC 7009) when the server
 * offers it, else dropping the token. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <strings.h>
#include <sys/stat.h>

#include "lib/log.h"
#include "provider.h"
#include "replies.h"
#include "lib/validate.h"

#define MIN_VALIDITY 10 /* s: golang.org/x/oauth2's expiryDelta */

enum { FILE_TOKEN, FILE_HEADER, FILE_SESSION_JSON };

static const struct auth_file_info oauth2_files[] = {
	{ "token", S_IFREG | 0400, AUTH_FILE_SESSION, AUTH_FILE_LOGOUT, FILE_TOKEN, NULL },
	{ "header", S_IFREG | 0400, AUTH_FILE_SESSION, 0, FILE_HEADER, NULL },
	{ "session.json", S_IFREG | 0400, AUTH_FILE_SESSION, 0, FILE_SESSION_JSON, NULL },
	{ "credentials", S_IFREG | 0200, AUTH_FILE_CREDENTIALS, 0, 0, NULL },
	{ "status", S_IFREG | 0400, AUTH_FILE_STATUS, 0, 0, NULL },
};

/* RFC 6749 §3.3: scope tokens of %x21 / %x23-5B / %x5D-7E, space-separated. */
static bool scope_valid(const char *scope)
{
	for (const char *p = scope; *p; p++) {
		if (*p != ' ' && (*p < 0x21 || *p > 0x7e || *p == '"' || *p == '\\')) {
			return false;
		}
	}
	return *scope != 0;
}

static bool is_http_url(const char *url)
{
	return url && (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0) && validate_token(url);
}

/* The token endpoint is the target's base URL; its scheme is the target's. */
static int oauth2_init_info(struct target_info *info)
{
	const char *url = target_setting(info, "token_url"), *revoke = target_setting(info, "revocation_url");
	const char *method = target_setting(info, "auth_method");
	char *base;

	if (!is_http_url(url) || (revoke && !is_http_url(revoke))) {
		return -EINVAL; /* token_url missing, or not an http(s) URL */
	}
	if (method && strcmp(method, "client_secret_basic") && strcmp(method, "client_secret_post")) {
		return -EINVAL;
	}
	base = strdup(url);
	if (!base) {
		return -ENOMEM;
	}
	free(info->base_url);
	info->base_url = base;
	info->scheme = strncmp(url, "https:", 6) == 0 ? "https" : "http";
	return 0;
}

/* client_id and client_secret (_file, _env) of the section, else of the
 * [oauth2] defaults where the target may have them. */
static int oauth2_default_credentials(const struct target_info *info, char **ret_user, struct secret **ret_password)
{
	const struct target_config *from = info->section;
	struct secret *secret = NULL;
	const char *id = target_config_get(from, "client_id");
	char *user;
	int r;

	if (!id && target_defaults_allowed(info)) {
		from = info->defaults;
		id = target_config_get(from, "client_id");
	}
	if (!id) {
		return -ENOENT;
	}
	r = config_resolve_secret(from, "client_secret", &secret);
	if (r < 0) {
		return r;
	}
	user = strdup(id);
	if (!user) {
		secret_free(secret);
		return -ENOMEM;
	}
	*ret_user = user;
	*ret_password = secret;
	return 0;
}

/* "client_id:client_secret", or JSON {"client_id","client_secret"} (also
 * {"username","password"}, the form credentials are saved in). */
static int oauth2_parse_credentials(const char *data, size_t len, char **ret_user, struct secret **ret_password)
{
	json_auto_t *j = NULL;
	const char *id, *secret;
	struct secret *s;
	size_t skip = 0;
	char *user;

	while (skip < len && memchr(" \t\r\n", data[skip], 4)) {
		skip++;
	}
	if (skip == len || data[skip] != '{') {
		return credentials_parse(data, len, ret_user, ret_password);
	}
	j = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
	id = json_string_value(json_object_get(j, "client_id"));
	secret = json_string_value(json_object_get(j, "client_secret"));
	if (!id && !secret) {
		return credentials_parse(data, len, ret_user, ret_password);
	}
	if (!id || !secret || !*secret || !validate_token(id)) {
		return -EINVAL;
	}
	user = strdup(id);
	s = secret_new_str(secret);
	if (!user || !s) {
		free(user);
		secret_free(s);
		return -ENOMEM;
	}
	*ret_user = user;
	*ret_password = s;
	return 0;
}

/* Client authentication (RFC 6749 §2.3.1): HTTP Basic of the form-encoded
 * id and secret (*ret_header), or both in the body (*ret_fields, to append). */
static int client_auth(const struct auth_ctx *ctx, struct secret **ret_fields, struct secret **ret_header)
{
	const char *method = target_setting(ctx->info, "auth_method");
	_cleanup_free_ char *id = http_escape(ctx->user);
	_cleanup_erase_ char *secret = http_escape(secret_str(ctx->password)), *b64 = NULL;
	_cleanup_secret_ struct secret *pair = NULL;
	struct secret *header;

	if (!id || !secret) {
		return -ENOMEM;
	}
	if (method && strcmp(method, "client_secret_post") == 0) {
		*ret_fields = secret_printf("&client_id=%s&client_secret=%s", id, secret);
		*ret_header = NULL;
		return *ret_fields ? 0 : -ENOMEM;
	}
	pair = secret_printf("%s:%s", id, secret);
	b64 = pair ? malloc(4 * ((pair->len + 2) / 3) + 1) : NULL;
	if (!b64) {
		return -ENOMEM;
	}
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)pair->data, (int)pair->len);
	header = secret_printf("Authorization: Basic %s", b64);
	if (!header) {
		return -ENOMEM;
	}
	*ret_fields = NULL;
	*ret_header = header;
	return 0;
}

/* POSTs a form to url, with the client authenticated. prefix: the form's
 * own fields, already encoded. The body is made in the secure heap: an
 * open_memstream() buffer, grown or shrunk by realloc, leaves copies of the
 * secret or token in the blocks realloc gives back. */
static int post_form(struct auth_ctx *ctx, const char *url, const char *prefix, struct http_response *resp)
{
	static const char *const headers[] = { "Accept: application/json", NULL };
	_cleanup_secret_ struct secret *auth = NULL, *fields = NULL, *body = NULL;
	int r;

	if (!ctx->user || !ctx->password) {
		return auth_ctx_fail(ctx, -ENOKEY, "no client credentials");
	}
	r = client_auth(ctx, &fields, &auth);
	if (r < 0) {
		return r;
	}
	body = secret_printf("%s%s", prefix, fields ? fields->data : "");
	if (!body) {
		return -ENOMEM;
	}
	return auth_call(ctx, &(struct auth_call){
		.method = "POST", .path = url, .auth_header = auth, .headers = headers,
		.body = body->data, .body_len = body->len, .content_type = "application/x-www-form-urlencoded",
	}, resp);
}

/* RFC 6749 §5.2: the error code to errno, its description to status. */
int oauth2_error_reply(struct auth_ctx *ctx, const char *what, const struct http_response *resp)
{
	json_auto_t *j = json_loadb(resp->body, resp->len, 0, NULL);
	const char *error = json_string_value(json_object_get(j, "error"));
	const char *description = json_string_value(json_object_get(j, "error_description"));
	char excerpt[161];
	int r;

	if (resp->status >= 500) {
		r = -EIO;
	} else if (!error) {
		r = resp->status == 401 ? -EKEYREJECTED : auth_http_status_errno(resp->status) == -EAGAIN ? -EAGAIN : -EIO;
	} else if (!strcmp(error, "invalid_client") || !strcmp(error, "invalid_grant")) {
		r = -EKEYREJECTED;
	} else if (!strcmp(error, "invalid_scope") || !strcmp(error, "invalid_request") ||
		   !strcmp(error, "invalid_target")) {
		r = -EINVAL;
	} else if (!strcmp(error, "unauthorized_client") || !strcmp(error, "access_denied")) {
		r = -EACCES;
	} else if (!strcmp(error, "unsupported_grant_type")) {
		r = -EOPNOTSUPP;
	} else {
		r = -EIO;
	}
	if (!error) {
		auth_body_excerpt(resp, excerpt, sizeof(excerpt));
	}
	return auth_ctx_fail(ctx, r, "%s refused the %s (HTTP %ld): %s%s%s", ctx->info->base_url, what, resp->status,
			     error ? error : excerpt, description ? ": " : "", description ? description : "");
}

/* The token response (§5.1): a bearer access_token, expiring after
 * expires_in seconds, else at the JWT's exp, else when the server says. */
int oauth2_token_reply(struct auth_ctx *ctx, const struct http_response *resp, struct auth_session **ret)
{
	_cleanup_session_ struct auth_session *s = NULL;
	json_auto_t *j = NULL;
	const char *token, *type, *scope;
	json_t *expires_in;
	time_t exp = 0;
	int r;

	if (resp->status != 200) {
		return oauth2_error_reply(ctx, "token request", resp);
	}
	r = auth_parse_json(ctx, resp, &j);
	if (r < 0) {
		return r;
	}
	token = json_string_value(json_object_get(j, "access_token"));
	type = json_string_value(json_object_get(j, "token_type"));
	scope = json_string_value(json_object_get(j, "scope"));
	expires_in = json_object_get(j, "expires_in");
	if (!token || !validate_token(token)) {
		return auth_ctx_fail(ctx, -EBADMSG, "%s answered without a well-formed access_token", ctx->info->base_url);
	}
	if (!type || strcasecmp(type, "Bearer") != 0) {
		return auth_ctx_fail(ctx, -EBADMSG, "%s answered with token_type %s, not Bearer", ctx->info->base_url,
				     type ? type : "(none)");
	}
	if (expires_in && !validate_json_int(expires_in, 1, 10L * 365 * 86400)) {
		return auth_ctx_fail(ctx, -EBADMSG, "%s answered with a malformed expires_in", ctx->info->base_url);
	}
	if (scope && !scope_valid(scope)) {
		return auth_ctx_fail(ctx, -EBADMSG, "%s answered with a malformed scope", ctx->info->base_url);
	}
	s = auth_session_new();
	if (!s || !(s->token = secret_new_str(token))) {
		return -ENOMEM;
	}
	if (expires_in) {
		s->expires_at = s->obtained_at + (time_t)json_integer_value(expires_in);
	} else if (jwt_expiry(token, &exp) == 0) {
		s->expires_at = auth_ctx_local_time(ctx, exp); /* exp is on the server's clock */
	}
	if (!scope) {
		scope = target_setting(ctx->info, "scope");
	}
	r = auth_json_secret(json_pack("{s:s, s:s?}", "token_type", "Bearer", "scope", scope), JSON_COMPACT, &s->extra);
	if (r < 0) {
		return r;
	}
	*ret = TAKE_PTR(s);
	return 0;
}

static int oauth2_login(struct auth_ctx *ctx, struct auth_session **ret)
{
	const char *scope = target_setting(ctx->info, "scope"), *audience = target_setting(ctx->info, "audience");
	_cleanup_free_ char *scope_e = scope ? http_escape(scope) : NULL, *audience_e = audience ? http_escape(audience) : NULL;
	_cleanup_free_ char *form = NULL;
	struct http_response resp = { 0 };
	int r;

	if ((scope && !scope_e) || (audience && !audience_e) ||
	    asprintf(&form, "grant_type=client_credentials%s%s%s%s", scope ? "&scope=" : "", scope ? scope_e : "",
		     audience ? "&audience=" : "", audience ? audience_e : "") < 0) {
		return -ENOMEM;
	}
	r = post_form(ctx, ctx->info->base_url, form, &resp);
	if (r == 0) {
		r = oauth2_token_reply(ctx, &resp, ret);
	}
	http_response_done(&resp);
	return r;
}

/* A bearer token can't be checked without an introspection endpoint the
 * client may not use: it is good until it expires. */
static int oauth2_validate(struct auth_ctx *ctx, const struct auth_session *s, time_t *ret_expires_at)
{
	(void)ctx;
	if (s->expires_at && s->expires_at <= now_real()) {
		return -ESTALE;
	}
	*ret_expires_at = 0;
	return 0;
}

/* RFC 7009 revocation when revocation_url is set; 200 = revoked (or unknown). */
static int oauth2_logout(struct auth_ctx *ctx, const struct auth_session *s)
{
	const char *url = target_setting(ctx->info, "revocation_url");
	_cleanup_erase_ char *token = NULL;
	_cleanup_secret_ struct secret *form = NULL;
	struct http_response resp = { 0 };
	int r;

	if (!url) {
		return 0; /* dropping the token is all */
	}
	/* Not asprintf(): the blocks its reallocs give back would keep pieces of the token. */
	token = http_escape(secret_str(s->token));
	form = token ? secret_printf("token=%s&token_type_hint=access_token", token) : NULL;
	if (!form) {
		return -ENOMEM;
	}
	r = post_form(ctx, url, form->data, &resp);
	if (r == 0 && resp.status != 200) {
		r = oauth2_error_reply(ctx, "revocation", &resp);
	}
	http_response_done(&resp);
	return r;
}

static json_t *session_json(const struct auth_session *s, bool for_store)
{
	json_auto_t *extra = json_loads(s->extra->data, 0, NULL);
	char exp[21];
	json_t *j;

	j = json_pack("{s:s, s:O?, s:s?}", "token_type", "Bearer", "scope", json_object_get(extra, "scope"),
		      "expires_at", s->expires_at ? format_iso8601(s->expires_at, exp) : NULL);
	if (j && for_store) {
		json_object_set_new(j, "access_token", json_string(secret_str(s->token)));
		json_object_set_new(j, "expires", json_integer(s->expires_at));
		json_object_set_new(j, "obtained", json_integer(s->obtained_at));
	}
	return j;
}

static int oauth2_session_save(const struct target_info *info, const struct auth_session *s, struct secret **ret)
{
	(void)info;
	return auth_json_secret(session_json(s, true), JSON_COMPACT, ret);
}

static int oauth2_session_load(const struct target_info *info, const char *text, size_t len, struct auth_session **ret)
{
	_cleanup_session_ struct auth_session *s = auth_session_new();
	json_auto_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	const char *token = json_string_value(json_object_get(j, "access_token"));
	const char *scope = json_string_value(json_object_get(j, "scope"));
	json_t *expires = json_object_get(j, "expires"), *obtained = json_object_get(j, "obtained");
	int r;

	(void)info;
	if (!s) {
		return -ENOMEM;
	}
	if (!json_is_object(j) || !validate_token(token) || !validate_json_int(expires, 0, INT64_MAX) ||
	    !validate_json_int(obtained, 0, INT64_MAX) || (scope && !scope_valid(scope))) {
		return -EINVAL;
	}
	s->token = secret_new_str(token);
	s->expires_at = (time_t)json_integer_value(expires);
	s->obtained_at = (time_t)json_integer_value(obtained);
	r = auth_json_secret(json_pack("{s:s, s:s?}", "token_type", "Bearer", "scope", scope), JSON_COMPACT, &s->extra);
	if (r < 0 || !s->token) {
		return -ENOMEM;
	}
	*ret = TAKE_PTR(s);
	return 0;
}

static int oauth2_render(const struct target_info *info, const struct auth_session *s, const struct auth_file_info *f,
			 struct auth_blob **ret)
{
	_cleanup_secret_ struct secret *text = NULL;
	struct auth_blob *b;

	(void)info;
	if (f->id == FILE_TOKEN) {
		return auth_render_token(s, ret);
	}
	if (f->id != FILE_HEADER) {
		return auth_render_json(session_json(s, false), JSON_INDENT(2), ret);
	}
	if (!validate_token(secret_str(s->token))) {
		return -EBADMSG; /* never reached: checked when stored */
	}
	text = secret_printf("Authorization: Bearer %s", secret_str(s->token));
	b = text ? auth_blob_new(text->data, text->len) : NULL;
	if (!b) {
		return -ENOMEM;
	}
	*ret = b;
	return 0;
}

const struct auth_provider oauth2_provider = {
	.name = "oauth2",
	.files = oauth2_files,
	.n_files = ELEMENTSOF(oauth2_files),
	.features = 0, /* names are names; the token is fetched again rather than renewed */
	.min_validity = MIN_VALIDITY,
	.credentials_hint = "write client_id:client_secret (or JSON {\"client_id\",\"client_secret\"}) to credentials, or set client_id and client_secret (or client_secret_file, client_secret_env) in the config",
	.login = oauth2_login,
	.validate = oauth2_validate,
	.logout = oauth2_logout,
	.render = oauth2_render,
	.session_save = oauth2_session_save,
	.session_load = oauth2_session_load,
	.init_info = oauth2_init_info,
	.default_credentials = oauth2_default_credentials,
	.parse_credentials = oauth2_parse_credentials,
};
