/* N threads wait at a barrier, then each opens and reads one file once, as a
 * herd of scripts starting at the same moment would. Prints the wall time in
 * nanoseconds and how many different contents the readers got. */
#include <fcntl.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONTENT 8192

static pthread_barrier_t start;
static const char *path;

struct reader {
	pthread_t thread;
	char content[MAX_CONTENT];
	ssize_t len;
};

static void *read_once(void *arg)
{
	struct reader *r = arg;
	int fd;

	pthread_barrier_wait(&start);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	r->len = fd < 0 ? -1 : read(fd, r->content, sizeof(r->content));
	if (fd >= 0) {
		close(fd);
	}
	return NULL;
}

int main(int argc, char *argv[])
{
	struct timespec a, b;
	struct reader *readers;
	int n, distinct = 0, failed = 0;

	if (argc != 3 || (n = atoi(argv[2])) <= 0) {
		fprintf(stderr, "usage: %s FILE READERS\n", argv[0]);
		return 2;
	}
	path = argv[1];
	readers = calloc((size_t)n, sizeof(*readers));
	pthread_barrier_init(&start, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++) {
		pthread_create(&readers[i].thread, NULL, read_once, &readers[i]);
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	pthread_barrier_wait(&start);
	for (int i = 0; i < n; i++) {
		pthread_join(readers[i].thread, NULL);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	for (int i = 0; i < n; i++) {
		bool seen = false;
		if (readers[i].len <= 0) {
			failed++;
			continue;
		}
		for (int j = 0; j < i && !seen; j++) {
			seen = readers[j].len == readers[i].len && !memcmp(readers[j].content, readers[i].content, (size_t)readers[i].len);
		}
		distinct += !seen;
	}
	printf("%.0f %d %d\n", (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec), distinct, failed);
	return failed ? 1 : 0;
}
