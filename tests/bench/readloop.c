/* open + read + close of one file in a tight loop, as scripts that `cat` a
 * token do; prints nanoseconds per iteration. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char *argv[])
{
	struct timespec a, b;
	char buf[65536];
	long n;

	if (argc != 3 || (n = atol(argv[2])) <= 0) {
		fprintf(stderr, "usage: %s FILE ITERATIONS\n", argv[0]);
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
		ssize_t r;
		if (fd < 0) {
			perror(argv[1]);
			return 1;
		}
		while ((r = read(fd, buf, sizeof(buf))) > 0) {
		}
		close(fd);
		if (r < 0) {
			perror("read");
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.0f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
	return 0;
}
