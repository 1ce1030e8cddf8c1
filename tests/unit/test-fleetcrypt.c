/* Fleet values: sealed with the first key of key_file, opened with either,
 * bound to their etcd key; anything else is EBADMSG, never garbage. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fleet/crypt.h"
#include "tap.h"

static char dir[] = "/tmp/test-fleetcrypt-XXXXXX";

static const char *key_file(const char *name, const char *text, size_t len, mode_t mode)
{
	static char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || fchmod(fd, mode) < 0) {
		abort();
	}
	close(fd);
	return path;
}

#define KEY_A "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=" /* base64 of 32 bytes */
#define KEY_B "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

static int load(const char *name, const char *text, struct fleet_keys **ret)
{
	return fleet_keys_load(key_file(name, text, strlen(text), 0600), ret);
}

int main(void)
{
	struct fleet_keys *a = NULL, *b = NULL, *ba = NULL, *k = NULL;
	unsigned char *sealed = NULL, *sealed2 = NULL;
	struct secret *plain = NULL;
	const char *msg = "{\"token\":\"abc\"}";
	size_t len = 0, len2 = 0;

	plan(-1);
	secret_init(1 << 16);
	if (!mkdtemp(dir)) {
		abort();
	}
	is_int(load("a", KEY_A "\n", &a), 0, "a base64 key");
	is_int(load("b", KEY_B "\n", &b), 0, "a hex key");
	is_int(load("ba", "# new key first\n" KEY_B "\n" KEY_A "\n", &ba), 0, "two keys, for rotation");
	is_int(load("bad", "not a key\n", &k), -EINVAL, "garbage refused");
	is_int(load("three", KEY_A "\n" KEY_B "\n" KEY_A "\n", &k), -E2BIG, "more than two keys refused");
	is_int(fleet_keys_load(key_file("open", KEY_A "\n", strlen(KEY_A) + 1, 0644), &k) < 0, 1,
	       "a world-readable key_file is refused");
	is_int(fleet_keys_load(key_file("raw", "0123456789abcdef0123456789abcdef", 32, 0600), &k), 0, "32 raw bytes");
	fleet_keys_free(TAKE_PTR(k));

	is_int(fleet_seal(a, "k1", msg, strlen(msg), &sealed, &len), 0, "seal");
	ok(len == strlen(msg) + 33, "version, key id, nonce and tag around the ciphertext (%zu)", len);
	ok(memmem(sealed, len, "token", 5) == NULL, "no plaintext in the sealed value");
	is_int(fleet_seal(a, "k1", msg, strlen(msg), &sealed2, &len2), 0, "seal again");
	ok(len == len2 && memcmp(sealed, sealed2, len) != 0, "a fresh nonce each time");

	is_int(fleet_open(a, "k1", sealed, len, &plain), 0, "opens with its key");
	is_str(secret_str(plain), msg, "the same text back");
	secret_free(TAKE_PTR(plain));
	is_int(fleet_open(b, "k1", sealed, len, &plain), -EBADMSG, "another key: EBADMSG");
	is_int(fleet_open(a, "k2", sealed, len, &plain), -EBADMSG, "moved to another etcd key: EBADMSG");
	sealed[len - 1] ^= 1;
	is_int(fleet_open(a, "k1", sealed, len, &plain), -EBADMSG, "tampered: EBADMSG");
	sealed[len - 1] ^= 1;
	is_int(fleet_open(a, "k1", sealed, 10, &plain), -EBADMSG, "truncated: EBADMSG");

	/* Rotation: [B, A] opens what A sealed, and seals with B. */
	is_int(fleet_open(ba, "k1", sealed, len, &plain), 0, "the old key still opens during rotation");
	secret_free(TAKE_PTR(plain));
	free(sealed2);
	is_int(fleet_seal(ba, "k1", msg, strlen(msg), &sealed2, &len2), 0, "seal during rotation");
	is_int(fleet_open(b, "k1", sealed2, len2, &plain), 0, "sealed with the first (new) key");
	secret_free(TAKE_PTR(plain));
	is_int(fleet_open(a, "k1", sealed2, len2, &plain), -EBADMSG, "a node with only the old key: EBADMSG");
	ok(strcmp(fleet_keys_id(ba), fleet_keys_id(b)) == 0 && strcmp(fleet_keys_id(a), fleet_keys_id(b)) != 0,
	   "key ids: %s %s", fleet_keys_id(a), fleet_keys_id(b));

	free(sealed);
	free(sealed2);
	fleet_keys_free(a);
	fleet_keys_free(b);
	fleet_keys_free(ba);
	for (size_t i = 0; i < 7; i++) {
		char path[256];
		snprintf(path, sizeof(path), "%s/%s", dir, (const char *[]){ "a", "b", "ba", "bad", "three", "open", "raw" }[i]);
		unlink(path);
	}
	rmdir(dir);
	return done();
}
