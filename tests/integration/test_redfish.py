"""Redfish (iDRAC) end to end: the real daemon on a real mount against the
Redfish mock.

Each test acts as a user would (open/read/write/listdir/unlink on the mount)
and checks what the BMC saw. The expected behaviour is DESIGN.md §1 (the
idrac/ tree), §3 (Redfish) and §4 (errors), plus the daemon's Redfish spec:
one daemon session per BMC, reused, kept alive only while the token is read,
never leaked.
"""

import errno
import json
import os
import threading
import time

import pytest

from tests.integration.harness import assert_errno, idrac_section, new_password, strerror, timed_err
from tests.mocks.common import wait_until
from tests.mocks.redfish import (OLD_SESSIONS, OTHER_CLIENT_IP, SESSION_LIMIT_MESSAGE,
                                 SESSIONS, RedfishMock)

NAME = "bmc"
TOKEN = f"idrac/{NAME}/token"
SESSION = f"idrac/{NAME}/session.json"
CREDENTIALS = f"idrac/{NAME}/credentials"
STATUS = f"idrac/{NAME}/status"
SESSIONS_DIR = f"idrac/{NAME}/sessions"
ODATA = {"OData-Version": "4.0"}
USER = "root"


# --- helpers ----------------------------------------------------------------

def read_token(d, rel=TOKEN):
    text = d.read(rel)
    token = text[:-1] if text.endswith("\n") else text  # one newline is fine
    assert token and token == token.strip(), f"not just a token: {text!r}"
    return token


def status(d, rel=STATUS):
    return json.loads(d.read(rel))


def session_of(mock, token):
    """The live session on the mock whose X-Auth-Token this is, or None."""
    return next((s for s in mock.live_sessions() if s["token"] == token), None)


def daemon_sessions(mock, foreign=(), user=USER):
    """The daemon's live sessions: those of its user, less the ones the test
    made itself with create_session() (another client's)."""
    return [s for s in mock.live_sessions()
            if s["user"] == user and s["id"] not in foreign]


def logins(mock):
    """The login POSTs (to whichever Sessions path), oldest first."""
    return [r for r in mock.requests if r.method == "POST"
            and r.path in (mock.sessions_uri, SESSIONS, OLD_SESSIONS)]


def calls(mock, method, path, token=None, after=0.0):
    """Requests with this method and path (and X-Auth-Token) after a time."""
    return [r for r in mock.requests if r.method == method and r.path == path
            and r.time > after
            and (token is None or r.headers.get("x-auth-token") == token)]


def creds(mock, user=USER):
    return f"{user}:{mock.password(user)}\n"  # as `echo user:pw > credentials`


@pytest.fixture
def idrac_daemon(redfish_mock, make_daemon):
    """A daemon with one target, "bmc", on redfish_mock with valid credentials."""
    return make_daemon(idrac_section(redfish_mock))


@pytest.fixture
def http_mock(log_secrets):
    """A plain-HTTP Redfish mock (no TLS); user root, random password."""
    mock = RedfishMock(None, {USER: new_password()}, http=True)
    log_secrets.add_source(mock.secrets)
    with mock:
        yield mock


# --- 1. getting a token ------------------------------------------------------

def test_token_read_twice_logs_in_once(redfish_mock, idrac_daemon):
    mock, d = redfish_mock, idrac_daemon
    t1 = read_token(d)
    t2 = read_token(d)
    assert t1 == t2
    assert mock.logins == 1
    [login] = logins(mock)
    assert login.path == SESSIONS
    assert login.json() == {"UserName": USER, "Password": mock.password()}
    s = session_of(mock, t1)
    assert s is not None, "the token read is not a live session on the BMC"
    assert s["user"] == USER
    assert [x["id"] for x in mock.live_sessions()] == [s["id"]]
    # The token works for a client, as curl -H "X-Auth-Token: $(cat token)".
    r = mock.call("GET", "/redfish/v1/Systems", headers={**ODATA, "X-Auth-Token": t1})
    assert r.status == 200
    # Every request the daemon made carried OData-Version: 4.0.
    assert mock.requests, "the daemon made no request"
    bad = mock.requests_without_odata_version()
    assert bad == [], "requests without OData-Version: 4.0: " + \
        ", ".join(f"{r.method} {r.path}" for r in bad)


# --- 2. keep-alive and lapse over many reads ---------------------------------

@pytest.mark.slow
def test_hundred_reads_over_refresh_and_expiry_cycles(redfish_mock, make_daemon):
    mock = redfish_mock
    timeout = 4  # SessionTimeout: keep-alive about every 2 s while read
    mock.session_timeout = timeout
    d = make_daemon(idrac_section(mock), timeout=5)
    # Another client's session on the same user, which the daemon must not
    # count as its own (it expires unused, as sessions do).
    foreign = {mock.create_session(USER)[0]}

    # Per cycle: a burst (hot: 3 s of reads, then a gap shorter than the
    # timeout, so the session must be kept alive across more than a
    # timeout), then a gap longer than the timeout with nobody reading.
    # Gaps of timeout + 4.5 s outlast any keep-alive still in flight, so
    # the session has certainly lapsed; timeout + 1 s gaps may or may not.
    short, medium = 0.15, timeout - 1.5
    long_gaps = [timeout + 1, timeout + 4.5, timeout + 1, timeout + 4.5]
    gaps = []
    for long_gap in long_gaps:
        gaps += [short] * 21 + [medium, long_gap]
    gaps += [short] * (99 - len(gaps))
    assert len(gaps) == 99

    # Watch the BMC all along, not just after each read.
    overlaps = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            mine = daemon_sessions(mock, foreign)
            if len(mine) > 1:
                overlaps.append((time.time(), [s["id"] for s in mine]))
            stop.wait(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    problems = []
    tokens = []
    try:
        for i in range(100):
            if i:
                time.sleep(gaps[i - 1])
            token = read_token(d)
            mine = daemon_sessions(mock, foreign)
            tokens.append(token)
            if [s["token"] for s in mine] != [token]:
                live = [s["id"] for s in mine]
                read = session_of(mock, token)
                problems.append(
                    f"read {i} (after a {gaps[i - 1] if i else 0:.2f} s gap): "
                    f"token of session {read['id'] if read else '<not live>'}, "
                    f"daemon sessions live on the BMC: {live}")
    finally:
        stop.set()
        watcher.join()

    assert not problems, "\n".join(problems[:10])
    assert not overlaps, f"more than one daemon session alive at once: {overlaps[:5]}"
    # Keep-alive: a hot session (reads for longer than SessionTimeout, then a
    # gap shorter than it) survives; only the long idle gaps may need a new
    # one, and the longest ones certainly do.
    certain = sum(1 for g in long_gaps if g > timeout + 4)
    distinct = len(dict.fromkeys(tokens))
    assert 1 + certain <= mock.logins <= 1 + len(long_gaps), \
        f"{mock.logins} logins for {len(long_gaps)} idle gaps ({distinct} tokens)"
    assert distinct == mock.logins
    # Nothing left behind: every earlier daemon session is gone on the BMC.
    assert len(daemon_sessions(mock, foreign)) <= 1
    # The session was not validated on every read (reads are served from
    # memory between keep-alives).
    session_gets = [r for r in mock.requests if r.method == "GET"
                    and r.path.startswith(SESSIONS + "/")]
    assert len(session_gets) < 50, f"{len(session_gets)} session GETs for 100 reads"
    assert mock.requests_without_odata_version() == []


# --- 3. sessions/ ------------------------------------------------------------

def test_sessions_dir_lists_shows_and_deletes_another_clients_session(
        redfish_mock, idrac_daemon):
    mock, d = redfish_mock, idrac_daemon
    sid, other_token = mock.create_session(USER)
    names = d.listdir(SESSIONS_DIR)
    assert sid in names
    # Exactly the BMC's sessions (the daemon's own included, if it has one).
    assert set(names) == {s["id"] for s in mock.live_sessions()}

    entry = json.loads(d.read(f"{SESSIONS_DIR}/{sid}"))
    assert entry["Id"] == sid
    assert entry["UserName"] == USER
    assert entry["ClientOriginIPAddress"] == OTHER_CLIENT_IP
    assert entry["@odata.id"] == mock.session_uri(sid)

    before = time.time()
    d.unlink(f"{SESSIONS_DIR}/{sid}")
    assert mock.session(sid) is None, "rm did not end the session on the BMC"
    assert mock.deletes == [sid]
    assert len(calls(mock, "DELETE", mock.session_uri(sid), after=before)) == 1
    assert sid not in d.listdir(SESSIONS_DIR)

    # rm of one already gone: ENOENT (so rm -f is quiet), nothing deleted,
    # no error left behind.
    again = time.time()
    with pytest.raises(FileNotFoundError):
        d.unlink(f"{SESSIONS_DIR}/{sid}")
    assert mock.deletes == [sid]
    assert calls(mock, "DELETE", mock.session_uri(sid), after=again) == []
    assert status(d)["last_error"] is None
    # Reading one that is gone fails.
    assert_errno(d.read_err(f"{SESSIONS_DIR}/{sid}"), errno.ENOENT)
    # The daemon's own session is untouched and still the only one.
    token = read_token(d)
    assert [s["token"] for s in mock.live_sessions()] == [token]
    assert mock.logins == 1


# --- 4. inactivity timeout ---------------------------------------------------

def test_idle_session_lapses_and_next_read_logs_in(redfish_mock, make_daemon):
    mock = redfish_mock
    timeout = 3
    mock.session_timeout = timeout
    d = make_daemon(idrac_section(mock))
    t1 = read_token(d)
    old = session_of(mock, t1)["id"]
    # Nobody reads: the daemon lets the session lapse (frees a BMC slot)
    # rather than keeping it alive for ever.
    assert wait_until(lambda: mock.session(old) is None, 4 * timeout + 5), \
        "the daemon kept an unread session alive"
    lapsed = time.time()
    assert old in mock.expired

    t2 = read_token(d)  # transparently: validate (401), log in again
    assert t2 != t1
    new = session_of(mock, t2)
    assert new is not None, "the token read is not live on the BMC"
    assert mock.logins == 2
    assert [s["id"] for s in daemon_sessions(mock)] == [new["id"]]
    assert mock.session(old) is None
    # It checked the old session first and cleaned up after it (best effort).
    assert calls(mock, "GET", mock.session_uri(old), t1, after=lapsed), \
        "the saved session was not validated before logging in again"
    assert calls(mock, "DELETE", mock.session_uri(old), t1, after=lapsed), \
        "the dropped session was not deleted (best effort) before logging in again"
    assert read_token(d) == t2 and mock.logins == 2


# --- 5. session limit --------------------------------------------------------

@pytest.mark.parametrize("limit_status,message_ids", [
    (503, "both"), (503, "idrac"), (400, "base"), (400, "idrac")])
def test_session_limit(redfish_mock, make_daemon, limit_status, message_ids):
    mock = redfish_mock
    mock.session_limit = 8
    mock.limit_status = limit_status
    mock.limit_message_ids = message_ids
    stale = [mock.create_session(USER)[0] for _ in range(8)]
    d = make_daemon(idrac_section(mock))

    assert_errno(d.read_err(TOKEN), errno.EUSERS)
    st = status(d)
    assert st["errno"] == "EUSERS"
    last_error = st["last_error"]
    assert last_error, "status does not explain the failure"
    # The BMC's own words ...
    expected = SESSION_LIMIT_MESSAGE if message_ids != "base" else "exceeding the limit"
    assert expected in last_error, last_error
    # ... and what to do about it.
    assert "sessions/" in last_error and "rm" in last_error, last_error

    # sessions/ still works without a session of the daemon's own (HTTP
    # Basic with the configured credentials).
    listed = time.time()
    assert set(d.listdir(SESSIONS_DIR)) == set(stale)
    assert any(r.headers.get("authorization", "").lower().startswith("basic ")
               and "x-auth-token" not in r.headers
               for r in calls(mock, "GET", SESSIONS, after=listed))
    assert json.loads(d.read(f"{SESSIONS_DIR}/{stale[0]}"))["Id"] == stale[0]
    d.unlink(f"{SESSIONS_DIR}/{stale[0]}")
    assert mock.session(stale[0]) is None
    assert mock.deletes == [stale[0]]

    token = read_token(d)
    assert session_of(mock, token) is not None
    assert len(mock.live_sessions()) == 8
    assert [s["token"] for s in daemon_sessions(mock, set(stale))] == [token]
    assert status(d)["last_error"] is None


# --- 6. unmount and restarts -------------------------------------------------

def test_unmount_logs_out_and_kill9_restart_reuses_the_session(redfish_mock, idrac_daemon):
    mock, d = redfish_mock, idrac_daemon
    t1 = read_token(d)
    sid1 = session_of(mock, t1)["id"]
    rc = d.stop()
    assert d.clean_stop, "still mounted after SIGTERM"
    assert rc == 0, f"exit status {rc} after SIGTERM"
    assert mock.session(sid1) is None, "unmount left the daemon's session on the BMC"
    assert mock.deletes == [sid1]
    assert calls(mock, "DELETE", mock.session_uri(sid1), t1)

    d.start()
    t2 = read_token(d)  # logged out: a new session
    assert t2 != t1 and mock.logins == 2
    sid2 = session_of(mock, t2)["id"]

    killed = time.time()
    d.kill9()
    assert session_of(mock, t2) is not None  # a crash logs nothing out
    d.start()
    assert read_token(d) == t2
    assert mock.logins == 2, "a new login instead of the saved session"
    # Validated with a GET on its URI, before or after serving it.
    assert wait_until(lambda: calls(mock, "GET", mock.session_uri(sid2), t2, after=killed), 5)
    assert [s["id"] for s in mock.live_sessions()] == [sid2]


def test_logout_on_exit_false_keeps_the_session(redfish_mock, make_daemon):
    mock = redfish_mock
    d = make_daemon(idrac_section(mock, logout_on_exit=False))
    token = read_token(d)
    d.stop()
    assert d.clean_stop
    assert mock.deletes == [] and session_of(mock, token) is not None
    d.start()
    assert read_token(d) == token
    assert mock.logins == 1


def test_restart_after_bmc_dropped_the_saved_session(redfish_mock, idrac_daemon):
    mock, d = redfish_mock, idrac_daemon
    old = read_token(d)
    d.kill9()
    mock.kill_all()  # the BMC rebooted meanwhile
    d.start()
    new = read_token(d)  # validation gets 401: one transparent login
    assert new != old and session_of(mock, new) is not None
    assert mock.logins == 2
    assert len(mock.live_sessions()) == 1


# --- 7. bad credentials ------------------------------------------------------

@pytest.mark.parametrize("auth_error", ["idrac", "base", "empty"])
def test_wrong_password_is_rejected_once(redfish_mock, make_daemon, log_secrets, auth_error):
    mock = redfish_mock
    mock.auth_error = auth_error
    wrong = log_secrets.add(new_password())
    d = make_daemon(idrac_section(mock, password=wrong))
    for i in range(3):
        err, elapsed = timed_err(d, TOKEN)
        assert_errno(err, errno.EKEYREJECTED)
        if i:
            assert elapsed < 1, f"read {i} waited {elapsed:.1f} s (for the network?)"
    # Accounts lock: exactly one attempt, no retry.
    assert mock.logins == 1
    assert mock.live_sessions() == []
    st = status(d)
    assert st["errno"] == "EKEYREJECTED"
    if auth_error == "empty":
        assert "empty" in st["last_error"].lower(), st["last_error"]
    else:
        # The BMC's ExtendedInfo message.
        assert "username or password is incorrect" in st["last_error"], st["last_error"]
    assert wrong not in json.dumps(st)

    # New credentials allow a new attempt.
    d.write(CREDENTIALS, creds(mock))
    token = read_token(d)
    assert session_of(mock, token) is not None
    assert mock.logins == 2


# --- credentials from elsewhere ---------------------------------------------

def test_credentials_from_environment(redfish_mock, make_daemon):
    mock = redfish_mock
    d = make_daemon(idrac_section(mock, user=None, password=None),
                    env={"IDRAC_USERNAME": USER, "IDRAC_PASSWORD": mock.password()})
    token = read_token(d)
    assert session_of(mock, token) is not None
    assert logins(mock)[0].json() == {"UserName": USER, "Password": mock.password()}


@pytest.mark.parametrize("how", ["password_file", "password_env"])
def test_password_file_and_env(redfish_mock, make_daemon, tmp_path, how):
    mock = redfish_mock
    if how == "password_file":
        secret = tmp_path / "bmc.pw"
        secret.write_text(mock.password() + "\n")
        secret.chmod(0o600)
        d = make_daemon(idrac_section(mock, password=None, password_file=secret))
    else:
        d = make_daemon(idrac_section(mock, password=None, password_env="BMC_PASS"),
                        env={"BMC_PASS": mock.password()})
    token = read_token(d)
    assert session_of(mock, token) is not None
    assert logins(mock)[0].json()["Password"] == mock.password()


def test_no_credentials(redfish_mock, make_daemon):
    d = make_daemon(idrac_section(redfish_mock, user=None, password=None))
    assert_errno(d.read_err(TOKEN), errno.ENOKEY)
    assert redfish_mock.logins == 0
    assert "credentials" in status(d)["last_error"].lower()
    d.write(CREDENTIALS, json.dumps({"username": USER, "password": redfish_mock.password()}))
    assert session_of(redfish_mock, read_token(d)) is not None


# --- 8. BMC variants ---------------------------------------------------------

VARIANTS = {
    "relative-location": {"location": "relative"},
    "absolute-location": {"location": "absolute"},
    "no-location": {"location": None},
    "old-layout": {"layout": "old"},
    "linked-path": {"sessions_path": "/redfish/v1/Managers/BMC/ActiveSessions"},
    "delete-200": {"delete_status": 200},
}


@pytest.mark.parametrize("variant", list(VARIANTS) + ["http"])
def test_bmc_variants(request, make_daemon, variant):
    if variant == "http":
        mock = request.getfixturevalue("http_mock")
        section = idrac_section(mock, scheme="http")
    else:
        mock = request.getfixturevalue("redfish_mock")
        for key, value in VARIANTS[variant].items():
            setattr(mock, key, value)
        section = idrac_section(mock)
    d = make_daemon(section)

    token = read_token(d)
    s = session_of(mock, token)
    assert s is not None, "the token read is not live on the BMC"
    assert mock.logins == 1
    assert logins(mock)[-1].path == mock.sessions_uri
    session = json.loads(d.read(SESSION))
    assert session["id"] == s["id"]
    assert session["location"] == mock.session_uri(s["id"])
    assert session["x_auth_token"] == token
    assert s["id"] in d.listdir(SESSIONS_DIR)
    # Logout reaches the session where it really is.
    before = time.time()
    d.unlink(TOKEN)  # the logout goes on in the background
    assert wait_until(lambda: calls(mock, "DELETE", mock.session_uri(s["id"]), token, after=before), 10)
    assert mock.session(s["id"]) is None
    assert mock.deletes == [s["id"]]
    t2 = read_token(d)
    assert t2 != token and session_of(mock, t2) is not None
    assert mock.requests_without_odata_version() == []


# --- 9. rm token -------------------------------------------------------------

def test_rm_token_deletes_the_session_and_next_read_logs_in(redfish_mock, idrac_daemon):
    mock, d = redfish_mock, idrac_daemon
    t1 = read_token(d)
    sid = session_of(mock, t1)["id"]
    d.unlink(TOKEN)
    # rm answers at once; the DELETE follows in the background.
    assert wait_until(lambda: mock.count("DELETE") >= 1, 5)
    deletes = [r for r in mock.requests if r.method == "DELETE"]
    assert len(deletes) == 1
    assert deletes[0].path == mock.session_uri(sid)
    assert deletes[0].headers.get("x-auth-token") == t1
    assert mock.session(sid) is None and mock.deletes == [sid]
    t2 = read_token(d)
    assert t2 != t1
    assert session_of(mock, t2) is not None
    assert mock.logins == 2
    assert len(mock.live_sessions()) == 1


# --- 10. session.json ------------------------------------------------------

def test_session_json_shape(redfish_mock, idrac_daemon):
    mock, d = redfish_mock, idrac_daemon
    session = json.loads(d.read(SESSION))  # a cold read logs in too
    assert set(session) == {"id", "location", "x_auth_token", "session_data"}
    token = read_token(d)
    s = session_of(mock, token)
    assert s is not None
    assert session["x_auth_token"] == token
    assert session["id"] == s["id"]
    assert session["location"] == mock.session_uri(s["id"])
    data = session["session_data"]
    assert isinstance(data, dict) and data
    odata = [k for k in data if "@odata" in k]
    assert odata == [], f"session_data has @odata keys: {odata}"
    assert data["Id"] == s["id"]
    assert data["UserName"] == USER
    assert data["ClientOriginIPAddress"] == "127.0.0.1"
    assert mock.logins == 1


def test_status_never_touches_the_network(redfish_mock, idrac_daemon):
    mock, d = redfish_mock, idrac_daemon
    read_token(d)
    seen = mock.count()
    st = status(d)
    assert mock.count() == seen
    assert st["state"] == "valid"
    assert st["last_error"] is None
    assert st["counters"]["logins"] == 1
    mock.stop()
    assert status(d)["state"]
    assert mock.count() == seen


# --- timeouts ----------------------------------------------------------------

@pytest.mark.parametrize("fault", ["hang", "trickle"])
def test_hanging_bmc_times_out(redfish_mock, make_daemon, fault):
    d = make_daemon(idrac_section(redfish_mock), timeout=2)
    redfish_mock.fail = fault
    err, elapsed = timed_err(d, TOKEN)
    assert_errno(err, errno.ETIMEDOUT)
    assert elapsed <= 3
    start = time.monotonic()
    with pytest.raises(OSError) as e:
        os.listdir(d.path(SESSIONS_DIR))
    assert time.monotonic() - start <= 3
    assert e.value.errno == errno.ETIMEDOUT, strerror(e.value.errno)
    redfish_mock.fail = None
    assert wait_until(lambda: d.read_err(TOKEN) == 0, 30), "no recovery"
    assert len(redfish_mock.live_sessions()) == 1
