"""A real container runtime as the consumer (issue 21, item 8): Debian's podman
runs a container from a local root file system (busybox-static, --rootfs: no
image, no pull, --network=none) as uid 1001, with the mount bind-mounted
read-only with rslave propagation, as README "Containers and Kubernetes" says.

  mounted before the container starts   the token reads; every write is EROFS
  mounted after (propagated, rslave)    the token appears in the running
                                        container; that mount is not read-only,
                                        so only the file modes refuse writes

The containers read with busybox dd (read(2)), not busybox cat: see
test_busybox_cat_of_a_cold_token.

Runtime: runc when installed. Debian 12's default, crun 1.8, refuses hosts
with cgroup v1 and a controller left on the cgroup2 hierarchy ("cgroups in
hybrid mode not supported"); runc runs there. --ulimit is set below the
current limits: podman's defaults (nofile 1048576) need CAP_SYS_RESOURCE.
"""

import json
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.integration.harness import access_section, aos_section, force_unmount, is_mounted

PODMAN = "/usr/bin/podman"
RUNC = "/usr/bin/runc"
BUSYBOX = "/bin/busybox"  # busybox-static
UID = 1001
APPLETS = ("sh", "cat", "dd", "echo", "rm", "mkdir", "sleep", "id", "test", "[")
PT_INTERP = 3


def is_static(path):
    """An ELF executable without a program interpreter (64-bit little endian)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            return False
        phoff, = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != PT_INTERP
               for i in range(phnum))


def runtime_args():
    return ["--runtime", RUNC] if os.access(RUNC, os.X_OK) else []


def make_rootfs(base):
    """A root file system of busybox-static alone."""
    root = Path(tempfile.mkdtemp(prefix="rootfs-", dir=base))
    root.chmod(0o755)  # uid 1001 walks it
    (root / "bin").mkdir(mode=0o755)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    return root


def podman_argv(rootfs, mounts, script, user=f"{UID}:{UID}"):
    argv = [PODMAN, *runtime_args(), "run", "--rm", "--rootfs", "--network=none",
            "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "--user", user]
    for src, dst in mounts:
        argv += ["--mount", f"type=bind,src={src},dst={dst},readonly,bind-propagation=rslave"]
    return argv + [str(rootfs), "/bin/sh", "-c", script]


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    """Skips, saying why, unless podman can run a container here."""
    if os.geteuid() != 0:
        pytest.skip("rootful podman: the tests run as root")
    for path, package in ((PODMAN, "podman"), (BUSYBOX, "busybox-static")):
        if not os.access(path, os.X_OK):
            pytest.skip(f"{path} not installed ({package}: contrib/install-deps)")
    if not is_static(BUSYBOX):
        pytest.skip(f"{BUSYBOX} is not statically linked (busybox-static)")
    base = tmp_path_factory.mktemp("podman")
    r = subprocess.run(podman_argv(make_rootfs(base), [], "id -u"), capture_output=True,
                       text=True, timeout=120, stdin=subprocess.DEVNULL)
    if r.returncode != 0 or r.stdout.strip() != str(UID):
        pytest.skip(f"podman cannot run a container here: {r.stderr.strip() or r.stdout.strip()}")
    return base


def token_rules():
    return access_section([("aos/lab/token", f"uid:{UID} mode:0400")])


# --- mounted before the container starts --------------------------------------------

WRITES = """
id -u
dd if=/sessions/aos/lab/token 2>/dev/null; echo
echo x > /sessions/aos/lab/token || echo "failed: write token"
echo admin:x > /sessions/aos/lab/credentials || echo "failed: write credentials"
rm /sessions/aos/lab/token || echo "failed: rm token"
mkdir /sessions/aos/new || echo "failed: mkdir"
"""


def test_consumer_container_reads_and_cannot_write(podman, aos_mock, make_mount):
    d = make_mount(aos_section(aos_mock, "lab"), token_rules(), options=("allow_other",),
                   public=True)
    r = subprocess.run(podman_argv(make_rootfs(podman), [(d.mnt, "/sessions")], WRITES),
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    out = r.stdout.splitlines()
    assert out[0] == str(UID), r.stdout + r.stderr
    assert aos_mock.is_live(out[1]), f"not a live token: {out[1]!r}"
    assert out[2:] == ["failed: write token", "failed: write credentials",
                       "failed: rm token", "failed: mkdir"], r.stdout + r.stderr
    errors = r.stderr.splitlines()
    assert len(errors) == 4 and all(e.endswith("Read-only file system") for e in errors), \
        r.stderr
    # Nothing reached the daemon: one login, no logout, the token still served.
    assert aos_mock.logins == 1 and aos_mock.logouts == 0
    assert d.read("aos/lab/token") == out[1]
    assert "saved new credentials" not in d.log()


# --- mounted after the container started ---------------------------------------------

WAIT_AND_READ = """
echo ready
i=0
while [ ! -e /host/mnt/aos/lab/token ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
dd if=/host/mnt/aos/lab/token 2>/dev/null; echo
echo x > /host/mnt/aos/lab/token || echo "failed: write token"
"""


def test_mount_propagates_into_a_running_container(podman, aos_mock, make_mount):
    # A parent directory that is a shared mount of its own, as systemd makes
    # every mount (this machine's / is private).
    parent = Path(tempfile.mkdtemp(prefix="sessionfs-shared-", dir="/tmp"))
    parent.chmod(0o755)
    subprocess.run(["mount", "--bind", str(parent), str(parent)], check=True, timeout=30)
    d = None
    try:
        subprocess.run(["mount", "--make-shared", str(parent)], check=True, timeout=30)
        d = make_mount(aos_section(aos_mock, "lab"), token_rules(), options=("allow_other",),
                       start=False)
        d.mnt = parent / "mnt"
        d.mnt.mkdir(mode=0o755)
        container = subprocess.Popen(
            podman_argv(make_rootfs(podman), [(parent, "/host")], WAIT_AND_READ),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        try:
            assert container.stdout.readline().strip() == "ready", container.stderr.read()
            d.start()  # the container is running: the mount arrives by propagation
            out, err = container.communicate(timeout=120)
        finally:
            if container.poll() is None:
                container.kill()
                container.wait()
        lines = out.splitlines()
        assert lines and aos_mock.is_live(lines[0]), out + err
        # Not read-only: the file's mode (0400, uid 1001) is what refuses.
        assert lines[1:] == ["failed: write token"], out + err
        assert err.strip().endswith("Permission denied"), err
        assert aos_mock.logins == 1
    finally:
        if d is not None:
            d.stop()
            force_unmount(d.mnt)
        if is_mounted(parent):
            subprocess.run(["umount", "-l", str(parent)], timeout=30)
        shutil.rmtree(parent, ignore_errors=True)


# --- busybox cat ---------------------------------------------------------------------

def sendfile_read(path):
    """The file's content as shutil.copyfile copies it: os.sendfile()."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    r, w = os.pipe()
    out = b""
    try:
        while True:
            n = os.sendfile(w, fd, None, 65536)
            if n == 0:
                return out
            out += os.read(r, n)
    finally:
        for f in (fd, r, w):
            os.close(f)


def busybox_cat(d, rel):
    return subprocess.run([BUSYBOX, "cat", d.path(rel)], capture_output=True, timeout=60,
                          check=True).stdout


def test_busybox_cat_of_a_cold_token(aos_mock, make_daemon):
    """busybox cat (what Alpine and busybox images run) copies with sendfile().
    FUSE splices even a FOPEN_DIRECT_IO file through the page cache, bounded
    by the size the kernel has cached for the inode: before the first login
    that size is 0 (a session file's size is the session there is now). An
    open whose rendering is not of the size the kernel was told answers
    ESTALE, so that the kernel looks the name up again (the size) and opens
    again: sendfile() gets the whole token, cold or renewed, longer or
    shorter, never a cut or padded one."""
    if not os.access(BUSYBOX, os.X_OK):
        pytest.skip(f"{BUSYBOX} not installed (busybox-static)")
    d = make_daemon(aos_section(aos_mock, "lab") + aos_section(aos_mock, "lab2"))
    out = busybox_cat(d, "aos/lab/token").decode()
    assert aos_mock.is_live(out)
    assert out == Path(d.path("aos/lab/token")).read_text(), "the same session, one login"
    cold = sendfile_read(d.path("aos/lab2/token")).decode()
    assert aos_mock.is_live(cold) and cold != out
    assert aos_mock.logins == 2
    # Renewed with tokens of other lengths (a session.json write resumes one).
    for user in ("a-user-with-a-much-longer-name", "b", "admin"):
        aos_mock.set_password(user, "x")  # a user of its own, for a token of another length
        token = aos_mock.issue_token(user=user)
        for name in ("lab", "lab2"):
            d.write(f"aos/{name}/session.json",
                    json.dumps({"server": "127.0.0.1", "port": aos_mock.port, "token": token}))
        got = busybox_cat(d, "aos/lab/token").decode()
        assert got.rstrip("\n") == token and "\0" not in got, user
        got = sendfile_read(d.path("aos/lab2/token")).decode()
        assert got.rstrip("\n") == token and "\0" not in got, user
    assert aos_mock.logins == 2
