/* /proc/PID/cgroup and /proc/PID/exe, parsed (see cgroup.h). */
#include <errno.h>
#include <fcntl.h>
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
static void pod_of(const char *comp, size_t len, struct caller *c)
{
	const char *p = NULL;
	size_t n;

	if (len > 3 && strncmp(comp, "pod", 3) == 0) {
		p = comp + 3;
	}
	for (size_t i = 0; !p && i + 4 <= len; i++) {
		if (memcmp(comp + i, "-pod", 4) == 0) {
			p = comp + i + 4;
		}
	}
	if (!p || !comp[0] || (strncmp(comp, "kubepods", 8) != 0 && strncmp(comp, "pod", 3) != 0)) {
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
	bool in_runtime = false, unit_done = false;

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
			pod_of(p, len, c);
			container_of(p, len, in_runtime, c);
			in_runtime = (len == 6 && strncmp(p, "docker", 6) == 0) || strncmp(p, "kubepods", 8) == 0 ||
				     (len > 3 && strncmp(p, "pod", 3) == 0) || (len == 6 && strncmp(p, "libpod", 6) == 0);
		}
		p += len;
		if (*p == '/') {
			p++;
		}
	}
}

static ssize_t read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n, total = 0;

	if (fd < 0) {
		return -errno;
	}
	while ((size_t)total < size - 1 && (n = read(fd, buf + total, size - 1 - (size_t)total)) > 0) {
		total += n;
	}
	close(fd);
	buf[total] = 0;
	return total;
}

void caller_read(pid_t pid, uid_t uid, gid_t gid, struct caller *c)
{
	char path[64], text[4096];
	ssize_t n;

	*c = (struct caller){ .pid = pid, .uid = uid, .gid = gid };
	if (pid <= 0) {
		return; /* a process of another pid namespace */
	}
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if (read_small(path, text, sizeof(text)) > 0 && cgroup_path_from_text(text, c->cgroup, sizeof(c->cgroup)) == 0) {
		cgroup_identity(c->cgroup, c);
	}
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, c->exe, sizeof(c->exe) - 1);
	c->exe[n > 0 ? n : 0] = 0;
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
