/* LD_PRELOAD shim for tests: fsync() and fdatasync() sleep
 * SESSIONFS_TEST_FSYNC_DELAY seconds (e.g. 0.4) before syncing, as a slow
 * disk does. Built by the tests that use it (cc -shared -fPIC). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static void slow(void)
{
	const char *v = getenv("SESSIONFS_TEST_FSYNC_DELAY");
	double d = v ? atof(v) : 0;

	if (d > 0) {
		struct timespec ts = { .tv_sec = (time_t)d, .tv_nsec = (long)((d - (double)(time_t)d) * 1e9) };
		while (nanosleep(&ts, &ts) != 0) {
		}
	}
}

int fsync(int fd)
{
	static int (*real)(int);

	if (!real) {
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	}
	slow();
	return real(fd);
}

int fdatasync(int fd)
{
	static int (*real)(int);

	if (!real) {
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	}
	slow();
	return real(fd);
}
