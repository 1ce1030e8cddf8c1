/* Every write goes temp file → fsync → rename → fsync(dir), so a crash or
 * kill -9 leaves either the old or the new file, never a torn one.
 *
 * Trust: the state dir decides who may read tokens, so only what the daemon's
 * user owns and nobody else may change is used (like OpenSSH's StrictModes):
 * the state dir and everything in it are ours and private (no group or other
 * bits), the dirs leading to it are root's or ours and writable by nobody
 * else, and nothing on the way is a symlink. Checked at open and again at
 * every load. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
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

_printf_(3, 4) static int unsafe(char *why, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, size, fmt, ap);
	va_end(ap);
	return -EPERM;
}

/* Whether st, found at path inside the state dir (or the state dir itself),
 * is ours and private; dir: a directory is wanted, else a regular file. */
static int check_private(const struct stat *st, const char *path, bool dir, char *why, size_t size)
{
	if (S_ISLNK(st->st_mode)) {
		return unsafe(why, size, "%s: is a symlink", path);
	}
	if (dir ? !S_ISDIR(st->st_mode) : !S_ISREG(st->st_mode)) {
		return unsafe(why, size, "%s: is not a %s", path, dir ? "directory" : "regular file");
	}
	if (st->st_uid != geteuid()) {
		return unsafe(why, size, "%s: is owned by uid %u, not by the daemon's uid %u", path,
			      (unsigned)st->st_uid, (unsigned)geteuid());
	}
	if (st->st_mode & 0077) {
		return unsafe(why, size, "%s: has mode %04o; group and others must have no access", path,
			      (unsigned)(st->st_mode & 07777));
	}
	return 0;
}

/* A dir on the way to the state dir: root's or ours, writable by nobody else
 * (a sticky dir such as /tmp excepted: others cannot move what is in it). */
static int check_parent(const char *path, char *why, size_t size)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		int r = -errno;
		snprintf(why, size, "%s: %s", path, strerror(-r));
		return r;
	}
	if (S_ISLNK(st.st_mode)) {
		return unsafe(why, size, "%s: is a symlink", path);
	}
	if (!S_ISDIR(st.st_mode)) {
		return unsafe(why, size, "%s: is not a directory", path);
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		return unsafe(why, size, "%s: is owned by uid %u, not by root or the daemon's uid", path,
			      (unsigned)st.st_uid);
	}
	if ((st.st_mode & 0022) && !(st.st_mode & S_ISVTX)) {
		return unsafe(why, size, "%s: has mode %04o; only its owner may write to it", path,
			      (unsigned)(st.st_mode & 07777));
	}
	return 0;
}

/* Every dir from / down to the parent of path (absolute, normalized). */
static int check_parents(const char *path, char *why, size_t size)
{
	_cleanup_free_ char *p = strdup(path);
	int r;

	if (!p) {
		return -ENOMEM;
	}
	r = check_parent("/", why, size);
	for (char *slash = p; r == 0 && (slash = strchr(slash + 1, '/'));) {
		*slash = 0;
		r = check_parent(p, why, size);
		*slash = '/';
	}
	return r;
}

/* dir made absolute, with no empty, "." or ".." components and no trailing
 * slash: "link/" must not reach through a symlink. */
static int normalize(const char *dir, char **ret)
{
	_cleanup_free_ char *cwd = NULL, *copy = NULL;
	char *out, *o, *save = NULL;

	if (dir[0] != '/' && !(cwd = getcwd(NULL, 0))) {
		return -errno;
	}
	if (asprintf(&copy, "%s/%s", cwd ? cwd : "", dir) < 0) {
		return -ENOMEM;
	}
	out = o = calloc(1, strlen(copy) + 2);
	if (!out) {
		return -ENOMEM;
	}
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (strcmp(c, ".") == 0 || strcmp(c, "..") == 0) {
			free(out);
			return -EINVAL;
		}
		o = stpcpy(stpcpy(o, "/"), c);
	}
	if (o == out) {
		free(out);
		return -EINVAL; /* "/" itself */
	}
	*ret = out;
	return 0;
}

/* The state dir and the way to it, as they are now. */
static int check_root(struct store *s, char *why, size_t size)
{
	struct stat st;
	int r = check_parents(s->path, why, size);

	if (r == 0 && fstat(s->dir_fd, &st) < 0) {
		r = -errno;
		snprintf(why, size, "%s: %s", s->path, strerror(-r));
	}
	return r < 0 ? r : check_private(&st, s->path, true, why, size);
}

static int mkdir_private(int at, const char *name, const char *path, char *why, size_t size)
{
	struct stat st;

	if (mkdirat(at, name, 0700) < 0 && errno != EEXIST) {
		snprintf(why, size, "%s: %s", path, strerror(errno));
		return -errno;
	}
	if (fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		snprintf(why, size, "%s: %s", path, strerror(errno));
		return -errno;
	}
	return check_private(&st, path, true, why, size);
}

int store_open(const char *dir, struct store **ret)
{
	_cleanup_free_ char *path = NULL;
	struct store *s;
	char why[600];
	int r;

	r = normalize(dir, &path);
	if (r < 0) {
		return log_error_errno(r, "State dir %s: must be a path without . or .. components: %m", dir);
	}
	r = check_parents(path, why, sizeof(why));
	if (r == 0) {
		r = mkdir_private(AT_FDCWD, path, path, why, sizeof(why));
	}
	if (r < 0) {
		return log_error_errno(r, "Refusing the state dir: %s", why);
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		return -ENOMEM;
	}
	s->dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	s->path = TAKE_PTR(path);
	if (s->dir_fd < 0) {
		r = -errno;
		store_free(s);
		return log_error_errno(r, "Failed to open state dir %s: %m", dir);
	}
	/* What was opened is what was checked. */
	r = check_root(s, why, sizeof(why));
	if (r < 0) {
		store_free(s);
		return log_error_errno(r, "Refusing the state dir: %s", why);
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

const char *store_path(const struct store *s)
{
	return s->path;
}

/* Opens name under at, a dir (O_DIRECTORY) or a file, if it is ours and
 * private; -EPERM with why set if not. */
static int open_private(int at, const char *name, const char *path, bool dir, char *why, size_t size)
{
	struct stat st;
	int fd, r;

	fd = openat(at, name, (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		/* Say why a symlink or the like was refused. */
		if (r != -ENOENT && fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    check_private(&st, path, dir, why, size) < 0) {
			return -EPERM;
		}
		snprintf(why, size, "%s: %s", path, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0 || check_private(&st, path, dir, why, size) < 0) {
		close(fd);
		return -EPERM;
	}
	return fd;
}

/* Opens <provider>/<name> as a directory fd, creating it when asked; the
 * state dir and every level on the way are checked. -ENOENT (why unset)
 * when it is not there and not to be made. */
static int target_dir(struct store *s, const char *provider, const char *name, int create, char *why, size_t size)
{
	char path[PATH_MAX];
	int pfd, tfd, r;

	/* Most targets have no state: when it is not there (one faccessat()
	 * below the dir's own fd, not through the path), nothing is read, and
	 * the walk up the path that check_root() makes can wait. 100,000
	 * targets at start-up: half the time was that walk. Callers take
	 * -ENOENT for "nothing saved": why stays unset. */
	snprintf(path, sizeof(path), "%s/%s", provider, name);
	if (!create && faccessat(s->dir_fd, path, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT) {
		return -ENOENT;
	}
	r = check_root(s, why, size);
	if (r < 0) {
		return r;
	}
	snprintf(path, sizeof(path), "%s/%s", s->path, provider);
	if (create && (r = mkdir_private(s->dir_fd, provider, path, why, size)) < 0) {
		return r;
	}
	pfd = open_private(s->dir_fd, provider, path, true, why, size);
	if (pfd < 0) {
		return pfd;
	}
	snprintf(path, sizeof(path), "%s/%s/%s", s->path, provider, name);
	if (create && (r = mkdir_private(pfd, name, path, why, size)) < 0) {
		close(pfd);
		return r;
	}
	tfd = open_private(pfd, name, path, true, why, size);
	close(pfd);
	return tfd;
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
	char tmp[64], why[PATH_MAX + 100];
	int dfd, fd, r;

	dfd = target_dir(s, provider, name, 1, why, sizeof(why));
	if (dfd < 0) {
		return log_error_errno(dfd, "Failed to create state for %s/%s: %s", provider, name, why);
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

/* Reads an open, checked file whole, as a secret. */
static int read_secret(int fd, const char *path, struct secret **ret)
{
	_cleanup_free_ char *buf = NULL;
	struct stat st;
	ssize_t n;
	int r = 0;

	if (fstat(fd, &st) < 0) {
		return -errno;
	}
	if (st.st_size > STORE_MAX_FILE) {
		return log_error_errno(-EBADMSG, "Ignoring state file %s: larger than %d bytes", path, STORE_MAX_FILE);
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		return -ENOMEM;
	}
	n = read(fd, buf, (size_t)st.st_size);
	if (n < 0) {
		r = log_error_errno(-errno, "Ignoring state file %s: %m", path);
	}
	if (r == 0) {
		*ret = secret_new(buf, (size_t)n);
		r = *ret ? 0 : -ENOMEM;
	}
	OPENSSL_cleanse(buf, (size_t)st.st_size);
	return r;
}

int store_load(struct store *s, const char *provider, const char *name, const char *item,
	       struct secret **ret)
{
	char path[PATH_MAX], why[PATH_MAX + 100];
	int dfd, fd, r;

	dfd = target_dir(s, provider, name, 0, why, sizeof(why));
	if (dfd == -ENOENT) {
		return -ENOENT;
	}
	if (dfd < 0) {
		return log_error_errno(-EBADMSG, "Ignoring the state of %s/%s: %s", provider, name, why);
	}
	snprintf(path, sizeof(path), "%s/%s/%s/%s", s->path, provider, name, item);
	fd = open_private(dfd, item, path, false, why, sizeof(why));
	close(dfd);
	if (fd == -ENOENT) {
		return -ENOENT;
	}
	if (fd < 0) {
		return log_error_errno(-EBADMSG, "Ignoring state file %s", why);
	}
	r = read_secret(fd, path, ret);
	close(fd);
	return r;
}

int store_check_target(struct store *s, const char *provider, const char *name, char *why, size_t size)
{
	char path[PATH_MAX];
	int dfd, r = 0;
	DIR *d;

	dfd = target_dir(s, provider, name, 0, why, size);
	if (dfd < 0) {
		return dfd == -ENOENT ? -ENOENT : -EBADMSG;
	}
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	for (struct dirent *de; r == 0 && (de = readdir(d));) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s/%s/%s", s->path, provider, name, de->d_name);
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			r = -errno;
			snprintf(why, size, "%s: %s", path, strerror(-r));
		} else if (check_private(&st, path, false, why, size) < 0) {
			r = -EBADMSG;
		}
	}
	closedir(d);
	return r;
}

int store_remove(struct store *s, const char *provider, const char *name, const char *item)
{
	char why[PATH_MAX + 100];
	int dfd = target_dir(s, provider, name, 0, why, sizeof(why));
	int r = 0;

	if (dfd < 0) {
		return dfd == -ENOENT ? 0 : log_error_errno(dfd, "Failed to remove %s of %s/%s: %s", item, provider, name, why);
	}
	if (unlinkat(dfd, item, 0) < 0 && errno != ENOENT) {
		r = log_error_errno(-errno, "Failed to remove %s of %s/%s: %m", item, provider, name);
	} else {
		fsync(dfd);
	}
	close(dfd);
	return r;
}

int store_remove_target(struct store *s, const char *provider, const char *name)
{
	char why[PATH_MAX + 100];
	int dfd = target_dir(s, provider, name, 0, why, sizeof(why));
	int pfd, r = 0;
	DIR *d;

	if (dfd < 0) {
		return dfd == -ENOENT ? 0 : log_error_errno(dfd, "Failed to remove the state of %s/%s: %s", provider, name, why);
	}
	d = fdopendir(dfd);
	if (!d) {
		r = -errno;
		close(dfd);
		return log_error_errno(r, "Failed to remove the state of %s/%s: %m", provider, name);
	}
	for (struct dirent *de; (de = readdir(d));) {
		if ((de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))) &&
		    unlinkat(dirfd(d), de->d_name, 0) < 0 && r == 0) {
			r = -errno;
		}
	}
	closedir(d);
	pfd = openat(s->dir_fd, provider, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (pfd < 0 && r == 0) {
		r = -errno;
	}
	if (pfd >= 0 && unlinkat(pfd, name, AT_REMOVEDIR) < 0 && r == 0) {
		r = -errno;
	}
	if (pfd >= 0 && fsync(pfd) < 0 && r == 0) {
		r = -errno;
	}
	if (pfd >= 0) {
		close(pfd);
	}
	if (r < 0) {
		return log_error_errno(r, "Failed to remove the state of %s/%s: %m", provider, name);
	}
	return 0;
}

/* Untrusted entries are skipped with a log line naming them. */
int store_list(struct store *s, const char *provider, const char *item,
	       void (*fn)(const char *name, void *userdata), void *userdata)
{
	char path[PATH_MAX], why[PATH_MAX + 100];
	int pfd, r;
	DIR *d;

	r = check_root(s, why, sizeof(why));
	if (r < 0) {
		return log_error_errno(r, "Refusing the state dir: %s", why);
	}
	snprintf(path, sizeof(path), "%s/%s", s->path, provider);
	pfd = open_private(s->dir_fd, provider, path, true, why, sizeof(why));
	if (pfd == -ENOENT) {
		return 0;
	}
	if (pfd < 0) {
		log_error("Ignoring state dir entry %s", why);
		return 0;
	}
	d = fdopendir(pfd);
	if (!d) {
		close(pfd);
		return -errno;
	}
	for (struct dirent *de; (de = readdir(d));) {
		int tfd, fd;
		if (de->d_name[0] == '.') {
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s/%s", s->path, provider, de->d_name);
		tfd = open_private(dirfd(d), de->d_name, path, true, why, sizeof(why));
		if (tfd < 0) {
			log_error("Ignoring state dir entry %s", why);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s/%s/%s", s->path, provider, de->d_name, item);
		fd = open_private(tfd, item, path, false, why, sizeof(why));
		close(tfd);
		if (fd >= 0) {
			close(fd);
			fn(de->d_name, userdata);
		} else if (fd != -ENOENT) {
			log_error("Ignoring state file %s", why);
		}
	}
	closedir(d);
	return 0;
}
