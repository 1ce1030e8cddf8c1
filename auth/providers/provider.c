/* Helpers every provider shares: sessions, blobs, error mapping. */
#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include "provider.h"
#include "lib/validate.h"

struct auth_session *auth_session_new(void)
{
	struct auth_session *s = calloc(1, sizeof(*s));

	if (s) {
		s->obtained_at = now_real();
	}
	return s;
}

void auth_session_free(struct auth_session *s)
{
	if (!s) {
		return;
	}
	secret_free(s->token);
	secret_free(s->extra);
	free(s->id);
	free(s->location);
	free(s);
}

struct auth_session *auth_session_dup(const struct auth_session *s)
{
	struct auth_session *d = auth_session_new();

	if (!d) {
		return NULL;
	}
	d->token = secret_dup(s->token);
	d->extra = secret_dup(s->extra);
	d->id = s->id ? strdup(s->id) : NULL;
	d->location = s->location ? strdup(s->location) : NULL;
	d->expires_at = s->expires_at;
	d->obtained_at = s->obtained_at;
	if ((s->token && !d->token) || (s->extra && !d->extra) || (s->id && !d->id) || (s->location && !d->location)) {
		auth_session_free(d);
		return NULL;
	}
	return d;
}

/* The server's clock against ours, from its Date header. Date has a
 * second's resolution and is stamped before the answer travels: a
 * difference of a second or less is no skew. */
static void note_skew(struct auth_ctx *ctx, const struct http_response *resp)
{
	time_t local = now_real(), server;

	if (http_response_date(resp, &server) == 0) {
		time_t skew = server - local;
		ctx->skew = skew >= -1 && skew <= 1 ? 0 : skew;
		ctx->skew_known = true;
	}
}

int auth_call(struct auth_ctx *ctx, const struct auth_call *call, struct http_response *resp)
{
	const struct secret *secret_headers[] = { call->auth_header, NULL };
	_cleanup_free_ char *url = NULL;
	int r;

	if (strncmp(call->path, "http://", 7) == 0 || strncmp(call->path, "https://", 8) == 0) {
		url = strdup(call->path);
	} else if (asprintf(&url, "%s%s", ctx->info->base_url, call->path) < 0) {
		url = NULL;
	}
	if (!url) {
		return -ENOMEM;
	}
	r = http_perform(&(struct http_request){
		.method = call->method, .url = url, .body = call->body, .body_len = call->body_len,
		.content_type = call->content_type, .headers = call->headers, .secret_headers = secret_headers,
		.timeout_ms = auth_ctx_timeout_ms(ctx), .tls = &ctx->info->tls,
		.aws_sigv4 = call->aws_sigv4, .userpwd = call->userpwd,
	}, resp);
	if (r < 0) {
		return auth_ctx_transport_fail(ctx, r, resp);
	}
	note_skew(ctx, resp);
	return 0;
}

time_t auth_ctx_local_time(const struct auth_ctx *ctx, time_t server_time)
{
	return ctx->skew_known ? server_time - ctx->skew : server_time;
}

long auth_ctx_timeout_ms(const struct auth_ctx *ctx)
{
	double left;

	if (ctx->deadline <= 0) {
		return (long)ctx->info->timeout * 1000;
	}
	/* Past the deadline: 1 ms, so the request fails at once with ETIMEDOUT. */
	left = (ctx->deadline - now_mono()) * 1000;
	return left < 1 ? 1 : (long)left;
}

struct auth_blob *auth_blob_new(const char *data, size_t len)
{
	struct auth_blob *b = secret_alloc(sizeof(*b) + len + 1);

	if (!b) {
		return NULL;
	}
	b->refs = 1;
	b->gen = 0;
	b->valid_until = 0;
	b->len = len;
	memcpy(b->data, data, len);
	b->data[len] = 0;
	return b;
}

struct auth_blob *auth_blob_new_line(const char *text)
{
	size_t len = strlen(text);
	struct auth_blob *b = auth_blob_new(text, len + 1);

	if (b) {
		b->data[len] = '\n';
	}
	return b;
}

struct auth_blob *auth_blob_ref(struct auth_blob *b)
{
	if (b) {
		__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
	}
	return b;
}

void auth_blob_unref(struct auth_blob *b)
{
	if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		CRYPTO_secure_clear_free(b, sizeof(*b) + b->len + 1, __FILE__, __LINE__);
	}
}

int auth_render_token(const struct auth_session *s, struct auth_blob **ret)
{
	struct auth_blob *b;

	if (!validate_token(secret_str(s->token))) {
		return -EBADMSG; /* never reached: checked when stored */
	}
	b = auth_blob_new(s->token->data, s->token->len);
	if (!b) {
		return -ENOMEM;
	}
	*ret = b;
	return 0;
}

int auth_render_json(json_t *j, size_t flags, struct auth_blob **ret)
{
	_cleanup_secret_ struct secret *text = NULL;
	struct auth_blob *b;
	int r = auth_json_secret(j, flags, &text);

	if (r < 0) {
		return r;
	}
	b = auth_blob_new_line(text->data);
	if (!b) {
		return -ENOMEM;
	}
	*ret = b;
	return 0;
}

int auth_json_secret(json_t *j, size_t flags, struct secret **ret)
{
	char *text = j ? json_dumps(j, flags) : NULL;
	struct secret *s;

	json_decref(j);
	if (!text) {
		return -ENOMEM;
	}
	s = secret_new_str(text);
	erase_and_free_str(text); /* jansson's buffer: wiped */
	if (!s) {
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

int auth_ctx_fail(struct auth_ctx *ctx, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ctx->error, sizeof(ctx->error), fmt, ap);
	va_end(ap);
	/* Servers' words end up in status and the log: one line, no controls. */
	for (char *p = ctx->error; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			*p = ' ';
		}
	}
	return r;
}

void auth_body_excerpt(const struct http_response *resp, char *buf, size_t size)
{
	snprintf(buf, size, "%.*s", (int)(resp->len < 160 ? resp->len : 160), resp->body);
}

int auth_ctx_transport_fail(struct auth_ctx *ctx, int r, const struct http_response *resp)
{
	return auth_ctx_fail(ctx, r, "%s: %s", ctx->info->base_url, resp->error[0] ? resp->error : strerror(-r));
}

const char *target_setting(const struct target_info *info, const char *key)
{
	const char *v = target_config_get(info->section, key);

	return v ? v : target_config_get(info->defaults, key);
}

int auth_http_status_errno(long status)
{
	if (status >= 200 && status < 300) {
		return 0;
	}
	if (status == 401 || status == 403) {
		return -EKEYREJECTED;
	}
	if (status == 404 || status == 410) {
		return -ENOENT;
	}
	if (status == 429) {
		return -EAGAIN;
	}
	return -EIO;
}

int auth_parse_json(struct auth_ctx *ctx, const struct http_response *resp, json_t **ret)
{
	json_error_t err;
	json_t *j = json_loadb(resp->body, resp->len, 0, &err);

	if (!j) {
		return auth_ctx_fail(ctx, -EBADMSG, "%s answered HTTP %ld with malformed JSON: %s",
				     ctx->info->base_url, resp->status, err.text);
	}
	*ret = j;
	return 0;
}

int auth_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len > 255) {
		return -ENAMETOOLONG;
	}
	/* A space only between other characters: AWS profiles may have one. */
	if (len == 0 || name[0] == '.' || name[0] == ' ' || name[len - 1] == ' ' || strchr(name, '/')) {
		return -EINVAL;
	}
	for (const char *p = name; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\') {
			return -EINVAL;
		}
	}
	return 0;
}

void auth_strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i]);
	}
	free(v);
}

void auth_found_free(struct auth_found *f, size_t n)
{
	for (size_t i = 0; f && i < n; i++) {
		free(f[i].name);
		free(f[i].user);
		secret_free(f[i].password);
		secret_free(f[i].session);
	}
	free(f);
}
