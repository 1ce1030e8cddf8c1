/* Fleet mode: a login the server refused (EKEYREJECTED) is recorded in the
 * target's key, in place of a session, so that no other node tries the same
 * credentials again: accounts lock after a few failures. A node whose
 * credentials (or one-time code) differ tries its own; new credentials or
 * rm token on any node end the record. The record names the credentials
 * only by a salted PBKDF2 digest, and is sealed like every value. */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

#include "lib/etcd.h"
#include "reject.h"

#define SALT_LEN 16
#define DIGEST_LEN 32
#define DIGEST_ITERATIONS 100000 /* about 50 ms here: guessing a password from a record is slow */

static int digest(const struct auth_ctx *ctx, const unsigned char *salt, unsigned char out[DIGEST_LEN])
{
	const char *user = ctx->user ?: "", *password = secret_str(ctx->password) ?: "";
	_cleanup_secret_ struct secret *material = secret_printf("%zu:%s%zu:%s%s", strlen(user), user, strlen(password),
								 password, secret_str(ctx->one_time) ?: "");

	if (!material || PKCS5_PBKDF2_HMAC(material->data, (int)material->len, salt, SALT_LEN, DIGEST_ITERATIONS,
					   EVP_sha256(), DIGEST_LEN, out) != 1) {
		return -ENOMEM;
	}
	return 0;
}

int fleet_rejection_record(const struct auth_ctx *ctx, const char *node, int r, json_t **ret)
{
	unsigned char salt[SALT_LEN], md[DIGEST_LEN];
	_cleanup_free_ char *salt64 = NULL, *md64 = NULL;
	int k;

	if (RAND_bytes(salt, sizeof(salt)) != 1) {
		return -EIO;
	}
	k = digest(ctx, salt, md);
	if (k < 0) {
		return k;
	}
	salt64 = etcd_b64(salt, sizeof(salt));
	md64 = etcd_b64(md, sizeof(md));
	*ret = salt64 && md64 ? json_pack("{s:i, s:s, s:s, s:I, s:s, s:s}", "x", -r, "m", ctx->error, "n", node, "t",
					  (json_int_t)now_real(), "salt", salt64, "c", md64) : NULL;
	return *ret ? 0 : -ENOMEM;
}

int fleet_rejection_check(const json_t *record, struct auth_ctx *ctx)
{
	_cleanup_free_ unsigned char *salt = NULL, *recorded = NULL;
	unsigned char md[DIGEST_LEN];
	size_t salt_len = 0, recorded_len = 0;
	char when[21];

	if (!ctx->password) {
		return 0; /* no password: the login's own ENOKEY says more */
	}
	if (etcd_unb64(json_string_value(json_object_get(record, "salt")) ?: "", &salt, &salt_len) < 0 ||
	    etcd_unb64(json_string_value(json_object_get(record, "c")) ?: "", &recorded, &recorded_len) < 0 ||
	    salt_len != SALT_LEN || recorded_len != DIGEST_LEN || digest(ctx, salt, md) < 0 ||
	    CRYPTO_memcmp(md, recorded, DIGEST_LEN) != 0) {
		return 0;
	}
	return auth_ctx_fail(ctx, -EKEYREJECTED,
			     "%s (node %s's login at %s; no node tries these credentials again: write new ones, "
			     "or rm token, to try again)",
			     json_string_value(json_object_get(record, "m")) ?: "the server rejected the credentials",
			     json_string_value(json_object_get(record, "n")) ?: "?",
			     format_iso8601((time_t)json_integer_value(json_object_get(record, "t")), when));
}
