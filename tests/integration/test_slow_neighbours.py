"""Slow neighbours stall nothing (issue 20).

  - the FUSE loop is libfuse's current one (the FUSE_3.12 symbol and its
    config), so its thread settings take effect: reads of a live token
    reuse a few idle workers instead of making a thread per request, and
    the daemon logs the settings at start;
  - no FUSE worker waits on the network: an open that needs a login is
    answered when the login ends, from the login's thread, or with
    ETIMEDOUT at its deadline, while the login goes on; so 200 targets of a
    server whose logins take 6 s, read at once, hold up no `cat` of a live
    token, `ls`, `stat` or `status`, and the daemon's threads stay bounded
    (FUSE workers + the login pool + a fixed few), not one per target.

Every wait is bounded; a hung call fails the test and the harness frees the
mount at teardown.
"""

import errno
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.integration.harness import aos_section, new_password, strerror, within
from tests.mocks.aos import LOGIN, AosMock
from tests.mocks.common import wait_until

LIVE = "aos/live/token"
READS = 1000

def other_mock(ca, log_secrets):
    mock = AosMock(ca, {"admin": new_password()})
    log_secrets.add_source(mock.secrets)
    return mock.start()


def thread_count(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def _traced_by(pid, tracer):
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        for tid in tasks:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                if f"TracerPid:\t{tracer}\n" not in f.read():
                    return False
    except OSError:
        return False
    return True


def threads_created(pid, fn, tmp_path):
    """fn() run while strace counts the daemon's clone/clone3 calls (every
    thread it makes, however short-lived); returns that count."""
    out = tmp_path / "strace.out"
    tracer = subprocess.Popen(["strace", "-f", "-qq", "-c", "-o", str(out),
                               "-e", "trace=clone,clone3", "-p", str(pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: _traced_by(pid, tracer.pid), 10), "strace did not attach"
        fn()
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(30)
    calls = 0
    for line in out.read_text().splitlines():
        fields = line.split()
        if fields and fields[-1] in ("clone", "clone3"):
            calls += int(fields[3])  # % time, seconds, usecs/call, calls
    return calls


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_live_token_reads_reuse_a_few_fuse_workers(aos_mock, make_daemon, tmp_path):
    d = make_daemon(aos_section(aos_mock, "live"))
    d.read(LIVE)

    def reads():
        for _ in range(READS):
            d.read(LIVE)

    created = threads_created(d.proc.pid, reads, tmp_path)
    print(f"threads created over {READS} reads: {created}")
    # Sequential reads: one worker serves, one more waits for the next
    # request; both stay. A thread per request would be thousands.
    assert created <= 8, f"{created} threads created over {READS} reads of a live token"
    assert re.search(r"FUSE loop: at most 64 worker threads, all of them kept when idle, "
                     r"clone_fd off", d.log()), d.log()
