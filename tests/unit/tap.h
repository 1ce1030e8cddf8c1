/* A minimal TAP producer for the unit tests: plan(), ok(), is_int(), is_str(),
 * todo_start()/todo_end() for known product bugs, and done(), whose return
 * value is the exit status (nonzero when any test failed or the plan was missed). */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int tap_planned = -1, tap_run, tap_failed;
static const char *tap_todo; /* reason while inside todo_start()/todo_end() */

/* n < 0: no plan up front, done() prints it. */
static inline void plan(int n)
{
	tap_planned = n;
	if (n >= 0) {
		printf("1..%d\n", n);
	}
}

static inline void todo_start(const char *reason)
{
	tap_todo = reason;
}

static inline void todo_end(void)
{
	tap_todo = NULL;
}

__attribute__((format(printf, 4, 0)))
static inline bool tap_vok(bool cond, const char *file, int line, const char *fmt, va_list ap)
{
	tap_run++;
	printf("%s %d - ", cond ? "ok" : "not ok", tap_run);
	vprintf(fmt, ap);
	if (tap_todo) {
		printf(" # TODO %s", tap_todo);
	}
	printf("\n");
	if (!cond) {
		printf("#   Failed test at %s:%d\n", file, line);
		if (!tap_todo) {
			tap_failed++;
		}
	}
	fflush(stdout);
	return cond;
}

__attribute__((format(printf, 4, 5)))
static inline bool tap_ok(bool cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	bool r;

	va_start(ap, fmt);
	r = tap_vok(cond, file, line, fmt, ap);
	va_end(ap);
	return r;
}

__attribute__((format(printf, 5, 6)))
static inline bool tap_is_int(long long got, long long want, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	bool r;

	va_start(ap, fmt);
	r = tap_vok(got == want, file, line, fmt, ap);
	va_end(ap);
	if (!r) {
		printf("#          got: %lld\n#     expected: %lld\n", got, want);
	}
	return r;
}

__attribute__((format(printf, 5, 6)))
static inline bool tap_is_str(const char *got, const char *want, const char *file, int line, const char *fmt, ...)
{
	bool same = got && want ? strcmp(got, want) == 0 : got == want;
	va_list ap;

	va_start(ap, fmt);
	tap_vok(same, file, line, fmt, ap);
	va_end(ap);
	if (!same) {
		printf("#          got: %s%s%s\n#     expected: %s%s%s\n", got ? "'" : "", got ? got : "NULL",
		       got ? "'" : "", want ? "'" : "", want ? want : "NULL", want ? "'" : "");
	}
	return same;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) tap_is_int((long long)(got), (long long)(want), __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, want, ...) tap_is_str((got), (want), __FILE__, __LINE__, __VA_ARGS__)

static inline void diag(const char *msg)
{
	printf("# %s\n", msg);
}

/* Exit status for main(). */
static inline int done(void)
{
	if (tap_planned < 0) {
		printf("1..%d\n", tap_run);
	} else if (tap_planned != tap_run) {
		printf("# planned %d tests but ran %d\n", tap_planned, tap_run);
		return 1;
	}
	if (tap_failed > 0) {
		printf("# %d of %d tests failed\n", tap_failed, tap_run);
		return 1;
	}
	return 0;
}
