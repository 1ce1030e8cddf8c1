/* /proc/PID/cgroup and /proc/PID/exe, parsed (see cgroup.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

#include "cgroup.h"
#include "util.h"

static void copy(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size) {
		len = size - 1;
	}
	memcpy(dst, src, len);
	dst[len] = 0;
}

int cgroup_path_from_text(const char *text, char *buf, size_t size)
{
	const char *unified = NULL, *found = NULL;

	/* Lines are "ID:CONTROLLERS:PATH". */
	for (const char *line = text; line && *line;) {
		const char *end = strchr(line, '\n');
		const char *c1 = memchr(line, ':', end ? (size_t)(end - line) : strlen(line));
		const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)((end ? end : c1 + strlen(c1)) - c1 - 1)) : NULL;
		if (c2) {
			if (c2 - c1 - 1 == 12 && strncmp(c1 + 1, "name=systemd", 12) == 0) {
				found = c2 + 1;
			} else if (c2 == c1 + 1 && strncmp(line, "0:", 2) == 0) {
				unified = c2 + 1;
			}
		}
		line = end ? end + 1 : NULL;
	}
	if (!found) {
		found = unified;
	}
	if (!found) {
		return -ENOENT;
	}
	copy(buf, size, found, strcspn(found, "\n"));
	return 0;
}

static bool has_suffix(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

static bool all_hex(const char *s, size_t len)
{
	if (len < 12) {
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		if (!strchr("0123456789abcdef", s[i])) {
			return false;
		}
	}
	return true;
}

/* A pod UID from "kubepods-burstable-pod<uid>.slice" (dashes written as
 * underscores) or cgroupfs' "pod<uid>". */
static void pod_of(const char *comp, size_t len, bool in_kube, struct caller *c)
{
	const char *p = NULL;
	size_t n;

	if (len > 3 && strncmp(comp, "pod", 3) == 0 && in_kube) {
		p = comp + 3;
	}
	for (size_t i = 0; !p && i + 4 <= len; i++) {
		if (memcmp(comp + i, "-pod", 4) == 0) {
			p = comp + i + 4;
		}
	}
	if (!p || (strncmp(comp, "kubepods", 8) != 0 && !in_kube)) {
		return;
	}
	n = len - (size_t)(p - comp);
	if (has_suffix(p, n, ".slice")) {
		n -= 6;
	}
	copy(c->pod, sizeof(c->pod), p, n);
	for (char *q = c->pod; *q; q++) {
		if (*q == '_') {
			*q = '-';
		}
	}
}

static void container_of(const char *comp, size_t len, bool in_runtime, struct caller *c)
{
	static const char *const prefixes[] = { "docker-", "libpod-", "cri-containerd-", "crio-" };

	if (has_suffix(comp, len, ".scope")) {
		for (size_t i = 0; i < ELEMENTSOF(prefixes); i++) {
			size_t n = strlen(prefixes[i]);
			if (len > n + 6 && strncmp(comp, prefixes[i], n) == 0 && all_hex(comp + n, len - n - 6)) {
				copy(c->container, sizeof(c->container), comp + n, len - n - 6);
				return;
			}
		}
	} else if (in_runtime && all_hex(comp, len)) {
		copy(c->container, sizeof(c->container), comp, len); /* cgroupfs: /docker/<id> */
	}
}

void cgroup_identity(const char *path, struct caller *c)
{
	bool in_runtime = false, unit_done = false, in_kube = false;

	c->unit[0] = c->container[0] = c->pod[0] = 0;
	for (const char *p = path; *p;) {
		size_t len = strcspn(p, "/");
		if (len > 0) {
			/* systemd's rule: skip slices; the first unit is the unit. Below
			 * it (a delegated subtree: user@.service, a container) nothing
			 * can rename it. */
			if (!unit_done && !has_suffix(p, len, ".slice") &&
			    (has_suffix(p, len, ".service") || has_suffix(p, len, ".scope"))) {
				copy(c->unit, sizeof(c->unit), p, len);
			}
			if (!has_suffix(p, len, ".slice")) {
				unit_done = true;
			}
			pod_of(p, len, in_kube, c);
			in_kube |= strncmp(p, "kubepods", 8) == 0;
			container_of(p, len, in_runtime, c);
			in_runtime = (len == 6 && strncmp(p, "docker", 6) == 0) || strncmp(p, "kubepods", 8) == 0 ||
				     (in_kube && len > 3 && strncmp(p, "pod", 3) == 0) || (len == 6 && strncmp(p, "libpod", 6) == 0);
		}
		p += len;
		if (*p == '/') {
			p++;
		}
	}
}

/* Open /proc/PID/cgroup and /proc/PID/exe (O_PATH: the link itself) of
 * recent callers, so that an open costs one read and one readlink, not
 * three more system calls and two lookups: a read
 * through such a descriptor shows the process's cgroup as it is now, and
 * fails (ESRCH, ENOENT) once that process is gone, even when its pid was
 * reused: then the pid is looked up afresh. An entry is taken out while in
 * use, so no lock is held across a system call. */
#define PROC_CACHE 16

struct proc_fds {
	pid_t pid;
	int exe, cgroup;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct proc_fds cache[PROC_CACHE];
static unsigned cache_next;

static void fds_close(struct proc_fds *p)
{
	if (p->pid > 0) {
		close(p->exe);
		close(p->cgroup);
	}
	p->pid = 0;
}

static bool fds_take(pid_t pid, struct proc_fds *ret)
{
	bool found = false;

	pthread_mutex_lock(&cache_lock);
	for (size_t i = 0; i < PROC_CACHE && !found; i++) {
		if (cache[i].pid == pid) {
			*ret = cache[i];
			cache[i].pid = 0;
			found = true;
		}
	}
	pthread_mutex_unlock(&cache_lock);
	return found;
}

static void fds_put(struct proc_fds *p)
{
	struct proc_fds old = { 0 };
	bool dup = false;
	size_t slot = PROC_CACHE;

	pthread_mutex_lock(&cache_lock);
	for (size_t i = 0; i < PROC_CACHE; i++) {
		dup |= cache[i].pid == p->pid;
		if (cache[i].pid == 0 && slot == PROC_CACHE) {
			slot = i; /* a free one (the one p was taken from, mostly): nobody else's is closed */
		}
	}
	if (!dup) {
		if (slot == PROC_CACHE) {
			slot = cache_next;
			cache_next = (cache_next + 1) % PROC_CACHE;
		}
		old = cache[slot];
		cache[slot] = *p;
		p->pid = 0;
	}
	pthread_mutex_unlock(&cache_lock);
	fds_close(&old);
	fds_close(p);
}

static int fds_open(pid_t pid, struct proc_fds *ret)
{
	char path[64];
	int exe, cg;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	cg = open(path, O_RDONLY | O_CLOEXEC);
	if (cg < 0) {
		return -errno;
	}
	/* The link, not what it points to: readlink() through it reads the
	 * process's executable as it is then (after an exec, the new one). */
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	exe = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (exe < 0) {
		exe = open("/dev/null", O_PATH | O_CLOEXEC); /* not ours to read (another user's, as non-root): no exe */
	}
	if (exe < 0) {
		close(cg);
		return -EMFILE;
	}
	*ret = (struct proc_fds){ .pid = pid, .exe = exe, .cgroup = cg };
	return 0;
}

/* The cgroup file's text, and the exe link, through p. */
static int fds_read(const struct proc_fds *p, char *text, size_t size, struct caller *c)
{
	ssize_t n = pread(p->cgroup, text, size - 1, 0);

	if (n <= 0) {
		return -ESRCH;
	}
	text[n] = 0;
	n = readlinkat(p->exe, "", c->exe, sizeof(c->exe) - 1);
	c->exe[n > 0 ? n : 0] = 0;
	return 0;
}

void caller_read(pid_t pid, uid_t uid, gid_t gid, struct caller *c)
{
	struct proc_fds p;
	char text[4096];
	int r = -ESRCH;

	*c = (struct caller){ .pid = pid, .uid = uid, .gid = gid };
	if (pid <= 0) {
		return; /* a process of another pid namespace */
	}
	if (fds_take(pid, &p)) {
		r = fds_read(&p, text, sizeof(text), c);
		if (r < 0) {
			fds_close(&p); /* gone: the pid may be another process's now */
		}
	}
	if (r < 0 && fds_open(pid, &p) == 0) {
		r = fds_read(&p, text, sizeof(text), c);
	}
	if (r < 0) {
		if (p.pid == pid) {
			fds_close(&p);
		}
		c->exe[0] = 0;
		return;
	}
	fds_put(&p);
	if (cgroup_path_from_text(text, c->cgroup, sizeof(c->cgroup)) == 0) {
		cgroup_identity(c->cgroup, c);
	}
}

bool caller_selector_match(const char *selector, const struct caller *c)
{
	if (strncmp(selector, "unit:", 5) == 0) {
		return c->unit[0] && strcmp(c->unit, selector + 5) == 0;
	}
	if (strncmp(selector, "cgroup:", 7) == 0) {
		const char *prefix = selector + 7;
		size_t n = strlen(prefix);
		while (n > 1 && prefix[n - 1] == '/') {
			n--;
		}
		return c->cgroup[0] && strncmp(c->cgroup, prefix, n) == 0 &&
		       (c->cgroup[n] == 0 || c->cgroup[n] == '/' || (n == 1 && prefix[0] == '/'));
	}
	return false;
}
