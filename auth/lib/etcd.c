/* etcd v3 over its JSON gateway: failover between endpoints, etcd auth
 * (a token in Authorization, without "Bearer"), and a streaming watch. */
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "etcd.h"
#include "log.h"

#define TRY_TIMEOUT_MS 3000 /* one endpoint; a member without quorum hangs until its own timeout */
#define RETRY_PAUSE_MS 200  /* between rounds over every endpoint */

struct etcd {
	struct etcd_settings s;
	pthread_mutex_t lock;     /* guards current and auth */
	size_t current;           /* endpoint that answered last */
	struct secret *auth;      /* "Authorization: <token>", or NULL */
	uint64_t requests, errors; /* atomic */
	int64_t skew;             /* atomic: etcd's clock minus ours, by its last Date */
};

char *etcd_b64(const void *data, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	if (out) {
		EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	}
	return out;
}

int etcd_unb64(const char *s, unsigned char **ret, size_t *ret_len)
{
	size_t len = strlen(s), pad = 0;
	unsigned char *out;
	int n;

	if (len % 4) {
		return -EBADMSG;
	}
	out = malloc(len / 4 * 3 + 1);
	if (!out) {
		return -ENOMEM;
	}
	n = len ? EVP_DecodeBlock(out, (const unsigned char *)s, (int)len) : 0;
	if (n < 0) {
		free(out);
		return -EBADMSG;
	}
	while (pad < 2 && len > pad && s[len - 1 - pad] == '=') {
		pad++;
	}
	*ret_len = (size_t)n - pad;
	out[*ret_len] = 0;
	*ret = out;
	return 0;
}

int64_t etcd_int(const json_t *obj, const char *field)
{
	json_t *v = json_object_get(obj, field);

	if (json_is_string(v)) {
		return strtoll(json_string_value(v), NULL, 10);
	}
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

json_t *etcd_key(const char *key, bool prefix)
{
	_cleanup_free_ char *k = etcd_b64(key, strlen(key)), *end = NULL;
	_cleanup_free_ char *e = prefix ? strdup(key) : NULL;

	if (!k || (prefix && !e)) {
		return NULL;
	}
	if (prefix) {
		e[strlen(e) - 1]++; /* the prefix's last byte plus one: the end of its range */
		end = etcd_b64(e, strlen(e));
		if (!end) {
			return NULL;
		}
	}
	return json_pack("{s:s, s:s?}", "key", k, "range_end", end);
}

int etcd_new(const struct etcd_settings *s, struct etcd **ret)
{
	struct etcd *e = calloc(1, sizeof(*e));

	if (!e) {
		return -ENOMEM;
	}
	e->s = *s;
	pthread_mutex_init(&e->lock, NULL);
	*ret = e;
	return 0;
}

void etcd_free(struct etcd *e)
{
	if (e) {
		secret_free(e->auth);
		pthread_mutex_destroy(&e->lock);
		free(e);
	}
}

uint64_t etcd_requests(const struct etcd *e)
{
	return __atomic_load_n(&e->requests, __ATOMIC_RELAXED);
}

uint64_t etcd_errors(const struct etcd *e)
{
	return __atomic_load_n(&e->errors, __ATOMIC_RELAXED);
}

/* Date has whole seconds: within SKEW_NOISE s the clocks count as one. */
#define SKEW_NOISE 2

static void note_skew(struct etcd *e, const struct http_response *resp)
{
	time_t date, now = now_real();
	int64_t skew;

	if (http_response_date(resp, &date) == 0) {
		skew = (int64_t)date - (int64_t)now;
		__atomic_store_n(&e->skew, skew > SKEW_NOISE || skew < -SKEW_NOISE ? skew : 0, __ATOMIC_RELAXED);
	}
}

time_t etcd_clock_skew(const struct etcd *e)
{
	return (time_t)__atomic_load_n(&e->skew, __ATOMIC_RELAXED);
}

/* One POST to one endpoint; the reply parsed (any status). */
static int post(struct etcd *e, size_t endpoint, const char *path, const char *body, const struct secret *auth,
		long timeout_ms, long *ret_status, json_t **ret, char *err, size_t err_size)
{
	_cleanup_free_ char *url = NULL;
	const struct secret *secrets[] = { auth, NULL };
	struct http_response resp;
	struct http_request req = {
		.method = "POST",
		.body = body,
		.body_len = strlen(body),
		.content_type = "application/json",
		.secret_headers = auth ? secrets : NULL,
		.timeout_ms = timeout_ms,
		.tls = &e->s.tls,
	};
	int r;

	if (asprintf(&url, "%s/v3/%s", e->s.endpoints[endpoint], path) < 0) {
		url = NULL;
		return -ENOMEM;
	}
	req.url = url;
	__atomic_add_fetch(&e->requests, 1, __ATOMIC_RELAXED);
	r = http_perform(&req, &resp);
	if (r < 0) {
		snprintf(err, err_size, "%s: %s", e->s.endpoints[endpoint], resp.error);
		http_response_done(&resp);
		return r;
	}
	*ret_status = resp.status;
	*ret = json_loadb(resp.body, resp.len, 0, NULL);
	note_skew(e, &resp);
	http_response_done(&resp);
	if (!*ret) {
		snprintf(err, err_size, "%s: HTTP %ld with a reply that is no JSON", e->s.endpoints[endpoint], resp.status);
		return -EBADMSG;
	}
	return 0;
}

/* A new token from /v3/auth/authenticate (lock held). */
static int authenticate(struct etcd *e, size_t endpoint, long timeout_ms, char *err, size_t err_size)
{
	json_auto_t *body = json_pack("{s:s, s:s}", "name", e->s.user, "password", secret_str(e->s.password));
	json_auto_t *reply = NULL;
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	const char *token;
	long status = 0;
	int r;

	if (!text) {
		return -ENOMEM;
	}
	r = post(e, endpoint, "auth/authenticate", text, NULL, timeout_ms, &status, &reply, err, err_size);
	erase_and_free_str(text);
	if (r < 0) {
		return r;
	}
	token = json_string_value(json_object_get(reply, "token"));
	if (status != 200 || !token) {
		snprintf(err, err_size, "etcd refused user %s: %s", e->s.user,
			 json_string_value(json_object_get(reply, "message")) ?: "no token");
		return -EACCES;
	}
	secret_free(e->auth);
	e->auth = secret_printf("Authorization: %s", token);
	return e->auth ? 0 : -ENOMEM;
}

static bool is_auth_error(const char *msg)
{
	return msg && (strstr(msg, "invalid auth token") || strstr(msg, "user name is empty"));
}

/* Errors another member may not have: no leader, timeouts, shutting down. */
static bool is_member_error(long status, const char *msg)
{
	return status >= 500 || (msg && (strstr(msg, "leader") || strstr(msg, "timed out") || strstr(msg, "stopped")));
}

/* The current auth header (a copy), authenticating first if needed. */
static int auth_header(struct etcd *e, size_t endpoint, bool renew, long timeout_ms, struct secret **ret, char *err,
		       size_t err_size)
{
	int r = 0;

	*ret = NULL;
	if (!e->s.user) {
		return 0;
	}
	pthread_mutex_lock(&e->lock);
	if (!e->auth || renew) {
		r = authenticate(e, endpoint, timeout_ms, err, err_size);
	}
	if (r == 0 && !(*ret = secret_dup(e->auth))) {
		r = -ENOMEM;
	}
	pthread_mutex_unlock(&e->lock);
	return r;
}

static int try_endpoint(struct etcd *e, size_t endpoint, const char *path, const char *body, long timeout_ms,
			json_t **ret, char *err, size_t err_size)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		_cleanup_secret_ struct secret *auth = NULL;
		json_auto_t *reply = NULL;
		const char *msg;
		long status = 0;
		int r;

		r = auth_header(e, endpoint, attempt > 0, timeout_ms, &auth, err, err_size);
		if (r == 0) {
			r = post(e, endpoint, path, body, auth, timeout_ms, &status, &reply, err, err_size);
		}
		if (r < 0) {
			return r == -EACCES ? r : -EHOSTDOWN;
		}
		if (status == 200) {
			*ret = TAKE_PTR(reply);
			return 0;
		}
		msg = json_string_value(json_object_get(reply, "message")) ?: json_string_value(json_object_get(reply, "error"));
		snprintf(err, err_size, "%s: %s", e->s.endpoints[endpoint], msg ?: "error without a message");
		r = is_auth_error(msg) && attempt == 0 ? 1 : is_member_error(status, msg) ? -EHOSTDOWN
							: strstr(msg ?: "", "permission denied") ? -EACCES : -EIO;
		if (r < 0) {
			return r;
		}
	}
	return -EACCES;
}

int etcd_call(struct etcd *e, const char *path, json_t *body_taken, long timeout_ms, json_t **ret, char *err,
	      size_t err_size)
{
	json_auto_t *body = body_taken;
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	double deadline = now_mono() + (double)timeout_ms / 1000;
	size_t first;
	int r = -EHOSTDOWN;

	if (!text) {
		return -ENOMEM;
	}
	pthread_mutex_lock(&e->lock);
	first = e->current;
	pthread_mutex_unlock(&e->lock);
	/* Every member in turn, again and again until the deadline: a leader
	 * election takes a second or two. */
	for (size_t i = 0;; i++) {
		size_t ep = (first + i) % e->s.n_endpoints;
		long left = (long)((deadline - now_mono()) * 1000);
		if (left <= 0) {
			break;
		}
		if (i > 0 && ep == first) {
			usleep(RETRY_PAUSE_MS * 1000);
		}
		r = try_endpoint(e, ep, path, text, left < TRY_TIMEOUT_MS ? left : TRY_TIMEOUT_MS, ret, err, err_size);
		if (r != -EHOSTDOWN) {
			if (r == 0 && ep != first) {
				pthread_mutex_lock(&e->lock);
				e->current = ep; /* stay where it works */
				pthread_mutex_unlock(&e->lock);
			}
			break;
		}
	}
	erase_and_free_str(text);
	if (r < 0) {
		__atomic_add_fetch(&e->errors, 1, __ATOMIC_RELAXED);
	}
	return r;
}

struct watch_stream {
	char *buf;
	size_t len, cap;
	bool (*on_result)(json_t *result, void *userdata);
	void *userdata;
	char *err;
	size_t err_size;
	bool failed;
};

/* The gateway sends one JSON object per message, newline-delimited. */
static bool on_watch_data(const char *data, size_t len, void *userdata)
{
	struct watch_stream *w = userdata;
	char *nl;

	if (w->len + len + 1 > w->cap) {
		size_t cap = (w->len + len + 1) * 2;
		char *n = realloc(w->buf, cap);
		if (!n || cap > 16 * 1024 * 1024) {
			free(n);
			w->buf = NULL;
			return false;
		}
		w->buf = n;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, data, len);
	w->len += len;
	w->buf[w->len] = 0;
	while ((nl = memchr(w->buf, '\n', w->len))) {
		size_t line = (size_t)(nl - w->buf) + 1;
		json_auto_t *msg = json_loadb(w->buf, line - 1, 0, NULL);
		json_t *result = json_object_get(msg, "result");
		bool more = true;
		if (!result) {
			const char *m = json_string_value(json_object_get(json_object_get(msg, "error"), "message"));
			snprintf(w->err, w->err_size, "watch: %s", m ?: "malformed message");
			w->failed = true;
			more = false;
		} else {
			more = w->on_result(result, w->userdata);
		}
		OPENSSL_cleanse(w->buf, line);
		memmove(w->buf, w->buf + line, w->len - line + 1);
		w->len -= line;
		if (!more) {
			return false;
		}
	}
	return true;
}

int etcd_watch(struct etcd *e, json_t *create_request, size_t *ret_endpoint,
	       bool (*on_result)(json_t *result, void *userdata), void *userdata, struct http_cancel *cancel, char *err,
	       size_t err_size)
{
	json_auto_t *body = json_pack("{s:o}", "create_request", create_request);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct watch_stream w = { .on_result = on_result, .userdata = userdata, .err = err, .err_size = err_size };
	_cleanup_secret_ struct secret *auth = NULL;
	_cleanup_free_ char *url = NULL;
	const struct secret *secrets[2] = { NULL, NULL };
	size_t ep;
	int r;

	if (!text) {
		return -ENOMEM;
	}
	pthread_mutex_lock(&e->lock);
	ep = e->current;
	pthread_mutex_unlock(&e->lock);
	*ret_endpoint = ep;
	r = auth_header(e, ep, false, TRY_TIMEOUT_MS, &auth, err, err_size);
	if (r == 0 && asprintf(&url, "%s/v3/watch", e->s.endpoints[ep]) < 0) {
		url = NULL;
		r = -ENOMEM;
	}
	if (r == 0) {
		secrets[0] = auth;
		__atomic_add_fetch(&e->requests, 1, __ATOMIC_RELAXED);
		r = http_stream(&(struct http_request){ .method = "POST", .url = url, .body = text, .body_len = strlen(text),
							.content_type = "application/json",
							.secret_headers = auth ? secrets : NULL,
							.timeout_ms = TRY_TIMEOUT_MS, .tls = &e->s.tls },
				on_watch_data, &w, cancel, err, err_size);
	}
	if (w.failed && r != -ECANCELED) {
		r = -EIO;
		if (is_auth_error(err)) {
			pthread_mutex_lock(&e->lock);
			secret_free(TAKE_PTR(e->auth)); /* authenticate again next time */
			pthread_mutex_unlock(&e->lock);
		}
	}
	if (r < 0 && r != -ECANCELED) {
		etcd_avoid(e, ep);
		__atomic_add_fetch(&e->errors, 1, __ATOMIC_RELAXED);
	}
	free(w.buf);
	erase_and_free_str(text);
	return r;
}

int etcd_probe(struct etcd *e, size_t endpoint, long timeout_ms, char *err, size_t err_size)
{
	json_auto_t *reply = NULL;
	int r;

	/* The range's answer is what counts, not the key: any key will do. */
	r = try_endpoint(e, endpoint, "kv/range", "{\"key\":\"AA==\",\"count_only\":true}", timeout_ms, &reply, err,
			 err_size);
	if (r < 0) {
		__atomic_add_fetch(&e->errors, 1, __ATOMIC_RELAXED);
	}
	return r;
}

void etcd_avoid(struct etcd *e, size_t endpoint)
{
	pthread_mutex_lock(&e->lock);
	if (e->current == endpoint) {
		e->current = (endpoint + 1) % e->s.n_endpoints;
	}
	pthread_mutex_unlock(&e->lock);
}

const char *etcd_endpoint_url(const struct etcd *e, size_t endpoint)
{
	return e->s.endpoints[endpoint];
}
