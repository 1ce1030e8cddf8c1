/* AWS STS GetSessionToken: temporary credentials for credential_process and
 * `. env`, signed with SigV4 by libcurl, answered in XML (parsed by libxml2). */
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <sys/stat.h>

#include "lib/log.h"
#include "providers/provider.h"
#include "providers/replies.h"
#include "lib/validate.h"
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

/* A different role, duration or MFA device is a different credential. */
static const char *const sts_identity_settings[] = { "role_arn", "source_profile", "duration_seconds",
						     "mfa_serial_number", "external_id", "role_session_name",
						     "region", NULL };

static const struct auth_file_info sts_files[] = {
	{ "creds.json", S_IFREG | 0400, AUTH_FILE_SESSION, AUTH_FILE_LOGOUT, FILE_CREDS_JSON, NULL },
	{ "env", S_IFREG | 0400, AUTH_FILE_SESSION, 0, FILE_ENV, NULL },
	{ "credentials", S_IFREG | 0200, AUTH_FILE_CREDENTIALS, AUTH_FILE_LINES, 0, NULL },
	{ "mfa", S_IFREG | 0200, AUTH_FILE_ONE_TIME, 0, 0, check_mfa },
	{ "status", S_IFREG | 0400, AUTH_FILE_STATUS, 0, 0, NULL },
};

/* The endpoint, first found of: endpoint_url in the [sts "x"] section;
 * AWS_ENDPOINT_URL_STS; AWS_ENDPOINT_URL; the profile's [services] section
 * (sts = endpoint_url = ...); the profile's endpoint_url. NULL: the regional
 * one. The environment before the files, as the SDKs (botocore 1.31 on) do. */
static char *endpoint_of(const struct target_info *info)
{
	static const char *const envs[] = { "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL" };
	struct aws_profile p = { 0 };
	const char *v = target_setting(info, "endpoint_url");
	char *url = NULL;

	for (size_t i = 0; !v && i < ELEMENTSOF(envs); i++) {
		v = getenv(envs[i]);
		v = v && *v ? v : NULL;
	}
	if (v) {
		return strdup(v);
	}
	if (aws_profile_load(sts_profile_name(info), &p) == 0) {
		if (!p.services || aws_services_endpoint(p.services, "sts", &url) < 0) {
			url = p.endpoint_url ? strdup(p.endpoint_url) : NULL;
		}
		aws_profile_done(&p);
	}
	return url;
}

static int sts_init_info(struct target_info *info)
{
	_cleanup_free_ char *region = sts_region(info);
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
	_cleanup_free_ char *user = NULL;
	struct secret *password = NULL;
	int r;

	if (id) {
		_cleanup_secret_ struct secret *secret = NULL;
		r = config_resolve_secret(info->section, "aws_secret_access_key", &secret);
		if (r < 0) {
			return r;
		}
		user = strdup(id);
		if (!user) {
			return -ENOMEM;
		}
		*ret_user = TAKE_PTR(user);
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
		user = strdup(sts_profile_name(info));
		password = secret_new_str("");
	} else if (p.access_key_id && p.secret_access_key) {
		user = TAKE_PTR(p.access_key_id);
		password = secret_with_token(p.secret_access_key, p.session_token);
	} else {
		r = -ENOENT;
	}
	aws_profile_done(&p);
	if (r == 0 && (!user || !password)) {
		secret_free(password);
		return -ENOMEM;
	}
	if (r == 0) {
		*ret_user = TAKE_PTR(user);
		*ret_password = password;
	}
	return r;
}

/* The target's own credentials (ctx), NULL when its profile is to be followed. */
static int creds_from_ctx(const struct auth_ctx *ctx, struct sts_creds *ret, bool *ret_found)
{
	const char *space = ctx->password ? memchr(ctx->password->data, ' ', ctx->password->len) : NULL;
	size_t len = space ? (size_t)(space - ctx->password->data) : (ctx->password ? ctx->password->len : 0);
	_cleanup_free_ char *origin = NULL;
	int r;

	if (!ctx->user || len == 0) {
		*ret_found = false;
		return 0;
	}
	if (asprintf(&origin, "the credentials of sts/%s", ctx->info->name) < 0) {
		return -ENOMEM;
	}
	r = sts_creds_new(ctx->user, ctx->password->data, len, space ? space + 1 : NULL, origin, ret);
	if (r == 0) {
		*ret_found = true;
	}
	return r;
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
		struct auth_blob *b = auth_blob_new(text, at);
		if (b) {
			*ret = b;
		} else {
			r = -ENOMEM;
		}
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
	    sts_parse_expiration(json_string_value(json_object_get(j, "Expiration")), &s->expires_at) == 0) {
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
	.min_validity = BOTOCORE_REFRESH_WINDOW,
	.credentials_hint = "write aws_access_key_id and aws_secret_access_key lines (or JSON {\"AccessKeyId\",\"SecretAccessKey\"}), or put the keys in the shared AWS credentials file",
	.one_time_hint = "MFA required: write the current code to",
	.settings = sts_settings,
	.identity_settings = sts_identity_settings,
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
