/* Parsing what is written to a `credentials` file. */
#include <errno.h>
#include <jansson.h>

#include "provider.h"

static bool printable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			return false;
		}
	}
	return true;
}

/* Well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF), as JSON, where the credentials are saved, requires. */
static bool utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;

	while (p < end) {
		unsigned c = *p, need, cp;
		if (c < 0x80) {
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if ((size_t)(end - p) <= need) {
			return false;
		}
		for (unsigned i = 1; i <= need; i++) {
			if ((p[i] & 0xc0) != 0x80) {
				return false;
			}
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff)) {
			return false;
		}
		p += need + 1;
	}
	return true;
}

static int parse_json(const char *data, size_t len, char **ret_user, struct secret **ret_password)
{
	json_t *o = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
	const char *user, *password;
	int r = -EINVAL;

	user = json_string_value(json_object_get(o, "username"));
	password = json_string_value(json_object_get(o, "password"));
	if (json_is_object(o) && user && password && *user && *password &&
	    printable(user, strlen(user))) {
		char *u = strdup(user);
		struct secret *p = secret_new_str(password);
		r = u && p ? 0 : -ENOMEM;
		if (r == 0) {
			*ret_user = u;
			*ret_password = p;
		} else {
			free(u);
			secret_free(p);
		}
	}
	json_decref(o);
	return r;
}

int credentials_parse(const char *data, size_t len, char **ret_user, struct secret **ret_password)
{
	struct secret *password;
	const char *colon;
	char *user;

	/* One trailing newline, as echo writes it. */
	if (len > 0 && data[len - 1] == '\n') {
		len--;
	}
	if (len > 0 && data[len - 1] == '\r') {
		len--;
	}
	if (len > 0 && data[0] == '{') {
		return parse_json(data, len, ret_user, ret_password);
	}
	/* user:password; the password may itself contain ':'. */
	colon = memchr(data, ':', len);
	if (!colon || colon == data || colon == data + len - 1 || !printable(data, len) || !utf8_valid(data, len)) {
		return -EINVAL;
	}
	user = strndup(data, (size_t)(colon - data));
	password = secret_new(colon + 1, (size_t)(data + len - colon - 1));
	if (!user || !password) {
		free(user);
		secret_free(password);
		return -ENOMEM;
	}
	*ret_user = user;
	*ret_password = password;
	return 0;
}
