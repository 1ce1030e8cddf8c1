/* What every STS action shares: the profile behind a target, the
 * credentials a request is signed with, one signed request and its XML
 * reply (parsed by libxml2). Used by sts.c (GetSessionToken) and role.c
 * (AssumeRole), which call nothing of each other but sts_role_*. */
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>

#include "lib/log.h"
#include "lib/validate.h"
#include "providers/replies.h"
#include "sts.h"

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

/* The section's region, AWS_REGION, AWS_DEFAULT_REGION, the profile's,
 * us-east-1: the environment before the files, as botocore puts
 * AWS_DEFAULT_REGION (it does not read AWS_REGION, which the other SDKs
 * read first). */
char *sts_region(const struct target_info *info)
{
	static const char *const envs[] = { "AWS_REGION", "AWS_DEFAULT_REGION" };
	const char *v = target_setting(info, "region");
	char *region;

	for (size_t i = 0; !v && i < ELEMENTSOF(envs); i++) {
		v = getenv(envs[i]);
		v = v && *v ? v : NULL;
	}
	if (v) {
		return strdup(v);
	}
	region = sts_setting(info, "region", "region", NULL);
	return region ? region : strdup("us-east-1");
}

void sts_creds_done(struct sts_creds *c)
{
	free(c->id);
	secret_free(c->secret);
	secret_free(c->token);
	free(c->origin);
	*c = (struct sts_creds){ 0 };
}

int sts_creds_new(const char *id, const char *secret, size_t secret_len, const char *token, const char *origin,
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
	int r = sts_creds_new(c->id, c->secret->data, c->secret->len, secret_str(c->token), origin ? origin : c->origin, ret);

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
	return sts_creds_new(p->access_key_id, p->secret_access_key->data, p->secret_access_key->len,
			 secret_str(p->session_token), origin, ret);
}

int sts_creds_from_env(struct sts_creds *ret)
{
	const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
	const char *token = getenv("AWS_SESSION_TOKEN");

	if (!id || !*id || !secret || !*secret) {
		return -ENOENT;
	}
	return sts_creds_new(id, secret, strlen(secret), token && *token ? token : NULL, "the daemon's environment", ret);
}

int sts_creds_from_session(const struct auth_session *s, const char *origin, struct sts_creds *ret)
{
	json_auto_t *j = json_loads(s->extra->data, 0, NULL);
	const char *secret = json_string_value(json_object_get(j, "SecretAccessKey"));
	int r = -EBADMSG;

	if (s->id && secret && s->token) {
		r = sts_creds_new(s->id, secret, strlen(secret), secret_str(s->token), origin, ret);
		if (r == 0) {
			ret->expires_at = s->expires_at;
		}
	}
	return r;
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
int sts_parse_expiration(const char *s, time_t *ret)
{
	struct tm tm = { 0 };
	const char *rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	time_t t;

	if (rest && *rest == '.') {
		rest += 1 + strspn(rest + 1, "0123456789");
	}
	if (!rest || strcmp(rest, "Z") != 0) {
		return -EBADMSG;
	}
	t = timegm(&tm);
	if (t <= 0) {
		return -EBADMSG;
	}
	*ret = t;
	return 0;
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
const char *sts_credentials_invalid(const char *id, const char *secret, const char *token, const char *expiration)
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
	if (bad || sts_parse_expiration(expiration, &s->expires_at) < 0) {
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
	_cleanup_session_ struct auth_session *s = NULL;
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
		r = session_from_xml(ctx, root, &s);
		if (r == 0 && !strcmp(action, "AssumeRole")) {
			r = assumed_role(ctx, root, s);
		}
	}
	xmlFreeDoc(doc);
	if (r == 0) {
		*ret = TAKE_PTR(s);
	}
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
	_cleanup_free_ char *region = sts_region(ctx->info);
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
