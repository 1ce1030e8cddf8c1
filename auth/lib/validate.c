/* Grammar checks for untrusted values (validate.h). Each says yes or no and
 * never logs: the caller names the field in its error. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util.h"
#include "validate.h"

bool validate_token(const char *s)
{
	size_t len = s ? strlen(s) : 0;

	if (len == 0 || len > VALIDATE_TOKEN_MAX) {
		return false;
	}
	for (const char *p = s; *p; p++) {
		if (*p < 0x21 || *p > 0x7e || strchr("\"'`\\", *p)) {
			return false;
		}
	}
	return true;
}

bool validate_aws_key_id(const char *s)
{
	size_t len = s ? strlen(s) : 0;

	return len >= 16 && len <= 128 && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == len;
}

bool validate_base64(const char *s)
{
	size_t len = s ? strlen(s) : 0;
	size_t body = s ? strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") : 0;
	size_t pad = s ? strspn(s + body, "=") : 0;

	return body > 0 && len <= VALIDATE_TOKEN_MAX && pad <= 2 && body + pad == len;
}

/* n decimal digits in [min, max] at *p; advances *p. */
static bool digits(const char **p, int n, int min, int max)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i])) {
			return false;
		}
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	return v >= min && v <= max;
}

static bool expect(const char **p, char c)
{
	if (**p != c) {
		return false;
	}
	(*p)++;
	return true;
}

bool validate_rfc3339(const char *s)
{
	const char *p = s;

	if (!s || !digits(&p, 4, 0, 9999) || !expect(&p, '-') || !digits(&p, 2, 1, 12) || !expect(&p, '-') ||
	    !digits(&p, 2, 1, 31) || !expect(&p, 'T') || !digits(&p, 2, 0, 23) ||
	    !expect(&p, ':') || !digits(&p, 2, 0, 59) || !expect(&p, ':') || !digits(&p, 2, 0, 60)) {
		return false;
	}
	if (*p == '.') {
		size_t n = strspn(++p, "0123456789");
		if (n == 0 || n > 9) {
			return false;
		}
		p += n;
	}
	if (*p == 'Z') {
		return p[1] == 0;
	}
	if (*p != '+' && *p != '-') {
		return false;
	}
	p++;
	return digits(&p, 2, 0, 23) && expect(&p, ':') && digits(&p, 2, 0, 59) && *p == 0;
}

bool validate_redfish_id(const char *s)
{
	size_t len = s ? strlen(s) : 0;

	if (len == 0 || len > 128 || s[0] == '.') {
		return false;
	}
	for (const char *p = s; *p; p++) {
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') {
			return false;
		}
	}
	return true;
}

/* The segment of len bytes at s, copied to check it as an id. */
static bool segment_valid(const char *s, size_t len)
{
	char seg[129];

	if (len == 0 || len >= sizeof(seg)) {
		return false;
	}
	memcpy(seg, s, len);
	seg[len] = 0;
	return validate_redfish_id(seg);
}

bool validate_uri_path(const char *s)
{
	size_t len = s ? strlen(s) : 0;

	if (len < 2 || len > VALIDATE_PATH_MAX || s[0] != '/') {
		return false;
	}
	if (s[len - 1] == '/') {
		len--; /* iLO's Location ends in a slash */
	}
	if (len < 2) {
		return false; /* "//": no segment */
	}
	for (const char *p = s + 1, *end = s + len; p < end;) {
		const char *slash = memchr(p, '/', (size_t)(end - p));
		size_t n = slash ? (size_t)(slash - p) : (size_t)(end - p);
		if (!segment_valid(p, n)) {
			return false;
		}
		p += n + (slash ? 1 : 0);
		if (slash && p == end) {
			return false; /* "//" at the end */
		}
	}
	return true;
}

/* The path of location when it is on base_url's origin ("scheme://host:port",
 * or without the port when it is the scheme's default); NULL otherwise. */
static const char *same_origin_path(const char *location, const char *base_url)
{
	size_t blen = strlen(base_url);
	const char *colon = strrchr(base_url, ':');
	bool default_port = (strncmp(base_url, "https://", 8) == 0 && streq_ptr(colon, ":443")) ||
			    (strncmp(base_url, "http://", 7) == 0 && streq_ptr(colon, ":80"));

	if (!strstr(location, "://")) {
		return location;
	}
	if (strncasecmp(location, base_url, blen) == 0 && location[blen] == '/') {
		return location + blen;
	}
	if (default_port && strncasecmp(location, base_url, (size_t)(colon - base_url)) == 0 &&
	    location[colon - base_url] == '/') {
		return location + (colon - base_url);
	}
	return NULL;
}

int validate_session_location(const char *location, const char *base_url, const char *sessions_uri,
			      char **ret_path)
{
	const char *path = location ? same_origin_path(location, base_url) : NULL;
	size_t ulen = sessions_uri ? strlen(sessions_uri) : 0;
	char *copy;

	if (ulen > 0 && sessions_uri[ulen - 1] == '/') {
		ulen--;
	}
	if (!path || !sessions_uri || !validate_uri_path(path) || !validate_uri_path(sessions_uri) ||
	    strncmp(path, sessions_uri, ulen) != 0 || path[ulen] != '/') {
		return -EBADMSG;
	}
	/* Exactly one more segment: the session's id (and iLO's trailing slash). */
	const char *id = path + ulen + 1, *slash = strchr(id, '/');
	if (!*id || (slash && slash[1])) {
		return -EBADMSG;
	}
	copy = strdup(path);
	if (!copy) {
		return -ENOMEM;
	}
	*ret_path = copy;
	return 0;
}

bool validate_json_int(const json_t *j, json_int_t min, json_int_t max)
{
	return json_is_integer(j) && json_integer_value(j) >= min && json_integer_value(j) <= max;
}

char *shell_quote(const char *s)
{
	size_t n = 2;
	char *out, *o;

	for (const char *p = s; *p; p++) {
		n += *p == '\'' ? 4 : 1;
	}
	out = malloc(n + 1);
	if (!out) {
		return NULL;
	}
	o = out;
	*o++ = '\'';
	for (const char *p = s; *p; p++) {
		if (*p == '\'') {
			memcpy(o, "'\\''", 4);
			o += 4;
		} else {
			*o++ = *p;
		}
	}
	*o++ = '\'';
	*o = 0;
	return out;
}
