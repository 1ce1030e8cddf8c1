"""A slow disk delays no reader (DESIGN.md §5, "Nothing that can block runs
where a reader waits"; issue 20 item 3): sessions are saved outside the
target's lock, the newest one last, and a kill -9 right after a renewal
resumes the newest saved session.

The disk is made slow with slow_fsync.c, an LD_PRELOAD shim whose fsync()
and fdatasync() sleep SESSIONFS_TEST_FSYNC_DELAY seconds."""

import json
import shutil
import subprocess
import time

import pytest

from tests.integration.harness import aos_section
from tests.mocks.common import wait_until

FSYNC_DELAY = 0.4
TTL = 6  # AOS floor 2 s, renewed (6 - 2) / 2 = 2 s before it: every 2 s


@pytest.fixture(scope="module")
def slow_fsync(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler for the fsync shim")
    out = tmp_path_factory.mktemp("shim") / "slow_fsync.so"
    src = __file__.rsplit("/", 1)[0] + "/slow_fsync.c"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(out), src, "-ldl"], check=True, timeout=60)
    return str(out)


@pytest.fixture
def slow_daemon(aos_mock, make_daemon, slow_fsync):
    aos_mock.ttl = TTL
    return make_daemon(aos_section(aos_mock, "lab"), refresh_margin=300,
                       env={"LD_PRELOAD": slow_fsync, "SESSIONFS_TEST_FSYNC_DELAY": str(FSYNC_DELAY)})


def saved_token(d):
    """The token in the state dir's saved session, or None."""
    for p in d.state_dir.rglob("session"):
        try:
            return json.loads(p.read_text()).get("token")
        except (OSError, ValueError):
            return None
    return None


def test_reads_never_wait_for_a_slow_disk(aos_mock, slow_daemon):
    d = slow_daemon
    d.read("aos/lab/token")  # the first login (a reader waits for it: the network)
    logins = aos_mock.logins
    worst, started = 0.0, time.monotonic()
    while time.monotonic() - started < 9:
        t0 = time.monotonic()
        token = d.read("aos/lab/token")
        worst = max(worst, time.monotonic() - t0)
        time.sleep(0.02)
    renewals = aos_mock.logins - logins
    print(f"worst read {worst:.3f} s during {renewals} renewals, fsync {FSYNC_DELAY} s")
    assert renewals >= 3, f"only {renewals} renewals in 9 s"
    assert worst < 0.1, f"a read took {worst:.2f} s during {renewals} renewals (fsync {FSYNC_DELAY} s)"
    # The newest session is the one saved, whatever order the saves ended in.
    assert wait_until(lambda: saved_token(d) == d.read("aos/lab/token"), 3), "the saved session is not the newest"
    assert token in {r.token for r in aos_mock.tokens}


def test_kill9_right_after_a_renewal_resumes_the_newest_session(aos_mock, slow_daemon):
    d = slow_daemon
    first = d.read("aos/lab/token")
    logins = aos_mock.logins
    deadline = time.monotonic() + 6
    while aos_mock.logins == logins and time.monotonic() < deadline:
        d.read("aos/lab/token")  # keeps it hot: renewed
        time.sleep(0.05)
    assert aos_mock.logins == logins + 1, "no renewal"
    newest = aos_mock.tokens[-1].token
    assert newest != first
    # Right after the renewal, once the save is done (two slow fsyncs).
    assert wait_until(lambda: saved_token(d) == newest, 2 + 4 * FSYNC_DELAY), "the renewal was never saved"
    d.kill9()
    logins = aos_mock.logins
    d.start()
    assert d.read("aos/lab/token") == newest
    assert aos_mock.logins == logins, "a new login instead of the saved session"


def test_rm_token_right_after_a_renewal_is_not_undone_by_its_save(aos_mock, slow_daemon):
    d = slow_daemon
    d.read("aos/lab/token")
    logins = aos_mock.logins
    deadline = time.monotonic() + 6
    while aos_mock.logins == logins and time.monotonic() < deadline:
        d.read("aos/lab/token")
        time.sleep(0.05)
    assert aos_mock.logins == logins + 1, "no renewal"
    d.unlink("aos/lab/token")  # while the renewal's save (two slow fsyncs) may still be under way
    removed = aos_mock.tokens[-1].token
    time.sleep(6 * FSYNC_DELAY)  # every write asked for is done by now
    assert saved_token(d) is None, "a late save brought back the removed session"
    d.kill9()
    d.start()
    assert d.read("aos/lab/token") != removed
