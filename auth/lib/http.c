/* libcurl wrapper. Every request runs in one multi handle, driven by one
 * thread: libcurl's connection cache there keeps connections alive between
 * logins and refreshes of any target, at most HTTP_MAX_IN_FLIGHT transfers
 * run at once (the others wait in libcurl's queue, their timeout running),
 * and TLS sessions are shared so that a new connection resumes one. Callers
 * block until their transfer is done: threads wait, but no thread per target
 * and no thread per request. */
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <strings.h>

#include "http.h"
#include "log.h"

#define HTTP_MAX_BODY (1024 * 1024)

/* One request, owned by the caller's stack while it waits. */
struct transfer {
	CURL *easy;
	CURLcode result;
	bool done;
	struct transfer *next;
};

static struct {
	CURLM *multi;
	CURLSH *share; /* TLS sessions and DNS, used by every easy handle */
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	pthread_t thread;
	bool running;
	pthread_mutex_t lock; /* guards queue, stop and every transfer's done */
	pthread_cond_t done;
	struct transfer *queue; /* to be added to the multi handle */
	bool stop;
} loop = { .lock = PTHREAD_MUTEX_INITIALIZER, .done = PTHREAD_COND_INITIALIZER };

struct buffer {
	char *data;
	size_t len, cap;
	bool too_big;
};

static void share_lock(CURL *e, curl_lock_data data, curl_lock_access access, void *userdata)
{
	(void)e;
	(void)access;
	(void)userdata;
	pthread_mutex_lock(&loop.share_locks[data]);
}

static void share_unlock(CURL *e, curl_lock_data data, void *userdata)
{
	(void)e;
	(void)userdata;
	pthread_mutex_unlock(&loop.share_locks[data]);
}

/* Adds queued transfers, then reports finished ones to their callers.
 * Returns whether any ended. */
static bool run_once(void)
{
	struct transfer *t;
	CURLMsg *msg;
	int running, left;
	bool ended = false;

	pthread_mutex_lock(&loop.lock);
	while ((t = loop.queue)) {
		loop.queue = t->next;
		if (curl_multi_add_handle(loop.multi, t->easy) != CURLM_OK) {
			t->result = CURLE_OUT_OF_MEMORY;
			t->done = true;
		}
	}
	pthread_cond_broadcast(&loop.done);
	pthread_mutex_unlock(&loop.lock);
	curl_multi_perform(loop.multi, &running);
	while ((msg = curl_multi_info_read(loop.multi, &left))) {
		if (msg->msg != CURLMSG_DONE) {
			continue;
		}
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		curl_multi_remove_handle(loop.multi, msg->easy_handle);
		pthread_mutex_lock(&loop.lock);
		t->result = msg->data.result;
		t->done = true;
		ended = true;
		pthread_cond_broadcast(&loop.done);
		pthread_mutex_unlock(&loop.lock);
	}
	return ended;
}

static void *loop_thread(void *userdata)
{
	(void)userdata;
	for (;;) {
		pthread_mutex_lock(&loop.lock);
		if (loop.stop) {
			pthread_mutex_unlock(&loop.lock);
			return NULL;
		}
		pthread_mutex_unlock(&loop.lock);
		if (run_once()) {
			secret_wipe_stack(); /* requests and replies, encrypted and decrypted here */
		}
		curl_multi_poll(loop.multi, NULL, 0, 1000, NULL); /* curl_multi_wakeup() ends it early */
	}
}

int http_global_init(void)
{
	/* Its buffers hold request bodies (passwords) and headers (tokens). */
	if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, wiped_free, wiped_realloc, strdup, calloc) != CURLE_OK) {
		return -EIO;
	}
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++) {
		pthread_mutex_init(&loop.share_locks[i], NULL);
	}
	loop.share = curl_share_init();
	loop.multi = curl_multi_init();
	if (!loop.share || !loop.multi) {
		return -ENOMEM;
	}
	curl_share_setopt(loop.share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(loop.share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(loop.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_share_setopt(loop.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_multi_setopt(loop.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)HTTP_MAX_IN_FLIGHT);
	curl_multi_setopt(loop.multi, CURLMOPT_MAXCONNECTS, (long)HTTP_MAX_CONNECTIONS);
	return 0;
}

void http_warm_up(const char *ca_path)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	/* Nothing to report: a login that fails on the same file says why. */
	if (ctx && ca_path) {
		X509_STORE_load_file(SSL_CTX_get_cert_store(ctx), ca_path);
	}
	SSL_CTX_free(ctx);
	ERR_clear_error(); /* a failure's, left for no one */
}

int http_start(void)
{
	int r = -pthread_create(&loop.thread, NULL, loop_thread, NULL);

	if (r < 0) {
		return log_error_errno(r, "Failed to start the HTTP thread: %m");
	}
	loop.running = true;
	return 0;
}

void http_global_cleanup(void)
{
	if (loop.running) {
		pthread_mutex_lock(&loop.lock);
		loop.stop = true;
		pthread_mutex_unlock(&loop.lock);
		curl_multi_wakeup(loop.multi);
		pthread_join(loop.thread, NULL);
		loop.running = false;
	}
	if (loop.multi) {
		curl_multi_cleanup(loop.multi);
		loop.multi = NULL;
	}
	if (loop.share) {
		curl_share_cleanup(loop.share);
		loop.share = NULL;
	}
	curl_global_cleanup();
}

/* Hands t to the loop thread and waits until it is done. */
static void run_transfer(struct transfer *t)
{
	pthread_mutex_lock(&loop.lock);
	t->next = loop.queue;
	loop.queue = t;
	pthread_mutex_unlock(&loop.lock);
	curl_multi_wakeup(loop.multi);
	pthread_mutex_lock(&loop.lock);
	while (!t->done) {
		pthread_cond_wait(&loop.done, &loop.lock);
	}
	pthread_mutex_unlock(&loop.lock);
}

/* Bodies may carry tokens: grow by copying into fresh memory and wipe the old. */
static int buffer_append(struct buffer *b, const char *data, size_t len)
{
	if (b->len + len > HTTP_MAX_BODY) {
		b->too_big = true;
		return -EFBIG;
	}
	if (b->len + len + 1 > b->cap) {
		size_t cap = (b->len + len + 1) * 2;
		char *n = malloc(cap);
		if (!n) {
			return -ENOMEM;
		}
		if (b->data) {
			memcpy(n, b->data, b->len);
			erase_and_free(b->data, b->cap);
		}
		b->data = n;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = 0;
	return 0;
}

static size_t on_body(char *ptr, size_t size, size_t n, void *userdata)
{
	return buffer_append(userdata, ptr, size * n) == 0 ? size * n : 0;
}

static size_t on_header(char *ptr, size_t size, size_t n, void *userdata)
{
	struct buffer *b = userdata;

	/* A new status line starts a new response (after 100 Continue, redirects). */
	if (size * n >= 5 && strncmp(ptr, "HTTP/", 5) == 0 && b->data) {
		OPENSSL_cleanse(b->data, b->len);
		b->len = 0;
	}
	return buffer_append(b, ptr, size * n) == 0 ? size * n : 0;
}

int http_curl_errno(int curl_code, long os_errno)
{
	switch (curl_code) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_CONNECT:
		if (os_errno == EHOSTUNREACH || os_errno == ENETUNREACH || os_errno == ETIMEDOUT) {
			return -(int)os_errno;
		}
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_USE_SSL_FAILED:
		return -EPROTO;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EINVAL;
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		return -EFBIG;
	default: /* reset, nothing received, partial body, ... */
		return -EIO;
	}
}

static void slist_wipe_free(struct curl_slist *l)
{
	for (struct curl_slist *i = l; i; i = i->next) {
		OPENSSL_cleanse(i->data, strlen(i->data));
	}
	curl_slist_free_all(l);
}

static struct curl_slist *build_headers(const struct http_request *req, bool *ok)
{
	struct curl_slist *l = NULL, *n;
	char ct[128];

	*ok = true;
	if (req->content_type) {
		snprintf(ct, sizeof(ct), "Content-Type: %s", req->content_type);
		n = curl_slist_append(l, ct);
		*ok = *ok && n;
		l = n ?: l;
	}
	/* No "Expect: 100-continue" round trip. Not with SigV4: curl would sign
	 * the removed header without sending it. */
	if (!req->aws_sigv4) {
		n = curl_slist_append(l, "Expect:");
		*ok = *ok && n;
		l = n ?: l;
	}
	for (size_t i = 0; req->headers && req->headers[i]; i++) {
		n = curl_slist_append(l, req->headers[i]);
		*ok = *ok && n;
		l = n ?: l;
	}
	for (size_t i = 0; req->secret_headers && req->secret_headers[i]; i++) {
		n = curl_slist_append(l, secret_str(req->secret_headers[i]));
		*ok = *ok && n;
		l = n ?: l;
	}
	return l;
}

/* Decrypted responses (tokens) are wiped from OpenSSL's read buffer once
 * read, not kept there while the connection waits in the cache. */
static CURLcode on_ssl_ctx(CURL *e, void *ssl_ctx, void *userdata)
{
	(void)e;
	(void)userdata;
	SSL_CTX_set_options(ssl_ctx, SSL_OP_CLEANSE_PLAINTEXT);
	return CURLE_OK;
}

static void setup(CURL *e, const struct http_request *req, struct curl_slist *headers,
		  struct buffer *body, struct buffer *hdrs, char *errbuf)
{
	curl_easy_setopt(e, CURLOPT_SHARE, loop.share);
	curl_easy_setopt(e, CURLOPT_URL, req->url);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "sessionfs/" SESSIONFS_VERSION);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 30000L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, hdrs);
	if (req->body) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)req->body_len);
	} else if (strcmp(req->method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	}
	if (req->tls && req->tls->ca_path) {
		curl_easy_setopt(e, CURLOPT_CAINFO, req->tls->ca_path);
	}
	if (req->tls && req->tls->cert) {
		curl_easy_setopt(e, CURLOPT_SSLCERT, req->tls->cert);
		curl_easy_setopt(e, CURLOPT_SSLKEY, req->tls->key ? req->tls->key : req->tls->cert);
	}
	if (req->tls && !req->tls->validate_certs) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (req->aws_sigv4) {
		curl_easy_setopt(e, CURLOPT_AWS_SIGV4, req->aws_sigv4);
		curl_easy_setopt(e, CURLOPT_USERPWD, secret_str(req->userpwd));
		/* libcurl keeps the user and password with the connection, for as
		 * long as it is cached: close it after this request instead. */
		curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	}
}

int http_perform(const struct http_request *req, struct http_response *resp)
{
	struct buffer body = { 0 }, hdrs = { 0 };
	char errbuf[CURL_ERROR_SIZE] = "";
	struct transfer t = { 0 };
	struct curl_slist *headers;
	long os_errno = 0;
	bool ok;
	int r;

	*resp = (struct http_response){ 0 };
	if (!loop.running) {
		return -ENOTCONN;
	}
	t.easy = curl_easy_init();
	headers = build_headers(req, &ok);
	if (!t.easy || !ok) {
		slist_wipe_free(headers);
		curl_easy_cleanup(t.easy);
		return -ENOMEM;
	}
	setup(t.easy, req, headers, &body, &hdrs, errbuf);
	curl_easy_setopt(t.easy, CURLOPT_PRIVATE, (char *)&t);
	run_transfer(&t);
	curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_easy_getinfo(t.easy, CURLINFO_OS_ERRNO, &os_errno);
	curl_easy_cleanup(t.easy); /* its connection stays in the multi handle's cache */
	slist_wipe_free(headers);

	r = http_curl_errno(t.result, os_errno);
	if (r == -EFBIG && body.too_big) {
		snprintf(resp->error, sizeof(resp->error), "response body larger than %d bytes", HTTP_MAX_BODY);
		r = -EBADMSG;
	} else if (r < 0) {
		snprintf(resp->error, sizeof(resp->error), "%s", errbuf[0] ? errbuf : curl_easy_strerror(t.result));
		/* curl's messages end with a newline sometimes. */
		resp->error[strcspn(resp->error, "\n")] = 0;
	}
	resp->body = body.data ? body.data : calloc(1, 1);
	resp->len = body.len;
	resp->headers = hdrs.data ? hdrs.data : calloc(1, 1);
	if (!resp->body || !resp->headers) {
		http_response_done(resp);
		return -ENOMEM;
	}
	if (r < 0) {
		resp->status = 0;
	}
	return r;
}

void http_response_done(struct http_response *resp)
{
	if (resp->body) {
		erase_and_free(resp->body, resp->len);
	}
	erase_and_free_str(resp->headers);
	resp->body = resp->headers = NULL;
	resp->len = 0;
}

char *http_response_header(const struct http_response *resp, const char *name)
{
	size_t nlen = strlen(name);

	for (const char *l = resp->headers; l && *l;) {
		const char *end = strstr(l, "\r\n");
		size_t llen = end ? (size_t)(end - l) : strlen(l);
		if (llen > nlen && l[nlen] == ':' && strncasecmp(l, name, nlen) == 0) {
			const char *v = l + nlen + 1;
			while (*v == ' ' || *v == '\t') {
				v++;
			}
			return strndup(v, (size_t)(l + llen - v));
		}
		l = end ? end + 2 : l + llen;
	}
	return NULL;
}

int http_response_date(const struct http_response *resp, time_t *ret)
{
	_cleanup_free_ char *date = http_response_header(resp, "Date");
	time_t t;

	if (!date || (t = curl_getdate(date, NULL)) <= 0) {
		return -ENODATA;
	}
	*ret = t;
	return 0;
}

char *http_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0), *copy;

	if (!e) {
		return NULL;
	}
	copy = strdup(e);
	curl_free(e);
	return copy;
}

void http_cancel(struct http_cancel *c)
{
	pthread_mutex_lock(&c->lock);
	c->cancelled = true;
	if (c->multi) {
		curl_multi_wakeup(c->multi);
	}
	pthread_mutex_unlock(&c->lock);
}

void http_cancel_reset(struct http_cancel *c)
{
	pthread_mutex_lock(&c->lock);
	c->cancelled = false;
	pthread_mutex_unlock(&c->lock);
}

static bool is_cancelled(struct http_cancel *c)
{
	bool cancelled;

	pthread_mutex_lock(&c->lock);
	cancelled = c->cancelled;
	pthread_mutex_unlock(&c->lock);
	return cancelled;
}

struct stream {
	bool (*on_data)(const char *data, size_t len, void *userdata);
	void *userdata;
};

static size_t on_stream_body(char *ptr, size_t size, size_t n, void *userdata)
{
	struct stream *st = userdata;

	return st->on_data(ptr, size * n, st->userdata) ? size * n : 0;
}

/* The stream's own multi handle, so that http_cancel() can wake its poll:
 * the result, or CURLE_ABORTED_BY_CALLBACK when cancelled. */
static CURLcode perform_cancellable(CURL *e, struct http_cancel *cancel)
{
	CURLcode res = CURLE_ABORTED_BY_CALLBACK;
	CURLM *m = curl_multi_init();
	int running = 1, left;

	if (!m || curl_multi_add_handle(m, e) != CURLM_OK) {
		curl_multi_cleanup(m);
		return CURLE_OUT_OF_MEMORY;
	}
	pthread_mutex_lock(&cancel->lock);
	cancel->multi = m;
	pthread_mutex_unlock(&cancel->lock);
	while (!is_cancelled(cancel)) {
		if (curl_multi_perform(m, &running) != CURLM_OK) {
			res = CURLE_RECV_ERROR;
			break;
		}
		if (!running) {
			CURLMsg *msg = curl_multi_info_read(m, &left);
			res = msg && msg->msg == CURLMSG_DONE ? msg->data.result : CURLE_RECV_ERROR;
			break;
		}
		curl_multi_poll(m, NULL, 0, 1000, NULL);
	}
	pthread_mutex_lock(&cancel->lock);
	cancel->multi = NULL;
	pthread_mutex_unlock(&cancel->lock);
	curl_multi_remove_handle(m, e);
	curl_multi_cleanup(m);
	return res;
}

int http_stream(const struct http_request *req, bool (*on_data)(const char *data, size_t len, void *userdata),
		void *userdata, struct http_cancel *cancel, char *error, size_t error_size)
{
	struct stream st = { on_data, userdata };
	struct buffer hdrs = { 0 };
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *headers;
	long os_errno = 0, status = 0;
	CURLcode res;
	CURL *e;
	bool ok;
	int r;

	e = curl_easy_init();
	headers = build_headers(req, &ok);
	if (!e || !ok) {
		slist_wipe_free(headers);
		curl_easy_cleanup(e);
		return -ENOMEM;
	}
	setup(e, req, headers, NULL, &hdrs, errbuf);
	curl_easy_setopt(e, CURLOPT_SHARE, NULL); /* its own thread: no locking dance for one connection */
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 0L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 30000L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 10L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 5L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_stream_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &st);
	res = perform_cancellable(e, cancel);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);
	curl_easy_cleanup(e);
	slist_wipe_free(headers);
	if (hdrs.data) {
		erase_and_free(hdrs.data, hdrs.cap);
	}
	if (res == CURLE_ABORTED_BY_CALLBACK || (res == CURLE_WRITE_ERROR && is_cancelled(cancel))) {
		return -ECANCELED;
	}
	r = http_curl_errno(res, os_errno);
	if (r == 0 && status != 200) {
		snprintf(error, error_size, "HTTP status %ld", status);
		return -EIO;
	}
	if (r < 0) {
		snprintf(error, error_size, "%s", errbuf[0] ? errbuf : curl_easy_strerror(res));
		error[strcspn(error, "\n")] = 0;
	}
	return r;
}
