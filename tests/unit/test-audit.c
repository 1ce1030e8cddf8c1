/* The caller's identity from /proc/PID/cgroup text (lib/cgroup.c) and the
 * audit line's format (lib/audit.c): hybrid and pure v2 hosts, systemd
 * units, container runtimes' scopes, Kubernetes pods, selectors, and JSON
 * escaping of what a caller controls (its executable's name). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>

#include "lib/audit.h"
#include "lib/cgroup.h"
#include "tap.h"

static void identity(const char *path, const char *unit, const char *container, const char *pod)
{
	struct caller c = { 0 };

	cgroup_identity(path, &c);
	is_str(c.unit, unit, "%s: unit", path);
	is_str(c.container, container, "%s: container", path);
	is_str(c.pod, pod, "%s: pod", path);
}

int main(void)
{
	char path[256], line[8192];
	struct caller c = { .pid = 42, .uid = 1001, .gid = 1002 };
	json_t *j;
	int n;

	plan(-1);
	is_int(cgroup_path_from_text("9:name=systemd:/system.slice/a.service\n4:memory:/x\n0::/other\n", path,
				     sizeof(path)), 0, "hybrid: parsed");
	is_str(path, "/system.slice/a.service", "hybrid: the name=systemd hierarchy wins");
	is_int(cgroup_path_from_text("0::/system.slice/b.service\n", path, sizeof(path)), 0, "v2: parsed");
	is_str(path, "/system.slice/b.service", "v2: the unified line");
	is_int(cgroup_path_from_text("4:memory:/x\n", path, sizeof(path)), -ENOENT, "v1 without name=systemd: none");

	identity("/system.slice/backup.service", "backup.service", "", "");
	identity("/system.slice/backup.service/worker", "backup.service", "", "");
	identity("/user.slice/user-1000.slice/user@1000.service/app.slice/backup.service", "user@1000.service", "", "");
	identity("/user.slice/user-1000.slice/session-3.scope", "session-3.scope", "", "");
	identity("/system.slice/docker-0123456789abcdef0123456789abcdef.scope",
		 "docker-0123456789abcdef0123456789abcdef.scope", "0123456789abcdef0123456789abcdef", "");
	identity("/machine.slice/libpod-0123456789ab.scope/container", "libpod-0123456789ab.scope", "0123456789ab", "");
	identity("/docker/0123456789abcdef0123", "", "0123456789abcdef0123", "");
	identity("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12ab34cd_5678_90ef.slice/"
		 "cri-containerd-0123456789abcdef.scope",
		 "cri-containerd-0123456789abcdef.scope", "0123456789abcdef", "12ab34cd-5678-90ef");
	identity("/kubepods.slice/kubepods-pod1111_2222.slice/crio-abcdef012345.scope", "crio-abcdef012345.scope",
		 "abcdef012345", "1111-2222");
	identity("/kubepods/besteffort/pod1111-2222/abcdef0123456789", "", "abcdef0123456789", "1111-2222");
	identity("/", "", "", "");
	identity("/system.slice/podman.service", "podman.service", "", "");
	identity("/user.slice/user-1000.slice/user@1000.service/user.slice/podman-1.scope", "user@1000.service", "", "");

	snprintf(c.cgroup, sizeof(c.cgroup), "/system.slice/backup.service");
	cgroup_identity(c.cgroup, &c);
	ok(caller_selector_match("unit:backup.service", &c), "unit: exact");
	ok(!caller_selector_match("unit:backup", &c), "unit: no prefix match");
	ok(caller_selector_match("cgroup:/system.slice", &c), "cgroup: prefix");
	ok(caller_selector_match("cgroup:/system.slice/", &c), "cgroup: trailing slash");
	ok(caller_selector_match("cgroup:/", &c), "cgroup: the root");
	ok(!caller_selector_match("cgroup:/system.sl", &c), "cgroup: at a component boundary only");
	c.cgroup[0] = c.unit[0] = 0;
	ok(!caller_selector_match("cgroup:/", &c), "unknown cgroup: matches nothing");

	snprintf(c.exe, sizeof(c.exe), "/tmp/a\"b\\c\nd\xff\xc3\xa9");
	snprintf(c.cgroup, sizeof(c.cgroup), "/x");
	n = audit_format(&(struct audit_event){ .target = "aos/lab", .file = "token", .op = "open", .result = -EACCES,
						.caller = &c },
			 1800000000.25, line, sizeof(line));
	ok(n > 0, "formatted: %s", line);
	j = json_loads(line, 0, NULL);
	ok(j != NULL, "valid JSON");
	is_str(json_string_value(json_object_get(j, "exe")), "/tmp/a\"b\\c\nd\xef\xbf\xbd\xc3\xa9",
	       "exe escaped, invalid UTF-8 replaced");
	is_str(json_string_value(json_object_get(j, "result")), "EACCES", "result: errno name");
	is_str(json_string_value(json_object_get(j, "time")), "2027-01-15T08:00:00.250000Z", "time");
	ok(json_is_null(json_object_get(j, "unit")), "no unit: null");
	is_int((int)json_integer_value(json_object_get(j, "uid")), 1001, "uid");
	json_decref(j);
	is_int(audit_format(&(struct audit_event){ .op = "login" }, 0, line, 16), -ENOBUFS, "too small a buffer");
	return done();
}
