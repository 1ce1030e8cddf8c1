/* AES-256-GCM sealing of fleet values (OpenSSL EVP). A sealed value is
 * version (1) | key id (4) | nonce (12) | ciphertext | tag (16). */
#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/config.h"
#include "crypt.h"

#define VERSION 1
#define ID_LEN 4
#define NONCE_LEN 12
#define TAG_LEN 16
#define HEADER_LEN (1 + ID_LEN + NONCE_LEN)

struct fleet_keys {
	size_t n;
	unsigned char key[FLEET_KEYS_MAX][FLEET_KEY_LEN];
	unsigned char id[FLEET_KEYS_MAX][ID_LEN];
	char id_hex[2 * ID_LEN + 1];
};

void fleet_keys_free(struct fleet_keys *k)
{
	if (k) {
		CRYPTO_secure_clear_free(k, sizeof(*k), OPENSSL_FILE, OPENSSL_LINE);
	}
}

const char *fleet_keys_id(const struct fleet_keys *k)
{
	return k->id_hex;
}

/* One line: 64 hex digits or base64 of 32 bytes. */
static int parse_key(const char *line, size_t len, unsigned char out[FLEET_KEY_LEN])
{
	unsigned char buf[64];
	int n;

	if (len == 2 * FLEET_KEY_LEN) {
		for (size_t i = 0; i < FLEET_KEY_LEN; i++) {
			if (!isxdigit((unsigned char)line[2 * i]) || !isxdigit((unsigned char)line[2 * i + 1])) {
				return -EINVAL;
			}
			sscanf(line + 2 * i, "%2hhx", &out[i]);
		}
		return 0;
	}
	if (len != 44 || line[43] != '=' || line[42] == '=') {
		return -EINVAL;
	}
	n = EVP_DecodeBlock(buf, (const unsigned char *)line, 44);
	if (n != 33) { /* 33 = 32 bytes plus the padding's zero */
		OPENSSL_cleanse(buf, sizeof(buf));
		return -EINVAL;
	}
	memcpy(out, buf, FLEET_KEY_LEN);
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

static void key_id(const unsigned char key[FLEET_KEY_LEN], unsigned char id[ID_LEN])
{
	static const char label[] = "sessionfs fleet key id";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) && EVP_DigestUpdate(c, label, sizeof(label) - 1) &&
	    EVP_DigestUpdate(c, key, FLEET_KEY_LEN) && EVP_DigestFinal_ex(c, md, &mdlen)) {
		memcpy(id, md, ID_LEN);
	}
	EVP_MD_CTX_free(c);
}

int fleet_keys_load(const char *path, struct fleet_keys **ret)
{
	_cleanup_secret_ struct secret *text = NULL;
	struct fleet_keys *k;
	int r;

	r = read_secret_file(path, &text);
	if (r < 0) {
		return r;
	}
	k = secret_alloc(sizeof(*k));
	if (!k) {
		return -ENOMEM;
	}
	memset(k, 0, sizeof(*k));
	if (text->len == FLEET_KEY_LEN && memchr(text->data, '\n', text->len) == NULL) {
		memcpy(k->key[0], text->data, FLEET_KEY_LEN);
		k->n = 1;
	} else {
		for (const char *l = text->data; *l && r == 0;) {
			size_t len = strcspn(l, "\n");
			size_t trimmed = len;
			while (trimmed > 0 && isspace((unsigned char)l[trimmed - 1])) {
				trimmed--;
			}
			if (trimmed > 0 && l[0] != '#') {
				if (k->n == FLEET_KEYS_MAX) {
					r = -E2BIG;
				} else if ((r = parse_key(l, trimmed, k->key[k->n])) == 0) {
					k->n++;
				}
			}
			l += len + (l[len] == '\n');
		}
	}
	if (r == 0 && k->n == 0) {
		r = -EINVAL;
	}
	if (r < 0) {
		fleet_keys_free(k);
		return r;
	}
	for (size_t i = 0; i < k->n; i++) {
		key_id(k->key[i], k->id[i]);
	}
	snprintf(k->id_hex, sizeof(k->id_hex), "%02x%02x%02x%02x", k->id[0][0], k->id[0][1], k->id[0][2], k->id[0][3]);
	*ret = k;
	return 0;
}

int fleet_seal(const struct fleet_keys *k, const char *aad, const char *plaintext, size_t len, unsigned char **ret,
	       size_t *ret_len)
{
	size_t total = HEADER_LEN + len + TAG_LEN;
	unsigned char *out = malloc(total);
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0, r = -EIO;

	if (!out || !c || len > INT32_MAX) {
		r = -ENOMEM;
		goto out;
	}
	out[0] = VERSION;
	memcpy(out + 1, k->id[0], ID_LEN);
	if (RAND_bytes(out + 1 + ID_LEN, NONCE_LEN) != 1) {
		goto out;
	}
	if (!EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, k->key[0], out + 1 + ID_LEN) ||
	    !EVP_EncryptUpdate(c, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) ||
	    !EVP_EncryptUpdate(c, out + HEADER_LEN, &n, (const unsigned char *)plaintext, (int)len) ||
	    !EVP_EncryptFinal_ex(c, out + HEADER_LEN + n, &n) ||
	    !EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, out + HEADER_LEN + len)) {
		goto out;
	}
	*ret = TAKE_PTR(out);
	*ret_len = total;
	r = 0;
out:
	EVP_CIPHER_CTX_free(c);
	free(out);
	return r;
}

int fleet_open(const struct fleet_keys *k, const char *aad, const unsigned char *sealed, size_t len,
	       struct secret **ret)
{
	size_t ct_len = len >= HEADER_LEN + TAG_LEN ? len - HEADER_LEN - TAG_LEN : 0;
	const unsigned char *key = NULL;
	struct secret *pt;
	EVP_CIPHER_CTX *c;
	int n = 0;
	bool ok;

	if (len < HEADER_LEN + TAG_LEN || sealed[0] != VERSION || ct_len > INT32_MAX) {
		return -EBADMSG;
	}
	for (size_t i = 0; i < k->n; i++) {
		if (CRYPTO_memcmp(sealed + 1, k->id[i], ID_LEN) == 0) {
			key = k->key[i];
		}
	}
	if (!key) {
		return -EBADMSG;
	}
	pt = secret_alloc(sizeof(*pt) + ct_len + 1);
	if (pt) {
		pt->len = ct_len;
	}
	c = EVP_CIPHER_CTX_new();
	if (!pt || !c) {
		secret_free(pt);
		EVP_CIPHER_CTX_free(c);
		return -ENOMEM;
	}
	ok = EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, sealed + 1 + ID_LEN) &&
	     EVP_DecryptUpdate(c, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) &&
	     EVP_DecryptUpdate(c, (unsigned char *)pt->data, &n, sealed + HEADER_LEN, (int)ct_len) &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, (void *)(sealed + len - TAG_LEN)) &&
	     EVP_DecryptFinal_ex(c, (unsigned char *)pt->data + n, &n) > 0;
	EVP_CIPHER_CTX_free(c);
	if (!ok) {
		secret_free(pt);
		return -EBADMSG;
	}
	pt->data[ct_len] = 0;
	*ret = pt;
	return 0;
}
