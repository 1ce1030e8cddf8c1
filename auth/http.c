/* libcurl wrapper: one easy handle per target, reused so that keep-alive
 * connections and TLS sessions survive between requests. */
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>

#include "http.h"
#include "log.h"

#define HTTP_MAX_BODY (1024 * 1024)

static struct {
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	pthread_mutex_t lock; /* guards the pool */
	pthread_cond_t freed;
	CURL *idle[HTTP_MAX_IN_FLIGHT];
	size_t n_idle, n_made;
} pool = { .lock = PTHREAD_MUTEX_INITIALIZER, .freed = PTHREAD_COND_INITIALIZER };

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
	pthread_mutex_lock(&pool.share_locks[data]);
}

static void share_unlock(CURL *e, curl_lock_data data, void *userdata)
{
	(void)e;
	(void)userdata;
	pthread_mutex_unlock(&pool.share_locks[data]);
}

int http_global_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		return -EIO;
	}
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++) {
		pthread_mutex_init(&pool.share_locks[i], NULL);
	}
	pool.share = curl_share_init();
	if (!pool.share) {
		return -ENOMEM;
	}
	curl_share_setopt(pool.share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(pool.share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(pool.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(pool.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_share_setopt(pool.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	return 0;
}

void http_global_cleanup(void)
{
	for (size_t i = 0; i < pool.n_idle; i++) {
		curl_easy_cleanup(pool.idle[i]);
	}
	pool.n_idle = pool.n_made = 0;
	if (pool.share) {
		curl_share_cleanup(pool.share);
		pool.share = NULL;
	}
	curl_global_cleanup();
}

/* A handle from the pool, waiting at most until deadline for one to be free. */
static CURL *take_handle(const struct timespec *deadline)
{
	CURL *e = NULL;

	pthread_mutex_lock(&pool.lock);
	while (!e) {
		if (pool.n_idle > 0) {
			e = pool.idle[--pool.n_idle];
		} else if (pool.n_made < HTTP_MAX_IN_FLIGHT) {
			if ((e = curl_easy_init())) {
				pool.n_made++;
			}
			break;
		} else if (pthread_cond_timedwait(&pool.freed, &pool.lock, deadline) == ETIMEDOUT) {
			break;
		}
	}
	pthread_mutex_unlock(&pool.lock);
	return e;
}

static void give_back(CURL *e)
{
	pthread_mutex_lock(&pool.lock);
	pool.idle[pool.n_idle++] = e;
	pthread_cond_signal(&pool.freed);
	pthread_mutex_unlock(&pool.lock);
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

static void setup(CURL *e, const struct http_request *req, struct curl_slist *headers,
		  struct buffer *body, struct buffer *hdrs, char *errbuf)
{
	curl_easy_reset(e);
	curl_easy_setopt(e, CURLOPT_SHARE, pool.share);
	curl_easy_setopt(e, CURLOPT_MAXCONNECTS, (long)HTTP_MAX_CONNECTIONS);
	curl_easy_setopt(e, CURLOPT_URL, req->url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, (long)(req->timeout > 0 ? req->timeout : 30));
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
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
	if (req->tls && !req->tls->validate_certs) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (req->aws_sigv4) {
		curl_easy_setopt(e, CURLOPT_AWS_SIGV4, req->aws_sigv4);
		curl_easy_setopt(e, CURLOPT_USERPWD, secret_str(req->userpwd));
	}
}

int http_perform(const struct http_request *req, struct http_response *resp)
{
	struct buffer body = { 0 }, hdrs = { 0 };
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *headers;
	struct timespec deadline;
	long os_errno = 0;
	CURLcode cc;
	bool ok;
	CURL *e;
	int r;

	*resp = (struct http_response){ 0 };
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += req->timeout > 0 ? req->timeout : 30;
	e = take_handle(&deadline);
	if (!e) {
		snprintf(resp->error, sizeof(resp->error), "all %d connections busy", HTTP_MAX_IN_FLIGHT);
		return -ETIMEDOUT;
	}
	headers = build_headers(req, &ok);
	if (!ok) {
		slist_wipe_free(headers);
		give_back(e);
		return -ENOMEM;
	}
	setup(e, req, headers, &body, &hdrs, errbuf);
	cc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);
	/* Drop references to our stack buffers before the handle goes back. */
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(e, CURLOPT_USERPWD, NULL);
	give_back(e);
	slist_wipe_free(headers);

	r = http_curl_errno(cc, os_errno);
	if (r == -EFBIG && body.too_big) {
		snprintf(resp->error, sizeof(resp->error), "response body larger than %d bytes", HTTP_MAX_BODY);
		r = -EBADMSG;
	} else if (r < 0) {
		snprintf(resp->error, sizeof(resp->error), "%s", errbuf[0] ? errbuf : curl_easy_strerror(cc));
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
