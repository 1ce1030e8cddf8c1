"""Faults: servers that go down, break connections, lie, trickle or revoke;
rejected credentials; load across many refreshes; kill -9 during a write;
bad target names.

The expected behaviour is DESIGN.md §4-§5 and README "How sessions are kept":
a cached unexpired token keeps being served while the server is down;
background refresh failures back off with jitter (5 s doubling to 2 min) and
show in status; no read waits longer than `timeout`; a 401 for a live token
means one transparent login; a rejected login is never retried by the daemon
(one attempt per user action); credentials are saved atomically; mkdir
accepts host, host:port and [v6]:port only; a session change invalidates the
kernel's cached pages before anyone reads them, and a read returns exactly
the file's content.

(Already covered elsewhere, not repeated here: AOS hang/trickle → ETIMEDOUT,
AOS 500/malformed login, AOS server down on a cold read, Redfish hang/trickle
in test_aos.py / test_redfish.py.)
"""

import errno
import json
import os
import random
import threading
import time

import pytest

from tests.integration.harness import (aos_section, assert_errno, idrac_section, new_password, strerror,
                                       sts_section, timed_err)
from tests.mocks.common import wait_until

TOKEN = "aos/lab/token"
CREDENTIALS = "aos/lab/credentials"
STATUS = "aos/lab/status"


# --- helpers ----------------------------------------------------------------

def no_padding(text, rel):
    """Content as the spec says it: no NUL bytes (a size reported as an
    upper bound must come back cut to the real one)."""
    assert "\0" not in text, (f"{rel}: read {len(text)} bytes: {text.index(chr(0))} bytes of "
                               f"content, then NUL padding")
    return text


def read_token(d, rel=TOKEN):
    text = no_padding(d.read(rel), rel)
    token = text.strip()
    assert token, f"{rel} is empty"
    return token


def status(d, rel=STATUS):
    return json.loads(no_padding(d.read(rel), rel))


def metric(d, name, target):
    """A sample of .metrics for one target, or None."""
    for line in d.read(".metrics").splitlines():
        if line.startswith(name + "{") and f'target="{target}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def target_for(provider, request, name="t", **overrides):
    """(mock, INI section, the file that needs a login, status path) of one
    target of this provider on its mock, with valid credentials."""
    if provider == "aos":
        mock = request.getfixturevalue("aos_mock")
        return (mock, aos_section(mock, name, **overrides),
                f"aos/{name}/token", f"aos/{name}/status")
    if provider == "idrac":
        mock = request.getfixturevalue("redfish_mock")
        return (mock, idrac_section(mock, name, **overrides),
                f"idrac/{name}/token", f"idrac/{name}/status")
    mock = request.getfixturevalue("sts_mock")
    return (mock, sts_section(mock, name, key=mock.new_key(), **overrides),
            f"sts/{name}/creds.json", f"sts/{name}/status")


# --- server down with a token cached -----------------------------------------

def serve_while_down(d, mock, seconds):
    """Read the token for this long with the server down; every read must
    give the cached token, live, without waiting. Returns it."""
    token = read_token(d)
    mock.stop()
    down_at = time.monotonic()
    slow = []
    while time.monotonic() - down_at < seconds:
        start = time.monotonic()
        got = read_token(d)  # no error may reach the reader
        elapsed = time.monotonic() - start
        assert got == token, (f"{time.monotonic() - down_at:.1f} s after the server went "
                              "down: served another token than the cached one ("
                              + ("one the mock issued" if mock.record(got)
                                 else "unknown to the mock") + ")")
        assert mock.is_live(got), "served a token past its exp"
        if elapsed > 0.5:
            slow.append(round(elapsed, 2))
        time.sleep(0.2)
    # Reads are served from memory; at most a rare one may have raced a
    # refresh attempt (which fails at once: connection refused).
    assert len(slow) <= 2, f"reads waited while the server was down: {slow}"
    return token


def assert_failures_shown(d, low, high, what):
    st = status(d)
    assert st["last_error"], st
    assert st["errno"] == "ECONNREFUSED", st
    failures = st["counters"]["failures"]
    assert low <= failures <= high, f"{failures} {what}"
    assert metric(d, "sessionfs_failures_total", "lab") == failures


def test_server_down_keeps_serving_the_cached_token(aos_mock, make_daemon):
    # Tokens live 24 s; refresh is due 12 s in (margin 12), so every refresh
    # attempt of the next 21 s meets a server that is down.
    aos_mock.ttl = 24
    d = make_daemon(aos_section(aos_mock), refresh_margin=12, timeout=2)
    serve_while_down(d, aos_mock, 21)
    # Due at +12 s, then backoff 5 s doubling, randomised in [half, full]:
    # 2 or 3 attempts by +21 s; allow one more.
    assert_failures_shown(d, 1, 4, "refresh attempts in 21 s with the server down")
    assert aos_mock.logins == 1


def test_checks_back_off_while_the_server_is_down(aos_mock, make_mount):
    # check_interval = 1: a check a second while all is well, but failed
    # checks are background failures like any other and back off.
    d = make_mount(aos_section(aos_mock), settings={"check_interval": 1})
    serve_while_down(d, aos_mock, 15)
    # Check at +1 s, then +[2.5, 5], +[5, 10]: at most 3 by +15 s; allow one more.
    assert_failures_shown(d, 1, 4, "failed checks in 15 s with the server down")


# --- broken replies ------------------------------------------------------------

FAULTS = [
    # (provider, MockServer.fail, acceptable errnos)
    ("aos", "reset", (errno.EIO, errno.EBADMSG)),
    ("idrac", "reset", (errno.EIO, errno.EBADMSG)),
    ("sts", "reset", (errno.EIO, errno.EBADMSG)),
    ("idrac", "malformed", (errno.EBADMSG,)),
    ("sts", "malformed", (errno.EBADMSG,)),
    ("idrac", "500", (errno.EIO,)),
    ("sts", "500", (errno.EIO,)),
    ("sts", "trickle", (errno.ETIMEDOUT,)),
    ("sts", "hang", (errno.ETIMEDOUT,)),
]


@pytest.mark.parametrize("provider,fault,expected", FAULTS,
                         ids=[f"{p}-{f}" for p, f, _ in FAULTS])
def test_broken_reply_fails_clearly_and_in_time(provider, fault, expected, request, make_daemon):
    mock, section, rel, st_rel = target_for(provider, request)
    timeout = 2
    d = make_daemon(section, timeout=timeout)
    mock.fail = fault
    err, elapsed = timed_err(d, rel)
    assert_errno(err, expected, f"{provider} {fault}")
    assert elapsed <= timeout + 1, f"{provider} {fault}: failed after {elapsed:.1f} s"
    st = status(d, st_rel)
    assert st["last_error"] and st["errno"] == errno.errorcode[err], st
    # Still alive and answering.
    assert d.running, f"daemon died:\n{d.log()}"
    assert d.listdir(), "mount stopped answering"
    # Another read while the fault lasts: also in time, also an error.
    err, elapsed = timed_err(d, rel)
    assert err != 0 and elapsed <= timeout + 1, (strerror(err), elapsed)
    # Transient: once the server behaves, reads work again.
    mock.fail = None
    assert wait_until(lambda: d.read_err(rel) == 0, 15), \
        f"no recovery: {strerror(d.read_err(rel))}"
    assert d.running


# --- 401 for a live token --------------------------------------------------------

@pytest.mark.parametrize("provider", ["aos", "idrac"])
def test_revoked_session_is_replaced_by_one_login(provider, request, make_mount):
    mock, section, rel, _ = target_for(provider, request)
    d = make_mount(section, settings={"check_interval": 1})

    if provider == "aos":
        live = mock.is_live
        revoke = mock.revoke_all
    else:
        def live(token):
            return any(s["token"] == token for s in mock.live_sessions())
        revoke = mock.kill_all

    old = read_token(d, rel)
    assert mock.logins == 1
    revoke()  # e.g. the server restarted: the token now gets 401
    assert not live(old)

    revoked_at = time.monotonic()
    new = old
    while new == old:
        assert time.monotonic() - revoked_at < 5, \
            "still serving the revoked token 5 s later (check_interval = 1)"
        new = read_token(d, rel)  # no read may fail meanwhile
        time.sleep(0.1)
    assert live(new)
    assert mock.logins == 2

    # From now on: the new token, no more logins.
    end = time.monotonic() + 3
    while time.monotonic() < end:
        assert read_token(d, rel) == new
        time.sleep(0.1)
    assert live(new)
    assert mock.logins == 2
    if provider == "idrac":
        assert [s["token"] for s in mock.live_sessions()] == [new]


# --- rejected credentials ----------------------------------------------------------

def rejected_target(provider, request, make_daemon, log_secrets):
    """A daemon whose target has a wrong password configured; returns
    (daemon, mock, token path, credentials path, status path, user, wrong
    passwords)."""
    user = "admin" if provider == "aos" else "root"
    wrong = [log_secrets.add(new_password()) for _ in range(2)]
    mock, section, rel, st_rel = target_for(provider, request, password=wrong[0])
    cred = rel.rsplit("/", 1)[0] + "/credentials"
    return make_daemon(section), mock, rel, cred, st_rel, user, wrong


def reads_fail_fast(d, rel, n=3):
    for i in range(n):
        err, elapsed = timed_err(d, rel)
        assert_errno(err, errno.EKEYREJECTED, f"read {i}")
        if i:
            assert elapsed < 1, f"read {i} of a rejected target took {elapsed:.1f} s"


@pytest.mark.parametrize("provider", ["aos", "idrac"])
def test_rejected_credentials_one_attempt_per_user_action(provider, request, make_daemon,
                                                          log_secrets):
    d, mock, rel, cred, st_rel, user, wrong = rejected_target(provider, request, make_daemon,
                                                              log_secrets)
    # The configured (wrong) password: one attempt however many reads.
    reads_fail_fast(d, rel)
    assert mock.logins == 1
    assert status(d, st_rel)["errno"] == "EKEYREJECTED"

    # Each write of credentials allows exactly one more attempt.
    d.write(cred, f"{user}:{wrong[1]}\n")
    reads_fail_fast(d, rel)
    assert mock.logins == 2
    d.write(cred, f"{user}:{wrong[0]}\n")
    reads_fail_fast(d, rel)
    assert mock.logins == 3

    # Time alone brings no attempt: past the first backoff step (5 s).
    end = time.monotonic() + 6
    while time.monotonic() < end:
        assert_errno(d.read_err(rel), errno.EKEYREJECTED)
        time.sleep(0.5)
    assert mock.logins == 3

    # The right ones: one attempt, and it works.
    d.write(cred, f"{user}:{mock.password(user)}\n")
    assert d.read_err(rel) == 0
    assert mock.logins == 4


@pytest.mark.parametrize("provider", ["aos", "idrac"])
def test_rm_token_allows_one_new_attempt_after_a_rejection(provider, request, make_daemon,
                                                           log_secrets):
    d, mock, rel, _, _, _, _ = rejected_target(provider, request, make_daemon, log_secrets)
    reads_fail_fast(d, rel)
    assert mock.logins == 1
    # rm token is the other user action that ends a rejection.
    try:
        d.unlink(rel)
    except FileNotFoundError:
        pass  # no session to log out of: acceptable; what counts is the next read
    except OSError as e:
        pytest.fail(f"rm {rel} on a rejected target: {strerror(e.errno)}")
    reads_fail_fast(d, rel)
    assert mock.logins == 2


# --- a read that itself logs in ------------------------------------------------

FIRST_READS = {"aos": ("token", "session.json"), "idrac": ("token", "session.json"),
               "sts": ("creds.json", "env")}


@pytest.mark.concurrency
@pytest.mark.parametrize("provider", ["aos", "idrac", "sts"])
def test_reads_that_log_in_get_exactly_the_content(provider, request, make_daemon):
    """Right after rm the next read logs in, and the login invalidates the
    kernel's pages and attributes while that read is under way. What it
    returns must still be exactly the file's content: sizes given before the
    login are upper bounds, never padding."""
    mock, section, rel, _ = target_for(provider, request)
    d = make_daemon(section)
    target = rel.rsplit("/", 1)[0]
    session_file = f"{target}/{FIRST_READS[provider][0]}"
    bad = []
    for i in range(30):
        first = f"{target}/{FIRST_READS[provider][i % 2]}"
        text = d.read(first)
        if "\0" in text:
            bad.append(f"round {i}: {first}: {len(text)} bytes, content ends at "
                       f"{text.index(chr(0))}")
        elif first.endswith(".json"):
            json.loads(text)
        else:
            assert text.strip(), first
        d.unlink(session_file)
    assert bad == [], "reads that logged in came back NUL-padded:\n" + "\n".join(bad)


@pytest.mark.concurrency
def test_no_stale_token_right_after_a_session_change(aos_mock, make_daemon):
    """DESIGN §5: a session change invalidates the kernel's cached pages
    before anyone can read them; the read right after a session.json write
    or an rm token gets the new session, never the one it replaced."""
    d = make_daemon(aos_section(aos_mock))
    read_token(d)
    stale = []
    for i in range(50):
        adopted = aos_mock.issue_token()
        d.write("aos/lab/session.json", json.dumps({"server": "127.0.0.1",
                                                    "port": aos_mock.port, "token": adopted}))
        got = read_token(d)
        if got != adopted:
            stale.append(f"round {i}: after the session.json write: "
                         + ("the replaced token" if aos_mock.record(got) else "unknown token"))
        d.unlink(TOKEN)
        got = read_token(d)
        if got == adopted or not aos_mock.is_live(got):
            stale.append(f"round {i}: after rm token: "
                         + ("the logged-out token" if got == adopted else "a dead token"))
    assert stale == [], f"{len(stale)} stale reads of 100:\n" + "\n".join(stale[:10])


# --- load ----------------------------------------------------------------------

@pytest.mark.slow
def test_four_readers_for_a_minute_across_many_refreshes(aos_mock, make_daemon):
    aos_mock.ttl = 4
    aos_mock.delay = 0.05
    d = make_daemon(aos_section(aos_mock), refresh_margin=2, timeout=5)
    duration = 60
    start_wall = time.time()
    end = time.monotonic() + duration
    errors, dead, counts = [], [], []
    lock = threading.Lock()

    def reader():
        n = 0
        while time.monotonic() < end:
            try:
                text = d.read(TOKEN)
            except OSError as e:
                with lock:
                    errors.append(f"{time.monotonic() - end + duration:.1f} s: "
                                  f"{strerror(e.errno)}")
                continue
            now = time.time()
            rec = aos_mock.record(text.strip())
            if rec is None or not rec.live_at(now):
                what = ("NUL-padded to %d bytes" % len(text) if "\0" in text else
                        "unknown to the server" if rec is None else
                        "%.2f s past its exp" % (now - rec.exp) if now >= rec.exp else
                        "revoked" if rec.revoked_at else "not yet issued")
                with lock:
                    dead.append(f"{now - start_wall:.1f} s: {what}")
            n += 1
        with lock:
            counts.append(n)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 30)
    assert not any(t.is_alive() for t in threads), "a reader hung"

    assert errors == [], f"{len(errors)} failed reads, first: {errors[:5]}"
    assert dead == [], f"{len(dead)} reads got no live token, first: {dead[:5]}"
    assert min(counts) > 100, f"readers starved: {counts}"
    # 60 s of tokens living 3-4 s: a refresh every 1-2 s.
    assert aos_mock.logins >= 20, aos_mock.logins
    assert d.running


# --- kill -9 around a credentials write -----------------------------------------------

def test_kill9_during_credentials_write_leaves_old_or_new(aos_mock, make_daemon):
    aos_mock.set_password("ops", new_password())
    pairs = [{"username": "admin", "password": aos_mock.password("admin")},
             {"username": "ops", "password": aos_mock.password("ops")}]
    d = make_daemon(aos_section(aos_mock, user=None, password=None))

    def saved_pair():
        path = d.state_dir / "aos" / "lab" / "credentials"
        text = path.read_text()
        try:
            obj = json.loads(text)
        except ValueError:
            pytest.fail(f"torn credentials file after kill -9: {len(text)} bytes")
        assert isinstance(obj, dict) and set(obj) == {"username", "password"}, \
            f"credentials file has keys {sorted(obj) if isinstance(obj, dict) else type(obj)}"
        return obj

    def last_login():
        return [r for r in aos_mock.requests if r.path == "/api/user/login"][-1].json()

    d.write(CREDENTIALS, json.dumps(pairs[0]))
    read_token(d)
    current = 0
    outcomes = {"old": 0, "new": 0}
    rng = random.Random()
    for i in range(50):
        old, new = pairs[current], pairs[1 - current]
        result = {}

        def write():
            try:
                d.write(CREDENTIALS, f"{new['username']}:{new['password']}\n")
                result["ok"] = True
            except OSError as e:
                result["errno"] = e.errno

        writer = threading.Thread(target=write)
        writer.start()
        time.sleep(rng.uniform(0, 0.004))
        d.kill9()
        writer.join(10)
        assert not writer.is_alive(), f"round {i}: the writer hung on the dead mount"

        got = saved_pair()
        assert got in (old, new), f"round {i}: saved credentials are neither old nor new"
        if result.get("ok"):
            assert got == new, f"round {i}: an acknowledged write was lost"
        outcomes["new" if got == new else "old"] += 1

        d.start()
        d.unlink(TOKEN)  # log in afresh with whatever was saved
        assert aos_mock.is_live(read_token(d)), f"round {i}"
        assert last_login() == got, f"round {i}: logged in with other credentials"
        current = pairs.index(got)
    print(f"kill -9 outcomes over 50 rounds: {outcomes}")


# --- target names ----------------------------------------------------------------

BAD_NAMES = [
    ("...", errno.EINVAL), ("..x", errno.EINVAL), (".hidden", errno.EINVAL),
    ("a" * 256, errno.ENAMETOOLONG),
    ("a\x01b", errno.EINVAL), ("a\tb", errno.EINVAL), ("a\nb", errno.EINVAL),
    ("a\x7fb", errno.EINVAL), ("\x1b[31mred", errno.EINVAL),
    ("a b", errno.EINVAL), ("host:99999", errno.EINVAL), ("host:", errno.EINVAL),
    ("host:8x", errno.EINVAL), ("-bad", errno.EINVAL), ("[::1", errno.EINVAL),
    ("[]:80", errno.EINVAL), ("[fe80::g]:80", errno.EINVAL), ("[::1]x", errno.EINVAL),
    ("host;rm", errno.EINVAL), ("ho$t", errno.EINVAL), ("a\\b", errno.EINVAL),
]


def refused_names(d, cases):
    """mkdir aos/<name> for each case; the cases that did not fail as expected."""
    problems = []
    for name, expected in cases:
        try:
            os.mkdir(d.path(f"aos/{name}"))
            problems.append(f"{name!r}: created")
        except OSError as e:
            if e.errno != expected:
                problems.append(f"{name!r}: {strerror(e.errno)}, expected {strerror(expected)}")
    return problems


def state_files(d):
    return sorted(str(p.relative_to(d.state_dir)) for p in d.state_dir.rglob("*"))


def test_bad_target_names_are_refused_and_nothing_created(make_daemon):
    d = make_daemon()
    os.mkdir(d.path("aos/127.0.0.1:8443"))  # a good one, so the bad ones mean something
    os.mkdir(d.path("aos/[::1]:8443"))
    before_tree = d.listdir("aos")
    before_state = state_files(d)
    problems = refused_names(d, BAD_NAMES)
    assert problems == [], "\n".join(problems)
    assert d.listdir("aos") == before_tree
    assert state_files(d) == before_state
    # Still so after a restart (nothing half-remembered).
    d.restart()
    assert d.listdir("aos") == before_tree


def test_names_with_empty_host_labels_are_refused(make_daemon):
    """A name like "a..b" or "x.." is no host name (a DNS label cannot be
    empty); like "..x" (refused), it must not become a target."""
    d = make_daemon()
    before_tree, before_state = d.listdir("aos"), state_files(d)
    cases = [("a..b", errno.EINVAL), ("x..", errno.EINVAL), ("127.0.0..1", errno.EINVAL),
             ("a..b:443", errno.EINVAL)]
    problems = refused_names(d, cases)
    assert problems == [], "\n".join(problems)
    assert d.listdir("aos") == before_tree
    assert state_files(d) == before_state
