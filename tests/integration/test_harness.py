"""The harness itself: the secret check must be able to fail, and Daemon must
start, stop and clean up mounts. A stand-in script that mounts a tmpfs plays
the daemon, so this runs before sessionfs is built."""

import errno
import os
from pathlib import Path

import pytest

from tests.integration.harness import (Daemon, DaemonDied, SecretGuard, aos_section,
                                       is_mounted)
from tests.mocks.aos import AosMock

FAKE = Path(__file__).with_name("fake_sessionfs.sh")


# --- the secret check -------------------------------------------------------

def test_secret_guard_flags_a_leak_without_repeating_it(tmp_path):
    log = tmp_path / "log"
    log.write_text("starting\nlogin as admin with pw-s3cr3t-value\nok\n")
    guard = SecretGuard()
    guard.add("pw-s3cr3t-value")
    guard.watch(log)
    with pytest.raises(AssertionError) as e:
        guard.check()
    assert f"{log}:2:" in str(e.value)
    assert "pw-s3cr3t-value" not in str(e.value)


def test_secret_guard_flags_a_token_signature_from_a_source(tmp_path):
    mock = AosMock(None, {"admin": "source-password"})
    token = mock.issue_token()
    log = tmp_path / "log"
    log.write_text(f"token ...{token.rsplit('.', 1)[1]}\n")
    guard = SecretGuard()
    guard.add_source(mock.secrets)
    guard.watch(log)
    with pytest.raises(AssertionError):
        guard.check()


def test_secret_guard_passes_a_clean_log(tmp_path):
    log = tmp_path / "log"
    log.write_text("login as admin: password ***\n")
    guard = SecretGuard()
    guard.add("pw-not-in-the-log")
    guard.watch(log)
    guard.watch(tmp_path / "never-written")
    guard.check()


def test_secret_guard_refuses_short_secrets():
    with pytest.raises(ValueError):
        SecretGuard().add("admin")


# --- config -----------------------------------------------------------------

def test_aos_section(ca):
    mock = AosMock(ca, {"admin": "section-password"})
    mock.port = 4443
    text = aos_section(mock, "lab", password=None, timeout=3)
    assert text.splitlines() == [
        '[aos "lab"]', "server = 127.0.0.1", "port = 4443", "scheme = https",
        "user = admin", f"ca_path = {ca.ca}", "validate_certs = true", "timeout = 3"]


# --- running a daemon -------------------------------------------------------

@pytest.fixture
def stand_in(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the stand-in daemon mounts a tmpfs: needs root")
    daemons = []

    def make(**env):
        d = Daemon(tmp_path / f"d{len(daemons)}", "[sessionfs]\n", env=env, binary=FAKE)
        daemons.append(d)
        return d

    yield make
    for d in daemons:
        d.kill9()


def test_daemon_lifecycle(stand_in):
    d = stand_in()
    d.start()
    assert is_mounted(d.mnt) and d.running
    with open(d.path("file"), "w") as f:
        f.write("old")
    d.write("file", "hello")
    assert d.read("file") == "hello"
    assert d.read_err("file") == 0
    assert d.read_err("missing") == errno.ENOENT
    assert d.write_err("missing/file", "x") == errno.ENOENT
    assert d.listdir() == ["file"]
    assert d.stop() == 0 and d.clean_stop
    assert not is_mounted(d.mnt)
    d.restart()
    assert is_mounted(d.mnt)
    assert f"-o config={d.config_path} {d.mnt}" in d.log()
    assert d.log().count("=== ") == 2  # both runs in one log


def test_kill9_removes_the_dead_mount(stand_in):
    d = stand_in().start()
    d.kill9()
    assert not d.running and not is_mounted(d.mnt)


def test_daemon_that_dies_reports_its_log(stand_in):
    d = stand_in(FAKE_EXIT="3")
    with pytest.raises(DaemonDied, match="(?s)exited with 3.*failing on purpose"):
        d.start()
    assert not is_mounted(d.mnt)


def test_daemon_env_is_hermetic(stand_in, monkeypatch):
    monkeypatch.setenv("AOS_SERVER", "dev-box")
    monkeypatch.setenv("https_proxy", "http://proxy:3128")
    monkeypatch.setenv("SSL_CERT_FILE", "/etc/other.pem")
    d = stand_in(AOS_USER="test")
    assert "AOS_SERVER" not in d.env and "https_proxy" not in d.env
    assert "SSL_CERT_FILE" not in d.env
    assert d.env["AOS_USER"] == "test" and d.env["HOME"] == str(d.workdir)


def test_secret_guard_flags_a_thread_sanitizer_report(tmp_path):
    log = tmp_path / "log"
    log.write_text("starting\nWARNING: ThreadSanitizer: data race (pid=42)\nok\n")
    guard = SecretGuard()
    guard.watch(log)
    with pytest.raises(AssertionError, match="sanitizer report"):
        guard.check()


def test_sigterm_right_after_mount_stops_cleanly(stand_in):
    # The stand-in must handle SIGTERM from the moment its mount shows, as
    # the real daemon does; the harness stops it that early.
    d = stand_in()
    for i in range(10):
        d.start()
        assert d.stop() == 0 and d.clean_stop, f"round {i}"
