/* JWT expiry: the exp claim of the base64url-encoded payload (RFC 7519).
 * The signature is the server's business; we only need to know when to refresh. */
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "provider.h"
#include "lib/validate.h"

#define JWT_EXP_MAX 253402300799 /* 9999-12-31T23:59:59Z: what an expiry can be written as */

/* Both buffers hold a piece of a token: wiped when freed. */
int base64url_decode(const char *in, size_t len, char **ret, size_t *ret_len)
{
	size_t padded = (len + 3) / 4 * 4, pad = padded - len, out_size = padded / 4 * 3 + 1;
	_cleanup_erase_ char *std = NULL;
	unsigned char *out;
	int n;

	if (len % 4 == 1) {
		return -EBADMSG;
	}
	std = calloc(1, padded + 1); /* zeroed: a strlen() of it wipes whatever was written */
	out = calloc(1, out_size);
	if (!std || !out) {
		free(out);
		return -ENOMEM;
	}
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		if (c == '-') {
			c = '+';
		} else if (c == '_') {
			c = '/';
		} else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
			erase_and_free(out, out_size);
			return -EBADMSG;
		}
		std[i] = c;
	}
	memset(std + len, '=', pad);
	n = EVP_DecodeBlock(out, (unsigned char *)std, (int)padded);
	if (n < 0) {
		erase_and_free(out, out_size);
		return -EBADMSG;
	}
	n -= (int)pad; /* EVP_DecodeBlock counts padding as zero bytes */
	out[n] = 0;
	*ret_len = (size_t)n;
	*ret = (char *)out;
	return 0;
}

int jwt_expiry(const char *token, time_t *ret)
{
	const char *p1 = strchr(token, '.'), *p2;
	char *payload = NULL;
	json_t *claims, *exp;
	size_t len;
	int r;

	if (!p1 || !(p2 = strchr(p1 + 1, '.'))) {
		return -EBADMSG;
	}
	r = base64url_decode(p1 + 1, (size_t)(p2 - p1 - 1), &payload, &len);
	if (r < 0) {
		return r;
	}
	claims = json_loadb(payload, len, 0, NULL);
	erase_and_free(payload, len);
	if (!json_is_object(claims)) {
		json_decref(claims);
		return -EBADMSG;
	}
	exp = json_object_get(claims, "exp");
	if (!exp) {
		r = -ENODATA;
	} else if (validate_json_int(exp, 1, JWT_EXP_MAX)) {
		*ret = (time_t)json_integer_value(exp);
	} else if (json_is_real(exp) && json_real_value(exp) >= 1 && json_real_value(exp) <= JWT_EXP_MAX) {
		*ret = (time_t)json_real_value(exp); /* in range: the conversion is defined */
	} else {
		r = -EBADMSG;
	}
	json_decref(claims);
	return r;
}
