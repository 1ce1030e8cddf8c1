/* A client of etcd v3's JSON gateway (/v3/...), over http.c. Keys and values
 * are base64 there, int64 fields come as strings, and fields holding their
 * default value are left out. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "http.h"
#include "secret.h"

struct etcd_settings {
	char **endpoints;     /* "https://a:2379", ... tried in turn */
	size_t n_endpoints;
	struct http_tls tls;
	const char *user;     /* etcd auth, or NULL */
	const struct secret *password;
};

struct etcd;

int etcd_new(const struct etcd_settings *s, struct etcd **ret);
void etcd_free(struct etcd *e);

/* POST /v3/<path> with body (a reference is stolen). -EHOSTDOWN when no
 * endpoint answers (or none has quorum), -EACCES when etcd auth refuses,
 * -EIO for other etcd errors; the message in err. */
int etcd_call(struct etcd *e, const char *path, json_t *body, long timeout_ms, json_t **ret, char *err, size_t err_size);
/* A watch: on_result gets each message's "result" (borrowed) until it
 * returns false, http_cancel(cancel) is called, or the stream ends. It runs
 * on the current endpoint, whose index is in *ret_endpoint before the first
 * message; a failure moves the next call to the next endpoint. */
int etcd_watch(struct etcd *e, json_t *create_request, size_t *ret_endpoint,
	       bool (*on_result)(json_t *result, void *userdata), void *userdata, struct http_cancel *cancel, char *err,
	       size_t err_size);
/* Is the member at endpoint alive, with quorum? A linearizable read there
 * alone (no failover): 0, or -errno with the reason in err. */
int etcd_probe(struct etcd *e, size_t endpoint, long timeout_ms, char *err, size_t err_size);
/* Calls go elsewhere than endpoint from now on (if they went there). */
void etcd_avoid(struct etcd *e, size_t endpoint);
const char *etcd_endpoint_url(const struct etcd *e, size_t endpoint);

/* etcd's clock minus ours in seconds, by the Date of its last reply (0
 * within 2 s): the fleet's common clock for times in shared values. */
time_t etcd_clock_skew(const struct etcd *e);

/* Requests made and failed (for .metrics). */
uint64_t etcd_requests(const struct etcd *e);
uint64_t etcd_errors(const struct etcd *e);

/* base64 both ways; the results are plain heap strings/bytes (NUL-terminated). */
char *etcd_b64(const void *data, size_t len);
int etcd_unb64(const char *s, unsigned char **ret, size_t *ret_len);
/* An int64 field (a JSON string or number); 0 when left out. */
int64_t etcd_int(const json_t *obj, const char *field);
/* {"key": b64(key)} plus range_end for a prefix, as a new object. */
json_t *etcd_key(const char *key, bool prefix);
