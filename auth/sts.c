/* AWS STS GetSessionToken: temporary credentials for credential_process and
 * `. env`, signed with SigV4 by libcurl, answered in XML (parsed by libxml2). */
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <sys/stat.h>

#include "log.h"
#include "provider.h"
#include "validate.h"
#include "sts.h"

#define BOTOCORE_REFRESH_WINDOW 900 /* 15 min: the CLI refreshes on every call below it */

/* An MFA code: six digits (and the newline echo adds); fewer digits may
 * still become one. */
static int check_mfa(const char *data, size_t len)
{
	size_t digits = strspn(data, "0123456789");

	if (digits > len) {
		digits = len;
	}
	if (digits == 6 && (len == 6 || (len == 7 && data[6] == '\n'))) {
		return 0;
	}
	return digits == len && len < 6 ? -ENODATA : -EINVAL;
}

enum { FILE_CREDS_JSON, FILE_ENV };

static const struct config_range sts_settings[] = {
	{ "duration_seconds", 900, 129600 }, /* GetSessionToken's range */
	{ NULL, 0, 0 },
};

static const struct auth_file_info sts_files[] = {
	{ "creds.json", S_IFREG | 0400, AUTH_FILE_SESSION, AUTH_FILE_LOGOUT, FILE_CREDS_JSON, NULL },
	{ "env", S_IFREG | 0400, AUTH_FILE_SESSION, 0, FILE_ENV, NULL },
	{ "credentials", S_IFREG | 0200, AUTH_FILE_CREDENTIALS, 0, 0, NULL },
	{ "mfa", S_IFREG | 0200, AUTH_FILE_ONE_TIME, 0, 0, check_mfa },
	{ "status", S_IFREG | 0400, AUTH_FILE_STATUS, 0, 0, NULL },
};

const char *sts_profile_name(const struct target_info *info)
{
	const char *p = target_setting(info, "profile");

	return p ? p : info->name;
}

char *sts_setting(const struct target_info *info, const char *key, const char *aws_key, const char *env)
{
	struct aws_profile p = { 0 };
	const char *v = target_setting(info, key);
	char *result = NULL;

	if (v) {
		return strdup(v);
	}
	if (aws_key && aws_profile_load(sts_profile_name(info), &p) == 0) {
		v = aws_profile_string(&p, aws_key);
		result = v ? strdup(v) : NULL;
		aws_profile_done(&p);
	}
	if (!result && env && (v = getenv(env)) && *v) {
		result = strdup(v);
	}
	return result;
}

/* The section's region, the profile's, AWS_REGION, AWS_DEFAULT_REGION, us-east-1. */
static char *region_of(const struct target_info *info)
{
	char *region = sts_setting(info, "region", "region", "AWS_REGION");
	const char *v = getenv("AWS_DEFAULT_REGION");

	return region ? region : strdup(v && *v ? v : "us-east-1");
}

/* The endpoint, first found of: endpoint_url in the [sts "x"] section; in
 * the profile's [services] section (sts = endpoint_url = ...), then in the
 * profile; AWS_ENDPOINT_URL_STS; AWS_ENDPOINT_URL. NULL: the regional one. */
static char *endpoint_of(const struct target_info *info)
{
	struct aws_profile p = { 0 };
	const char *v = target_setting(info, "endpoint_url");
	char *url = NULL;

	if (v) {
		return strdup(v);
	}
	if (aws_profile_load(sts_profile_name(info), &p) == 0) {
		if (!p.services || aws_services_endpoint(p.services, "sts", &url) < 0) {
			url = p.endpoint_url ? strdup(p.endpoint_url) : NULL;
		}
		aws_profile_done(&p);
	}
	if (!url && (v = getenv("AWS_ENDPOINT_URL_STS")) && *v) {
		url = strdup(v);
	}
	if (!url && (v = getenv("AWS_ENDPOINT_URL")) && *v) {
		url = strdup(v);
	}
	return url;
}

static int sts_init_info(struct target_info *info)
{
	_cleanup_free_ char *region = region_of(info);
	char *url = endpoint_of(info);

	if (url) {
		/* The endpoint is the base: no trailing slash, the request adds "/". */
		if (url[0] && url[strlen(url) - 1] == '/') {
			url[strlen(url) - 1] = 0;
		}
	} else if (!region || asprintf(&url, "https://sts.%s.amazonaws.com", region) < 0) {
		url = NULL;
	}
	if (!url) {
		return -ENOMEM;
	}
	free(info->base_url);
	info->base_url = url;
	return 0;
}

/* A key pair with a session token is kept as one secret, "secret token"
 * (neither holds a space), wherever a target's password goes. */
static struct secret *secret_with_token(const struct secret *secret, const struct secret *token)
{
	return token ? secret_printf("%s %s", secret_str(secret), secret_str(token)) : secret_dup(secret);
}

/* The profile's keys; for profiles whose credentials come from elsewhere
 * (role_arn, credential_process, sso_*), the profile's name and an empty
 * password: login finds out where, and says so when it cannot. */
static int sts_default_credentials(const struct target_info *info, char **ret_user, struct secret **ret_password)
{
	struct aws_profile p = { 0 };
	const char *id = target_setting(info, "aws_access_key_id");
	int r;

	if (id) {
		_cleanup_secret_ struct secret *secret = NULL;
		char *user;
		r = config_resolve_secret(info->section, "aws_secret_access_key", &secret);
		if (r < 0) {
			return r;
		}
		user = strdup(id);
		if (!user) {
			return -ENOMEM;
		}
		*ret_user = user;
		*ret_password = TAKE_PTR(secret);
		return 0;
	}
	r = aws_profile_load(sts_profile_name(info), &p);
	if (r == -ENOENT && target_setting(info, "role_arn")) {
		r = 0; /* a role of the config file alone */
	}
	if (r < 0) {
		return r;
	}
	if (p.role_arn || target_setting(info, "role_arn") || p.credential_process || p.sso) {
		*ret_user = strdup(sts_profile_name(info));
		*ret_password = secret_new_str("");
	} else if (p.access_key_id && p.secret_access_key) {
		*ret_user = TAKE_PTR(p.access_key_id);
		*ret_password = secret_with_token(p.secret_access_key, p.session_token);
	} else {
		r = -ENOENT;
	}
	aws_profile_done(&p);
	if (r == 0 && (!*ret_user || !*ret_password)) {
		free(TAKE_PTR(*ret_user));
		secret_free(TAKE_PTR(*ret_password));
		r = -ENOMEM;
	}
	return r;
}

void sts_creds_done(struct sts_creds *c)
{
	free(c->id);
	secret_free(c->secret);
	secret_free(c->token);
	free(c->origin);
	*c = (struct sts_creds){ 0 };
}

static int creds_new(const char *id, const char *secret, size_t secret_len, const char *token, const char *origin,
		     struct sts_creds *ret)
{
	struct sts_creds c = {
		.id = strdup(id),
		.secret = secret_new(secret, secret_len),
		.token = token ? secret_new_str(token) : NULL,
		.origin = strdup(origin),
	};

	if (!c.id || !c.secret || (token && !c.token) || !c.origin) {
		sts_creds_done(&c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

int sts_creds_copy(const struct sts_creds *c, const char *origin, struct sts_creds *ret)
{
	int r = creds_new(c->id, c->secret->data, c->secret->len, secret_str(c->token), origin ? origin : c->origin, ret);

	if (r == 0) {
		ret->expires_at = c->expires_at;
	}
	return r;
}

int sts_creds_from_profile(const struct aws_profile *p, const char *origin, struct sts_creds *ret)
{
	if (!p->access_key_id || !p->secret_access_key) {
		return -ENOENT;
	}
	return creds_new(p->access_key_id, p->secret_access_key->data, p->secret_access_key->len,
			 secret_str(p->session_token), origin, ret);
}

int sts_creds_from_env(struct sts_creds *ret)
{
	const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
	const char *token = getenv("AWS_SESSION_TOKEN");

	if (!id || !*id || !secret || !*secret) {
		return -ENOENT;
	}
	return creds_new(id, secret, strlen(secret), token && *token ? token : NULL, "the daemon's environment", ret);
}

int sts_creds_from_session(const struct auth_session *s, const char *origin, struct sts_creds *ret)
{
	json_auto_t *j = json_loads(s->extra->data, 0, NULL);
	const char *secret = json_string_value(json_object_get(j, "SecretAccessKey"));
	int r = -EBADMSG;

	if (s->id && secret && s->token) {
		r = creds_new(s->id, secret, strlen(secret), secret_str(s->token), origin, ret);
		if (r == 0) {
			ret->expires_at = s->expires_at;
		}
	}
	return r;
}

/* The target's own credentials (ctx), NULL when its profile is to be followed. */
static int creds_from_ctx(const struct auth_ctx *ctx, struct sts_creds *ret, bool *ret_found)
{
	const char *space = ctx->password ? memchr(ctx->password->data, ' ', ctx->password->len) : NULL;
	size_t len = space ? (size_t)(space - ctx->password->data) : (ctx->password ? ctx->password->len : 0);
	_cleanup_free_ char *origin = NULL;

	*ret_found = ctx->user && len > 0;
	if (!*ret_found) {
		return 0;
	}
	if (asprintf(&origin, "the credentials of sts/%s", ctx->info->name) < 0) {
		return -ENOMEM;
	}
	return creds_new(ctx->user, ctx->password->data, len, space ? space + 1 : NULL, origin, ret);
}

struct key_pair {
	char *id;
	struct secret *secret;
	struct secret *token;
	int r;
};

static int on_key_line(void *userdata, const char *section, const char *key, const char *value)
{
	struct key_pair *k = userdata;

	(void)section;
	if (strcmp(key, "aws_access_key_id") == 0) {
		free(k->id);
		k->id = strdup(value);
	} else if (strcmp(key, "aws_secret_access_key") == 0) {
		secret_free(k->secret);
		k->secret = secret_new_str(value);
	} else if (strcmp(key, "aws_session_token") == 0) {
		secret_free(k->token);
		k->token = secret_new_str(value);
	} else {
		k->r = -EINVAL;
		return 0;
	}
	return 1;
}

static bool key_id_valid(const char *id)
{
	size_t len = strlen(id);

	return len >= 16 && len <= 128 && strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == len;
}

/* A key pair: aws_access_key_id / aws_secret_access_key [/ aws_session_token]
 * INI lines (as in ~/.aws/credentials, a [profile] header allowed) or JSON
 * {"AccessKeyId","SecretAccessKey"[,"SessionToken"]}. With a session token
 * they are temporary: the source credentials of a role. */
static int sts_parse_credentials(const char *data, size_t len, char **ret_user, struct secret **ret_password)
{
	_cleanup_free_ char *text = strndup(data, len);
	struct key_pair k = { 0 };
	struct secret *password;
	json_t *j;

	if (!text || memchr(data, 0, len)) {
		return text ? -EINVAL : -ENOMEM;
	}
	if (text[strspn(text, " \t\r\n")] == '{') {
		j = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
		const char *id = json_string_value(json_object_get(j, "AccessKeyId"));
		const char *secret = json_string_value(json_object_get(j, "SecretAccessKey"));
		const char *token = json_string_value(json_object_get(j, "SessionToken"));
		k.id = id ? strdup(id) : NULL;
		k.secret = secret ? secret_new_str(secret) : NULL;
		k.token = token ? secret_new_str(token) : NULL;
		json_decref(j);
	} else if (aws_ini_parse_string(text, on_key_line, &k) != 0) {
		k.r = -EINVAL;
	}
	OPENSSL_cleanse(text, len);
	if (k.r < 0 || !k.id || !k.secret || !key_id_valid(k.id) || k.secret->len < 16 ||
	    strchr(k.secret->data, ' ') || (k.token && (k.token->len < 16 || strchr(k.token->data, ' ')))) {
		free(k.id);
		secret_free(k.secret);
		secret_free(k.token);
		return -EINVAL;
	}
	password = secret_with_token(k.secret, k.token);
	secret_free(k.secret);
	secret_free(k.token);
	if (!password) {
		free(k.id);
		return -ENOMEM;
	}
	*ret_user = k.id;
	*ret_password = password;
	return 0;
}

/* GetSessionToken with mfa_serial needs a code each time. A role profile's
 * login asks for one itself, only when no MFA session can be reused. */
static bool sts_needs_mfa(const struct target_info *info)
{
	_cleanup_free_ char *serial = sts_setting(info, "mfa_serial_number", "mfa_serial", NULL);
	_cleanup_free_ char *role = sts_setting(info, "role_arn", "role_arn", NULL);

	return serial && !role;
}

/* First element named name (any namespace) under node, depth first. */
static xmlNode *find(xmlNode *node, const char *name)
{
	for (xmlNode *n = node; n; n = n->next) {
		xmlNode *found;
		if (n->type == XML_ELEMENT_NODE && xmlStrcmp(n->name, (const xmlChar *)name) == 0) {
			return n;
		}
		if ((found = find(n->children, name))) {
			return found;
		}
	}
	return NULL;
}

/* Text of the element, wiped when freed (xmlMemSetup in main wipes). */
static char *text_of(xmlNode *root, const char *name)
{
	xmlNode *n = find(root, name);

	return n ? (char *)xmlNodeGetContent(n) : NULL;
}

/* "2026-11-23T16:00:00Z" or "2026-11-23T16:00:00.000Z". */
static int parse_expiration(const char *s, time_t *ret)
{
	struct tm tm = { 0 };
	const char *rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;

	if (rest && *rest == '.') {
		rest += 1 + strspn(rest + 1, "0123456789");
	}
	if (!rest || strcmp(rest, "Z") != 0) {
		return -EBADMSG;
	}
	*ret = timegm(&tm);
	return *ret > 0 ? 0 : -EBADMSG;
}

/* STS's error envelope → errno and status text carrying Code and Message.
 * c: the credentials the request was signed with (NULL: unknown). */
static int sts_error(struct auth_ctx *ctx, long status, xmlNode *root, const char *action, const struct sts_creds *c)
{
	_cleanup_free_ char *code = text_of(root, "Code"), *message = text_of(root, "Message");
	const char *whose = "";
	int r = -EIO; /* a Code we don't know: the server failed us */

	if (!code) {
		return auth_ctx_fail(ctx, status >= 500 ? -EIO : -EBADMSG, "%s answered HTTP %ld without an STS error",
				     ctx->info->base_url, status);
	}
	if (!strcmp(code, "InvalidClientTokenId") || !strcmp(code, "SignatureDoesNotMatch") ||
	    !strcmp(code, "UnrecognizedClientException")) {
		r = -EKEYREJECTED;
	} else if (!strcmp(code, "AccessDenied")) {
		/* A wrong MFA code is a rejected key (never retried by itself); a
		 * trust policy or external id that does not allow the call is not. */
		r = message && strstr(message, "MultiFactorAuthentication") ? -EKEYREJECTED : -EACCES;
	} else if (!strcmp(code, "ExpiredToken") || !strcmp(code, "RequestExpired")) {
		r = -EKEYEXPIRED;
		if (c && c->token && !strcmp(code, "ExpiredToken")) {
			whose = c->origin;
		}
	} else if (!strcmp(code, "ValidationError") || !strcmp(code, "InvalidParameterValue")) {
		r = -EINVAL;
	} else if (!strcmp(code, "Throttling") || !strcmp(code, "ThrottlingException")) {
		r = -EAGAIN;
	} else if (!strcmp(code, "RegionDisabledException")) {
		r = -EHOSTUNREACH; /* STS is not activated in that region: no endpoint to reach */
	}
	return auth_ctx_fail(ctx, r, "STS %s refused %s (HTTP %ld): %s: %s%s%s%s", ctx->info->base_url, action, status,
			     code, message ? message : "", *whose ? " (the temporary credentials: " : "", whose,
			     *whose ? ")" : "");
}

/* The first field of temporary credentials that breaks its grammar, or NULL. */
static const char *sts_credentials_invalid(const char *id, const char *secret, const char *token,
					   const char *expiration)
{
	if (!validate_aws_key_id(id)) {
		return "AccessKeyId";
	}
	if (!validate_base64(secret)) {
		return "SecretAccessKey";
	}
	if (!validate_base64(token)) {
		return "SessionToken";
	}
	if (!validate_rfc3339(expiration)) {
		return "Expiration";
	}
	return NULL;
}

static int session_from_xml(struct auth_ctx *ctx, xmlNode *root, struct auth_session **ret)
{
	_cleanup_session_ struct auth_session *s = auth_session_new();
	_cleanup_free_ char *id = text_of(root, "AccessKeyId"), *expiration = text_of(root, "Expiration");
	_cleanup_erase_ char *secret = text_of(root, "SecretAccessKey"), *token = text_of(root, "SessionToken");
	const char *bad = sts_credentials_invalid(id, secret, token, expiration);
	char exp_iso[21];
	json_t *j;
	char *text;

	if (!s || !id || !secret || !token || !expiration) {
		return auth_ctx_fail(ctx, -EBADMSG, "%s answered GetSessionToken without complete credentials",
				     ctx->info->base_url);
	}
	if (bad || parse_expiration(expiration, &s->expires_at) < 0) {
		return auth_ctx_fail(ctx, -EBADMSG, "%s answered GetSessionToken with a malformed %s",
				     ctx->info->base_url, bad ? bad : "Expiration");
	}
	j = json_pack("{s:i, s:s, s:s, s:s, s:s}", "Version", 1, "AccessKeyId", id, "SecretAccessKey", secret,
		      "SessionToken", token, "Expiration", format_iso8601(s->expires_at, exp_iso));
	text = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	s->extra = secret_new_str(text);
	erase_and_free_str(text);
	s->token = secret_new_str(token);
	s->id = strdup(id);
	if (!s->extra || !s->token || !s->id) {
		return -ENOMEM;
	}
	*ret = TAKE_PTR(s);
	return 0;
}

static int request_body(struct auth_ctx *ctx, char **ret)
{
	_cleanup_free_ char *duration = sts_setting(ctx->info, "duration_seconds", "duration_seconds", NULL);
	_cleanup_free_ char *serial = sts_setting(ctx->info, "mfa_serial_number", "mfa_serial", NULL);
	_cleanup_free_ char *serial_escaped = serial ? http_escape(serial) : NULL;
	FILE *f;
	char *body = NULL;
	size_t len = 0;

	f = open_memstream(&body, &len);
	if (!f || (serial && !serial_escaped)) {
		if (f) {
			fclose(f);
		}
		free(body);
		return -ENOMEM;
	}
	fputs("Action=GetSessionToken&Version=2011-06-15", f);
	if (duration) {
		fprintf(f, "&DurationSeconds=%ld", strtol(duration, NULL, 10));
	}
	if (serial && ctx->one_time) {
		fprintf(f, "&SerialNumber=%s&TokenCode=%s", serial_escaped, secret_str(ctx->one_time));
	}
	if (fclose(f) != 0) {
		erase_and_free_str(body);
		return -ENOMEM;
	}
	*ret = body;
	return 0;
}

/* AssumeRoleResult's AssumedRoleUser: its Arn (the caller's identity from
 * now on, arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION) as s's location. */
static int assumed_role(struct auth_ctx *ctx, xmlNode *root, struct auth_session *s)
{
	xmlNode *user = find(root, "AssumedRoleUser");
	char *arn = user ? text_of(user->children, "Arn") : NULL;

	if (!arn || strncmp(arn, "arn:", 4) != 0) {
		xmlFree(arn);
		return auth_ctx_fail(ctx, -EBADMSG, "%s answered AssumeRole without AssumedRoleUser", ctx->info->base_url);
	}
	s->location = strdup(arn);
	xmlFree(arn);
	return s->location ? 0 : -ENOMEM;
}

/* The reply to action: a session (AssumeRole: with the assumed role's ARN as
 * its location), or errno and STS's words. */
static int sts_reply(struct auth_ctx *ctx, const char *action, const struct sts_creds *c,
		     const struct http_response *resp, struct auth_session **ret)
{
	xmlDoc *doc;
	xmlNode *root;
	int r;

	if (resp->status >= 300 && resp->status < 400) {
		return auth_ctx_fail(ctx, -EIO, "%s answered HTTP %ld (a redirect, not followed)", ctx->info->base_url,
				     resp->status);
	}
	/* STS never sends a DTD: refusing one up front means no entity is ever
	 * declared, so none can expand (billion laughs) or be fetched (XXE). */
	if (resp->len > INT32_MAX || memmem(resp->body, resp->len, "<!DOCTYPE", 9) ||
	    memmem(resp->body, resp->len, "<!ENTITY", 8)) {
		return auth_ctx_fail(ctx, -EBADMSG, "%s answered HTTP %ld with a DTD or entities, which STS never sends",
				     ctx->info->base_url, resp->status);
	}
	/* No XML_PARSE_NOENT (no substitution), no DTDLOAD, no network. */
	doc = xmlReadMemory(resp->body, (int)resp->len, "sts.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	root = doc && !doc->intSubset && !doc->extSubset ? xmlDocGetRootElement(doc) : NULL;
	if (!root) {
		r = auth_ctx_fail(ctx, resp->status >= 500 ? -EIO : -EBADMSG, "%s answered HTTP %ld with malformed XML",
				  ctx->info->base_url, resp->status);
	} else if (resp->status < 200 || resp->status >= 300) {
		r = sts_error(ctx, resp->status, root, action, c);
	} else {
		r = session_from_xml(ctx, root, ret);
		if (r == 0 && !strcmp(action, "AssumeRole")) {
			r = assumed_role(ctx, root, *ret);
		}
	}
	xmlFreeDoc(doc);
	return r;
}

/* GetSessionTokenResponse: a session; ErrorResponse: errno and STS's words. */
int sts_login_reply(struct auth_ctx *ctx, const struct http_response *resp, struct auth_session **ret)
{
	return sts_reply(ctx, "GetSessionToken", NULL, resp, ret);
}

int sts_request(struct auth_ctx *ctx, const char *action, const char *body, const struct sts_creds *c,
		struct auth_session **ret)
{
	_cleanup_free_ char *region = region_of(ctx->info);
	_cleanup_secret_ struct secret *userpwd = NULL, *token_header = NULL;
	struct http_response resp = { 0 };
	char sigv4[128];
	int r;

	userpwd = secret_printf("%s:%s", c->id, secret_str(c->secret));
	if (c->token) {
		token_header = secret_printf("X-Amz-Security-Token: %s", secret_str(c->token));
	}
	if (!region || !userpwd || (c->token && !token_header)) {
		return -ENOMEM;
	}
	snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:sts", region);
	log_debug("sts/%s: %s signed with %s (key %s)", ctx->info->name, action, c->origin, c->id);
	r = auth_call(ctx, &(struct auth_call){
		.method = "POST", .path = "/", .auth_header = token_header, .body = body, .body_len = strlen(body),
		.content_type = "application/x-www-form-urlencoded; charset=utf-8",
		.aws_sigv4 = sigv4, .userpwd = userpwd,
	}, &resp);
	if (r == 0) {
		r = sts_reply(ctx, action, c, &resp, ret);
	}
	http_response_done(&resp);
	return r;
}

int sts_unsupported_source(struct auth_ctx *ctx, const char *profile, const struct aws_profile *p)
{
	if (p->credential_process) {
		return auth_ctx_fail(ctx, -EOPNOTSUPP,
				     "profile %s gets its credentials from credential_process, which sessionfs does not run: give it keys, or use a profile with keys as source_profile",
				     profile);
	}
	if (p->sso) {
		return auth_ctx_fail(ctx, -EOPNOTSUPP,
				     "profile %s uses IAM Identity Center (sso_*), which sessionfs does not support: give it keys, or use a profile with keys as source_profile",
				     profile);
	}
	return auth_ctx_fail(ctx, -ENOKEY, "no credentials: profile %s has no keys (sts/%s/credentials)", profile,
			     ctx->info->name);
}

static int sts_login(struct auth_ctx *ctx, struct auth_session **ret)
{
	_cleanup_free_ char *role = sts_setting(ctx->info, "role_arn", "role_arn", NULL);
	_cleanup_erase_ char *body = NULL;
	struct sts_creds c = { 0 };
	bool own = false;
	int r;

	r = creds_from_ctx(ctx, &c, &own);
	if (r < 0) {
		return r;
	}
	if (role) {
		r = sts_role_login(ctx, own ? &c : NULL, ret);
	} else if (!own) {
		struct aws_profile p = { 0 };
		aws_profile_load(sts_profile_name(ctx->info), &p); /* none: no keys either */
		r = sts_unsupported_source(ctx, sts_profile_name(ctx->info), &p);
		aws_profile_done(&p);
	} else if ((r = request_body(ctx, &body)) == 0) {
		r = sts_request(ctx, "GetSessionToken", body, &c, ret);
	}
	sts_creds_done(&c);
	return r;
}

/* Temporary credentials cannot be checked without spending an API call, and
 * cannot be revoked: they are good until they expire. */
static int sts_validate(struct auth_ctx *ctx, const struct auth_session *s, time_t *ret_expires_at)
{
	(void)ctx;
	if (s->expires_at <= now_real()) {
		return -ESTALE;
	}
	*ret_expires_at = 0;
	return 0;
}

static int sts_logout(struct auth_ctx *ctx, const struct auth_session *s)
{
	(void)ctx;
	(void)s;
	return 0; /* STS has no way to revoke session credentials; dropping them is all */
}

/* `export NAME='value'` lines; the values were checked when stored, and are
 * quoted anyway so that `. env` stays safe whatever they hold. */
static int render_env(const char *extra, struct auth_blob **ret)
{
	static const char *const vars[][2] = {
		{ "AWS_ACCESS_KEY_ID", "AccessKeyId" },
		{ "AWS_SECRET_ACCESS_KEY", "SecretAccessKey" },
		{ "AWS_SESSION_TOKEN", "SessionToken" },
		{ "AWS_CREDENTIAL_EXPIRATION", "Expiration" },
	};
	char *quoted[ELEMENTSOF(vars)] = { 0 };
	json_auto_t *j = json_loads(extra, 0, NULL);
	size_t len = 0, at = 0;
	char *text = NULL;
	int r = 0;

	for (size_t i = 0; i < ELEMENTSOF(vars) && r == 0; i++) {
		const char *v = json_string_value(json_object_get(j, vars[i][1]));
		if (!v || strpbrk(v, "\r\n")) {
			r = -EBADMSG; /* no line of env may hold a line break */
		} else if (!(quoted[i] = shell_quote(v))) {
			r = -ENOMEM;
		} else {
			len += strlen("export =\n") + strlen(vars[i][0]) + strlen(quoted[i]);
		}
	}
	if (r == 0 && !(text = malloc(len + 1))) {
		r = -ENOMEM;
	}
	for (size_t i = 0; i < ELEMENTSOF(vars); i++) {
		if (r == 0) {
			at += (size_t)snprintf(text + at, len + 1 - at, "export %s=%s\n", vars[i][0], quoted[i]);
		}
		erase_and_free_str(quoted[i]);
	}
	if (r == 0) {
		*ret = auth_blob_new(text, at);
		r = *ret ? 0 : -ENOMEM;
	}
	if (text) {
		erase_and_free(text, len);
	}
	return r;
}

static int sts_render(const struct target_info *info, const struct auth_session *s, const struct auth_file_info *f,
		      struct auth_blob **ret)
{
	struct auth_blob *b;

	(void)info;
	if (f->id == FILE_ENV) {
		return render_env(s->extra->data, ret);
	}
	b = auth_blob_new_line(s->extra->data);
	if (!b) {
		return -ENOMEM;
	}
	*ret = b;
	return 0;
}

/* Every profile of the AWS shared files is a target. */
static int sts_discover(struct auth_found **ret, size_t *ret_n)
{
	struct auth_found *found;
	char **names = NULL;
	size_t n = 0;
	int r = aws_profiles_list(&names, &n);

	if (r < 0) {
		return r;
	}
	found = calloc(n ?: 1, sizeof(*found));
	if (!found) {
		auth_strv_free(names, n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		found[i].name = TAKE_PTR(names[i]);
	}
	free(names);
	*ret = found;
	*ret_n = n;
	return 0;
}

/* Saved: the creds.json object, plus the assumed role's ARN if any. */
static int sts_session_save(const struct target_info *info, const struct auth_session *s, struct secret **ret)
{
	json_t *j;

	(void)info;
	if (!s->location) {
		struct secret *copy = secret_dup(s->extra);
		if (!copy) {
			return -ENOMEM;
		}
		*ret = copy;
		return 0;
	}
	j = json_loads(s->extra->data, 0, NULL);
	if (!j || json_object_set_new(j, "AssumedRoleArn", json_string(s->location)) < 0) {
		json_decref(j);
		return -ENOMEM;
	}
	return auth_json_secret(j, JSON_COMPACT | JSON_PRESERVE_ORDER, ret);
}

static int sts_session_load(const struct target_info *info, const char *text, size_t len, struct auth_session **ret)
{
	_cleanup_session_ struct auth_session *s = auth_session_new();
	json_t *j = json_loadb(text, len, 0, NULL);
	const char *id = json_string_value(json_object_get(j, "AccessKeyId"));
	const char *token = json_string_value(json_object_get(j, "SessionToken"));
	const char *arn = json_string_value(json_object_get(j, "AssumedRoleArn"));
	bool role = arn != NULL;
	int r = -EINVAL;

	(void)info;
	/* The text is kept as it is (creds.json) and read as a C string: jansson
	 * takes a NUL between tokens, this may not. */
	if (s && id && token && !memchr(text, 0, len) &&
	    !sts_credentials_invalid(id, json_string_value(json_object_get(j, "SecretAccessKey")), token,
				     json_string_value(json_object_get(j, "Expiration"))) &&
	    parse_expiration(json_string_value(json_object_get(j, "Expiration")), &s->expires_at) == 0) {
		s->id = strdup(id);
		s->token = secret_new_str(token);
		if (role) {
			/* creds.json is the rest */
			s->location = strdup(arn);
			json_object_del(j, "AssumedRoleArn");
			r = auth_json_secret(json_incref(j), JSON_COMPACT | JSON_PRESERVE_ORDER, &s->extra);
		} else {
			s->extra = secret_new(text, len);
			r = 0;
		}
		r = r < 0 ? r : s->id && s->token && s->extra && (!role || s->location) ? 0 : -ENOMEM;
	}
	json_decref(j);
	if (r == 0) {
		*ret = TAKE_PTR(s);
	}
	return r;
}

const struct auth_provider sts_provider = {
	.name = "sts",
	.files = sts_files,
	.n_files = ELEMENTSOF(sts_files),
	.default_port = 443,
	.min_validity = BOTOCORE_REFRESH_WINDOW,
	.credentials_hint = "write aws_access_key_id and aws_secret_access_key lines (or JSON {\"AccessKeyId\",\"SecretAccessKey\"}), or put the keys in the shared AWS credentials file",
	.one_time_hint = "MFA required: write the current code to",
	.settings = sts_settings,
	.login = sts_login,
	.validate = sts_validate,
	.logout = sts_logout,
	.render = sts_render,
	.session_save = sts_session_save,
	.session_load = sts_session_load,
	.init_info = sts_init_info,
	.default_credentials = sts_default_credentials,
	.parse_credentials = sts_parse_credentials,
	.discover = sts_discover,
	.needs_one_time = sts_needs_mfa,
	.status_extra = sts_role_status,
};
