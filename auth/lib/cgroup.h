/* Who is calling: a process's uid, gid, executable and cgroup, read from
 * /proc at the moment of a request, and what its cgroup path says (systemd
 * unit, container, Kubernetes pod). For audit events and [access] rules. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CALLER_PATH_MAX 512

struct caller {
	pid_t pid; /* as the kernel gave it (the calling thread's id, in the daemon's pid namespace) */
	uid_t uid;
	gid_t gid;
	char exe[CALLER_PATH_MAX];    /* "" when unknown (the process is gone, or in another pid namespace) */
	char cgroup[CALLER_PATH_MAX]; /* "" when unknown */
	char unit[128];               /* the systemd (system) unit, "" if none */
	char container[80];           /* a container runtime's id, "" if none */
	char pod[40];                 /* a Kubernetes pod UID, "" if none */
};

/* The cgroup path of /proc/PID/cgroup text: the name=systemd hierarchy's
 * line when there is one (v1 and hybrid), else the unified one ("0::").
 * -ENOENT when neither is there. */
int cgroup_path_from_text(const char *text, char *buf, size_t size);
/* What a cgroup path names: systemd's unit (slices skipped, the first unit:
 * what sd_pid_get_unit() says), a container id (docker-<id>.scope,
 * libpod-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope, and
 * cgroupfs' /docker/<id>, /kubepods/.../<id>), a pod UID
 * (kubepods-...-pod<uid>.slice, /kubepods/.../pod<uid>/). Empty when none. */
void cgroup_identity(const char *path, struct caller *c);
/* Fills c for pid (uid and gid as the kernel gave them); what cannot be read
 * stays empty. */
void caller_read(pid_t pid, uid_t uid, gid_t gid, struct caller *c);
/* Does an [access] selector match c? "unit:NAME" (the unit, exactly) or
 * "cgroup:PREFIX" (the cgroup path, at a component boundary). Callers
 * whose cgroup is unknown match nothing. */
bool caller_selector_match(const char *selector, const struct caller *c);
