"""The state dir and the access rules (issue 12): trust only what the daemon's
user owns, and one bad file never stops the daemon.

- The state dir, every dir and file in it, and every dir on the way to it are
  checked at start and at every load, like OpenSSH's StrictModes: the state
  dir and its contents must be the daemon's (root here) with no group or
  other bits; the dirs leading to it root's or the daemon's and writable by
  nobody else (sticky dirs such as /tmp excepted); no symlinks, "link/"
  included. A bad state dir: no mount, and a log line naming the path and
  the problem. A bad file: ignored, and its target in an error state (reads
  fail with EBADMSG, status names the path) until credentials are written.
- Only root changes owners and modes; [access] grants reading.
- .metrics follows [access] (default 0400).

(The scan of the daemon's memory for stray copies of secrets is in
test_secrets.py, for every provider.)

Other users are played with setpriv, as in test_access.py.
"""

import errno
import json
import os
import re
import shutil
import stat

import pytest

from tests.integration.harness import DaemonDied, access_section, aos_section, assert_errno, strerror
from tests.integration.test_access import as_user, assert_allowed, cat_as

SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
ALICE = 1001
NOBODY = 65534
TOKEN = "aos/lab/token"


@pytest.fixture(autouse=True)
def _need_root():
    if not os.access(SETPRIV, os.X_OK):
        pytest.skip("setpriv (util-linux) not installed")
    if os.geteuid() != 0:
        pytest.skip("needs root: plants files of other uids and acts as them")


def creds(mock, user="admin"):
    return f"{user}:{mock.password(user)}"


def status(d, target="lab"):
    return json.loads(d.read(f"aos/{target}/status"))


def assert_denied(result, what):
    """Like test_access's, without showing what was read: it may be a token."""
    assert result.returncode != 0, f"{what}: allowed, read {len(result.stdout)} bytes"
    assert "Permission denied" in result.stderr, f"{what}: {result.stderr.strip()}"


def assert_refused_to_mount(d, *words):
    """The daemon exits without mounting, and its log names each of words."""
    with pytest.raises(DaemonDied) as e:
        d.start()
    log = d.log()
    for w in words:
        assert w in log, f"log does not say {w!r}:\n{log}"
    return e


def assert_bad_file(d, target, path, problem):
    """target is in the error state for the untrusted state file path."""
    assert_errno(d.read_err(f"aos/{target}/token"), errno.EBADMSG, f"aos/{target}/token")
    st = status(d, target)
    assert st["state"] == "error" and st["errno"] == "EBADMSG", st
    assert str(path) in st["last_error"] and problem in st["last_error"], st["last_error"]
    assert str(path) in d.log() and problem in d.log()


def private_dir(path):
    """path and its missing parents, 0700 as the daemon makes them."""
    if not path.exists():
        private_dir(path.parent)
        path.mkdir(mode=0o700)
        path.chmod(0o700)
    return path


def set_state_dir(d, state_dir):
    text = re.sub(r"(?m)^state_dir = .*$", f"state_dir = {state_dir}", d.config_path.read_text())
    d.config_path.write_text(text)


# --- the state dir ----------------------------------------------------------

def test_state_dir_owned_by_another_user_is_refused(aos_mock, make_daemon):
    d = make_daemon(aos_section(aos_mock), start=False)
    os.chown(d.state_dir, ALICE, ALICE)  # mode stays 0700
    # What that user could do with it: plant access rules and a target.
    planted = private_dir(d.state_dir / "aos" / "lab")
    (planted / "access").write_text(json.dumps({"token": {"uid": ALICE, "mode": 0o400}}))
    for p in (d.state_dir / "aos", planted, planted / "access"):
        os.chown(p, ALICE, ALICE)
    assert_refused_to_mount(d, str(d.state_dir), "owned by uid 1001")


def test_state_dir_under_a_dir_others_may_write_is_refused(aos_mock, make_daemon):
    d = make_daemon(aos_section(aos_mock), start=False)
    d.workdir.chmod(0o777)  # anyone could swap the state dir for their own
    try:
        assert_refused_to_mount(d, f"{d.workdir}: has mode 0777")
        d.workdir.chmod(0o1777)  # sticky, like /tmp: nobody else can move it
        d.start()
        assert d.read(TOKEN)
    finally:
        d.stop()
        d.workdir.chmod(0o755)


@pytest.mark.parametrize("slash", ["/", ""])
def test_state_dir_through_a_symlink_is_refused(aos_mock, make_daemon, slash):
    d = make_daemon(aos_section(aos_mock), start=False)
    link = d.workdir / "link"
    link.symlink_to(d.state_dir)
    set_state_dir(d, f"{link}{slash}")
    assert_refused_to_mount(d, f"{link}: is a symlink")


# --- files in it: per-target faults -----------------------------------------

def test_planted_access_file_is_ignored(aos_mock, make_mount):
    d = make_mount(aos_section(aos_mock, "lab"), aos_section(aos_mock, "other"),
                   options=("allow_other",), public=True)
    d.stop()
    access = d.state_dir / "aos" / "lab" / "access"
    private_dir(access.parent)
    access.write_text(json.dumps({"token": {"uid": ALICE, "mode": 0o400}}))
    access.chmod(0o600)
    os.chown(access, ALICE, ALICE)
    # And a whole target of that user's making.
    evil = d.state_dir / "aos" / "evil.example"
    private_dir(evil)
    (evil / "target").write_text('{"host":"evil.example","port":443}')
    (evil / "target").chmod(0o600)
    for p in (evil, evil / "target"):
        os.chown(p, ALICE, ALICE)
    d.start()

    assert_denied(cat_as(ALICE, d.path(TOKEN)), "alice token with a planted access file")
    assert os.stat(d.path(TOKEN)).st_uid == 0
    assert_bad_file(d, "lab", access, "owned by uid 1001")
    assert "evil.example" not in d.listdir("aos")
    assert str(evil) in d.log()
    assert aos_mock.is_live(d.read("aos/other/token").strip())  # the others work


@pytest.mark.parametrize("content", [b"\x00\x17garbage\xff", b'{"username":"admin","pass',
                                     b'{"username":"admin","password":""}', b""],
                         ids=["garbage", "truncated", "empty-password", "empty"])
def test_corrupt_credentials_file_beside_a_good_target(aos_mock, make_daemon, content):
    d = make_daemon(aos_section(aos_mock, "lab"), aos_section(aos_mock, "bad", user=None, password=None))
    d.write("aos/bad/credentials", creds(aos_mock))
    d.stop()
    saved = d.state_dir / "aos" / "bad" / "credentials"
    saved.write_bytes(content)

    d.start()  # the daemon starts
    assert aos_mock.is_live(d.read(TOKEN).strip())
    assert_bad_file(d, "bad", saved, "corrupt")
    assert aos_mock.logins == 1
    # A new credentials write repairs it, now and after a restart.
    d.write("aos/bad/credentials", creds(aos_mock))
    assert status(d, "bad")["state"] != "error"
    assert aos_mock.is_live(d.read("aos/bad/token").strip())
    d.restart()
    assert aos_mock.is_live(d.read("aos/bad/token").strip())


def test_credentials_file_readable_by_others_is_ignored(aos_mock, make_daemon):
    d = make_daemon(aos_section(aos_mock, "lab"), aos_section(aos_mock, "other"))
    d.write(TOKEN.replace("token", "credentials"), creds(aos_mock))
    d.stop()
    saved = d.state_dir / "aos" / "lab" / "credentials"
    saved.chmod(0o644)
    d.start()
    assert_bad_file(d, "lab", saved, "has mode 0644")
    assert aos_mock.is_live(d.read("aos/other/token").strip())
    assert aos_mock.logins == 1  # lab did not log in with what it may not trust
    d.unlink(TOKEN)  # "try again" does not fall back to the configured password
    assert_errno(d.read_err(TOKEN), (errno.EBADMSG, errno.ENOKEY), TOKEN)
    assert aos_mock.logins == 1


def test_symlinked_credentials_file_is_not_silently_ignored(aos_mock, make_daemon):
    d = make_daemon(aos_section(aos_mock, "lab"), aos_section(aos_mock, "other"))
    d.stop()
    elsewhere = d.workdir / "creds"
    elsewhere.write_text(creds(aos_mock))
    elsewhere.chmod(0o600)
    link = d.state_dir / "aos" / "lab" / "credentials"
    private_dir(link.parent)
    link.symlink_to(elsewhere)
    d.start()
    assert_bad_file(d, "lab", link, "is a symlink")
    assert aos_mock.is_live(d.read("aos/other/token").strip())


# --- writes, chmod, rmdir ---------------------------------------------------

@pytest.mark.parametrize("data", [b"admin:pass\xff\xfe", b"adm\xc3:password", b"admin:pa\xed\xa0\x80ss"],
                         ids=["password", "user", "surrogate"])
def test_invalid_utf8_credentials_write_is_einval(aos_mock, make_daemon, data):
    d = make_daemon(aos_section(aos_mock, "lab", user=None, password=None))
    err = d.write_err("aos/lab/credentials", data)
    assert err == errno.EINVAL, f"write of invalid UTF-8: {strerror(err)}"
    assert not (d.state_dir / "aos" / "lab" / "credentials").exists()


def test_owner_cannot_widen_its_own_mode(aos_mock, make_mount):
    d = make_mount(aos_section(aos_mock), access_section([(TOKEN, f"uid:{ALICE} mode:0400")]),
                   options=("allow_other",), public=True)
    token = d.path(TOKEN)
    assert_allowed(cat_as(ALICE, token), "alice her token")
    for mode in ("0444", "6777", "0600"):
        r = as_user(ALICE, "chmod", mode, token)
        assert r.returncode != 0 and "Operation not permitted" in r.stderr, \
            f"alice chmod {mode} of her token: rc {r.returncode} {r.stderr.strip()}"
    r = as_user(ALICE, "chgrp", str(ALICE), token)
    assert r.returncode != 0 and "Operation not permitted" in r.stderr, f"alice chgrp: {r.stderr.strip()}"
    st = os.stat(token)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (ALICE, 0, 0o400)
    assert_denied(cat_as(NOBODY, token), "nobody token")
    assert not (d.state_dir / "aos" / "lab" / "access").exists()
    d.restart()
    assert_denied(cat_as(NOBODY, token), "nobody token after restart")
    os.chmod(token, 0o440)  # root still may
    assert stat.S_IMODE(os.stat(token).st_mode) == 0o440


def test_rmdir_of_a_configured_target_is_refused(aos_mock, make_daemon):
    d = make_daemon(aos_section(aos_mock))
    d.write("aos/lab/credentials", creds(aos_mock))
    token = d.read(TOKEN).strip()
    with pytest.raises(OSError) as e:
        os.rmdir(d.path("aos/lab"))
    assert e.value.errno == errno.EBUSY, strerror(e.value.errno)
    assert "remove it from the config" in d.log()
    assert "lab" in d.listdir("aos")
    assert (d.state_dir / "aos" / "lab" / "credentials").exists()
    assert aos_mock.is_live(token) and aos_mock.logouts == 0
    assert d.read(TOKEN).strip() == token


# --- .metrics ---------------------------------------------------------------

def test_metrics_follows_access(aos_mock, make_mount):
    d = make_mount(aos_section(aos_mock), options=("allow_other",), public=True)
    st = os.stat(d.path(".metrics"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o400)
    assert_denied(cat_as(NOBODY, d.path(".metrics")), "nobody .metrics by default")
    assert "sessionfs_logins_total" in d.read(".metrics")
    d.stop()

    d = make_mount(aos_section(aos_mock), access_section([(".metrics", "mode:0444")]),
                   options=("allow_other",), public=True)
    assert stat.S_IMODE(os.stat(d.path(".metrics")).st_mode) == 0o444
    text = assert_allowed(cat_as(NOBODY, d.path(".metrics")), "nobody .metrics with mode:0444")
    assert 'target="lab"' in text
