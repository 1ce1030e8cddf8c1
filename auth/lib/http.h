/* The only libcurl user. Requests run in one multi handle (one thread), whose
 * connection cache and shared TLS session cache let logins and refreshes
 * reuse connections and TLS sessions whatever target they are for, and which
 * bounds the requests in flight however many targets there are. */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "secret.h"

struct http_tls {
	const char *ca_path;  /* NULL: the system's CA bundle */
	bool validate_certs;  /* false only when the config says so */
	const char *cert;     /* client certificate (PEM), or NULL */
	const char *key;      /* its private key (PEM), or NULL */
};

struct http_request {
	const char *method;   /* "GET", "POST", "DELETE" */
	const char *url;
	const char *body;     /* NULL: no body */
	size_t body_len;
	const char *content_type;
	/* Extra headers ("Name: value"); those in secret_headers are wiped after use. */
	const char *const *headers;
	const struct secret *const *secret_headers;
	long timeout_ms;      /* for the whole request; <= 0: 30 s */
	const struct http_tls *tls;
	const char *aws_sigv4;          /* CURLOPT_AWS_SIGV4 provider string, or NULL */
	const struct secret *userpwd;   /* "key:secret" for SigV4 */
};

struct http_response {
	long status;
	char *body;           /* NUL-terminated, wiped on free */
	size_t len;
	char *headers;        /* raw header block of the final response, wiped on free */
	char error[256];      /* transport error in words (curl's message) */
};

#define HTTP_MAX_IN_FLIGHT 32 /* connections at once; more requests wait in libcurl's queue */
#define HTTP_MAX_CONNECTIONS 64 /* idle connections kept for reuse */

int http_global_init(void);
/* OpenSSL fetches the algorithms TLS uses, and the decoders that read a CA
 * file, the first time a process needs them (3 to 10 ms), then keeps them:
 * done at start-up (a TLS context made and freed, ca_path read into it), the
 * first login a reader waits for does not pay for them. What a connection
 * checks is unchanged: libcurl makes its own context, with the CA file it is
 * given. */
void http_warm_up(const char *ca_path);
/* Starts the thread that runs the requests; after any fork (daemonizing). */
int http_start(void);
void http_global_cleanup(void);

/* 0 when a response arrived (any status), -errno for transport failures
 * (ECONNREFUSED, EHOSTUNREACH, ETIMEDOUT, EPROTO, EIO), with resp->error set. */
int http_perform(const struct http_request *req, struct http_response *resp);
void http_response_done(struct http_response *resp);

/* The server's clock: its Date header, as Unix seconds; -ENODATA if absent
 * or unparsable. */
int http_response_date(const struct http_response *resp, time_t *ret);

/* The value of header name (case-insensitive) in resp, copied; NULL if absent. */
char *http_response_header(const struct http_response *resp, const char *name);

/* Ends a stream from another thread at once (not at the stream's next
 * second): http_cancel() sets cancelled and wakes the stream's poll. */
struct http_cancel {
	pthread_mutex_t lock;
	bool cancelled;
	void *multi; /* the running stream's, or NULL */
};
#define HTTP_CANCEL_INIT { .lock = PTHREAD_MUTEX_INITIALIZER }
void http_cancel(struct http_cancel *c);
/* Ready for the next stream (no-op if it was not cancelled). */
void http_cancel_reset(struct http_cancel *c);

/* A long-lived request whose body is handed to on_data as it arrives (etcd's
 * watch), run in the calling thread on a connection of its own. on_data
 * returns false to end it; http_cancel(cancel) ends it too. 0 when the
 * server ended it, -ECANCELED when cancelled, -errno otherwise. */
int http_stream(const struct http_request *req, bool (*on_data)(const char *data, size_t len, void *userdata),
		void *userdata, struct http_cancel *cancel, char *error, size_t error_size);

/* Maps a curl result code (and the socket errno behind it) to -errno. */
int http_curl_errno(int curl_code, long os_errno);
/* Percent-encodes s for a form body (newly allocated). */
char *http_escape(const char *s);
