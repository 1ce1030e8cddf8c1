/* The one type for passwords, tokens and keys: kept in OpenSSL's secure heap
 * (locked, excluded from core dumps), wiped before it is freed. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

struct secret {
	size_t len;
	char data[]; /* NUL-terminated */
};

/* Allocator hooks for libraries whose buffers may hold secrets (libcurl,
 * jansson, libxml2): the whole block is wiped before it goes back to malloc,
 * and a growing realloc leaves no copy behind. */
void wiped_free(void *p);
void *wiped_realloc(void *p, size_t size);

/* Sets up the locked heap and makes OpenSSL wipe what it frees; call once,
 * first thing (before any other OpenSSL or libcurl call). */
int secret_init(size_t heap_size);

/* Locks the heap's arena again: mlock() does not survive fork() (daemonizing). */
int secret_relock(void);

/* Memory for a secret: the locked heap, else the normal one. Free with
 * CRYPTO_secure_clear_free(). */
void *secret_alloc(size_t size);

/* A copy of s[0..len). NULL on allocation failure. */
struct secret *secret_new(const char *s, size_t len);
struct secret *secret_new_str(const char *s);
struct secret *secret_dup(const struct secret *s);
void secret_free(struct secret *s);
bool secret_equal(const struct secret *a, const struct secret *b);

static inline const char *secret_str(const struct secret *s)
{
	return s ? s->data : NULL;
}

/* Wipe and free plain heap memory that held a secret. */
void erase_and_free(void *p, size_t len);
void erase_and_free_str(char *s);

static inline void secret_freep(struct secret **s)
{
	secret_free(*s);
}
#define _cleanup_secret_ _cleanup_(secret_freep)

static inline void erase_and_free_strp(char **s)
{
	erase_and_free_str(*s);
}
#define _cleanup_erase_ _cleanup_(erase_and_free_strp)

/* Zeroes SECRET_STACK_WIPE bytes of the calling thread's stack below the
 * caller's frame: what calls that have returned left there (a login's
 * parsed replies and TLS records, vector registers the dynamic linker saved
 * while binding a symbol). Call it, as shallow as possible, where a thread
 * that handled secrets ends or goes back to waiting: an ended thread's stack
 * is kept for the next thread, as it is. */
#define SECRET_STACK_WIPE (64 * 1024)
void secret_wipe_stack(void);

/* A formatted secret, written straight into the secure heap (no temporary copy). */
struct secret *secret_printf(const char *fmt, ...) _printf_(1, 2);
