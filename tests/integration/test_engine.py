"""The session engine under real timing, slow servers and kill -9 (issue 10).

Each test sets up what production does and the other tests avoid: tokens
that live a few seconds (so whole refresh cycles run inside the test),
servers that answer slowly, BMC idle timeouts, 900 s STS credentials,
privilege errors, programs that write in pieces, many threads at once and
kill -9 at random moments. The expected behaviour is README "How sessions
are kept" and the engine spec of issue 10:

  - a session file that is read (open, read, getattr, page cache or not) is
    hot and renewed in the background; reads of a hot session never wait;
  - lifetime L, provider minimum M (STS 900, AOS 2, Redfish 0): served while
    more than min(M, L/2) s are left, renewed min(refresh_margin, ...) before,
    never sooner than 1 s after the last renewal; a session that arrives
    expired is EBADMSG, one login per read, no loop;
  - a read and all of its requests end within `timeout`;
  - config values out of range refuse the mount, naming file:line;
  - no daemon thread ever waits on a page lock (no D state), a hanging server
    of one target never holds up another, status or .metrics;
  - rmdir during a login leaves no session on the server; exit logouts run
    in parallel within one `timeout`;
  - errors are reported where they happen (mkdir, saves, Redfish 403).

Every wait is bounded: a call that hangs fails the test, and the harness
frees the hung mount (abort via /sys/fs/fuse/connections) at teardown.
"""

import errno
import json
import os
import random
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.integration.harness import (abort_connection, aos_section, assert_errno,
                                       force_unmount, idrac_section, is_mounted, new_password, strerror,
                                       sts_section, threads_in_d_state, within)
from tests.mocks.aos import LOGIN, AosMock
from tests.mocks.common import wait_until
from tests.mocks.redfish import INSUFFICIENT_PRIVILEGE_MESSAGE, RedfishMock

TOKEN = "aos/lab/token"
SESSION_JSON = "aos/lab/session.json"
CREDENTIALS = "aos/lab/credentials"
STATUS = "aos/lab/status"


# --- helpers ------------------------------------------------------------------

def read_token(d, rel=TOKEN):
    text = d.read(rel)
    assert "\0" not in text, f"{rel}: NUL bytes in {len(text)} bytes read"
    token = text.strip()
    assert token, f"{rel} is empty"
    return token


def status(d, rel=STATUS):
    return json.loads(d.read(rel))


def counter(st, name):
    """A status counter; None if the daemon does not have it (old code)."""
    return st.get("counters", {}).get(name)


def aos_logins(mock):
    return mock.count("POST", LOGIN)


def session_posts(mock):
    """Login POSTs the Redfish mock received (counted on arrival, before
    any slow answer)."""
    return mock.count("POST", mock.sessions_uri)


def second_mock(cls, ca, log_secrets, *args, **kwargs):
    mock = cls(ca, *args, **kwargs)
    log_secrets.add_source(mock.secrets)
    return mock


class Load:
    """Threads that each call one function in a loop until stop(); every
    call is timed, errors other than the allowed ones are kept."""

    def __init__(self):
        self.threads = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.errors = []
        self.calls = 0
        self.slowest = (0.0, None)
        self.last_progress = {}

    def add(self, name, fn, allowed=(), pause=0.0):
        def loop():
            while not self.stopping.is_set():
                start = time.monotonic()
                try:
                    fn()
                    err = None
                except OSError as e:
                    err = e.errno
                elapsed = time.monotonic() - start
                with self.lock:
                    self.calls += 1
                    self.last_progress[name] = time.monotonic()
                    if elapsed > self.slowest[0]:
                        self.slowest = (elapsed, name)
                    if err is not None and err not in allowed:
                        self.errors.append(f"{name}: {strerror(err)}")
                if pause:
                    self.stopping.wait(pause)

        t = threading.Thread(target=loop, name=name, daemon=True)
        self.threads.append(t)
        return self

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self, wait):
        """Stop and join; the names of the threads still inside a call."""
        self.stopping.set()
        deadline = time.monotonic() + wait
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return [t.name for t in self.threads if t.is_alive()]


# Where a daemon thread sleeps when it waits on a page lock or on its own
# mount (the deadlock of issue 10: __folio_lock from fuse_reverse_inval_inode).
PAGE_LOCK_WAIT = re.compile(r"folio_lock|lock_page|fuse|inval")


def watch_d_state(pid, stop, found, interval=0.5):
    """Sample the daemon's threads until stop is set. A thread in D state on
    a page lock or FUSE wait in 4 samples in a row (2 s) goes into found; in
    any other D state (disk I/O: fsync of the state dir on a busy disk) only
    after 20 samples (10 s)."""
    seen = {}
    while not stop.wait(interval):
        now = threads_in_d_state(pid)
        seen = {tid: seen.get(tid, 0) + 1 for tid in now}
        for tid, n in seen.items():
            if n >= (4 if PAGE_LOCK_WAIT.search(now[tid]) else 20):
                found[tid] = now[tid]


def run_deadlock_check(d, load, seconds):
    """Run load for `seconds` while watching the daemon for stuck threads.
    Fails if any call did not return, or a daemon thread sat in D state."""
    stop, stuck = threading.Event(), {}
    watcher = threading.Thread(target=watch_d_state, args=(d.proc.pid, stop, stuck),
                               daemon=True)
    watcher.start()
    load.start()
    time.sleep(seconds)
    hung = load.stop(wait=10)
    stop.set()
    watcher.join(5)
    d_now = threads_in_d_state(d.proc.pid)
    if hung:
        abort_connection(d.mnt)  # frees the callers, so the test can end
    assert not hung and not stuck, (
        f"deadlock: calls that never returned: {hung}; daemon threads stuck in D "
        f"state: {stuck or d_now}; slowest call {load.slowest[0]:.1f} s ({load.slowest[1]})")
    # The mount still answers, at once.
    _, err, elapsed = within(5, d.read, STATUS)
    assert err is None and elapsed < 2, (strerror(err), elapsed)


# --- 1. hot sessions are kept hot -------------------------------------------------

@pytest.mark.slow
def test_aos_hot_token_is_renewed_in_the_background(aos_mock, make_mount):
    """Token lifetime 10 s, refresh_margin 4, each login takes 1 s at the
    server, a reader every 0.3 s: renewals happen in the background (at
    about 4 s of each lifetime) and no reader waits a login once steady."""
    aos_mock.ttl = 10
    aos_mock.set_slow(1.0, "POST", LOGIN)
    d = make_mount(aos_section(aos_mock), settings={"check_interval": 5},
                   refresh_margin=4, timeout=5)
    _, err, first = within(10, read_token, d)
    assert err is None, strerror(err)
    start = time.monotonic()
    waited, dead = [], []
    while time.monotonic() - start < 24:
        token, err, elapsed = within(10, read_token, d)
        at = time.monotonic() - start
        assert err is None, f"{at:.1f} s: {strerror(err)}"
        if elapsed >= 0.9:  # a login takes 1 s: this read waited for one
            waited.append(f"{at:.1f} s: {elapsed:.1f} s")
        if not aos_mock.is_live(token):
            dead.append(f"{at:.1f} s")
        time.sleep(0.3)
    assert waited == [], f"readers of a hot token waited for a login: {waited}"
    assert dead == [], f"served tokens past their exp at {dead}"
    # 24 s of 10 s tokens renewed 4 s in: a renewal every ~5 s (login 1 s).
    assert aos_logins(aos_mock) >= 4, f"{aos_logins(aos_mock)} logins in 25 s of 10 s tokens"
    st = status(d)
    assert counter(st, "reader_waits") is not None, f"no reader_waits counter: {st['counters']}"
    assert counter(st, "reader_waits") <= 1, st["counters"]
    assert counter(st, "refreshes") >= 3, st["counters"]


@pytest.mark.slow
def test_redfish_keepalive_while_the_token_is_read_through_the_page_cache(
        redfish_mock, make_daemon):
    """A BMC with a 6 s idle timeout, the token read every second for 20 s
    (three idle periods and more): one session, kept alive by the daemon
    (the test never uses the token itself, which would keep it alive), with
    time to spare whenever it is read."""
    mock = redfish_mock
    mock.session_timeout = 6
    d = make_daemon(idrac_section(mock), refresh_margin=30, timeout=5)
    token = read_token(d, "idrac/bmc/token")
    start = time.monotonic()
    short = []
    while time.monotonic() - start < 20:
        got, err, _ = within(10, read_token, d, "idrac/bmc/token")
        at = time.monotonic() - start
        assert err is None, f"{at:.1f} s: {strerror(err)}"
        assert got == token, f"{at:.1f} s: a new session (the old one lapsed?)"
        s = next((s for s in mock.live_sessions() if s["token"] == got), None)
        assert s is not None, f"{at:.1f} s: the token read is dead on the BMC"
        left = mock.session_timeout - (time.time() - s["last_activity"])
        if left < 1.5:
            short.append(f"{at:.1f} s: {left:.1f} s left")
        time.sleep(1)
    assert short == [], f"token served with the BMC session about to lapse: {short}"
    assert mock.logins == 1 and mock.expired == []
    keepalives = [r for r in mock.requests if r.method == "GET"
                  and r.path.startswith(mock.sessions_uri + "/")]
    assert len(keepalives) <= 20, f"{len(keepalives)} keep-alive GETs in 20 s of a 6 s timeout"
    r = mock.call("GET", "/redfish/v1/Systems",
                  headers={"OData-Version": "4.0", "X-Auth-Token": token})
    assert r.status == 200


# --- 2. no login storms --------------------------------------------------------------

def test_session_that_arrives_expired_is_refused_without_a_loop(aos_mock, make_daemon):
    aos_mock.ttl = -5  # exp in the past, as with a server clock far behind
    d = make_daemon(aos_section(aos_mock), timeout=3)
    _, err, elapsed = within(10, read_token, d)
    assert_errno(err, errno.EBADMSG, "read of a token issued already expired")
    assert elapsed <= 4, f"the read took {elapsed:.1f} s (timeout 3)"
    assert aos_logins(aos_mock) == 1, f"one read made {aos_logins(aos_mock)} logins"
    st = status(d)
    assert "already expired" in (st["last_error"] or ""), st
    time.sleep(4)
    assert aos_logins(aos_mock) <= 2, f"{aos_logins(aos_mock)} logins 4 s after one read"
    start = time.monotonic()
    d.stop()
    assert time.monotonic() - start < 5 and d.clean_stop, "SIGTERM did not stop the daemon"


@pytest.mark.concurrency  # renewals running while the daemon stops
def test_two_second_tokens_never_storm_the_server(aos_mock, make_daemon):
    aos_mock.ttl = 2
    d = make_daemon(aos_section(aos_mock), timeout=5)
    start = time.monotonic()
    dead = []
    while time.monotonic() - start < 8:
        token, err, _ = within(10, read_token, d)
        assert err is None, strerror(err)
        if not aos_mock.is_live(token):
            dead.append(f"{time.monotonic() - start:.1f} s")
        time.sleep(0.2)
    # Tokens of 1-2 s (exp is whole seconds), served while more than half
    # is left: a login every 0.5-1 s at most, never a storm.
    n = aos_logins(aos_mock)
    assert n <= 24, f"{n} logins in 8 s of 2 s tokens"
    assert dead == [], f"served dead tokens at {dead}"
    start = time.monotonic()
    d.stop()
    assert time.monotonic() - start < 5 and d.clean_stop


def test_sts_900_second_credentials_one_call(sts_mock, make_daemon):
    """duration_seconds = 900, the shortest AWS allows, can never have more
    than 900 s left: served while more than 450 s are left, renewed at 225 s."""
    d = make_daemon(sts_section(sts_mock, key=sts_mock.new_key(), duration_seconds=900),
                    timeout=5)
    text, err, elapsed = within(10, d.read, "sts/p/creds.json")
    assert err is None, strerror(err)
    assert elapsed < 5
    creds = json.loads(text)
    issued = sts_mock.credentials(creds["AccessKeyId"])
    assert issued is not None and issued.duration_seconds == 900
    assert len(sts_mock.calls) == 1, f"{len(sts_mock.calls)} GetSessionToken for one cat"
    end = time.monotonic() + 5
    while time.monotonic() < end:
        text, err, _ = within(10, d.read, "sts/p/creds.json")
        assert err is None and json.loads(text)["AccessKeyId"] == creds["AccessKeyId"]
        time.sleep(0.5)
    assert len(sts_mock.calls) == 1, f"{len(sts_mock.calls)} GetSessionToken calls in 5 s"
    start = time.monotonic()
    d.stop()
    assert time.monotonic() - start < 5 and d.clean_stop


BAD_VALUES = [
    # (section, key, value, low, high)
    ("sts", "duration_seconds", "abc", 900, 129600),
    ("sts", "duration_seconds", "100", 900, 129600),
    ("sts", "duration_seconds", "200000", 900, 129600),
    ("sessionfs", "timeout", "0", 1, 3600),
    ("sessionfs", "timeout", "abc", 1, 3600),
    ("sessionfs", "refresh_margin", "-1", 0, 86400),
    ("sessionfs", "check_interval", "0", 1, 86400),
]


@pytest.mark.parametrize("section,key,value,low,high", BAD_VALUES,
                         ids=[f"{k}={v}" for _, k, v, _, _ in BAD_VALUES])
def test_bad_config_value_refuses_to_mount(sts_mock, make_mount, section, key, value,
                                           low, high):
    if section == "sts":
        d = make_mount(sts_section(sts_mock, key=sts_mock.new_key(), **{key: value}),
                       start=False)
    else:
        d = make_mount(sts_section(sts_mock, key=sts_mock.new_key()),
                       settings={key: value}, start=False)
    lines = d.config_path.read_text().splitlines()
    line = max(i for i, text in enumerate(lines, 1) if text == f"{key} = {value}")
    proc = subprocess.Popen([str(d.binary), "-f", "-o", f"config={d.config_path}", str(d.mnt)],
                            env=d.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    wait_until(lambda: proc.poll() is not None or is_mounted(d.mnt), 10)
    accepted = proc.poll() is None  # still running: it mounted (or hangs)
    if accepted:
        proc.kill()
    stderr = proc.communicate(timeout=10)[1]
    force_unmount(d.mnt)
    assert not accepted and proc.returncode != 0, f"{key} = {value} was accepted:\n{stderr}"
    where = f"{d.config_path.name}:{line}:"
    said = [text for text in stderr.splitlines() if where in text]
    assert said, f"no message naming {where}:\n{stderr}"
    assert any(key in text and str(low) in text and str(high) in text for text in said), said


# --- 5. a read ends within `timeout` -------------------------------------------------

def test_slow_multi_request_redfish_login_ends_within_timeout(redfish_mock, make_daemon):
    """A Redfish login is 3-4 requests; each answer takes 1.5 s, the
    timeout is 2 s: the whole read ends by the deadline, not 4.5 s later."""
    redfish_mock.delay = 1.5
    d = make_daemon(idrac_section(redfish_mock), timeout=2)
    _, err, elapsed = within(15, read_token, d, "idrac/bmc/token")
    assert elapsed <= 3.0, f"the read took {elapsed:.1f} s with timeout = 2 ({strerror(err)})"
    assert_errno(err, errno.ETIMEDOUT)
    # A login that fits in the timeout works: the deadline is not too early.
    redfish_mock.delay = 0.3
    assert wait_until(lambda: within(10, d.read_err, "idrac/bmc/token")[0] == 0, 15), \
        "a login of 3-4 answers of 0.3 s each failed with timeout = 2"


# --- 4. rmdir during a background login ------------------------------------------------

def test_rmdir_during_a_slow_background_relogin_leaves_no_session(redfish_mock, ca,
                                                                   make_mount):
    """A background re-login whose POST and the GET after it each take 2.5 s
    (timeout 3): rmdir while it runs. Whether the login ends by its deadline
    or completes, the session it made must not stay on the BMC, and the
    removed target's state must not be written again."""
    mock = redfish_mock
    d = make_mount(settings={"check_interval": 1}, timeout=3,
                   env={"SSL_CERT_FILE": str(ca.ca), "CURL_CA_BUNDLE": str(ca.ca)})
    name = f"127.0.0.1:{mock.port}"
    os.mkdir(d.path(f"idrac/{name}"))
    d.write(f"idrac/{name}/credentials", f"root:{mock.password()}\n")
    rel = f"idrac/{name}/token"
    token = read_token(d, rel)
    assert session_posts(mock) == 1
    # The BMC drops the session and logins become slow: the check (every
    # second, while the token is read) finds the session gone and logs in
    # again in the background.
    mock.set_slow(2.5, "POST", re.escape(mock.sessions_uri))
    mock.set_slow(2.5, "GET", "/redfish/v1/SessionService")
    mock.kill_all()
    end = time.monotonic() + 10
    while session_posts(mock) < 2 and time.monotonic() < end:
        within(10, d.read_err, rel)  # keep it hot; may wait for the new login
        time.sleep(0.2)
    assert session_posts(mock) == 2, "no second login within 10 s of the session's loss"
    _, err, elapsed = within(10, os.rmdir, d.path(f"idrac/{name}"))
    assert err is None, f"rmdir: {strerror(err)}"
    # The login's answer comes ~3 s after it started; the daemon must end
    # that session instead of keeping it.
    gone = wait_until(lambda: not mock.live_sessions(), 10)
    assert gone, f"sessions left on the BMC after rmdir: {mock.live_sessions()}"
    time.sleep(1)
    leftovers = [str(p.relative_to(d.state_dir)) for p in d.state_dir.rglob("*")
                 if name in str(p)]
    assert leftovers == [], f"state of the removed target written again: {leftovers}"
    assert name not in d.listdir("idrac")
    d.stop()
    assert mock.live_sessions() == [] and token not in [s["token"] for s in mock.live_sessions()]


# --- 6. dynamic files are per-open snapshots ---------------------------------------------

@pytest.mark.concurrency
def test_metrics_and_status_never_padded_while_targets_come_and_go(aos_mock, make_daemon):
    d = make_daemon(aos_section(aos_mock), aos_section(aos_mock, "lab2"))
    read_token(d)
    bad, counts = [], {"metrics": 0, "status": 0}
    lock = threading.Lock()
    sample = re.compile(r'^[a-z_]+\{[^}]*\} -?[0-9.e+]+$|^# (HELP|TYPE) .*$')

    def read_metrics():
        text = d.read(".metrics")
        problem = ("NUL bytes" if "\0" in text else
                   "no final newline" if text and not text.endswith("\n") else
                   next((f"bad line {ln!r}" for ln in text.splitlines()
                         if not sample.match(ln)), None))
        with lock:
            counts["metrics"] += 1
            if problem:
                bad.append(f".metrics: {problem} ({len(text)} bytes)")

    def read_status():
        text = d.read(STATUS)
        with lock:
            counts["status"] += 1
            try:
                json.loads(text)
            except ValueError:
                bad.append(f"status: not JSON ({len(text)} bytes, NUL: {chr(0) in text})")

    n = [0]

    def churn():
        name = f"10.0.0.{n[0] % 200 + 1}"
        n[0] += 1
        os.mkdir(d.path(f"aos/{name}"))
        os.rmdir(d.path(f"aos/{name}"))

    load = Load()
    for i in range(4):
        load.add(f"metrics{i}", read_metrics)
    load.add("status", read_status)
    load.add("churn", churn, allowed=(errno.EEXIST, errno.ENOENT))
    load.start()
    time.sleep(8)
    hung = load.stop(wait=10)
    if hung:
        abort_connection(d.mnt)
    assert not hung, f"calls that never returned: {hung}"
    assert load.errors == [], load.errors[:5]
    assert bad == [], f"{len(bad)} bad reads of {counts}: {bad[:5]}"
    assert counts["metrics"] > 100, counts


# --- 7. sessions/ slots ---------------------------------------------------------------

def test_stats_of_made_up_session_ids_do_not_use_up_the_table(redfish_mock, make_daemon):
    mock = redfish_mock
    d = make_daemon(idrac_section(mock))
    read_token(d, "idrac/bmc/token")
    sessions = "idrac/bmc/sessions"

    def stat_many():
        for i in range(4000):
            try:
                os.stat(d.path(f"{sessions}/{900000 + i}"))
            except FileNotFoundError:
                pass

    within(120, stat_many)
    sid, _ = mock.create_session("root")
    assert sid in d.listdir(sessions)
    _, err, _ = within(10, d.unlink, f"{sessions}/{sid}")
    assert err is None, f"rm of a real session after 4000 stats: {strerror(err)}"
    assert mock.session(sid) is None and mock.deletes == [sid]


# --- 8. shutdown ---------------------------------------------------------------------

def test_exit_logouts_to_hung_bmcs_run_in_parallel(redfish_mock, ca, log_secrets,
                                                    make_daemon):
    mocks = [redfish_mock] + [second_mock(RedfishMock, ca, log_secrets,
                                          {"root": new_password()}).start()
                              for _ in range(2)]
    try:
        d = make_daemon(*(idrac_section(m, f"bmc{i}") for i, m in enumerate(mocks)),
                        timeout=2)
        for i in range(3):
            read_token(d, f"idrac/bmc{i}/token")
        for m in mocks:
            m.fail = "hang"
        start = time.monotonic()
        d.stop()
        elapsed = time.monotonic() - start
        assert elapsed <= 4.0, f"exit logouts to 3 hung BMCs took {elapsed:.1f} s (timeout 2)"
        assert d.clean_stop
        assert all(m.count("DELETE") == 1 for m in mocks), \
            [m.count("DELETE") for m in mocks]
    finally:
        for m in mocks[1:]:
            m.stop()


# --- 9. failures reported as such ---------------------------------------------------

@pytest.fixture
def immutable():
    """immutable(path): chattr +i path and everything under it, undone at
    teardown (root ignores permission bits, not the immutable flag)."""
    paths = []

    def make(path):
        subprocess.run(["chattr", "-R", "+i", str(path)], check=True)
        paths.append(path)

    yield make
    for p in paths:
        subprocess.run(["chattr", "-R", "-i", str(p)])


def test_mkdir_fails_when_the_target_cannot_be_saved(aos_mock, make_daemon, immutable):
    d = make_daemon(aos_section(aos_mock))
    immutable(d.state_dir)
    _, err, _ = within(10, os.mkdir, d.path("aos/10.9.9.9"))
    assert err is not None, "mkdir succeeded though the state dir cannot be written"
    assert "10.9.9.9" not in d.listdir("aos")


def test_session_save_failure_is_shown_in_status(aos_mock, make_daemon, immutable):
    d = make_daemon(aos_section(aos_mock))
    read_token(d)
    immutable(d.state_dir)
    d.unlink(TOKEN)
    read_token(d)  # the login works; only saving it fails
    st = status(d)
    assert st["last_error"], f"a failed save of the session is not in status: {st}"


# --- 12. Redfish 403 on an operation ---------------------------------------------------

def test_redfish_403_on_rm_of_another_users_session_is_eacces(redfish_mock, make_daemon,
                                                               log_secrets):
    mock = redfish_mock
    mock.add_user("operator", log_secrets.add(new_password()), role="Operator")
    d = make_daemon(idrac_section(mock, user="operator", password=mock.password("operator")))
    token = read_token(d, "idrac/bmc/token")
    sid, _ = mock.create_session("root")
    _, err, _ = within(10, d.unlink, f"idrac/bmc/sessions/{sid}")
    assert_errno(err, errno.EACCES, "rm of root's session as an Operator")
    assert mock.session(sid) is not None
    st = status(d, "idrac/bmc/status")
    assert st["errno"] != "EKEYREJECTED" and st["state"] == "valid", st
    assert read_token(d, "idrac/bmc/token") == token and mock.logins == 1
    log = d.log()
    assert INSUFFICIENT_PRIVILEGE_MESSAGE[:40] in log or "nsufficient" in log or \
        INSUFFICIENT_PRIVILEGE_MESSAGE[:40] in (st["last_error"] or ""), \
        "the BMC's message is neither in the log nor in status"


# --- 13. values written in more than one write() ------------------------------------------

def shell(d, script, **env):
    # bash: its echo reports write()'s errno (dash's says "I/O error" for all).
    return subprocess.run(["/bin/bash", "-c", script], cwd=d.mnt, env={**d.env, **env},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=15)


def test_python_print_to_session_json_unbuffered(aos_mock, make_daemon):
    d = make_daemon(aos_section(aos_mock))
    adopted = aos_mock.issue_token()
    value = json.dumps({"server": "127.0.0.1", "port": aos_mock.port, "token": adopted})
    # print() writes the JSON, then "\n" at the next offset: two write()s.
    r = shell(d, f"/usr/bin/python3 -c 'import os; print(os.environ[\"V\"])' > {SESSION_JSON}",
              V=value, PYTHONUNBUFFERED="1")
    assert r.returncode == 0, r.stderr
    assert read_token(d) == adopted


def test_credentials_written_by_two_printfs(aos_mock, make_daemon):
    aos_mock.set_password("ops", new_password())
    d = make_daemon(aos_section(aos_mock))
    read_token(d)
    r = shell(d, f"{{ printf 'ops:'; printf '%s\\n' \"$PW\"; }} > {CREDENTIALS}",
              PW=aos_mock.password("ops"))
    assert r.returncode == 0, r.stderr
    d.unlink(TOKEN)
    read_token(d)
    last = [q for q in aos_mock.requests if q.path == LOGIN][-1].json()
    assert last["username"] == "ops"


def test_echo_bad_to_credentials_prints_the_error(aos_mock, make_daemon):
    d = make_daemon(aos_section(aos_mock))
    r = shell(d, f"echo bad > {CREDENTIALS}")
    assert r.returncode != 0 and "Invalid argument" in r.stderr, (r.returncode, r.stderr)


# --- 3b. no deadlock between readers and invalidations ----------------------------------

@pytest.mark.concurrency
@pytest.mark.slow
def test_readers_and_rm_loops_never_deadlock(aos_mock, make_daemon):
    d = make_daemon(aos_section(aos_mock), timeout=5)
    read_token(d)
    load = Load()
    for i in range(8):
        load.add(f"cat{i}", lambda: d.read(TOKEN))
    for i in range(2):
        load.add(f"rm{i}", lambda: d.unlink(TOKEN), allowed=(errno.ENOENT,))
    run_deadlock_check(d, load, 20)
    assert load.errors == [], load.errors[:5]


@pytest.mark.concurrency
def test_readers_and_session_json_writers_never_deadlock(aos_mock, make_daemon):
    d = make_daemon(aos_section(aos_mock), timeout=5)
    read_token(d)
    tokens = [aos_mock.issue_token() for _ in range(4)]

    def write():
        d.write(SESSION_JSON, json.dumps({"server": "127.0.0.1", "port": aos_mock.port,
                                          "token": random.choice(tokens)}))

    load = Load()
    for i in range(6):
        load.add(f"cat{i}", lambda: d.read(TOKEN))
    for i in range(2):
        load.add(f"json{i}", lambda: d.read(SESSION_JSON))
        load.add(f"write{i}", write)
    run_deadlock_check(d, load, 15)
    assert load.errors == [], load.errors[:5]


# --- 3c. one slow server never holds up the rest ----------------------------------------

@pytest.mark.concurrency
def test_hanging_server_of_one_target_holds_up_nothing_else(aos_mock, ca, log_secrets,
                                                           make_daemon):
    other = second_mock(AosMock, ca, log_secrets, {"admin": new_password()}).start()
    try:
        d = make_daemon(aos_section(aos_mock, "hung"), aos_section(other, "ok"), timeout=20)
        read_token(d, "aos/ok/token")
        # What once left a single FUSE worker: an rm and an rmdir.
        d.unlink("aos/ok/token")
        os.mkdir(d.path("aos/10.1.1.1"))
        os.rmdir(d.path("aos/10.1.1.1"))
        aos_mock.fail = "hang"
        hung = Load()
        for i in range(3):
            hung.add(f"hung{i}", lambda: d.read("aos/hung/token"), allowed=(errno.ETIMEDOUT,))
        hung.start()
        time.sleep(1)
        slow = []
        for rel in ("aos/ok/token", "aos/hung/status", "aos/ok/status", ".metrics",
                    "aos/ok/token", ".metrics"):
            _, err, elapsed = within(25, d.read, rel)
            assert err is None, f"{rel}: {strerror(err)}"
            if elapsed > 1.0:
                slow.append(f"{rel}: {elapsed:.1f} s")
        _, err, elapsed = within(25, d.listdir, "aos")
        if elapsed > 1.0:
            slow.append(f"ls aos: {elapsed:.1f} s")
        aos_mock.fail = None
        left = hung.stop(wait=25)
        assert left == [], f"readers of the hung target never returned: {left}"
        assert slow == [], f"held up by another target's hanging server: {slow}"
    finally:
        other.stop()


# --- 3. kill -9 at any moment ------------------------------------------------------------

@pytest.mark.concurrency
@pytest.mark.slow
def test_kill9_loop_under_readers_and_writers(aos_mock, make_daemon):
    """25 rounds: every file kind read and written concurrently, kill -9 at
    a random moment. After each: the daemon is reaped within 3 s, every
    caller returned (ENOTCONN is fine), the mount is gone, and the restarted
    daemon resumes the saved session without a login."""
    d = make_daemon(aos_section(aos_mock), timeout=5)
    read_token(d)
    creds = f"admin:{aos_mock.password()}\n"
    rng = random.Random()
    dead_mount = (errno.ENOTCONN, errno.ECONNABORTED, errno.ENOENT, errno.EIO)
    start_all = time.monotonic()
    for i in range(25):
        token = read_token(d)

        def adopt(token=token):
            d.write(SESSION_JSON, json.dumps({"server": "127.0.0.1", "port": aos_mock.port,
                                              "token": token}))

        load = Load()
        for k in range(2):
            load.add(f"token{k}", lambda: d.read(TOKEN), allowed=dead_mount)
        load.add("session.json", lambda: d.read(SESSION_JSON), allowed=dead_mount)
        load.add("status", lambda: d.read(STATUS), allowed=dead_mount)
        load.add(".metrics", lambda: d.read(".metrics"), allowed=dead_mount)
        load.add("ls", lambda: d.listdir("aos/lab"), allowed=dead_mount)
        load.add("write session.json", adopt, allowed=dead_mount)
        load.add("write credentials", lambda: d.write(CREDENTIALS, creds),
                 allowed=dead_mount)
        load.start()
        time.sleep(rng.uniform(0.05, 0.8))
        pid = d.proc.pid
        d.proc.kill()
        try:
            d.proc.wait(3)
        except subprocess.TimeoutExpired:
            stuck = threads_in_d_state(pid)
            hung = load.stop(wait=0)
            abort_connection(d.mnt)
            try:
                d.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass  # the teardown tries again
            pytest.fail(f"round {i}: the daemon was not reaped within 3 s of kill -9; "
                        f"threads in D state: {stuck}; callers inside a call: {hung}")
        hung = load.stop(wait=3)
        if hung:
            abort_connection(d.mnt)
        assert hung == [], f"round {i}: callers still inside a call 3 s after kill -9: {hung}"
        assert load.errors == [], f"round {i}: {load.errors[:5]}"
        d.kill9()  # removes the dead mount
        assert not is_mounted(d.mnt), f"round {i}: mount left behind"
        before = aos_logins(aos_mock)
        d.start()
        resumed = read_token(d)
        assert aos_logins(aos_mock) == before, f"round {i}: the restart logged in again"
        assert aos_mock.is_live(resumed)
    elapsed = time.monotonic() - start_all
    assert elapsed < 90, f"25 rounds took {elapsed:.0f} s"


# --- 11. daemon mode locks the secure heap ---------------------------------------------

def test_daemon_mode_locks_the_secure_heap(aos_mock, make_daemon):
    d = make_daemon(aos_section(aos_mock), start=False)
    proc = subprocess.run([str(d.binary), "-o", f"config={d.config_path}", str(d.mnt)],
                          env=d.env, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=15)
    assert proc.returncode == 0, proc.stderr
    try:
        assert wait_until(lambda: is_mounted(d.mnt), 10), "daemon mode did not mount"
        pids = [int(p.name) for p in Path("/proc").iterdir()
                if p.name.isdigit() and _cmdline_has(p, str(d.config_path))]
        assert len(pids) == 1, pids
        read_token(d)
        vmlck = _status_kb(pids[0], "VmLck")
        assert vmlck > 0, f"VmLck {vmlck} kB in daemon mode: the secure heap is not locked"
    finally:
        subprocess.run(["fusermount3", "-u", str(d.mnt)], timeout=15)
        wait_until(lambda: not is_mounted(d.mnt), 10)


def _cmdline_has(proc_dir, text):
    try:
        return text in (proc_dir / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0
