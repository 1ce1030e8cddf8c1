/* The grammar of every value a server sends us, or a user writes, that ends up
 * in a file we serve, a header we send, or a URL we call: checked before it is
 * stored. Whatever fails is refused (EBADMSG from a server, EINVAL from a
 * write); nothing here is ever repaired. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#define VALIDATE_TOKEN_MAX 16384 /* bytes of a token or AWS credential */
#define VALIDATE_PATH_MAX 1024   /* bytes of a Redfish URI path */

/* A token for an HTTP header and for $(cat token): visible ASCII without
 * space, quotes or backslash (RFC 7230 field-value, stricter). */
bool validate_token(const char *s);
/* An AWS access key id: [A-Z0-9]{16,128}. */
bool validate_aws_key_id(const char *s);
/* Base64 (standard alphabet, optional = padding): SecretAccessKey, SessionToken. */
bool validate_base64(const char *s);
/* An RFC 3339 date-time: 2026-11-23T16:00:00Z, with optional fraction and offset. */
bool validate_rfc3339(const char *s);
/* A Redfish resource Id: [A-Za-z0-9_.-], 1..128, not starting with '.'. */
bool validate_redfish_id(const char *s);
/* An absolute URI path of Redfish ids: no "." or ".." segments, no '%',
 * query or fragment; one trailing '/' allowed. */
bool validate_uri_path(const char *s);
/* A session's Location (a path, or an absolute URL on base_url's origin) that
 * names a member of the Sessions collection at sessions_uri; its path in
 * *ret_path. -EBADMSG otherwise, -ENOMEM. */
int validate_session_location(const char *location, const char *base_url, const char *sessions_uri,
			      char **ret_path);
/* An integer JSON value in [min, max]. */
bool validate_json_int(const json_t *j, json_int_t min, json_int_t max);

/* s as one POSIX shell word: in single quotes, each ' written as '\''.
 * Newly allocated; NULL on ENOMEM. */
char *shell_quote(const char *s);
