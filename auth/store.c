/* Every write goes temp file → fsync → rename → fsync(dir), so a crash or
 * kill -9 leaves either the old or the new file, never a torn one. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>

#include "log.h"
#include "store.h"

#define STORE_MAX_FILE (64 * 1024)

struct store {
	int dir_fd;
	char *path;
};

static int mkdir_private(int at, const char *name)
{
	struct stat st;

	if (mkdirat(at, name, 0700) < 0 && errno != EEXIST) {
		return -errno;
	}
	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		return -ENOTDIR;
	}
	if (st.st_mode & 0077) {
		return -EPERM;
	}
	return 0;
}

int store_open(const char *dir, struct store **ret)
{
	struct store *s;
	int r;

	r = mkdir_private(AT_FDCWD, dir);
	if (r < 0) {
		return log_error_errno(r, "State dir %s is not usable (must be a directory of mode 0700): %m", dir);
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		return -ENOMEM;
	}
	s->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	s->path = strdup(dir);
	if (s->dir_fd < 0 || !s->path) {
		r = s->dir_fd < 0 ? -errno : -ENOMEM;
		store_free(s);
		return log_error_errno(r, "Failed to open state dir %s: %m", dir);
	}
	*ret = s;
	return 0;
}

void store_free(struct store *s)
{
	if (!s) {
		return;
	}
	if (s->dir_fd >= 0) {
		close(s->dir_fd);
	}
	free(s->path);
	free(s);
}

/* Opens <provider>/<name> as a directory fd, creating it when asked. */
static int target_dir(struct store *s, const char *provider, const char *name, int create)
{
	int pfd, tfd, r;

	if (create && (r = mkdir_private(s->dir_fd, provider)) < 0) {
		return r;
	}
	pfd = openat(s->dir_fd, provider, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (pfd < 0) {
		return -errno;
	}
	if (create && (r = mkdir_private(pfd, name)) < 0) {
		close(pfd);
		return r;
	}
	tfd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	r = tfd < 0 ? -errno : tfd;
	close(pfd);
	return r;
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0) {
			if (errno == EINTR) {
				continue;
			}
			return -errno;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

int store_save(struct store *s, const char *provider, const char *name, const char *item,
	       const char *data, size_t len)
{
	char tmp[64];
	int dfd, fd, r;

	dfd = target_dir(s, provider, name, 1);
	if (dfd < 0) {
		return log_error_errno(dfd, "Failed to create state for %s/%s: %m", provider, name);
	}
	snprintf(tmp, sizeof(tmp), ".%s.%d.tmp", item, (int)gettid());
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	r = write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0) {
		r = -errno;
	}
	close(fd);
	if (r == 0 && renameat(dfd, tmp, dfd, item) < 0) {
		r = -errno;
	}
	if (r < 0) {
		unlinkat(dfd, tmp, 0);
	} else {
		fsync(dfd);
	}
out:
	close(dfd);
	if (r < 0) {
		return log_error_errno(r, "Failed to save %s of %s/%s: %m", item, provider, name);
	}
	return 0;
}

int store_load(struct store *s, const char *provider, const char *name, const char *item,
	       struct secret **ret)
{
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	ssize_t n;
	int dfd, fd, r = 0;

	dfd = target_dir(s, provider, name, 0);
	if (dfd < 0) {
		return dfd == -ENOENT ? -ENOENT : log_error_errno(dfd, "Failed to open state of %s/%s: %m", provider, name);
	}
	fd = openat(dfd, item, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	close(dfd);
	if (fd < 0) {
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > STORE_MAX_FILE) {
		close(fd);
		return log_error_errno(-EBADMSG, "Ignoring state file %s of %s/%s: not a regular file or too large", item, provider, name);
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	n = read(fd, buf, (size_t)st.st_size);
	if (n < 0) {
		r = -errno;
	}
	close(fd);
	if (r == 0) {
		*ret = secret_new(buf, (size_t)n);
		r = *ret ? 0 : -ENOMEM;
	}
	OPENSSL_cleanse(buf, (size_t)st.st_size);
	return r;
}

int store_remove(struct store *s, const char *provider, const char *name, const char *item)
{
	int dfd = target_dir(s, provider, name, 0);
	int r = 0;

	if (dfd < 0) {
		return dfd == -ENOENT ? 0 : dfd;
	}
	if (unlinkat(dfd, item, 0) < 0 && errno != ENOENT) {
		r = -errno;
	} else {
		fsync(dfd);
	}
	close(dfd);
	return r;
}

int store_remove_target(struct store *s, const char *provider, const char *name)
{
	int dfd = target_dir(s, provider, name, 0);
	int pfd, r = 0;
	DIR *d;

	if (dfd < 0) {
		return dfd == -ENOENT ? 0 : dfd;
	}
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	for (struct dirent *de; (de = readdir(d));) {
		if ((de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))) &&
		    unlinkat(dirfd(d), de->d_name, 0) < 0 && r == 0) {
			r = -errno;
		}
	}
	closedir(d);
	pfd = openat(s->dir_fd, provider, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (pfd < 0) {
		return r ?: -errno;
	}
	if (unlinkat(pfd, name, AT_REMOVEDIR) < 0 && r == 0) {
		r = -errno;
	}
	if (fsync(pfd) < 0 && r == 0) {
		r = -errno;
	}
	close(pfd);
	return r;
}

int store_list(struct store *s, const char *provider, const char *item,
	       void (*fn)(const char *name, void *userdata), void *userdata)
{
	int pfd = openat(s->dir_fd, provider, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	DIR *d;

	if (pfd < 0) {
		return errno == ENOENT ? 0 : -errno;
	}
	d = fdopendir(pfd);
	if (!d) {
		close(pfd);
		return -errno;
	}
	for (struct dirent *de; (de = readdir(d));) {
		char path[512];
		if (de->d_name[0] == '.') {
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", de->d_name, item);
		if (faccessat(dirfd(d), path, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
			fn(de->d_name, userdata);
		}
	}
	closedir(d);
	return 0;
}
