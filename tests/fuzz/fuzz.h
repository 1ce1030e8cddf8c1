/* What every harness shares: the secret heap, a leak check for it, copies of
 * the input, and a check that aborts with a message (libFuzzer keeps the input). */
#pragma once

#include <errno.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "providers/provider.h"
#include "lib/secret.h"

/* Small, so that large inputs reach the -ENOMEM paths of secret_new(). */
#define FUZZ_SECRET_HEAP (16u << 10)

#define FUZZ_CHECK(cond, ...)                                                     \
	do {                                                                      \
		if (!(cond)) {                                                    \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__,    \
				__LINE__, #cond);                                 \
			fprintf(stderr, __VA_ARGS__);                             \
			fputc('\n', stderr);                                      \
			abort();                                                  \
		}                                                                 \
	} while (0)

/* Once per process, from LLVMFuzzerInitialize(). FUZZ_PLAIN_HEAP=1 leaves
 * secrets on the normal heap, where ASan sees overflows of them too. */
static inline void fuzz_setup(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	if (!getenv("FUZZ_PLAIN_HEAP")) {
		secret_init(FUZZ_SECRET_HEAP);
	}
}

/* LeakSanitizer cannot see the secure heap: every secret must be back in it
 * once an input is done. */
static inline void fuzz_check_secret_heap(void)
{
	size_t used = CRYPTO_secure_malloc_initialized() ? CRYPTO_secure_used() : 0;

	FUZZ_CHECK(used == 0, "%zu bytes of secrets leaked in the secure heap", used);
}

/* A NUL-terminated copy of data[0..size). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s) {
		abort();
	}
	memcpy(s, data, size);
	s[size] = 0;
	return s;
}

/* A decimal digit from any byte: '0'..'9' as themselves, others modulo 10. */
static inline unsigned fuzz_digit(uint8_t c)
{
	return (uint8_t)(c - '0') % 10;
}

/* A target as the parsers see it: only facts, no HTTP client. */
static inline struct target_info fuzz_target_info(const struct auth_provider *p)
{
	static char scheme[] = "https", host[] = "bmc.example.com", base_url[] = "https://bmc.example.com:443";

	return (struct target_info){
		.provider = p->name, .name = host, .scheme = scheme, .host = host, .port = 443,
		.base_url = base_url, .tls = { .validate_certs = true }, .timeout = 30,
	};
}

/* Everything a provider does with a session without the network: render its
 * files, schedule it, save it; what was saved must load back. */
static inline void fuzz_session_exercise(const struct auth_provider *p, const struct target_info *info,
					 const struct auth_session *s)
{
	_cleanup_session_ struct auth_session *back = NULL;
	_cleanup_secret_ struct secret *saved = NULL;
	int r;

	FUZZ_CHECK(s->token, "%s: session without a token", p->name);
	for (size_t i = 0; i < p->n_files; i++) {
		struct auth_blob *b = NULL;
		if (p->files[i].role != AUTH_FILE_SESSION) {
			continue;
		}
		r = p->render(info, s, &p->files[i], &b);
		FUZZ_CHECK(r == 0 ? b != NULL : r == -ENOMEM && !b, "%s: render %s: r=%d", p->name, p->files[i].name, r);
		auth_blob_unref(b);
	}
	r = p->session_save(info, s, &saved);
	FUZZ_CHECK(r == 0 ? saved != NULL : r == -ENOMEM && !saved, "%s: save: r=%d", p->name, r);
	if (r < 0) {
		return;
	}
	r = p->session_load(info, saved->data, saved->len, &back);
	FUZZ_CHECK(r == 0 || r == -ENOMEM, "%s: a saved session does not load back (r=%d): %s", p->name, r,
		   saved->data);
	FUZZ_CHECK(r < 0 || secret_equal(back->token, s->token), "%s: token changed by save and load", p->name);
}
