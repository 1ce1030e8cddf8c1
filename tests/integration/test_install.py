"""sessionfs as it is deployed: installed files, mount helpers, containers, metrics.

- `meson install` stages the binary, sessionfs(8), the example config and the
  systemd unit; the page renders, the unit passes `systemd-analyze verify`
  and uses no setting that would hide its mount from the host, and the
  daemon works with no privilege but the one the unit leaves it.
- `mount -t fuse.sessionfs` (by hand, or from an fstab line) and mount.fuse3
  start the daemon; `umount` / `fusermount3 -u` stop it.
- A container (another mount namespace, made with bubblewrap) that has the
  mount bind-mounted read-only reads the same token as the host and cannot
  write. Mount propagation is what the README's container and Kubernetes
  examples rely on, checked on a shared mount as on a systemd host.
- `.metrics` passes `promtool check metrics` and counts what happened.

mount(8) runs helpers with no PATH of the caller's (they search the shell's
default path), so the tests that go through mount(8) run in a private mount
namespace in which /usr/local/sbin holds the built sessionfs.
"""

import errno
import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.integration.harness import (BINARY, MOUNT_WAIT, REPO, STOP_WAIT, aos_section,
                                       force_unmount, ini_section, is_mounted,
                                       missing_prerequisite, new_password, strerror)
from tests.mocks.aos import AosMock
from tests.mocks.common import wait_until

BUILD = REPO / "build"
UNIT = REPO / "contrib" / "systemd" / "sessionfs.service"
EXAMPLE_CONFIG = REPO / "contrib" / "sessionfs.conf.example"
ENTRYPOINT = REPO / "contrib" / "container" / "sessionfs-entrypoint"
DAEMONSET = REPO / "contrib" / "kubernetes" / "daemonset.yaml"
TOKEN = "aos/lab/token"
ALICE = 1001  # a consumer's uid in the container tests

needs_daemon = pytest.mark.skipif(missing_prerequisite() is not None,
                                  reason=str(missing_prerequisite()))


def need(*tools):
    for tool in tools:
        if shutil.which(tool) is None and not os.access(tool, os.X_OK):
            pytest.skip(f"{tool} not installed")


def run(argv, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    return subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL, **kw)


def daemon_env(workdir):
    """The environment a daemon should see: none of the developer's AOS_,
    IDRAC_, AWS_ variables, proxies or CA overrides, and no ~/.aws."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AOS_", "IDRAC_", "AWS_"))
           and k.lower() not in {"http_proxy", "https_proxy", "all_proxy", "no_proxy",
                                 "ssl_cert_file", "ssl_cert_dir", "curl_ca_bundle"}}
    env["HOME"] = str(workdir)
    return env


def sessionfs_pids(mnt):
    """Pids of sessionfs processes serving mnt (their argv names it)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"sessionfs" and str(mnt).encode() in argv:
            pids.append(int(entry))
    return pids


def wait_exited(pids, timeout=STOP_WAIT):
    return wait_until(lambda: not any(os.path.exists(f"/proc/{p}") for p in pids), timeout)


def terminate(pids):
    """SIGTERM daemons a failed test left behind (they unmount), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if wait_exited(pids, timeout=5):
            return


def token_of(text):
    token = text[:-1] if text.endswith("\n") else text
    assert token and token == token.strip(), f"not just a token: {text!r}"
    return token


def config_for(workdir, *sections):
    state = Path(workdir) / "state"
    state.mkdir(mode=0o700, exist_ok=True)
    return ini_section("sessionfs", {"state_dir": state, "timeout": 5}) + \
        "".join("\n" + s for s in sections)


@pytest.fixture
def leftover_daemons():
    """Mount points whose daemons are killed at teardown if still running."""
    mounts = []
    yield mounts
    for mnt in mounts:
        terminate(sessionfs_pids(mnt))
        force_unmount(mnt)


# --- meson install ----------------------------------------------------------

def build_option(name):
    options = json.loads((BUILD / "meson-info" / "intro-buildoptions.json").read_text())
    return next(o["value"] for o in options if o["name"] == name)


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """`meson install --destdir` of the current build: {file name: path}."""
    if not (BUILD / "build.ninja").exists():
        pytest.skip("build/ is not configured (meson setup build)")
    need("meson")
    dest = tmp_path_factory.mktemp("stage")
    r = run(["meson", "install", "-C", BUILD, "--no-rebuild", "--destdir", dest],
            timeout=300)
    assert r.returncode == 0, f"meson install failed (run ninja -C build first?):\n{r.stdout}{r.stderr}"
    files = {p.name: p for p in dest.rglob("*") if p.is_file()}
    return dest, files


def test_meson_install_stages_binary_man_page_config_and_unit(staged):
    dest, files = staged
    prefix = build_option("prefix")
    sbin = dest / prefix.lstrip("/") / build_option("sbindir")
    assert files.get("sessionfs") == sbin / "sessionfs"
    assert os.access(files["sessionfs"], os.X_OK)
    r = run([files["sessionfs"], "--version"])
    assert r.returncode == 0 and re.search(r"(?m)^sessionfs \d", r.stdout), r.stdout + r.stderr

    assert "sessionfs.conf.example" in files
    assert files["sessionfs.conf.example"].read_text() == EXAMPLE_CONFIG.read_text()

    unit = files.get("sessionfs.service")
    assert unit is not None and unit.parent.name == "system" and \
        unit.parent.parent.name == "systemd", f"unit at {unit}"
    assert unit.read_text() == UNIT.read_text()

    if shutil.which("scdoc"):
        page = files.get("sessionfs.8")
        assert page is not None and page.parent.name == "man8", f"man page at {page}"


def test_man_page_renders(staged):
    need("scdoc", "man")
    page = staged[1]["sessionfs.8"]
    r = run(["man", "--warnings", "-l", page], env={**os.environ, "MANWIDTH": "80",
                                                    "MANPAGER": "cat", "PAGER": "cat"})
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", f"groff warnings:\n{r.stderr}"
    text = r.stdout
    for heading in ("NAME", "SYNOPSIS", "OPTIONS", "FILE TREE", "CONFIGURATION",
                    "ERRORS", "EXAMPLES", "SEE ALSO"):
        assert re.search(rf"(?m)^{heading}$", text), f"no {heading} section"
    for needle in ("config=file", "allow_other", "EKEYREJECTED", "fuse.sessionfs",
                   "password_file", "[access]", "systemctl enable --now sessionfs"):
        assert needle in text, f"{needle!r} not in the page"


def test_systemd_analyze_verifies_the_installed_unit(staged):
    need("systemd-analyze", "unshare")
    dest, files = staged
    prefix = build_option("prefix")
    if prefix != "/usr/local":
        pytest.skip(f"needs prefix /usr/local to put the staged files in place, not {prefix}")
    # In a private mount namespace the staged /usr/local is the real one, so
    # systemd-analyze finds `sessionfs` on its search path and the man page
    # named by Documentation=.
    r = run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
             'mount --bind "$1" /usr/local && exec systemd-analyze verify "$2"',
             "sh", dest / "usr" / "local", files["sessionfs.service"]])
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout + r.stderr == "", r.stdout + r.stderr


# --- the systemd unit -------------------------------------------------------

def unit_settings(path=UNIT):
    """{key: [values]} of the unit's [Service] and [Unit] sections."""
    settings = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key.strip(), []).append(value.strip())
    return settings


# Each of these gives the service a mount namespace of its own in which
# systemd first makes every mount a slave: the FUSE mount made inside would
# never reach the host (systemd.exec(5), PrivateMounts=).
NAMESPACING = ("PrivateMounts", "PrivateTmp", "PrivateDevices", "PrivateIPC", "PrivateNetwork",
               "PrivateUsers", "ProtectSystem", "ProtectHome", "ProtectKernelTunables",
               "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
               "ProtectProc", "ProcSubset", "ReadWritePaths", "ReadOnlyPaths",
               "InaccessiblePaths", "ExecPaths", "NoExecPaths", "BindPaths",
               "BindReadOnlyPaths", "TemporaryFileSystem", "RootDirectory", "RootImage",
               "MountImages", "ExtensionImages", "ExtensionDirectories", "DynamicUser",
               "MountFlags", "LogNamespace", "NetworkNamespacePath", "IPCNamespacePath")


def test_unit_runs_the_daemon_as_notify_service_with_a_visible_mount():
    s = unit_settings()
    assert s["Type"] == ["notify"]
    start = s["ExecStart"][0].split()
    assert os.path.basename(start[0]) == "sessionfs"
    assert start[1:] == ["-f", "-o", "config=/etc/sessionfs.conf,allow_other", "/mnt/sessions"]
    assert any("mkdir -p /mnt/sessions" in v for v in s["ExecStartPre"])
    assert "ExecStop" not in s, "SIGTERM unmounts; ExecStop= is not needed"
    assert s["StateDirectory"] == ["sessionfs"] and s["StateDirectoryMode"] == ["0700"]
    assert s["LimitCORE"] == ["0"]
    assert s["NoNewPrivileges"] == ["yes"]
    assert s["DeviceAllow"] == ["/dev/fuse rw"]
    assert "CAP_SYS_ADMIN" in s["CapabilityBoundingSet"][0].split()
    assert "@mount" in " ".join(s["SystemCallFilter"])
    assert s["RestrictAddressFamilies"][0].split() == ["AF_UNIX", "AF_INET", "AF_INET6",
                                                       "AF_NETLINK"]
    hiding = sorted(set(s) & set(NAMESPACING))
    assert not hiding, f"these would hide the mount from the host: {hiding}"


@needs_daemon
def test_daemon_works_with_only_the_privileges_the_unit_leaves(aos_mock, make_daemon):
    """The unit's limits applied by hand: CAP_SYS_ADMIN as the only
    capability, no new privileges, no core dumps, LimitMEMLOCK=16M."""
    need("setpriv", "prlimit")
    d = make_daemon(aos_section(aos_mock, "lab"), start=False)
    # 16 MiB as in the unit, unless the hard limit is lower and cannot be
    # raised here (no CAP_SYS_RESOURCE in some sandboxes).
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    memlock = 16 << 20 if hard == resource.RLIM_INFINITY else min(16 << 20, hard)
    wrapper = d.workdir / "sessionfs-confined"
    wrapper.write_text(
        "#!/bin/sh\nexec prlimit --core=0 --memlock=%d -- setpriv --bounding-set -all,+sys_admin "
        "--inh-caps -all --no-new-privs -- %s \"$@\"\n" % (memlock, d.binary))
    wrapper.chmod(0o755)
    d.binary = wrapper
    d.start()
    caps = Path(f"/proc/{d.proc.pid}/status").read_text()
    assert re.search(r"(?m)^CapEff:\s*0*200000$", caps), "not confined to CAP_SYS_ADMIN"
    token = token_of(d.read(TOKEN))
    assert aos_mock.record(token) is not None
    assert d.stop() == 0 and d.clean_stop
    # The secure heap still fits in locked memory without CAP_IPC_LOCK.
    assert "could not be locked" not in d.log()


def mount_ids(path):
    """Ids of the mounts on path (/proc/self/mountinfo), bottom first."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return [line.split()[0] for line in f
                if line.split()[4].encode().decode("unicode_escape") == target]


def kill_leaving_dead_mount(d):
    """SIGKILL the daemon, as a crash would: its mount stays, dead."""
    d.proc.kill()
    d.proc.wait()
    assert is_mounted(d.mnt)


@needs_daemon
def test_unit_stop_post_removes_a_dead_mount_and_nothing_else(aos_mock, make_daemon, tmp_path):
    need("findmnt", "umount")
    d = make_daemon(aos_section(aos_mock, "lab"))
    kill_leaving_dead_mount(d)
    # ExecStopPost= as systemd runs it, for this test's mount point.
    command = unit_settings()["ExecStopPost"][0].lstrip("-")
    argv = shlex.split(command.replace("/mnt/sessions", str(d.mnt)))
    r = run(argv)
    assert r.returncode == 0, r.stderr
    assert not is_mounted(d.mnt)
    d.start()  # Restart=on-failure can mount again
    assert aos_mock.record(token_of(d.read(TOKEN))) is not None
    assert d.stop() == 0 and d.clean_stop
    # After a clean stop there is nothing to do, and it succeeds.
    assert run(argv).returncode == 0
    # Another file system on the mount point is not touched.
    other = tmp_path / "other"
    other.mkdir()
    assert run(["mount", "-t", "tmpfs", "sessionfs-test", other]).returncode == 0
    try:
        r = run(shlex.split(command.replace("/mnt/sessions", str(other))))
        assert r.returncode == 0 and is_mounted(other)
    finally:
        run(["umount", other])


@needs_daemon
def test_container_entrypoint_mounts_over_a_dead_mount_and_makes_the_mount_point(
        aos_mock, make_daemon):
    need("findmnt", "umount")
    d = make_daemon(aos_section(aos_mock, "lab"),
                    env={"PATH": f"{BINARY.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"})
    token = token_of(d.read(TOKEN))
    kill_leaving_dead_mount(d)
    d.binary = ENTRYPOINT  # then `exec sessionfs` with the same arguments
    d.start()  # returns at once: the dead mount counts as mounted
    # status is never cached: reading it needs a live daemon.
    assert wait_until(lambda: sessionfs_pids(d.mnt) == [d.proc.pid]
                      and d.read_err("aos/lab/status") == 0, MOUNT_WAIT), d.log()
    assert len(mount_ids(d.mnt)) == 1, "mounted on top of the dead mount"
    assert token_of(d.read(TOKEN)) == token  # the saved session, resumed
    assert d.stop() == 0 and d.clean_stop
    d.mnt.rmdir()
    d.start()
    assert token_of(d.read(TOKEN)) == token


# --- mount(8), fstab and mount.fuse3 -----------------------------------------

# Runs in a private mount namespace: puts the built sessionfs where mount.fuse3
# looks for it, mounts as $MOUNT_ARGS says, reports, and waits for a line on
# stdin before unmounting with umount(8).
MOUNT_IN_NAMESPACE = r"""
set -eu
mount --bind "$SBIN" /usr/local/sbin
eval "mount $MOUNT_ARGS"
echo mounted
read -r _
umount "$MNT"
echo unmounted
"""


@needs_daemon
@pytest.mark.parametrize("how", ["command line", "fstab"])
def test_mount_t_fuse_sessionfs(how, aos_mock, tmp_path, leftover_daemons):
    need("mount", "umount", "unshare", "mount.fuse3")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    leftover_daemons.append(mnt)
    cfg = tmp_path / "sessionfs.conf"
    cfg.write_text(config_for(tmp_path, aos_section(aos_mock, "lab")))
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    (sbin / "sessionfs").symlink_to(BINARY)
    if how == "fstab":
        # The README's fstab line, with this test's paths.
        fstab = tmp_path / "fstab"
        fstab.write_text(f"sessionfs  {mnt}  fuse.sessionfs  "
                         f"config={cfg},allow_other,_netdev,nofail  0  0\n")
        mount_args = f"-T {fstab} {mnt}"
    else:
        mount_args = f"-t fuse.sessionfs sessionfs {mnt} -o config={cfg},allow_other"
    env = daemon_env(tmp_path) | {"SBIN": str(sbin), "MNT": str(mnt), "MOUNT_ARGS": mount_args}
    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                               "sh", "-c", MOUNT_IN_NAMESPACE], env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        line = holder.stdout.readline()
        assert line == "mounted\n", f"mount failed: {line!r} {holder.stderr.read()}"
        # The daemon detached from mount.fuse3, which called it as
        # `sessionfs SOURCE MOUNTPOINT -o OPTIONS`.
        pids = sessionfs_pids(mnt)
        assert len(pids) == 1, pids
        argv = Path(f"/proc/{pids[0]}/cmdline").read_text().split("\0")
        assert argv[:3] == ["sessionfs", "sessionfs", str(mnt)], argv
        assert any(f"config={cfg}" in a and "allow_other" in a for a in argv), argv
        # The mount exists in the namespace only; look in through the holder.
        mountinfo = Path(f"/proc/{holder.pid}/mountinfo").read_text()
        entry = next(line for line in mountinfo.splitlines() if line.split()[4] == str(mnt))
        assert " - fuse.sessionfs sessionfs " in entry and "allow_other" in entry, entry
        inside = Path(f"/proc/{holder.pid}/root") / str(mnt).lstrip("/")
        token = token_of((inside / TOKEN).read_text())
        assert aos_mock.record(token) is not None and aos_mock.logins == 1

        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline() == "unmounted\n", holder.stderr.read()
        assert wait_exited(pids), "sessionfs still running after umount"
    finally:
        holder.kill()
        holder.wait()


@needs_daemon
def test_mount_fuse3_runs_sessionfs_from_path(aos_mock, tmp_path, leftover_daemons):
    """mount.fuse3 called directly (as mount(8) would) finds sessionfs on
    the PATH it is given; fusermount3 -u stops the daemon."""
    need("mount.fuse3")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    leftover_daemons.append(mnt)
    cfg = tmp_path / "sessionfs.conf"
    cfg.write_text(config_for(tmp_path, aos_section(aos_mock, "lab")))
    env = daemon_env(tmp_path)
    env["PATH"] = f"{BINARY.parent}:{env.get('PATH', '/usr/bin:/bin')}"
    helper = shutil.which("mount.fuse3") or "/sbin/mount.fuse3"
    r = run([helper, "sessionfs", mnt, "-t", "fuse.sessionfs", "-o",
             f"config={cfg},allow_other"], env=env, timeout=MOUNT_WAIT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert is_mounted(mnt)
    pids = sessionfs_pids(mnt)
    assert len(pids) == 1
    token = token_of((mnt / TOKEN).read_text())
    assert aos_mock.record(token) is not None
    r = run(["fusermount3", "-u", mnt])
    assert r.returncode == 0, r.stderr
    assert not is_mounted(mnt)
    assert wait_exited(pids), "sessionfs still running after fusermount3 -u"


# --- containers ---------------------------------------------------------------

# A consumer in a container: reads requests "OP PATH [DATA]" on stdin, answers
# each with one JSON line: {"ok": text} or {"errno": n}.
CONSUMER = r"""
import json, os, sys
for line in sys.stdin:
    op, path, *data = line.split()
    try:
        if op == "read":
            with open(path) as f:
                out = {"ok": f.read()}
        elif op == "write":
            with open(path, "w") as f:
                f.write(data[0] + "\n")
            out = {"ok": ""}
        elif op == "unlink":
            os.unlink(path)
            out = {"ok": ""}
        elif op == "mkdir":
            os.mkdir(path)
            out = {"ok": ""}
        elif op == "mountinfo":
            out = {"ok": open("/proc/self/mountinfo").read()}
    except OSError as e:
        out = {"errno": e.errno}
    print(json.dumps(out), flush=True)
"""


class Consumer:
    """A process in its own mount namespace (bubblewrap) with binds[src] at
    binds[dst], read-only, the rest of its world /usr and /etc, optionally
    running as another uid. bwrap makes every mount in the namespace a
    slave, as docker's bind-propagation=rslave and Kubernetes's
    HostToContainer do."""

    def __init__(self, binds, uid=None):
        argv = ["bwrap", "--die-with-parent", "--unshare-pid",
                "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc",
                "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for top in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
            path = Path("/") / top
            if path.is_symlink():
                argv += ["--symlink", os.readlink(path), f"/{top}"]
            elif path.is_dir():
                argv += ["--ro-bind", str(path), f"/{top}"]
        for src, dst in binds.items():
            argv += ["--ro-bind", str(src), dst]
        if uid is not None:
            argv += ["setpriv", "--reuid", str(uid), "--regid", str(uid), "--clear-groups"]
        argv += [sys.executable if sys.executable.startswith("/usr/") else "/usr/bin/python3",
                 "-c", CONSUMER]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd="/")

    def do(self, op, path, data=""):
        self.proc.stdin.write(f"{op} {path} {data}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"consumer died: {self.proc.stderr.read()}")
        return json.loads(line)

    def read(self, path):
        """The text read, or the errno as an int."""
        out = self.do("read", path)
        return out.get("ok", out.get("errno"))

    def errno_of(self, op, path, data=""):
        return self.do(op, path, data).get("errno", 0)

    def close(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def consumers():
    """Factory: consumers(binds, uid=None) -> Consumer; all closed at teardown."""
    need("bwrap")
    made = []

    def factory(binds, uid=None):
        c = Consumer(binds, uid)
        made.append(c)
        return c

    yield factory
    for c in made:
        c.close()


def assert_errno(err, expected, what):
    """err: an errno, 0, or the text a successful read returned."""
    if isinstance(err, str):
        err, got = 0, f"success, read {err[:16]!r}..."
    else:
        got = strerror(err)
    assert err == expected, f"{what}: got {got}, expected {strerror(expected)}"


@needs_daemon
def test_container_reads_the_hosts_token_and_cannot_write(aos_mock, make_mount, consumers):
    d = make_mount(aos_section(aos_mock, "lab"), options=("allow_other",), public=True)
    host_token = token_of(d.read(TOKEN))
    c = consumers({d.mnt: "/sessions"})
    mountinfo = c.do("mountinfo", "-")["ok"]
    assert re.search(r"(?m)^\S+ \S+ \S+ / /sessions ro,\S* .*- fuse\.sessionfs ", mountinfo), \
        mountinfo
    assert token_of(c.read(f"/sessions/{TOKEN}")) == host_token
    assert aos_mock.logins == 1, "the container's read logged in again"

    assert_errno(c.errno_of("write", "/sessions/aos/lab/credentials", "admin:guess"),
                 errno.EROFS, "writing credentials")
    assert_errno(c.errno_of("write", "/sessions/aos/lab/session.json", "{}"),
                 errno.EROFS, "writing session.json")
    assert_errno(c.errno_of("unlink", f"/sessions/{TOKEN}"), errno.EROFS, "rm token")
    assert_errno(c.errno_of("mkdir", "/sessions/aos/127.0.0.1:1"), errno.EROFS, "mkdir")
    assert aos_mock.logouts == 0
    assert d.listdir("aos") == ["lab"]
    assert token_of(d.read(TOKEN)) == host_token


@needs_daemon
def test_container_user_reads_what_access_allows(aos_mock, make_mount, consumers):
    """A non-root consumer (uid 1001) reads the token [access] gives it, and
    nothing else."""
    d = make_mount(aos_section(aos_mock, "lab"),
                   ini_section("access", {TOKEN: f"uid:{ALICE} mode:0400"}),
                   options=("allow_other",), public=True)
    host_token = token_of(d.read(TOKEN))
    c = consumers({d.mnt: "/sessions"}, uid=ALICE)
    assert token_of(c.read(f"/sessions/{TOKEN}")) == host_token
    assert_errno(c.read("/sessions/aos/lab/status"), errno.EACCES, "reading status")
    assert_errno(c.errno_of("write", "/sessions/aos/lab/credentials", "admin:guess"),
                 errno.EROFS, "writing credentials")


@pytest.fixture
def shared_dir(leftover_daemons):
    """A directory that is a shared mount, as every mount is on a systemd
    host (the test machine's / may be private): a daemon mounts below it,
    consumers bind it or its mount point. Ask for it before make_mount, so
    the daemon stops before this goes away."""
    need("mount", "umount")
    path = Path(tempfile.mkdtemp(prefix="sessionfs-shared-", dir="/tmp"))
    path.chmod(0o755)
    r = run(["mount", "--bind", path, path])
    assert r.returncode == 0, r.stderr
    r = run(["mount", "--make-shared", path])
    assert r.returncode == 0, r.stderr
    (path / "mnt").mkdir()
    leftover_daemons.append(path / "mnt")
    yield path
    force_unmount(path / "mnt")
    run(["umount", "--lazy", path])
    shutil.rmtree(path, ignore_errors=True)


def daemon_under(make_mount, shared_dir, *sections):
    d = make_mount(*sections, options=("allow_other",), start=False)
    d.mnt = shared_dir / "mnt"
    return d


@needs_daemon
def test_consumer_started_before_the_daemon_gets_the_mount(aos_mock, shared_dir,
                                                           make_mount, consumers):
    d = daemon_under(make_mount, shared_dir, aos_section(aos_mock, "lab"),
                     ini_section("access", {TOKEN: f"uid:{ALICE} mode:0400"}))
    c = consumers({d.mnt: "/sessions"}, uid=ALICE)
    assert_errno(c.read(f"/sessions/{TOKEN}"), errno.ENOENT, "before the daemon")
    d.start()
    assert token_of(c.read(f"/sessions/{TOKEN}")) == token_of(d.read(TOKEN))
    # The propagated mount is not read-only (the bind's flag applies to the
    # mount below it): file modes are what keep this consumer out.
    assert_errno(c.errno_of("write", "/sessions/aos/lab/credentials", "admin:guess"),
                 errno.EACCES, "writing credentials")
    assert_errno(c.errno_of("mkdir", "/sessions/aos/127.0.0.1:1"), errno.EACCES, "mkdir")


@needs_daemon
def test_daemon_restart_reaches_consumers_that_bind_the_parent(aos_mock, shared_dir,
                                                               make_mount, consumers):
    d = daemon_under(make_mount, shared_dir, aos_section(aos_mock, "lab")).start()
    token = token_of(d.read(TOKEN))
    of_mount = consumers({d.mnt: "/sessions"})
    of_parent = consumers({shared_dir: "/host"})
    assert token_of(of_mount.read(f"/sessions/{TOKEN}")) == token
    assert token_of(of_parent.read(f"/host/mnt/{TOKEN}")) == token

    assert d.stop() == 0
    d.start()
    token = token_of(d.read(TOKEN))
    # The new mount propagates into the parent's bind...
    assert token_of(of_parent.read(f"/host/mnt/{TOKEN}")) == token
    assert_errno(of_parent.read("/host/mnt/aos/lab/status"), 0, "status")
    # ...while a bind of the old mount itself is left with a dead one
    # (README: restart such consumers, or bind the parent directory).
    assert_errno(of_mount.read("/sessions/aos/lab/status"), errno.ENOTCONN, "the old mount")


@needs_daemon
def test_consumer_left_with_a_dead_mount_gets_no_token(aos_mock, shared_dir, make_mount,
                                                       consumers):
    """A consumer still holding the mount of a daemon that is gone (stopped,
    crashed) must get an error, not the last token from the page cache: that
    token may have been logged out or expired since."""
    d = daemon_under(make_mount, shared_dir, aos_section(aos_mock, "lab")).start()
    token = token_of(d.read(TOKEN))
    c = consumers({d.mnt: "/sessions"})
    assert token_of(c.read(f"/sessions/{TOKEN}")) == token
    time.sleep(1.5)  # reads from here on may come from the page cache
    assert token_of(c.read(f"/sessions/{TOKEN}")) == token
    d.proc.kill()  # as a crash or the OOM killer would
    d.proc.wait()
    aos_mock.revoke(token)
    # The kernel may serve its cached copy until the file's attributes time
    # out (at most 1 s, README: "The page cache stays honest").
    time.sleep(1.2)
    got = c.read(f"/sessions/{TOKEN}")
    stale = got == token
    assert not stale, "a dead mount served the cached (now revoked) token"
    assert_errno(got, errno.ENOTCONN, "reading the token of a dead mount")


# --- the example configs -----------------------------------------------------

def configmap_config():
    yaml = pytest.importorskip("yaml")
    docs = [doc for doc in yaml.safe_load_all(DAEMONSET.read_text()) if doc]
    return next(doc for doc in docs if doc["kind"] == "ConfigMap")["data"]["sessionfs.conf"]


def test_kubernetes_manifests_are_consistent():
    yaml = pytest.importorskip("yaml")
    docs = [doc for doc in yaml.safe_load_all(DAEMONSET.read_text()) if doc]
    ds = next(doc for doc in docs if doc["kind"] == "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    (daemon,) = pod["containers"]
    assert daemon["securityContext"]["privileged"] is True
    mounts = {m["mountPath"]: m for m in daemon["volumeMounts"]}
    assert mounts["/mnt"].get("mountPropagation") == "Bidirectional"
    assert daemon["args"][-1].startswith("/mnt/")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/mnt"]["name"]]["hostPath"]["path"] == "/mnt"
    secret = volumes["credentials"]["secret"]
    assert secret["defaultMode"] & 0o077 == 0
    # Every password_file of the config is a subPath mount of the Secret.
    for path in re.findall(r"(?m)^password_file\s*=\s*(\S+)", configmap_config()):
        assert mounts[path]["name"] == "credentials" and "subPath" in mounts[path], path
    assert "fsGroup" not in pod.get("securityContext", {})

    consumer = yaml.safe_load((DAEMONSET.parent / "consumer-pod.yaml").read_text())
    (c,) = consumer["spec"]["containers"]
    (vm,) = c["volumeMounts"]
    assert vm["readOnly"] is True and vm["mountPropagation"] == "HostToContainer"
    (vol,) = consumer["spec"]["volumes"]
    assert vol["hostPath"]["path"] == "/mnt/sessions"
    uid = consumer["spec"]["securityContext"]["runAsUser"]
    assert f"uid:{uid}" in configmap_config(), "[access] does not name the consumer's uid"


@needs_daemon
@pytest.mark.parametrize("which", ["sessionfs.conf.example", "daemonset.yaml ConfigMap"])
def test_example_config_mounts_its_targets(which, make_daemon):
    text = EXAMPLE_CONFIG.read_text() if which.endswith("example") else configmap_config()
    # Everything but the state dir, which the test picks.
    text = re.sub(r"(?m)^state_dir\s*=.*$", "", text)
    # Fleet mode needs etcd and its key (test_fleet.py): without it, alone.
    text = re.sub(r"(?ms)^\[fleet\].*?(?=^\[)", "", text)
    d = make_daemon(text)
    assert d.listdir("aos") == ["aos1"]
    assert d.listdir("idrac") == ["r640-07"]
    if "[sts" in text:
        assert "ci" in d.listdir("sts")
    # (The daemon would not have started with an [access] line it could not
    # parse.) status never touches the network.
    status = json.loads(d.read("aos/aos1/status"))
    assert status["server"] == "https://aos1.example.net:443"
    assert status["errno"] == "ENOKEY"  # its password_file is not there


# --- .metrics -----------------------------------------------------------------

SAMPLE = re.compile(r'^(\w+)\{provider="([^"]*)",target="([^"]*)"\} (-?[0-9.e+]+)$')
COUNTERS = ("sessionfs_logins_total", "sessionfs_failures_total",
            "sessionfs_refreshes_total", "sessionfs_reads_total",
            "sessionfs_reader_waits_total")
EXPIRY = "sessionfs_session_expiry_seconds"


def parse_metrics(text):
    """{(metric, provider, target): value} and {metric: type}, checking that
    every sample's family was announced with HELP and TYPE before it."""
    samples, types, helped = {}, {}, set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
        else:
            m = SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name = m.group(1)
            assert name in helped and name in types, f"{name} sampled before HELP/TYPE"
            samples[(name, m.group(2), m.group(3))] = float(m.group(4))
    return samples, types


@needs_daemon
def test_metrics_pass_promtool_and_count_what_happened(ca, aos_mock, make_daemon, log_secrets):
    need("promtool")
    wrong = log_secrets.add(new_password())
    fast = AosMock(ca, {"admin": new_password()}, ttl=6)  # refreshed after 2 s
    log_secrets.add_source(fast.secrets)
    with fast:
        d = make_daemon(aos_section(aos_mock, "lab"),
                        aos_section(aos_mock, "bad", password=wrong),
                        aos_section(fast, "fast"), refresh_margin=4)
        for _ in range(3):
            lab_token = token_of(d.read("aos/lab/token"))
        assert d.read_err("aos/bad/token") == errno.EKEYREJECTED
        d.read("aos/fast/token")

        def refreshed():
            d.read("aos/fast/token")  # keeps the session hot
            return json.loads(d.read("aos/fast/status"))["counters"]["refreshes"] >= 1
        assert wait_until(refreshed, 15), "no background refresh of aos/fast"

        requests = len(aos_mock.requests) + len(fast.requests)
        text = d.read(".metrics")
        assert len(aos_mock.requests) + len(fast.requests) == requests, \
            "reading .metrics touched the network"
        status = {t: json.loads(d.read(f"aos/{t}/status"))["counters"] for t in ("lab", "bad")}

    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0 and r.stdout + r.stderr == "", \
        f"promtool check metrics: exit {r.returncode}\n{r.stdout}{r.stderr}\n--- input:\n{text}"

    samples, types = parse_metrics(text)
    assert types == {**{c: "counter" for c in COUNTERS}, EXPIRY: "gauge"}

    def value(metric, target):
        return samples.get((metric, "aos", target))

    assert value("sessionfs_logins_total", "lab") == 1
    # What reaches the daemon: reads served from the kernel's page cache do
    # not, a stat (sizing the file) may. Checked against status below.
    assert value("sessionfs_reads_total", "lab") >= 1
    assert value("sessionfs_failures_total", "lab") == 0
    assert value("sessionfs_refreshes_total", "lab") == 0
    rec = aos_mock.record(lab_token)
    assert abs(value(EXPIRY, "lab") - (rec.exp - time.time())) < 10

    assert value("sessionfs_logins_total", "bad") == 0
    assert value("sessionfs_failures_total", "bad") == 1
    assert value("sessionfs_reads_total", "bad") >= 1
    assert value(EXPIRY, "bad") is None, "an expiry for a target without a session"

    assert value("sessionfs_refreshes_total", "fast") >= 1
    assert value("sessionfs_logins_total", "fast") >= 2  # AOS refreshes by logging in
    assert value("sessionfs_failures_total", "fast") == 0
    assert 0 < value(EXPIRY, "fast") <= 6

    # .metrics and status count the same things.
    for target, counters in status.items():
        for name, n in counters.items():
            assert value(f"sessionfs_{name}_total", target) == n, (target, name)
