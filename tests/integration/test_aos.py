"""AOS end to end: the real daemon on a real mount against the AOS mock.

Each test acts as a user would (open/read/write/unlink/mkdir on the mount)
and checks what the server saw. The expected behaviour is DESIGN.md §1-§5.
"""

import errno
import json
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from tests.integration.harness import aos_section, assert_errno, new_password, strerror, timed_err, within
from tests.mocks.common import wait_until

TOKEN = "aos/lab/token"
SESSION = "aos/lab/session.json"
CREDENTIALS = "aos/lab/credentials"
STATUS = "aos/lab/status"


# --- helpers ----------------------------------------------------------------

def read_token(d, name="lab"):
    text = d.read(f"aos/{name}/token")
    token = text[:-1] if text.endswith("\n") else text  # one newline is fine
    assert token and token == token.strip(), f"not just a token: {text!r}"
    return token


def status(d, name="lab"):
    return json.loads(d.read(f"aos/{name}/status"))


def as_unix(value):
    """expires_at may be Unix seconds or an ISO 8601 string."""
    if isinstance(value, (int, float)):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def last_login_body(mock):
    return [r for r in mock.requests if r.path == "/api/user/login"][-1].json()


def validated_after(mock, token, t):
    """Whether the mock saw GET /api/user with this token after time t."""
    return any(r.method == "GET" and r.path == "/api/user" and r.time > t
               and r.headers.get("authtoken") == token for r in mock.requests)


def creds(mock, user="admin"):
    return f"{user}:{mock.password(user)}\n"  # as `echo user:pw > credentials`


# --- getting a token --------------------------------------------------------

def test_token_read_twice_logs_in_once(aos_mock, aos_daemon):
    t1 = read_token(aos_daemon)
    t2 = read_token(aos_daemon)
    assert t1 == t2
    assert aos_mock.logins == 1
    assert last_login_body(aos_mock) == {"username": "admin",
                                         "password": aos_mock.password()}
    # The token works for a client, as in the README's curl example.
    r = aos_mock.call("GET", "/api/blueprints", headers={"AUTHTOKEN": t1})
    assert r.status == 200


@pytest.mark.concurrency
def test_concurrent_cold_readers_share_one_login(aos_mock, aos_daemon):
    aos_mock.delay = 0.5  # keep the login in flight while all readers arrive
    readers = 50
    barrier = threading.Barrier(readers)

    def reader(_):
        barrier.wait()
        return read_token(aos_daemon)

    with ThreadPoolExecutor(readers) as pool:
        tokens = list(pool.map(reader, range(readers)))
    assert len(set(tokens)) == 1
    assert aos_mock.logins == 1
    assert aos_mock.is_live(tokens[0])


def test_refresh_before_expiry(aos_mock, make_daemon):
    aos_mock.ttl = 8
    d = make_daemon(aos_section(aos_mock), refresh_margin=4, timeout=5)
    read_token(d)  # cold: this one logs in
    aos_mock.delay = 1.0  # from now on a read that waits for a login is slow
    samples = []  # (start, token, end) of each read
    end_of_test = time.time() + 20
    while time.time() < end_of_test:
        start = time.time()
        token = read_token(d)
        samples.append((start, token, time.time()))
        time.sleep(0.1)

    for start, token, end in samples:
        rec = aos_mock.record(token)
        assert rec is not None, "read a token the server never issued"
        assert rec.exp > end, f"read a token {end - rec.exp:.1f} s after its exp"
        assert rec.revoked_at is None or rec.revoked_at >= start, \
            "read a token that had been logged out"
        assert end - start < 0.5, \
            f"a steady-state read waited {end - start:.1f} s (for the network?)"
    # 20 s of 8 s tokens needs at least 3 of them.
    assert len({token for _, token, _ in samples}) >= 3
    assert aos_mock.logins >= 3
    # Each refresh happened in the margin, not after the old token died.
    issued = aos_mock.tokens
    for old, new in zip(issued, issued[1:]):
        assert new.issued_at < old.exp - 1, \
            f"refreshed {new.issued_at - old.exp:+.1f} s from the old token's exp"


def test_refreshes_reuse_the_connection(aos_mock, make_daemon):
    """Logins and refreshes share libcurl's connection cache: many refreshes,
    one TCP connection (and so one TLS handshake)."""
    aos_mock.ttl = 4
    d = make_daemon(aos_section(aos_mock), refresh_margin=2, timeout=5)
    end = time.time() + 9
    while time.time() < end:
        read_token(d)
        time.sleep(0.2)
    assert aos_mock.logins >= 4, "expected several refreshes"
    assert aos_mock.connections == 1, \
        f"{aos_mock.logins} logins over {aos_mock.connections} connections"


@pytest.mark.concurrency
def test_herd_of_256_cold_readers_makes_one_login(aos_mock, aos_daemon):
    """The kernel lets one read of a cold token through; the other 255 wait
    for its page and get the same token."""
    barrier = threading.Barrier(256)

    def read():
        barrier.wait()
        return read_token(aos_daemon)

    with ThreadPoolExecutor(256) as pool:
        tokens = list(pool.map(lambda _: read(), range(256)))
    assert len(set(tokens)) == 1 and aos_mock.is_live(tokens[0])
    assert aos_mock.logins == 1


def test_cold_readers_ask_for_the_size_once(aos_mock, make_daemon):
    """A cold token's attributes (size 0: no session yet) are kept like any,
    so readers arriving while the login is in flight don't each send a
    GETATTR (the kernel's permission check) ahead of their open; and the size
    0 kept never outlives the login: a stat after the read has the token's."""
    d = make_daemon(aos_section(aos_mock), debug=True)
    aos_mock.delay = 0.5  # every reader arrives while the login is in flight
    readers = 32
    barrier = threading.Barrier(readers)

    def read(_):
        barrier.wait(30)
        return d.read(TOKEN)

    def read_all():
        with ThreadPoolExecutor(readers) as pool:
            return list(pool.map(read, range(readers)))

    texts, err, _ = within(60, read_all)  # bounded: a hung mount fails the test
    assert err is None, strerror(err)
    assert len(set(texts)) == 1 and aos_mock.logins == 1
    getattrs = d.log().count("opcode: GETATTR")
    assert getattrs <= 2, f"{getattrs} GETATTRs for {readers} cold readers"
    assert os.stat(d.path(TOKEN)).st_size == len(texts[0].encode())

    d.unlink(TOKEN)  # logged out: size 0, kept
    assert os.stat(d.path(TOKEN)).st_size == 0
    text = d.read(TOKEN)
    assert aos_mock.logins == 2
    assert os.stat(d.path(TOKEN)).st_size == len(text.encode())


def test_refresh_invalidates_the_kernels_copy(aos_mock, make_daemon):
    """After a background refresh, reads (served by the page cache until then)
    get the new token, never the old one, within the invalidation's delay."""
    aos_mock.ttl = 6
    d = make_daemon(aos_section(aos_mock), refresh_margin=3, timeout=5)
    first = read_token(d)
    assert wait_until(lambda: aos_mock.logins == 2, 6), "no background refresh"
    time.sleep(0.2)  # the invalidation is queued right after the new session
    second = read_token(d)
    assert second != first and second == aos_mock.tokens[-1].token


def test_rm_token_logs_out_and_next_read_logs_in(aos_mock, aos_daemon):
    t1 = read_token(aos_daemon)
    aos_daemon.unlink(TOKEN)
    # rm answers at once; the logout follows in the background.
    assert wait_until(lambda: aos_mock.logouts >= 1, 5)
    logouts = [r for r in aos_mock.requests if r.path == "/api/user/logout"]
    assert len(logouts) == 1
    assert logouts[0].method == "POST" and logouts[0].headers.get("authtoken") == t1
    assert not aos_mock.is_live(t1)
    t2 = read_token(aos_daemon)
    assert t2 != t1 and aos_mock.is_live(t2)
    assert aos_mock.logins == 2


# --- what the files say -----------------------------------------------------

def test_session_json_describes_the_session(aos_mock, aos_daemon):
    token = read_token(aos_daemon)
    session = json.loads(aos_daemon.read(SESSION))
    assert set(session) == {"server", "port", "token", "expires_at"}
    assert session["server"] == "127.0.0.1"
    assert session["port"] == aos_mock.port
    assert session["token"] == token
    assert abs(as_unix(session["expires_at"]) - aos_mock.record(token).exp) < 1


def test_status_and_metrics_never_touch_the_network(aos_mock, aos_daemon):
    token = read_token(aos_daemon)
    seen = aos_mock.count()
    st = status(aos_daemon)
    metrics = aos_daemon.read(".metrics")
    assert aos_mock.count() == seen
    assert isinstance(st["state"], str)
    assert st["last_error"] is None
    assert st["last_login"] is not None
    assert abs(as_unix(st["expires_at"]) - aos_mock.record(token).exp) < 1
    assert {"logins", "failures", "refreshes", "reads"} <= set(st["counters"])
    assert st["counters"]["logins"] == 1
    assert metrics.strip(), ".metrics is empty"
    # Still answers with the server gone.
    aos_mock.stop()
    assert status(aos_daemon)["state"]
    assert aos_mock.count() == seen


# --- credentials ------------------------------------------------------------

def test_wrong_password_is_rejected_and_not_retried(aos_mock, make_daemon, log_secrets):
    wrong = log_secrets.add(new_password())
    d = make_daemon(aos_section(aos_mock, password=wrong))
    assert_errno(d.read_err(TOKEN), errno.EKEYREJECTED)
    assert aos_mock.logins == 1
    st = status(d)
    assert "Invalid credentials" in st["last_error"]  # the server's message
    assert st["counters"]["failures"] >= 1
    # Accounts lock: no new attempt until the credentials change.
    err, elapsed = timed_err(d, TOKEN)
    assert_errno(err, errno.EKEYREJECTED)
    assert elapsed < 1
    assert aos_mock.logins == 1
    d.write(CREDENTIALS, creds(aos_mock))
    assert aos_mock.is_live(read_token(d))
    assert aos_mock.logins == 2


def test_no_credentials(aos_mock, make_daemon):
    d = make_daemon(aos_section(aos_mock, user=None, password=None))
    assert_errno(d.read_err(TOKEN), errno.ENOKEY)
    assert aos_mock.requests == []
    assert "credentials" in status(d)["last_error"].lower()  # how to provide them


def test_malformed_credentials_rejected_and_good_ones_saved(aos_mock, make_daemon):
    d = make_daemon(aos_section(aos_mock, user=None, password=None))
    password = aos_mock.password()
    d.write(CREDENTIALS, creds(aos_mock))
    read_token(d)
    # The newline echo adds is not part of the password.
    assert last_login_body(aos_mock) == {"username": "admin", "password": password}

    for bad in ("nocolon\n", '{"username": "admin"}', '{"password": "x-1234567"}',
                "{not json"):
        assert_errno(d.write_err(CREDENTIALS, bad), errno.EINVAL)

    # The old credentials are still the ones used.
    d.unlink(TOKEN)
    read_token(d)
    assert aos_mock.logins == 2
    assert last_login_body(aos_mock)["password"] == password

    # New ones, as JSON, take effect and survive a restart.
    aos_mock.set_password("admin", new_password())
    d.write(CREDENTIALS, json.dumps({"username": "admin",
                                     "password": aos_mock.password()}))
    d.unlink(TOKEN)
    read_token(d)
    assert last_login_body(aos_mock)["password"] == aos_mock.password()
    d.restart()
    d.unlink(TOKEN)
    assert aos_mock.is_live(read_token(d))
    assert last_login_body(aos_mock)["password"] == aos_mock.password()


def test_oversized_write_is_refused(aos_mock, aos_daemon):
    big = "admin:" + "x" * (64 * 1024)
    assert_errno(aos_daemon.write_err(CREDENTIALS, big), errno.EFBIG)
    assert aos_daemon.read_err(TOKEN) == 0  # the configured credentials still work
    assert last_login_body(aos_mock)["password"] == aos_mock.password()


def test_state_dir_is_private(aos_mock, make_daemon):
    d = make_daemon(aos_section(aos_mock, user=None, password=None))
    d.write(CREDENTIALS, creds(aos_mock))
    read_token(d)
    d.stop()
    assert d.state_dir.stat().st_mode & 0o077 == 0
    files = [p for p in d.state_dir.rglob("*") if p.is_file()]
    assert files, "nothing saved in the state dir"
    for p in files:
        assert p.stat().st_mode & 0o077 == 0, f"{p} is {oct(p.stat().st_mode)}"


# --- resuming sessions ------------------------------------------------------

def test_session_json_write_adopts_the_session(aos_mock, aos_daemon):
    token = aos_mock.issue_token()
    before = time.time()
    aos_daemon.write(SESSION, json.dumps({"server": "127.0.0.1",
                                          "port": aos_mock.port, "token": token}))
    assert read_token(aos_daemon) == token
    assert aos_mock.logins == 0
    assert validated_after(aos_mock, token, before)


def test_session_json_write_with_dead_token_is_refused(aos_mock, aos_daemon):
    current = read_token(aos_daemon)
    dead = aos_mock.issue_token()
    aos_mock.revoke(dead)
    err = aos_daemon.write_err(SESSION, json.dumps(
        {"server": "127.0.0.1", "port": aos_mock.port, "token": dead}))
    # The server rejected what was written: EKEYREJECTED per the 401 row of
    # DESIGN.md §4, or EINVAL as a write that is not accepted. Either way
    # nothing may be adopted.
    assert err in (errno.EKEYREJECTED, errno.EINVAL), strerror(err)
    assert read_token(aos_daemon) == current
    assert aos_mock.logins == 1


def test_session_json_malformed_write(aos_mock, aos_daemon):
    current = read_token(aos_daemon)
    for bad in ("not json", '{"server": "127.0.0.1"}', '{"token": 5}'):
        assert_errno(aos_daemon.write_err(SESSION, bad), errno.EINVAL)
    assert read_token(aos_daemon) == current


def test_restart_resumes_the_session(aos_mock, aos_daemon):
    d = aos_daemon
    token = read_token(d)
    stopped = time.time()
    status = d.stop()
    assert d.clean_stop, "still mounted after SIGTERM"
    # Non-zero would make systemd mark the unit failed on every stop.
    assert status == 0, f"exit status {status} after SIGTERM"
    d.start()
    assert read_token(d) == token
    # Validated with GET /api/user, before or after serving it.
    assert wait_until(lambda: validated_after(aos_mock, token, stopped), 5)
    assert aos_mock.logins == 1 and aos_mock.logouts == 0

    killed = time.time()
    d.kill9()
    d.start()
    assert read_token(d) == token
    assert wait_until(lambda: validated_after(aos_mock, token, killed), 5)
    assert aos_mock.logins == 1


def test_restart_after_server_forgot_the_session(aos_mock, aos_daemon):
    d = aos_daemon
    old = read_token(d)
    d.stop()
    aos_mock.revoke_all()  # the server restarted meanwhile
    d.start()
    new = read_token(d)  # validation gets 401: one transparent login
    assert new != old and aos_mock.is_live(new)
    assert aos_mock.logins == 2


# --- failures ---------------------------------------------------------------

def test_server_down(aos_mock, make_daemon):
    d = make_daemon(aos_section(aos_mock), timeout=5)
    aos_mock.stop()
    err, elapsed = timed_err(d, TOKEN)
    assert_errno(err, errno.ECONNREFUSED)
    assert elapsed < 5
    assert status(d)["last_error"]
    # A transient failure: once the server is back, reads work again.
    aos_mock.start()
    assert wait_until(lambda: d.read_err(TOKEN) == 0, 30)


def test_hanging_server_times_out(aos_mock, make_daemon):
    d = make_daemon(aos_section(aos_mock), timeout=2)
    aos_mock.fail = "hang"
    err, elapsed = timed_err(d, TOKEN)
    assert_errno(err, errno.ETIMEDOUT)
    assert elapsed <= 3


def test_trickling_server_times_out(aos_mock, make_daemon):
    """A byte a second never trips an idle timeout; the read must still end."""
    d = make_daemon(aos_section(aos_mock), timeout=2)
    aos_mock.fail = "trickle"
    err, elapsed = timed_err(d, TOKEN)
    assert_errno(err, errno.ETIMEDOUT)
    assert elapsed <= 3


def test_untrusted_certificate(aos_mock, other_ca, make_daemon):
    d = make_daemon(aos_section(aos_mock, ca_path=other_ca.ca))
    assert_errno(d.read_err(TOKEN), errno.EPROTO)
    assert aos_mock.requests == []  # the password never left
    assert wait_until(lambda: aos_mock.tls_failures >= 1, 2)


@pytest.mark.parametrize("fault,expected", [("500", errno.EIO),
                                            ("malformed", errno.EBADMSG)])
def test_login_server_error(aos_mock, make_daemon, fault, expected):
    d = make_daemon(aos_section(aos_mock), timeout=3)
    aos_mock.fail = fault
    err, elapsed = timed_err(d, TOKEN)
    assert_errno(err, expected)
    assert elapsed <= 4
    assert status(d)["last_error"]
    # Transient: once the server behaves, reads work again.
    aos_mock.fail = None
    assert wait_until(lambda: d.read_err(TOKEN) == 0, 30), "no recovery"


# --- targets ----------------------------------------------------------------

def test_mkdir_adds_a_target_and_rmdir_logs_out(aos_mock, ca, make_daemon):
    # A target made by mkdir has no ca_path: trust the test CA the way
    # OpenSSL and the curl tool take it from the environment.
    d = make_daemon(env={"SSL_CERT_FILE": str(ca.ca), "CURL_CA_BUNDLE": str(ca.ca)})
    name = f"127.0.0.1:{aos_mock.port}"
    os.mkdir(d.path(f"aos/{name}"))
    assert name in d.listdir("aos")
    assert_errno(d.read_err(f"aos/{name}/token"), errno.ENOKEY)
    d.write(f"aos/{name}/credentials", creds(aos_mock))
    token = read_token(d, name)
    assert aos_mock.logins == 1
    os.rmdir(d.path(f"aos/{name}"))
    assert name not in d.listdir("aos")
    # rmdir answers from local state; the logout follows in the background.
    assert wait_until(lambda: aos_mock.logouts == 1, 5) and not aos_mock.is_live(token)


def test_targets_by_name_through_adds_removals_and_re_adds(aos_mock, make_daemon):
    """The registry finds targets through a tree keyed by provider and name:
    names that share prefixes or differ by one character, the same name
    under two providers, removal, and adding a removed name again."""
    d = make_daemon(aos_section(aos_mock))
    names = [f"h{i}" for i in range(150)] + ["a", "a1", "a.b", "a-b", "a.b.c", "A", "h1.h1"]
    for n in names:
        os.mkdir(d.path(f"aos/{n}"))
    for n in names[::3]:
        os.mkdir(d.path(f"idrac/{n}"))
    ino = {n: os.stat(d.path(f"aos/{n}")).st_ino for n in names}
    assert len(set(ino.values())) == len(names)
    removed = names[::2]
    for n in removed:
        os.rmdir(d.path(f"aos/{n}"))
    kept = [n for n in names if n not in removed]
    assert sorted(d.listdir("aos")) == sorted(kept + ["lab"])
    assert sorted(d.listdir("idrac")) == sorted(names[::3]), "the same names of another provider stay"
    for n in removed:
        assert _stat_errno(d.path(f"aos/{n}")) == errno.ENOENT
    for n in kept:
        assert os.stat(d.path(f"aos/{n}")).st_ino == ino[n]
    for n in removed:
        os.mkdir(d.path(f"aos/{n}"))
        assert os.stat(d.path(f"aos/{n}")).st_ino != ino[n], "a re-added name is a new target"
    with pytest.raises(FileExistsError):
        os.mkdir(d.path("aos/a.b"))
    assert sorted(d.listdir("aos")) == sorted(names + ["lab"])
    assert read_token(d) and aos_mock.logins == 1, "the configured target among them still works"


def test_listing_through_adds_and_removals(aos_mock, make_daemon):
    """A directory listing's cursor is a target id: targets removed behind
    it or ahead of it, and targets added, while an `ls` goes on neither hide
    nor repeat the names that stay. (The listing takes several getdents
    calls; the changes happen between the first and the next.)"""
    d = make_daemon(aos_section(aos_mock))
    names = [f"target-{i:04d}" for i in range(2000)]
    for n in names:
        os.mkdir(d.path(f"aos/{n}"))
    for n in names[::4]:
        os.mkdir(d.path(f"idrac/{n}"))  # another provider's, between them by id
    behind, ahead = names[:600:2], names[1500::3]
    seen = []

    def list_and_change():
        with os.scandir(d.path("aos")) as it:
            for e in it:
                seen.append(e.name)
                if len(seen) == 100:
                    for n in behind + ahead:
                        os.rmdir(d.path(f"aos/{n}"))
                    for i in range(300):
                        os.mkdir(d.path(f"aos/late-{i:03d}"))

    _, err, _ = within(120, list_and_change)  # bounded: a hung mount fails the test
    assert err is None, strerror(err)
    assert len(seen) > 100 and set(names[:100]) <= set(seen), "the changes came in the middle"
    stayed = [n for n in names + ["lab"] if n not in behind and n not in ahead]
    missing = [n for n in stayed if n not in seen]
    assert not missing, f"{len(missing)} names that stayed were not listed, e.g. {missing[:3]}"
    repeated = sorted(n for n, k in Counter(seen).items() if k > 1)
    assert not repeated, f"listed twice: {repeated[:3]}"
    assert not set(ahead) & set(seen), "names removed before the listing reached them are not listed"
    assert sorted(d.listdir("aos")) == sorted(stayed + [f"late-{i:03d}" for i in range(300)])
    assert sorted(d.listdir("idrac")) == sorted(names[::4])


@pytest.mark.concurrency
def test_listings_while_targets_come_and_go(aos_mock, make_daemon):
    """Listings of aos/ (each several getdents calls) while two threads
    remove and add again targets whose ids lie between those of the names
    that stay, of aos and of idrac: every name that stays is listed, once,
    every time."""
    d = make_daemon(aos_section(aos_mock))
    stay = [f"stay-{i:04d}" for i in range(1500)]
    churn = [f"churn-{i:04d}" for i in range(1500)]
    for s, c in zip(stay, churn):
        os.mkdir(d.path(f"aos/{s}"))
        os.mkdir(d.path(f"aos/{c}"))
        if s.endswith("0"):
            os.mkdir(d.path(f"idrac/{c}"))
    stop, errors = threading.Event(), []

    def run(provider, names):
        for i in range(1000000):
            if stop.is_set():
                return
            path = d.path(f"{provider}/{names[i % len(names)]}")
            try:
                os.rmdir(path)
                os.mkdir(path)
            except OSError as e:
                errors.append(f"{path}: {e}")
                return
    threads = [threading.Thread(target=run, args=("aos", churn), daemon=True),
               threading.Thread(target=run, args=("idrac", churn[::10]), daemon=True)]
    for t in threads:
        t.start()
    try:
        for _ in range(50):
            # Bounded: a hung mount fails the test (teardown aborts it).
            listed, err, _ = within(30, d.listdir, "aos")
            assert err is None, strerror(err)
            seen = Counter(listed)
            wrong = [n for n in stay + ["lab"] if seen[n] != 1]
            # (A name removed and added again may be listed twice: two targets.)
            assert not wrong, f"{len(wrong)} names that stay listed other than once, e.g. {wrong[:3]}"
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not any(t.is_alive() for t in threads), "an rmdir or mkdir did not return within 30 s"
    assert not errors


def _stat_errno(path):
    try:
        os.stat(path)
    except OSError as e:
        return e.errno
    return 0


def test_target_from_environment(aos_mock, ca, make_daemon):
    d = make_daemon(env={"AOS_SERVER": "127.0.0.1",
                         "AOS_SERVER_PORT": str(aos_mock.port),
                         "AOS_USER": "admin", "AOS_PASSWD": aos_mock.password(),
                         "SSL_CERT_FILE": str(ca.ca), "CURL_CA_BUNDLE": str(ca.ca)})
    assert "127.0.0.1" in d.listdir("aos")
    assert aos_mock.is_live(read_token(d, "127.0.0.1"))
    assert aos_mock.logins == 1


def test_session_token_from_environment(aos_mock, ca, make_daemon):
    token = aos_mock.issue_token()
    d = make_daemon(env={"AOS_SERVER": "127.0.0.1",
                         "AOS_SERVER_PORT": str(aos_mock.port),
                         "AOS_SESSION_TOKEN": token,
                         "SSL_CERT_FILE": str(ca.ca), "CURL_CA_BUNDLE": str(ca.ca)})
    assert read_token(d, "127.0.0.1") == token
    assert aos_mock.logins == 0


# --- secrets ----------------------------------------------------------------

def test_debug_log_has_no_secrets(aos_mock, make_daemon, log_secrets):
    d = make_daemon(aos_section(aos_mock), debug=True)
    read_token(d)
    d.read(SESSION)
    aos_mock.set_password("admin", new_password())
    d.write(CREDENTIALS, creds(aos_mock))
    d.unlink(TOKEN)
    read_token(d)
    d.write(SESSION, json.dumps({"server": "127.0.0.1", "port": aos_mock.port,
                                 "token": aos_mock.issue_token()}))
    read_token(d)
    d.stop()
    assert len(d.log().splitlines()) > 5, "-d produced no debug output"
    log_secrets.check()
