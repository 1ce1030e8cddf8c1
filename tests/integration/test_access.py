"""Who may use the mount: other uids, allow_other, [access] rules, chown/chmod.

Another user is played with util-linux setpriv (real uid/gid switched, no
supplementary groups unless asked for), running ordinary tools (cat, ls,
chmod) on the mount, as a script of that user would. The expected behaviour
is README "Security" and the daemon's access spec:

  - without -o allow_other only the mounting user (root here) gets in;
  - with it the kernel checks modes (default_permissions); owners and modes
    come from [access] ("provider/target/file = uid:N gid:N mode:0NNN", shell
    patterns), else the daemon's uid/gid and the default modes;
  - root's chown/chmod of a target's file or dir changes it and is saved in
    the state dir (<state_dir>/<provider>/<target>/access);
  - credentials and mfa are never readable, not even by root, and chmod
    cannot add read bits to them.
"""

import errno
import json
import os
import shutil
import stat
import subprocess

import pytest

from tests.integration.harness import access_section, aos_section, idrac_section, strerror, sts_section

SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
ALICE = 1001   # uid:gid of the user the rules name
BOB = 1003     # an unrelated user
STAFF = 1002   # a group the rules name


# --- helpers ----------------------------------------------------------------

def as_user(uid, *argv, gid=None, groups=()):
    """Run argv as uid (real and effective) with gid and only these
    supplementary groups. Returns the CompletedProcess."""
    gid = uid if gid is None else gid
    ids = ["--reuid", str(uid), "--regid", str(gid)]
    ids += ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
    return subprocess.run([SETPRIV, *ids, *argv], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30, cwd="/")


def cat_as(uid, path, **kw):
    return as_user(uid, "cat", path, **kw)


def assert_denied(result, what):
    assert result.returncode != 0, f"{what}: allowed, got {result.stdout!r}"
    assert "Permission denied" in result.stderr, f"{what}: {result.stderr.strip()}"


def assert_allowed(result, what):
    assert result.returncode == 0, f"{what}: {result.stderr.strip()}"
    assert result.stdout, f"{what}: read nothing"
    assert "\0" not in result.stdout, f"{what}: NUL-padded to {len(result.stdout)} bytes"
    return result.stdout


def owner_mode(path):
    st = os.stat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


@pytest.fixture(autouse=True)
def _need_setpriv():
    if not os.access(SETPRIV, os.X_OK):
        pytest.skip("setpriv (util-linux) not installed")
    if os.geteuid() != 0:
        pytest.skip("needs root: acts as other uids with setpriv")


# --- without allow_other ----------------------------------------------------

def test_other_user_shut_out_without_allow_other(aos_mock, make_mount):
    # Even a rule naming alice gives her nothing without -o allow_other; the
    # mount point itself is reachable by everyone, so only FUSE says no.
    d = make_mount(aos_section(aos_mock), access_section([("aos/lab/token", "uid:1001 mode:0444"),
                                                         ("aos/lab/status", "mode:0444")]),
                   public=True)
    token = d.read("aos/lab/token")  # root, the mounting user, gets in
    assert token
    for rel in ("aos/lab/token", "aos/lab/status", ".metrics"):
        assert_denied(cat_as(ALICE, d.path(rel)), f"uid {ALICE} cat {rel}")
    r = as_user(ALICE, "ls", d.path())
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stderr
    assert aos_mock.logins == 1  # nobody else's attempt reached the server


# --- with allow_other: [access] rules ---------------------------------------

def test_access_rules_decide_who_reads_what(aos_mock, make_mount):
    d = make_mount(aos_section(aos_mock, "lab"), aos_section(aos_mock, "other"),
                   access_section([("aos/lab/token", f"uid:{ALICE} mode:0400"),
                                   ("aos/lab/status", f"gid:{STAFF} mode:0440"),
                                   ("aos/o*/status", "mode:0444")]),
                   options=("allow_other",), public=True)

    # What stat shows is what the rules say; the rest keeps the defaults.
    assert owner_mode(d.path("aos/lab/token")) == (ALICE, 0, 0o400)
    assert owner_mode(d.path("aos/lab/status")) == (0, STAFF, 0o440)
    assert owner_mode(d.path("aos/other/status")) == (0, 0, 0o444)
    assert owner_mode(d.path("aos/lab/session.json")) == (0, 0, 0o600)
    assert owner_mode(d.path("aos/other/token")) == (0, 0, 0o400)

    # alice: her token, yes; the session.json next to it, another target's
    # token, the group's status: no.
    token = assert_allowed(cat_as(ALICE, d.path("aos/lab/token")), "alice lab/token")
    assert aos_mock.is_live(token.strip())
    assert token == d.read("aos/lab/token")
    assert_denied(cat_as(ALICE, d.path("aos/lab/session.json")), "alice lab/session.json")
    assert_denied(cat_as(ALICE, d.path("aos/other/token")), "alice other/token")
    assert_denied(cat_as(ALICE, d.path("aos/lab/status")), "alice lab/status")
    assert_denied(cat_as(ALICE, d.path("aos/lab/credentials")), "alice lab/credentials")

    # bob: not alice's token; with the staff group, the group-readable status.
    assert_denied(cat_as(BOB, d.path("aos/lab/token")), "bob lab/token")
    assert_denied(cat_as(BOB, d.path("aos/lab/status")), "bob lab/status (no group)")
    st = json.loads(assert_allowed(cat_as(BOB, d.path("aos/lab/status"), groups=(STAFF,)),
                                   "bob+staff lab/status"))
    assert st["state"]
    # Same group as primary gid works as well.
    assert_allowed(cat_as(BOB, d.path("aos/lab/status"), gid=STAFF), "bob gid staff lab/status")

    # mode 0444: anyone.
    for uid in (ALICE, BOB):
        assert_allowed(cat_as(uid, d.path("aos/other/status")), f"uid {uid} other/status")

    # Writing credentials is root's (0200 root): alice cannot replace them.
    cred = d.path("aos/lab/credentials")
    r = as_user(ALICE, "sh", "-c", f"echo admin:x-not-the-password > {cred}")
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stderr


def test_default_owners_and_modes(aos_mock, redfish_mock, sts_mock, make_mount):
    d = make_mount(aos_section(aos_mock, "lab"), idrac_section(redfish_mock, "bmc"),
                   sts_section(sts_mock, "p", key=sts_mock.new_key()),
                   options=("allow_other",), public=True)
    expected = {
        "aos/lab": 0o755, "aos/lab/token": 0o400, "aos/lab/status": 0o400,
        "aos/lab/session.json": 0o600, "aos/lab/credentials": 0o200,
        "idrac/bmc": 0o755, "idrac/bmc/token": 0o400, "idrac/bmc/status": 0o400,
        "idrac/bmc/session.json": 0o400, "idrac/bmc/credentials": 0o200,
        "idrac/bmc/sessions": 0o700,
        "sts/p": 0o755, "sts/p/creds.json": 0o400, "sts/p/env": 0o400,
        "sts/p/status": 0o400, "sts/p/credentials": 0o200, "sts/p/mfa": 0o200,
    }
    got = {rel: owner_mode(d.path(rel)) for rel in expected}
    want = {rel: (os.getuid(), os.getgid(), mode) for rel, mode in expected.items()}
    assert got == want
    # With the defaults another user sees the tree but reads nothing in it.
    assert as_user(ALICE, "ls", d.path("aos/lab")).returncode == 0
    assert_denied(cat_as(ALICE, d.path("aos/lab/token")), "alice default token")
    assert_denied(cat_as(ALICE, d.path("sts/p/env")), "alice default env")
    r = as_user(ALICE, "ls", d.path("idrac/bmc/sessions"))
    assert r.returncode != 0 and "Permission denied" in r.stderr, r.stderr


def test_looking_needs_no_credentials(aos_mock, sts_mock, make_mount):
    """ls -l / stat show a target's files whatever the state of its session:
    a target without credentials is listed like any other (README: mkdir a
    target, then write its credentials) and looking at it sends nothing. A
    stat by someone who may read a session file sizes it exactly, which
    takes a session: at most one login per target."""
    d = make_mount(aos_section(aos_mock, "nokey", user=None, password=None),
                   aos_section(aos_mock, "lab"), sts_section(sts_mock, "p"),
                   options=("allow_other",), public=True)
    problems = []
    for rel in ("aos/nokey/token", "aos/nokey/session.json"):
        try:
            os.stat(d.path(rel))
        except OSError as e:
            problems.append(f"stat {rel}: {strerror(e.errno)}")
    r = subprocess.run(["ls", "-l", d.path("aos/nokey")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert problems == [], "\n".join(problems)
    assert aos_mock.requests == [], \
        f"looking at a target without credentials made requests: {[(q.method, q.path) for q in aos_mock.requests]}"
    for rel in ("aos/lab/token", "aos/lab/session.json", "sts/p/creds.json", "sts/p/env"):
        try:
            os.stat(d.path(rel))
        except OSError as e:
            problems.append(f"stat {rel}: {strerror(e.errno)}")
    assert problems == [], "\n".join(problems)
    assert aos_mock.logins <= 1 and len(sts_mock.calls) <= 1


def test_a_denied_user_causes_no_login(aos_mock, make_mount):
    """The kernel refuses alice before anything is read for her: her cat of
    a token she may not read must not make the daemon log in."""
    d = make_mount(aos_section(aos_mock, "lab"), aos_section(aos_mock, "other"),
                   access_section([("aos/lab/token", f"uid:{ALICE} mode:0400")]),
                   options=("allow_other",), public=True)
    for rel in ("aos/other/token", "aos/other/session.json", "aos/lab/session.json"):
        assert_denied(cat_as(ALICE, d.path(rel)), f"alice {rel}")
    assert aos_mock.logins == 0, "a refused reader made the daemon log in"


# --- chown / chmod ----------------------------------------------------------

def test_chown_chmod_by_root_show_and_survive_restart(aos_mock, make_mount):
    d = make_mount(aos_section(aos_mock), options=("allow_other",), public=True)
    token, status, session = (d.path(f"aos/lab/{f}") for f in ("token", "status", "session.json"))
    target_dir = d.path("aos/lab")
    assert_denied(cat_as(ALICE, token), "alice before chown")

    os.chown(token, ALICE, ALICE)
    os.chmod(status, 0o444)
    os.chmod(target_dir, 0o711)  # others may pass through, not list
    os.chown(target_dir, -1, STAFF)

    def check(when):
        assert owner_mode(token) == (ALICE, ALICE, 0o400), when
        assert owner_mode(status) == (0, 0, 0o444), when
        assert owner_mode(target_dir) == (0, STAFF, 0o711), when
        assert owner_mode(session) == (0, 0, 0o600), when
        got = assert_allowed(cat_as(ALICE, token), f"alice token {when}")
        assert aos_mock.is_live(got.strip())
        assert_allowed(cat_as(BOB, status), f"bob status {when}")
        assert_denied(cat_as(BOB, token), f"bob token {when}")
        assert_denied(cat_as(ALICE, session), f"alice session.json {when}")
        r = as_user(ALICE, "ls", target_dir)
        assert r.returncode != 0 and "Permission denied" in r.stderr, f"{when}: {r.stderr}"

    check("after chown/chmod")
    saved = d.state_dir / "aos" / "lab" / "access"
    assert saved.is_file(), f"nothing saved in {saved.parent}: {os.listdir(saved.parent)}"
    assert stat.S_IMODE(saved.stat().st_mode) & 0o077 == 0

    d.restart()
    check("after restart")
    d.kill9()
    d.start()
    check("after kill -9 and restart")

    # The directory closed to others: alice's own token is out of reach again.
    os.chmod(target_dir, 0o700)
    assert_denied(cat_as(ALICE, token), "alice token behind a 0700 dir")
    d.restart()
    assert owner_mode(target_dir) == (0, STAFF, 0o700)
    assert_denied(cat_as(ALICE, token), "alice token behind a 0700 dir, after restart")


def test_non_owner_cannot_chmod_or_chown(aos_mock, make_mount):
    d = make_mount(aos_section(aos_mock),
                   access_section([("aos/lab/token", f"uid:{ALICE} mode:0400")]),
                   options=("allow_other",), public=True)
    session, token, status = (d.path(f"aos/lab/{f}") for f in ("session.json", "token", "status"))
    for path, mode in ((session, "0644"), (status, "0444"), (d.path("aos/lab"), "0777")):
        before = owner_mode(path)
        r = as_user(ALICE, "chmod", mode, path)
        assert r.returncode != 0 and "Operation not permitted" in r.stderr, \
            f"alice chmod {mode} {path}: rc {r.returncode} {r.stderr.strip()}"
        assert owner_mode(path) == before
    # Giving a file away is root's alone, even for its owner.
    r = as_user(ALICE, "chown", str(BOB), token)
    assert r.returncode != 0 and "Operation not permitted" in r.stderr, r.stderr
    assert owner_mode(token) == (ALICE, 0, 0o400)
    assert_denied(cat_as(BOB, token), "bob token")
    assert not (d.state_dir / "aos" / "lab" / "access").exists()


# --- write-only files -------------------------------------------------------

@pytest.mark.parametrize("rel", ["aos/lab/credentials", "idrac/bmc/credentials",
                                 "sts/p/credentials", "sts/p/mfa"])
def test_write_only_files_stay_unreadable(aos_mock, redfish_mock, sts_mock, make_mount, rel):
    d = make_mount(aos_section(aos_mock, "lab"), idrac_section(redfish_mock, "bmc"),
                   sts_section(sts_mock, "p"), options=("allow_other",), public=True)
    path = d.path(rel)
    err = d.read_err(rel)
    assert err == errno.EACCES, f"root reading {rel}: {strerror(err)}"

    for mode in (0o600, 0o400, 0o644, 0o222 | 0o004):
        with pytest.raises(OSError) as e:
            os.chmod(path, mode)
        assert e.value.errno == errno.EPERM, f"chmod {oct(mode)} {rel}: {strerror(e.value.errno)}"
    assert owner_mode(path)[2] == 0o200
    assert d.read_err(rel) == errno.EACCES
    # Nothing of the refused chmods was saved.
    d.restart()
    assert owner_mode(path)[2] == 0o200
    assert d.read_err(rel) == errno.EACCES

    # Handing it to another user (still write-only) is fine; reading is not.
    os.chown(path, ALICE, ALICE)
    assert owner_mode(path) == (ALICE, ALICE, 0o200)
    assert_denied(cat_as(ALICE, path), f"alice reading her own {rel}")
    assert d.read_err(rel) == errno.EACCES
