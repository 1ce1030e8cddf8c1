/* AWS STS GetSessionToken: temporary credentials for credential_process and
 * `. env`, signed with SigV4 by libcurl, answered in XML (parsed by libxml2). */
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <ini.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <sys/stat.h>

#include "awsfiles.h"
#include "log.h"
#include "provider.h"
#include "validate.h"

#define BOTOCORE_REFRESH_WINDOW 900 /* 15 min: the CLI refreshes on every call below it */
#define MIN_REFRESH_INTERVAL 10

static const struct auth_file_info sts_files[] = {
	{ "creds.json", AUTH_FILE_CREDS_JSON, S_IFREG | 0400, true },
	{ "env", AUTH_FILE_ENV, S_IFREG | 0400, true },
	{ "credentials", AUTH_FILE_CREDENTIALS, S_IFREG | 0200, false },
	{ "mfa", AUTH_FILE_MFA, S_IFREG | 0200, false },
	{ "status", AUTH_FILE_STATUS, S_IFREG | 0400, false },
};

/* The AWS profile behind a target: its section's `profile`, else its name. */
static const char *profile_name(const struct target_info *info)
{
	const char *p = target_setting(info, "profile");

	return p ? p : info->name;
}

/* A setting from the config section, else from the AWS profile, else env. */
static char *setting(const struct target_info *info, const char *key, const char *aws_key, const char *env)
{
	struct aws_profile p = { 0 };
	const char *v = target_setting(info, key);
	char *result = NULL;

	if (v) {
		return strdup(v);
	}
	if (aws_key && aws_profile_load(profile_name(info), &p) == 0) {
		char *pv = strcmp(aws_key, "region") == 0       ? p.region
			   : strcmp(aws_key, "mfa_serial") == 0 ? p.mfa_serial
								 : p.duration_seconds;
		result = pv ? strdup(pv) : NULL;
		aws_profile_done(&p);
	}
	if (!result && env && (v = getenv(env)) && *v) {
		result = strdup(v);
	}
	return result;
}

static int sts_init_info(struct target_info *info)
{
	_cleanup_free_ char *region = setting(info, "region", "region", "AWS_REGION");
	const char *endpoint = target_setting(info, "endpoint_url");
	char *url = NULL;

	if (!endpoint && !(endpoint = getenv("AWS_ENDPOINT_URL_STS"))) {
		endpoint = getenv("AWS_ENDPOINT_URL");
	}
	if (endpoint && *endpoint) {
		url = strdup(endpoint);
		/* The endpoint is the base: no trailing slash, the request adds "/". */
		if (url && url[0] && url[strlen(url) - 1] == '/') {
			url[strlen(url) - 1] = 0;
		}
	} else if (asprintf(&url, "https://sts.%s.amazonaws.com", region ? region : "us-east-1") < 0) {
		url = NULL;
	}
	if (!url) {
		return -ENOMEM;
	}
	free(info->base_url);
	info->base_url = url;
	return 0;
}

static int sts_default_credentials(const struct target_info *info, char **ret_user, struct secret **ret_password)
{
	struct aws_profile p = { 0 };
	const char *id = target_setting(info, "aws_access_key_id");
	int r;

	if (id) {
		r = config_resolve_secret(info->section, "aws_secret_access_key", ret_password);
		if (r < 0) {
			return r;
		}
		*ret_user = strdup(id);
		return *ret_user ? 0 : -ENOMEM;
	}
	r = aws_profile_load(profile_name(info), &p);
	if (r < 0) {
		return r;
	}
	if (p.access_key_id && p.secret_access_key) {
		*ret_user = TAKE_PTR(p.access_key_id);
		*ret_password = TAKE_PTR(p.secret_access_key);
	} else {
		r = -ENOENT;
	}
	aws_profile_done(&p);
	return r;
}

struct key_pair {
	char *id;
	struct secret *secret;
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
	} else if (strcmp(key, "aws_session_token") != 0) {
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

/* A long-term key pair: aws_access_key_id / aws_secret_access_key INI lines (as
 * in ~/.aws/credentials, a [profile] header allowed) or JSON
 * {"AccessKeyId","SecretAccessKey"}. */
static int sts_parse_credentials(const char *data, size_t len, char **ret_user, struct secret **ret_password)
{
	_cleanup_free_ char *text = strndup(data, len);
	struct key_pair k = { 0 };
	json_t *j;

	if (!text || memchr(data, 0, len)) {
		return text ? -EINVAL : -ENOMEM;
	}
	if (text[strspn(text, " \t\r\n")] == '{') {
		j = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
		const char *id = json_string_value(json_object_get(j, "AccessKeyId"));
		const char *secret = json_string_value(json_object_get(j, "SecretAccessKey"));
		k.id = id ? strdup(id) : NULL;
		k.secret = secret ? secret_new_str(secret) : NULL;
		json_decref(j);
	} else if (ini_parse_string(text, on_key_line, &k) != 0) {
		k.r = -EINVAL;
	}
	OPENSSL_cleanse(text, len);
	if (k.r < 0 || !k.id || !k.secret || !key_id_valid(k.id) || k.secret->len < 16) {
		free(k.id);
		secret_free(k.secret);
		return -EINVAL;
	}
	*ret_user = k.id;
	*ret_password = k.secret;
	return 0;
}

static bool sts_needs_mfa(const struct target_info *info)
{
	_cleanup_free_ char *serial = setting(info, "mfa_serial_number", "mfa_serial", NULL);

	return serial != NULL;
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

/* STS's error envelope → errno and status text carrying Code and Message. */
static int sts_error(struct auth_ctx *ctx, long status, xmlNode *root)
{
	_cleanup_free_ char *code = text_of(root, "Code"), *message = text_of(root, "Message");
	int r = -EIO; /* a Code we don't know: the server failed us */

	if (!code) {
		return auth_ctx_fail(ctx, status >= 500 ? -EIO : -EBADMSG, "%s answered HTTP %ld without an STS error",
				     ctx->info->base_url, status);
	}
	if (!strcmp(code, "InvalidClientTokenId") || !strcmp(code, "SignatureDoesNotMatch") ||
	    !strcmp(code, "AccessDenied") || !strcmp(code, "UnrecognizedClientException")) {
		r = -EKEYREJECTED;
	} else if (!strcmp(code, "ExpiredToken") || !strcmp(code, "RequestExpired")) {
		r = -EKEYEXPIRED;
	} else if (!strcmp(code, "ValidationError") || !strcmp(code, "InvalidParameterValue")) {
		r = -EINVAL;
	} else if (!strcmp(code, "Throttling") || !strcmp(code, "ThrottlingException")) {
		r = -EAGAIN;
	} else if (!strcmp(code, "RegionDisabledException")) {
		r = -EACCES;
	}
	return auth_ctx_fail(ctx, r, "STS %s refused GetSessionToken (HTTP %ld): %s: %s", ctx->info->base_url, status,
			     code, message ? message : "");
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
	_cleanup_free_ char *duration = setting(ctx->info, "duration_seconds", "duration_seconds", NULL);
	_cleanup_free_ char *serial = setting(ctx->info, "mfa_serial_number", "mfa_serial", NULL);
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
	if (serial && ctx->mfa_code) {
		fprintf(f, "&SerialNumber=%s&TokenCode=%s", serial_escaped, secret_str(ctx->mfa_code));
	}
	if (fclose(f) != 0) {
		erase_and_free_str(body);
		return -ENOMEM;
	}
	*ret = body;
	return 0;
}

/* GetSessionTokenResponse: a session; ErrorResponse: errno and STS's words. */
int sts_login_reply(struct auth_ctx *ctx, const struct http_response *resp, struct auth_session **ret)
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
		r = sts_error(ctx, resp->status, root);
	} else {
		r = session_from_xml(ctx, root, ret);
	}
	xmlFreeDoc(doc);
	return r;
}

static int sts_login(struct auth_ctx *ctx, struct auth_session **ret)
{
	_cleanup_free_ char *region = setting(ctx->info, "region", "region", "AWS_REGION");
	_cleanup_secret_ struct secret *userpwd = NULL;
	_cleanup_erase_ char *body = NULL;
	struct http_response resp = { 0 };
	char sigv4[128], url[1024];
	int r;

	r = request_body(ctx, &body);
	if (r < 0) {
		return r;
	}
	userpwd = secret_printf("%s:%s", ctx->user, secret_str(ctx->password));
	if (!userpwd) {
		return -ENOMEM;
	}
	snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:sts", region ? region : "us-east-1");
	snprintf(url, sizeof(url), "%s/", ctx->info->base_url);
	r = http_perform(&(struct http_request){
		.method = "POST", .url = url, .body = body, .body_len = strlen(body),
		.content_type = "application/x-www-form-urlencoded; charset=utf-8",
		.timeout_ms = auth_ctx_timeout_ms(ctx), .tls = &ctx->info->tls, .aws_sigv4 = sigv4, .userpwd = userpwd,
	}, &resp);
	if (r < 0) {
		r = auth_ctx_transport_fail(ctx, r, &resp);
	} else {
		r = sts_login_reply(ctx, &resp, ret);
	}
	http_response_done(&resp);
	return r;
}

/* Temporary credentials cannot be checked without spending an API call, and
 * cannot be revoked: they are good until they expire. */
static int sts_validate(struct auth_ctx *ctx, const struct auth_session *s, time_t *ret_expires_at)
{
	(void)ctx;
	*ret_expires_at = 0;
	return s->expires_at > now_real() ? 0 : -ESTALE;
}

static int sts_logout(struct auth_ctx *ctx, const struct auth_session *s)
{
	(void)ctx;
	(void)s;
	return 0; /* STS has no way to revoke session credentials; dropping them is all */
}

/* Ahead of botocore's 15-minute window, never more often than every 10 s. */
static time_t sts_refresh_at(const struct target_info *info, const struct auth_session *s, int margin)
{
	time_t due = s->expires_at - BOTOCORE_REFRESH_WINDOW - margin;

	(void)info;
	return due > s->obtained_at + MIN_REFRESH_INTERVAL ? due : s->obtained_at + MIN_REFRESH_INTERVAL;
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
	json_t *j = json_loads(extra, 0, NULL);
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
	json_decref(j);
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

static int sts_render(const struct target_info *info, const struct auth_session *s, enum auth_file f,
		      struct auth_blob **ret)
{
	(void)info;
	if (f == AUTH_FILE_CREDS_JSON) {
		*ret = auth_blob_new_line(s->extra->data);
		return *ret ? 0 : -ENOMEM;
	}
	if (f != AUTH_FILE_ENV) {
		return -EINVAL;
	}
	return render_env(s->extra->data, ret);
}

static int sts_session_save(const struct target_info *info, const struct auth_session *s, struct secret **ret)
{
	(void)info;
	*ret = secret_dup(s->extra);
	return *ret ? 0 : -ENOMEM;
}

static int sts_session_load(const struct target_info *info, const char *text, size_t len, struct auth_session **ret)
{
	_cleanup_session_ struct auth_session *s = auth_session_new();
	json_t *j = json_loadb(text, len, 0, NULL);
	const char *id = json_string_value(json_object_get(j, "AccessKeyId"));
	const char *token = json_string_value(json_object_get(j, "SessionToken"));
	int r = -EINVAL;

	(void)info;
	if (s && id && token &&
	    !sts_credentials_invalid(id, json_string_value(json_object_get(j, "SecretAccessKey")), token,
				     json_string_value(json_object_get(j, "Expiration"))) &&
	    parse_expiration(json_string_value(json_object_get(j, "Expiration")), &s->expires_at) == 0) {
		s->id = strdup(id);
		s->token = secret_new_str(token);
		s->extra = secret_new(text, len);
		r = s->id && s->token && s->extra ? 0 : -ENOMEM;
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
	.default_logout_on_exit = false,
	.min_validity = BOTOCORE_REFRESH_WINDOW,
	.credentials_hint = "write aws_access_key_id and aws_secret_access_key lines (or JSON {\"AccessKeyId\",\"SecretAccessKey\"}), or put the keys in the shared AWS credentials file",
	.login = sts_login,
	.validate = sts_validate,
	.logout = sts_logout,
	.refresh_at = sts_refresh_at,
	.render = sts_render,
	.session_save = sts_session_save,
	.session_load = sts_session_load,
	.init_info = sts_init_info,
	.default_credentials = sts_default_credentials,
	.parse_credentials = sts_parse_credentials,
	.discover_targets = aws_profiles_list,
	.needs_mfa = sts_needs_mfa,
};
