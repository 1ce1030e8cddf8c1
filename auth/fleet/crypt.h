/* Fleet values: AES-256-GCM under a key from key_file, never stored in etcd. */
#pragma once

#include <stddef.h>

#include "lib/secret.h"

#define FLEET_KEY_LEN 32
#define FLEET_KEYS_MAX 2 /* rotation: encrypt with the first, decrypt with either */

struct fleet_keys;

/* key_file: one key per line (base64 or hex of 32 bytes), or 32 raw bytes.
 * Refuses group/world-readable files. */
int fleet_keys_load(const char *path, struct fleet_keys **ret);
void fleet_keys_free(struct fleet_keys *k);
/* The id of the key values are sealed with (8 hex digits), for status and logs. */
const char *fleet_keys_id(const struct fleet_keys *k);

/* Seals plaintext with the first key, binding it to aad (the etcd key): a
 * value moved to another key does not open. ret is plain heap memory. */
int fleet_seal(const struct fleet_keys *k, const char *aad, const char *plaintext, size_t len, unsigned char **ret,
	       size_t *ret_len);
/* -EBADMSG when no key opens it (wrong key_file, tampered, moved). */
int fleet_open(const struct fleet_keys *k, const char *aad, const unsigned char *sealed, size_t len,
	       struct secret **ret);
