"""Audit events and [access] rules by systemd unit or cgroup (issue 23).

Readers are real processes placed in cgroups the test creates, in the
hierarchy the daemon reads a pid's identity from: the name=systemd one
when /proc/self/cgroup has it (cgroup v1 and hybrid hosts), else the
unified (v2) one. A process joins a cgroup by writing its pid to that
cgroup's cgroup.procs, then execs the reader (cat), so the event's pid and
exe are the reader's. The journal sink is tested only where a journal runs
(/run/systemd/journal/socket); elsewhere the file sink is.
"""

import errno
import json
import os
import secrets
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.harness import access_section, aos_section, idrac_section, sts_section

SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
CAT = os.path.realpath(shutil.which("cat") or "/bin/cat")
ALICE = 1001


# --- cgroups ----------------------------------------------------------------

def identity_hierarchy():
    """The mount point of the hierarchy the daemon reads (see cgroup.h)."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    want_v1 = any(line.split(":")[1] == "name=systemd" for line in lines)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype, _, opts = right.split(" ", 2)
        mnt = left.split()[4]
        if want_v1 and fstype == "cgroup" and "name=systemd" in opts.split(","):
            return Path(mnt)
        if not want_v1 and fstype == "cgroup2":
            return Path(mnt)
    return None


class Cgroups:
    """Cgroups made under one test slice, removed at the end."""

    def __init__(self, root):
        self.root = root
        self.slice = f"sessionfs-test-{uuid.uuid4().hex[:8]}.slice"
        self.made = []

    def make(self, rel):
        """Creates /<slice>/<rel> (and the dirs on the way); returns its cgroup path."""
        path = "/" + self.slice + ("/" + rel if rel else "")
        cur = self.root
        for part in path.strip("/").split("/"):
            cur = cur / part
            if not cur.exists():
                cur.mkdir()
                self.made.append(cur)
        return path

    def procs(self, path):
        return self.root / path.lstrip("/") / "cgroup.procs"

    def move(self, pid, path):
        self.procs(path).write_text(f"{pid}\n")

    def run(self, path, *argv, uid=None):
        """argv run by a process that first joins cgroup path, as uid if given."""
        pre = [SETPRIV, "--reuid", str(uid), "--regid", str(uid), "--clear-groups"] if uid is not None else []
        script = 'echo $$ > "$0" && exec "$@"'
        return subprocess.run(["sh", "-c", script, str(self.procs(path)), *pre, *argv],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, cwd="/")

    def cleanup(self):
        for d in reversed(self.made):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)  # the last process is still leaving


@pytest.fixture
def cgroups():
    if os.geteuid() != 0:
        pytest.skip("needs root: creates cgroups")
    root = identity_hierarchy()
    if root is None or not os.access(root, os.W_OK):
        pytest.skip("no writable cgroup hierarchy (name=systemd or cgroup2) here")
    cg = Cgroups(root)
    try:
        cg.make("")
    except OSError as e:
        pytest.skip(f"cannot create a cgroup under {root}: {e}")
    yield cg
    cg.cleanup()


# --- helpers ----------------------------------------------------------------

def audit_settings(workdir, **extra):
    settings = {"audit_log": workdir / "audit.log"}
    settings.update(extra)
    return settings


def events(path, wait_for=None, timeout=5):
    """The events in the audit log (every line must be a JSON object);
    waits until wait_for(events) holds, the writer being a thread."""
    deadline = time.monotonic() + timeout
    while True:
        text = Path(path).read_text() if Path(path).exists() else ""
        evs = [json.loads(line) for line in text.splitlines()]
        if wait_for is None or wait_for(evs) or time.monotonic() > deadline:
            return evs
        time.sleep(0.05)


def find(evs, **want):
    return [e for e in evs if all(e.get(k) == v for k, v in want.items())]


def metric(d, name):
    for line in d.read(".metrics").splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise AssertionError(f"{name} not in .metrics")


CALLER_FIELDS = {"time", "target", "file", "op", "result", "uid", "gid", "pid", "exe", "unit", "cgroup",
                 "container", "pod"}


# --- events -----------------------------------------------------------------

def test_each_event_names_the_caller_its_unit_and_the_outcome(aos_mock, make_mount, cgroups, tmp_path, log_secrets):
    log = tmp_path / "audit.log"
    d = make_mount(aos_section(aos_mock, "lab"), settings=audit_settings(tmp_path))
    log_secrets.watch(log)
    unit = cgroups.make("backup.service")
    r = cgroups.run(unit, "cat", d.path("aos/lab/token"))
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert aos_mock.is_live(token)

    evs = events(log, lambda e: find(e, op="open", file="token"))
    (login,) = find(evs, op="login")
    assert login["target"] == "aos/lab" and login["result"] == "ok"
    assert login["server"] == f"https://{aos_mock.host}:{aos_mock.port}"
    (ev,) = find(evs, op="open", file="token")
    assert set(ev) == CALLER_FIELDS, ev
    assert ev["target"] == "aos/lab" and ev["result"] == "ok"
    assert ev["uid"] == 0 and ev["gid"] == 0
    assert ev["exe"] == CAT
    assert ev["unit"] == "backup.service"
    assert ev["cgroup"] == unit
    assert ev["container"] is None and ev["pod"] is None
    assert ev["pid"] > 0
    assert time.time() - 60 < time.mktime(time.strptime(ev["time"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert ev["time"].endswith("Z")

    # One pid, two executables: the exe is read at each open, after an exec too.
    sh = os.path.realpath("/bin/sh")
    r = cgroups.run(unit, "sh", "-c", 'read x < "$1"; exec cat "$1"', "sh", d.path("aos/lab/token"))
    assert r.returncode == 0, r.stderr
    evs = events(log, lambda e: len(find(e, op="open", file="token")) >= 3)
    (first,) = find(evs, op="open", file="token", exe=sh)
    assert find(evs, op="open", file="token", exe=CAT, pid=first["pid"]), evs

    # A container's scope in a Kubernetes pod's slice (systemd cgroup driver).
    cid = secrets.token_hex(32)
    pod = str(uuid.uuid4())
    scope = cgroups.make(f"kubepods-burstable.slice/kubepods-burstable-pod{pod.replace('-', '_')}.slice/"
                         f"cri-containerd-{cid}.scope")
    assert cgroups.run(scope, "cat", d.path("aos/lab/session.json")).returncode == 0
    # Docker's and Podman's scopes.
    for runtime in ("docker", "libpod", "crio"):
        assert cgroups.run(cgroups.make(f"{runtime}-{cid}.scope"), "cat", d.path("aos/lab/token")).returncode == 0
    evs = events(log, lambda e: len(find(e, op="open", container=cid)) == 4)
    (ev,) = find(evs, op="open", file="session.json")
    assert (ev["container"], ev["pod"], ev["unit"]) == (cid, pod, f"cri-containerd-{cid}.scope")
    assert len(find(evs, op="open", file="token", container=cid)) == 3

    # Writes, rm, mkdir, rmdir, chmod, chown: each one event, with its result.
    new_pw = aos_mock.password("admin")
    d.write("aos/lab/credentials", f"admin:{new_pw}\n")
    assert d.write_err("aos/lab/credentials", "not-json-and-no-colon\n") == errno.EINVAL
    os.chmod(d.path("aos/lab/token"), 0o440)
    os.chown(d.path("aos/lab/token"), ALICE, -1)
    d.unlink("aos/lab/token")
    os.mkdir(d.path(f"aos/{aos_mock.host}:{aos_mock.port}"))
    os.rmdir(d.path(f"aos/{aos_mock.host}:{aos_mock.port}"))
    evs = events(log, lambda e: find(e, op="rmdir"))
    writes = find(evs, op="write", file="credentials")
    assert [w["result"] for w in writes] == ["ok", "EINVAL"], writes
    assert find(evs, op="chmod", file="token")[0]["detail"] == "mode=0440"
    assert find(evs, op="chown", file="token")[0]["detail"] == f"owner={ALICE}:-1"
    assert find(evs, op="rm", file="token", result="ok")
    assert find(evs, op="logout", target="aos/lab", result="ok")
    assert find(evs, op="mkdir", target=f"aos/{aos_mock.host}:{aos_mock.port}", result="ok", uid=0)
    assert find(evs, op="rmdir", target=f"aos/{aos_mock.host}:{aos_mock.port}", result="ok")
    assert Path(log).stat().st_mode & 0o777 == 0o600

    # No token, no password, in any event.
    text = Path(log).read_text()
    for s in [token, new_pw, *aos_mock.secrets()]:
        assert s not in text


def test_sessions_entries_and_their_deletion_are_audited(redfish_mock, make_mount, tmp_path, log_secrets):
    log = tmp_path / "audit.log"
    d = make_mount(idrac_section(redfish_mock, "bmc"), settings=audit_settings(tmp_path))
    log_secrets.watch(log)
    d.read("idrac/bmc/token")
    victim, other_token = redfish_mock.create_session("root")
    log_secrets.add(other_token)
    assert victim in d.listdir("idrac/bmc/sessions")
    d.read(f"idrac/bmc/sessions/{victim}")
    d.unlink(f"idrac/bmc/sessions/{victim}")
    evs = events(log, lambda e: find(e, op="rm"))
    assert find(evs, op="open", file=f"sessions/{victim}", result="ok")
    assert find(evs, op="rm", file=f"sessions/{victim}", result="ok")
    assert find(evs, op="session_delete", target="idrac/bmc", file=victim, result="ok")
    assert other_token not in Path(log).read_text()


def test_sts_events_hold_no_key(sts_mock, make_mount, tmp_path, log_secrets):
    log = tmp_path / "audit.log"
    serial = "arn:aws:iam::123456789012:mfa/sessionfs-audit"
    akid, secret = sts_mock.new_key(mfa_serial=serial, mfa_code="424242")
    d = make_mount(sts_section(sts_mock, "p", mfa_serial_number=serial), settings=audit_settings(tmp_path))
    log_secrets.watch(log)
    log_secrets.add(secret)
    d.write("sts/p/credentials", f"aws_access_key_id = {akid}\naws_secret_access_key = {secret}\n")
    assert d.read_err("sts/p/creds.json") == errno.ENOKEY  # no MFA code yet
    d.write("sts/p/mfa", "424242\n")
    creds = json.loads(d.read("sts/p/creds.json"))
    env = d.read("sts/p/env")
    evs = events(log, lambda e: find(e, op="open", file="env"))
    assert [e["result"] for e in find(evs, op="open", file="creds.json")] == ["ENOKEY", "ok"]
    assert find(evs, op="write", file="credentials", result="ok")
    assert find(evs, op="write", file="mfa", result="ok")
    assert find(evs, op="login", target="sts/p", result="ok")
    text = Path(log).read_text()
    for s in (secret, creds["SecretAccessKey"], creds["SessionToken"], "424242"):
        assert s not in text
    assert creds["SessionToken"] in env


# --- [access] by unit and cgroup --------------------------------------------

MOVER = r"""
import sys
for line in sys.stdin:
    try:
        with open(sys.argv[1]) as f:
            print("ok" if f.read() else "empty", flush=True)
    except OSError as e:
        print(e.errno, flush=True)
"""


def test_unit_and_cgroup_rules(aos_mock, make_mount, cgroups, tmp_path):
    backup = cgroups.make("backup.service")
    other = cgroups.make("other.service")
    ci = cgroups.make("ci.slice/job-1.scope")
    log = tmp_path / "audit.log"
    d = make_mount(aos_section(aos_mock, "lab"),
                   access_section([("aos/lab/token", "mode:0444 unit:backup.service"),
                                   ("aos/lab/session.json", f"mode:0444 cgroup:/{cgroups.slice}/ci.slice"),
                                   ("aos/lab/status", "mode:0444"),
                                   (".metrics", "mode:0444 unit:backup.service")]),
                   options=("allow_other",), settings=audit_settings(tmp_path), public=True)
    token_path, sj_path = d.path("aos/lab/token"), d.path("aos/lab/session.json")

    # stat shows what it showed before: the rule's mode, the daemon's owner.
    st = os.stat(token_path)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, 0, 0o444)

    def ok(r, what):
        assert r.returncode == 0 and r.stdout, f"{what}: {r.stderr}"

    def denied(r, what):
        assert r.returncode != 0 and "Permission denied" in r.stderr, f"{what}: {r.stdout!r} {r.stderr}"

    ok(cgroups.run(backup, "cat", token_path, uid=ALICE), "alice in backup.service")
    ok(cgroups.run(backup, "cat", token_path), "root in backup.service")
    denied(cgroups.run(other, "cat", token_path, uid=ALICE), "alice in other.service")
    denied(cgroups.run(other, "cat", token_path), "root in other.service: the rule binds root too")
    ok(cgroups.run(ci, "cat", sj_path, uid=ALICE), "alice under the ci prefix")
    denied(cgroups.run(backup, "cat", sj_path, uid=ALICE), "alice outside the ci prefix")
    ok(cgroups.run(other, "cat", d.path("aos/lab/status"), uid=ALICE), "status has no caller rule")
    # .metrics is judged the same way (its mode and owner as stat shows them).
    assert os.stat(d.path(".metrics")).st_mode & 0o777 == 0o444
    ok(cgroups.run(backup, "cat", d.path(".metrics"), uid=ALICE), "alice reads .metrics in backup.service")
    denied(cgroups.run(other, "cat", d.path(".metrics"), uid=ALICE), "alice's .metrics in other.service")
    denied(cgroups.run(other, "cat", d.path(".metrics")), "root's .metrics in other.service")
    # A prefix is a path prefix at a component boundary, not of the name.
    ci2 = cgroups.make("ci.slice2/job.scope")
    denied(cgroups.run(ci2, "cat", sj_path), "ci.slice2 is not under ci.slice")
    assert aos_mock.logins == 1  # no refused open logged in

    # One process, moved between cgroups: checked at each open.
    p = subprocess.Popen([SETPRIV, "--reuid", str(ALICE), "--regid", str(ALICE), "--clear-groups",
                          "/usr/bin/python3", "-c", MOVER, token_path],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/")
    try:
        def attempt():
            p.stdin.write("\n")
            p.stdin.flush()
            return p.stdout.readline().strip()
        cgroups.move(p.pid, backup)
        assert attempt() == "ok"
        cgroups.move(p.pid, other)
        assert attempt() == str(errno.EACCES)
        cgroups.move(p.pid, backup)
        assert attempt() == "ok"
    finally:
        p.stdin.close()
        p.wait(timeout=10)

    evs = events(log, lambda e: len(find(e, op="open", file="token", pid=p.pid)) == 3)
    mine = find(evs, op="open", file="token", pid=p.pid)
    assert [(e["unit"], e["result"]) for e in mine] == [("backup.service", "ok"), ("other.service", "EACCES"),
                                                        ("backup.service", "ok")]
    assert all(e["uid"] == ALICE for e in mine)
    assert find(evs, op="open", file="token", unit="other.service", uid=0, result="EACCES")


def test_bad_caller_selectors_stop_the_mount(aos_mock, make_mount):
    for value in ("unit:", "unit:a/b.service", "cgroup:relative"):
        d = make_mount(aos_section(aos_mock, "lab"), access_section([("aos/lab/token", value)]), start=False)
        with pytest.raises(Exception):
            d.start()


# --- the queue, audit_required, rotation ------------------------------------

def freezer_root():
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype, _, opts = right.split(" ", 2)
        if fstype == "cgroup" and "freezer" in opts.split(","):
            return Path(left.split()[4])
    return None


class FrozenWriter:
    """The daemon's audit writer thread, alone, in a frozen cgroup v1 freezer
    cgroup (v1 places threads one by one: `tasks`): the FUSE threads go on,
    the queue fills."""

    def __init__(self, pid):
        root = freezer_root()
        if root is None or not os.access(root, os.W_OK):
            pytest.skip("needs a writable cgroup v1 freezer hierarchy to stall the audit writer")
        self.dir = root / f"sessionfs-test-{uuid.uuid4().hex[:8]}"
        self.tid = next(int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()
                        if (t / "comm").read_text().strip() == "sessionfs-audit")
        self.root = root

    def __enter__(self):
        self.dir.mkdir()
        (self.dir / "tasks").write_text(f"{self.tid}\n")
        (self.dir / "freezer.state").write_text("FROZEN\n")
        return self

    def thaw(self):
        (self.dir / "freezer.state").write_text("THAWED\n")

    def __exit__(self, *exc):
        self.thaw()
        try:
            (self.root / "tasks").write_text(f"{self.tid}\n")
        except OSError:
            pass
        for _ in range(50):
            try:
                self.dir.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def test_a_full_queue_drops_events_and_counts_them(aos_mock, make_mount, tmp_path):
    d = make_mount(aos_section(aos_mock, "lab"), settings=audit_settings(tmp_path, audit_queue=4))
    d.read("aos/lab/token")
    events(tmp_path / "audit.log", lambda e: find(e, op="open"))
    assert metric(d, "sessionfs_audit_dropped_total") == 0
    with FrozenWriter(d.proc.pid) as frozen:
        for _ in range(10):
            assert d.read("aos/lab/token")  # reads are never held up by auditing
        assert metric(d, "sessionfs_audit_dropped_total") >= 6
        st = json.loads(d.read("aos/lab/status"))
        assert "queue full" in st["audit"]["error"] and st["audit"]["dropped"] >= 6
        frozen.thaw()
        evs = events(tmp_path / "audit.log", lambda e: len(find(e, op="open")) >= 5)
    assert 5 <= len(find(evs, op="open")) <= 6  # the first, and the 4 the queue held
    d.read("aos/lab/token")
    assert "error" not in json.loads(d.read("aos/lab/status"))["audit"] or \
        json.loads(d.read("aos/lab/status"))["audit"]["error"] is None


def test_audit_required_refuses_a_secret_whose_event_cannot_be_recorded(aos_mock, make_mount, tmp_path):
    d = make_mount(aos_section(aos_mock, "lab"),
                   settings=audit_settings(tmp_path, audit_queue=2, audit_required=True))
    assert d.read("aos/lab/token")
    events(tmp_path / "audit.log", lambda e: find(e, op="open"))
    with FrozenWriter(d.proc.pid) as frozen:
        results = [d.read_err("aos/lab/token") for _ in range(5)]
        assert results[:2] == [0, 0] and set(results[2:]) == {errno.EIO}, results
        st = json.loads(d.read("aos/lab/status"))  # status is no secret: served
        assert "not served" in st["audit"]["last_refusal"] and "queue full" in st["audit"]["last_refusal"]
        assert st["audit"]["last_refusal_at"]
        frozen.thaw()
        events(tmp_path / "audit.log", lambda e: len(find(e, op="open")) >= 3)
    assert d.read_err("aos/lab/token") == 0
    assert aos_mock.logins == 1


def test_audit_required_needs_a_sink(aos_mock, make_mount):
    d = make_mount(aos_section(aos_mock, "lab"), settings={"audit_required": True}, start=False)
    with pytest.raises(Exception):
        d.start()


def test_the_log_is_rotated_and_kept(aos_mock, make_mount, tmp_path, log_secrets):
    log = tmp_path / "audit.log"
    d = make_mount(aos_section(aos_mock, "lab"),
                   settings=audit_settings(tmp_path, audit_log_max_size=4096, audit_log_keep=2))
    log_secrets.watch(log)
    for _ in range(80):  # about 300 bytes each: 24 KB in all
        d.read("aos/lab/token")
    rotated = [Path(f"{log}.{i}") for i in (1, 2)]
    deadline = time.monotonic() + 5
    while metric(d, "sessionfs_audit_written_total") < 81 and time.monotonic() < deadline:
        time.sleep(0.05)  # a login and 80 opens
    assert rotated[1].exists()
    assert not Path(f"{log}.3").exists()
    for f in [log, *rotated]:
        assert f.stat().st_size <= 4096
        assert f.stat().st_mode & 0o777 == 0o600
        for line in f.read_text().splitlines():
            json.loads(line)
    # The newest events are in the current file, in order across files.
    times = [json.loads(line)["time"] for f in [*reversed(rotated), log] for line in f.read_text().splitlines()]
    assert times == sorted(times)


def test_an_audit_log_others_can_read_is_refused(aos_mock, make_mount, tmp_path):
    log = tmp_path / "audit.log"
    log.write_text("")
    log.chmod(0o644)
    d = make_mount(aos_section(aos_mock, "lab"), settings={"audit_log": log}, start=False)
    with pytest.raises(Exception):
        d.start()


def test_journal(aos_mock, make_mount, tmp_path):
    if not os.path.exists("/run/systemd/journal/socket") or not shutil.which("journalctl"):
        pytest.skip("no journal here: the file sink is what the other tests check")
    marker = f"lab-{uuid.uuid4().hex[:8]}"
    d = make_mount(aos_section(aos_mock, marker), settings={"audit_journal": True})
    d.read(f"aos/{marker}/token")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = subprocess.run(["journalctl", "-o", "json", f"SESSIONFS_TARGET=aos/{marker}",
                              "SESSIONFS_OP=open"], capture_output=True, text=True).stdout
        if out.strip():
            break
        time.sleep(0.2)
    ev = json.loads(out.splitlines()[0])
    assert ev["SESSIONFS_FILE"] == "token" and ev["SESSIONFS_RESULT"] == "ok"
    assert ev["SESSIONFS_EXE"]
