/* Small helpers shared by every module: cleanup attributes and ownership. */
#pragma once

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

/* Hand ownership of a pointer out of a _cleanup_ variable. */
#define TAKE_PTR(p)                            \
	({                                     \
		__typeof__(p) _taken = (p);    \
		(p) = NULL;                    \
		_taken;                        \
	})

/* The same for a flag or a number: its value, and it is cleared. */
#define TAKE_FLAG(b) ({ bool _b = (b); (b) = false; _b; })
#define TAKE_INT(i) ({ __typeof__(i) _i = (i); (i) = 0; _i; })

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int streq_ptr(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* Seconds since the epoch, and a monotonic clock for deadlines. */
static inline time_t now_real(void)
{
	return time(NULL);
}

static inline double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A now_mono() time as the timespec pthread_cond_timedwait() takes (with
 * condition variables on CLOCK_MONOTONIC). */
static inline struct timespec mono_timespec(double t)
{
	return (struct timespec){ .tv_sec = (time_t)t, .tv_nsec = (long)((t - (double)(time_t)t) * 1e9) };
}

/* "2026-11-23T14:58:00Z", or "" for 0. buf must hold 21 bytes. */
static inline const char *format_iso8601(time_t t, char buf[static 21])
{
	struct tm tm;

	if (t <= 0 || !gmtime_r(&t, &tm) || strftime(buf, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		buf[0] = 0;
	}
	return buf;
}
