/* Secrets live in OpenSSL's secure heap: it mlock()s its arena and marks it
 * MADV_DONTDUMP, and CRYPTO_secure_clear_free() wipes before freeing. */
#include <openssl/crypto.h>
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdint.h>

#include "log.h"
#include "secret.h"

void wiped_free(void *p)
{
	if (p) {
		OPENSSL_cleanse(p, malloc_usable_size(p));
		free(p);
	}
}

void *wiped_realloc(void *p, size_t size)
{
	size_t old;
	void *n;

	if (!p) {
		return malloc(size);
	}
	if (size == 0) {
		wiped_free(p);
		return NULL;
	}
	old = malloc_usable_size(p);
	if (size <= old) {
		return p; /* shrinking: the block stays, wiped when freed */
	}
	n = malloc(size);
	if (n) {
		memcpy(n, p, old);
		wiped_free(p);
	}
	return n;
}

static void *crypto_malloc(size_t size, const char *file, int line)
{
	(void)file;
	(void)line;
	return malloc(size);
}

static void *crypto_realloc(void *p, size_t size, const char *file, int line)
{
	(void)file;
	(void)line;
	return wiped_realloc(p, size);
}

static void crypto_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	wiped_free(p);
}

int secret_init(size_t heap_size)
{
	int r;

	/* OpenSSL's buffers (TLS records, decrypted responses) are wiped when
	 * freed too; possible only before its first allocation. */
	if (!CRYPTO_set_mem_functions(crypto_malloc, crypto_realloc, crypto_free)) {
		log_warning("OpenSSL allocated memory before sessionfs could make it wipe its buffers");
	}
	r = CRYPTO_secure_malloc_init(heap_size, 16);

	if (r == 0) {
		return log_warning_errno(-ENOMEM, "Failed to set up the locked secret heap; secrets use the normal heap");
	}
	if (r == 2) {
		log_warning("Secret heap could not be locked in memory (RLIMIT_MEMLOCK?)");
	}
	return 0;
}

int secret_relock(void)
{
	void *p = CRYPTO_secure_malloc(1, __FILE__, __LINE__);
	uintptr_t addr = (uintptr_t)p;
	char line[512];
	FILE *f;
	int r = -ENOENT;

	if (!p || !CRYPTO_secure_allocated(p)) {
		OPENSSL_free(p);
		return -ENOMEM; /* no secure heap to lock */
	}
	f = fopen("/proc/self/maps", "re");
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && addr >= lo && addr < hi) {
			/* The system call, as OpenSSL makes it: sanitizers make
			 * mlock() itself do nothing. */
			r = syscall(SYS_mlock2, (void *)lo, hi - lo, 0) < 0 ? -errno : 0;
			break;
		}
	}
	if (f) {
		fclose(f);
	}
	CRYPTO_secure_clear_free(p, 1, __FILE__, __LINE__);
	if (r < 0) {
		return log_warning_errno(r, "Failed to lock the secret heap in memory again: %m");
	}
	return 0;
}

void *secret_alloc(size_t size)
{
	static bool warned;
	void *p = CRYPTO_secure_malloc(size, __FILE__, __LINE__);

	/* A full secure heap (tens of thousands of sessions): the normal heap,
	 * still wiped on free (CRYPTO_secure_clear_free() handles both). */
	if (!p && (p = OPENSSL_malloc(size)) && !__atomic_exchange_n(&warned, true, __ATOMIC_RELAXED)) {
		log_warning("The locked secret heap is full; further secrets use the normal heap");
	}
	return p;
}

struct secret *secret_new(const char *s, size_t len)
{
	struct secret *sec = secret_alloc(sizeof(*sec) + len + 1);

	if (!sec) {
		return NULL;
	}
	sec->len = len;
	if (len > 0) {
		memcpy(sec->data, s, len);
	}
	sec->data[len] = 0;
	return sec;
}

struct secret *secret_new_str(const char *s)
{
	return s ? secret_new(s, strlen(s)) : NULL;
}

struct secret *secret_dup(const struct secret *s)
{
	return s ? secret_new(s->data, s->len) : NULL;
}

void secret_free(struct secret *s)
{
	if (s) {
		CRYPTO_secure_clear_free(s, sizeof(*s) + s->len + 1, __FILE__, __LINE__);
	}
}

bool secret_equal(const struct secret *a, const struct secret *b)
{
	if (!a || !b) {
		return a == b;
	}
	return a->len == b->len && CRYPTO_memcmp(a->data, b->data, a->len) == 0;
}

void erase_and_free(void *p, size_t len)
{
	if (p) {
		OPENSSL_cleanse(p, len);
		free(p);
	}
}

void erase_and_free_str(char *s)
{
	if (s) {
		erase_and_free(s, strlen(s));
	}
}

/* noinline: the buffer must be a frame of its own, below the caller's;
 * no_sanitize_address: on the thread's real stack even when ASan moves
 * frames to a fake stack; the barrier: written although never read. */
__attribute__((noinline, no_sanitize_address)) void secret_wipe_stack(void)
{
	char stack[SECRET_STACK_WIPE];

	explicit_bzero(stack, sizeof(stack));
	__asm__ __volatile__("" : : "r"(stack) : "memory");
}

/* Formatted straight into the secret: vasprintf() would leave copies in the
 * blocks its reallocs give back. */
struct secret *secret_printf(const char *fmt, ...)
{
	struct secret *s;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !(s = secret_alloc(sizeof(*s) + (size_t)n + 1))) {
		return NULL;
	}
	s->len = (size_t)n;
	va_start(ap, fmt);
	vsnprintf(s->data, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}
