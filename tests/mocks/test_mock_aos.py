"""The AOS mock and the shared mock machinery, exercised directly over HTTPS.

The daemon's tests are only as good as the mock they run against, so the
mock is held to the behaviour of a real AOS server here.
"""

import base64
import hashlib
import hmac
import http.client
import json
import socket
import ssl
import time
import uuid

import pytest

from tests.mocks.aos import AosMock, jwt_claims
from tests.mocks.common import client_context, wait_until


def login(mock, user="admin", password=None):
    if password is None:
        password = mock.password(user)
    return mock.call("POST", "/api/user/login", {"username": user, "password": password})


def get_user(mock, token):
    return mock.call("GET", "/api/user", headers={"AUTHTOKEN": token})


def connect(mock, ca=None, timeout=5, host="127.0.0.1"):
    ctx = client_context(ca or mock.ca)
    return http.client.HTTPSConnection(host, mock.port, timeout=timeout, context=ctx)


def b64decode(segment):
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


# --- certificates -----------------------------------------------------------

def test_server_cert_is_for_127_0_0_1_and_localhost(aos_mock):
    for host in ("127.0.0.1", "localhost"):
        conn = connect(aos_mock, host=host)
        conn.request("GET", "/api/blueprints")
        assert conn.getresponse().status == 401
        san = conn.sock.getpeercert()["subjectAltName"]
        conn.close()
    assert ("IP Address", "127.0.0.1") in san and ("DNS", "localhost") in san


def test_unrelated_ca_is_rejected(aos_mock, other_ca):
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(aos_mock, ca=other_ca).request("GET", "/api/user")
    assert wait_until(lambda: aos_mock.tls_failures == 1, 5)
    assert aos_mock.requests == []


# --- login ------------------------------------------------------------------

def test_login_returns_a_signed_jwt_with_exp(aos_mock):
    before = time.time()
    r = login(aos_mock)
    assert r.status == 201
    body = r.json()
    assert set(body) == {"token", "id"}
    assert body["id"] == aos_mock.user_id("admin")
    token = body["token"]
    header, payload, sig = token.split(".")
    assert "=" not in token
    assert json.loads(b64decode(header)) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt_claims(token)
    assert claims["username"] == "admin"
    uuid.UUID(claims["user_session"])
    assert isinstance(claims["created_at"], str)
    assert int(before) + 24 * 3600 <= claims["exp"] <= time.time() + 24 * 3600
    expected = hmac.new(aos_mock._jwt_key, f"{header}.{payload}".encode(),
                        hashlib.sha256).digest()
    assert b64decode(sig) == expected
    assert aos_mock.is_live(token) and aos_mock.logins == 1


def test_each_login_gets_a_new_session(aos_mock):
    t1, t2 = (login(aos_mock).json()["token"] for _ in range(2))
    assert t1 != t2
    assert jwt_claims(t1)["user_session"] != jwt_claims(t2)["user_session"]


def test_ttl_sets_exp(aos_mock):
    aos_mock.ttl = 60
    claims = jwt_claims(login(aos_mock).json()["token"])
    assert abs(claims["exp"] - (time.time() + 60)) <= 2


@pytest.mark.parametrize("user,password", [("admin", "wrong-password"),
                                           ("nobody", "wrong-password")])
def test_bad_credentials_get_401(aos_mock, user, password):
    r = login(aos_mock, user, password)
    assert r.status == 401
    assert r.json() == {"errors": "Invalid credentials"}
    assert aos_mock.tokens == [] and aos_mock.logins == 1


@pytest.mark.parametrize("body,status", [(b"not json", 400), (b"[]", 400),
                                         (b'{"username": "admin"}', 422),
                                         (b'{"password": "x"}', 422)])
def test_malformed_login_body(aos_mock, body, status):
    r = aos_mock.call("POST", "/api/user/login", body,
                      headers={"Content-Type": "application/json"})
    assert r.status == status
    assert "errors" in r.json()
    assert aos_mock.tokens == []


def test_set_password_changes_what_login_accepts(aos_mock):
    old = aos_mock.password()
    aos_mock.set_password("admin", "new-password-1")
    assert login(aos_mock, password=old).status == 401
    assert login(aos_mock, password="new-password-1").status == 201
    assert "new-password-1" in aos_mock.secrets()


# --- using a token ----------------------------------------------------------

def test_live_token_validates_and_works(aos_mock):
    token = login(aos_mock).json()["token"]
    r = get_user(aos_mock, token)
    assert r.status == 200 and r.json()["username"] == "admin"
    assert aos_mock.call("GET", "/api/blueprints",
                         headers={"authtoken": token}).json() == {"items": []}
    assert aos_mock.validations == 1


@pytest.mark.parametrize("headers", [{}, {"AUTHTOKEN": "bogus"},
                                     {"Authorization": "Bearer x"}])
def test_missing_or_unknown_token_gets_401(aos_mock, headers):
    r = aos_mock.call("GET", "/api/user", headers=headers)
    assert r.status == 401 and "errors" in r.json()


def test_token_expires_at_exp(aos_mock):
    aos_mock.ttl = 1
    token = login(aos_mock).json()["token"]
    rec = aos_mock.record(token)
    assert rec.exp == jwt_claims(token)["exp"]
    assert wait_until(lambda: time.time() >= rec.exp, 3)
    assert get_user(aos_mock, token).status == 401
    assert not aos_mock.is_live(token)
    assert rec.live_at(rec.issued_at) and not rec.live_at(rec.exp)


def test_logout_revokes(aos_mock):
    token = login(aos_mock).json()["token"]
    headers = {"AUTHTOKEN": token}
    assert aos_mock.call("POST", "/api/user/logout", headers=headers).status == 200
    assert get_user(aos_mock, token).status == 401
    assert aos_mock.call("POST", "/api/user/logout", headers=headers).status == 401
    assert aos_mock.logouts == 2
    rec = aos_mock.record(token)
    assert rec.revoked_at is not None and not rec.live_at(time.time())
    assert rec.live_at(rec.revoked_at - 0.001)


def test_issue_token_and_revoke_all(aos_mock):
    token = aos_mock.issue_token("admin", ttl=30)
    assert aos_mock.requests == []  # out of band: no login recorded
    assert abs(jwt_claims(token)["exp"] - (time.time() + 30)) <= 2
    assert get_user(aos_mock, token).status == 200
    other = login(aos_mock).json()["token"]
    aos_mock.revoke_all()
    assert get_user(aos_mock, token).status == 401
    assert get_user(aos_mock, other).status == 401
    assert token in aos_mock.secrets() and other in aos_mock.secrets()


# --- the shared machinery ---------------------------------------------------

def test_requests_are_recorded(aos_mock):
    login(aos_mock)
    aos_mock.call("GET", "/api/blueprints?x=1", headers={"AUTHTOKEN": "t0ken"})
    first, second = aos_mock.requests
    assert (first.method, first.path) == ("POST", "/api/user/login")
    assert first.json()["username"] == "admin"
    assert first.headers["content-type"] == "application/json"
    assert (second.path, second.query, second.body) == ("/api/blueprints", "x=1", b"")
    assert second.headers["authtoken"] == "t0ken"
    assert first.client[0] == "127.0.0.1" and first.time <= second.time
    assert aos_mock.count("POST") == 1 and aos_mock.count(path="/api/blueprints") == 1
    aos_mock.clear()
    assert aos_mock.requests == []


def test_unknown_path_and_method(aos_mock):
    assert aos_mock.call("GET", "/api/nothing").status == 404
    assert aos_mock.call("GET", "/api/user/login").status == 405


def test_keep_alive_reuses_one_connection(aos_mock):
    conn = connect(aos_mock)
    for _ in range(3):
        conn.request("GET", "/api/user")
        r = conn.getresponse()
        r.read()
        assert r.status == 401 and r.getheader("Content-Length")
    conn.close()
    assert len({r.client for r in aos_mock.requests}) == 1
    assert aos_mock.connections == 1


def test_replies_are_sent_at_once(aos_mock):
    """TCP_NODELAY on the server's side of every connection: without it a
    TLS 1.3 reply waits behind the session tickets for the client's delayed
    ACK (40 ms), in every login the bench times, curl's included."""
    conn = connect(aos_mock)
    conn.request("GET", "/api/user")
    conn.getresponse().read()
    with aos_mock._httpd.conns_lock:
        server_side = list(aos_mock._httpd.conns)
    assert len(server_side) == 1
    assert server_side[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    conn.close()


def test_plain_http_mock():
    with AosMock(None, {"admin": "plain-password"}) as mock:
        assert mock.url.startswith("http://")
        assert login(mock).status == 201


def test_fault_500(aos_mock):
    aos_mock.fail = "500"
    r = login(aos_mock)
    assert r.status == 500 and "errors" in r.json()
    assert aos_mock.logins == 1 and aos_mock.tokens == []
    aos_mock.fail = None
    assert login(aos_mock).status == 201


def test_fault_malformed(aos_mock):
    aos_mock.fail = "malformed"
    r = login(aos_mock)
    assert r.status == 200
    with pytest.raises(ValueError):
        r.json()


def test_fault_hang_until_cleared(aos_mock):
    aos_mock.fail = "hang"
    conn = connect(aos_mock, timeout=0.5)
    start = time.monotonic()
    conn.request("GET", "/api/user")
    with pytest.raises(TimeoutError):
        conn.getresponse()
    assert time.monotonic() - start >= 0.5
    aos_mock.fail = None
    assert login(aos_mock).status == 201


def test_fault_hang_ends_when_stopped(aos_mock):
    aos_mock.fail = "hang"
    conn = connect(aos_mock, timeout=5)
    conn.request("GET", "/api/user")
    assert wait_until(lambda: aos_mock.count() == 1, 2)
    start = time.monotonic()
    aos_mock.stop()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError)):
        conn.getresponse()
    assert time.monotonic() - start < 2


@pytest.mark.parametrize("tls", [True, False])
def test_fault_reset(ca, tls):
    with AosMock(ca if tls else None, {"admin": "reset-password"}) as mock:
        mock.fail = "reset"
        sock = socket.create_connection(("127.0.0.1", mock.port), timeout=5)
        if tls:
            # No ragged-EOF suppression: we want to see the reset, not an EOF.
            sock = client_context(ca).wrap_socket(sock, server_hostname="127.0.0.1",
                                                  suppress_ragged_eofs=False)
        sock.sendall(b"GET /api/user HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        # Python reports a reset under TLS as SSLEOFError (strace shows the
        # recv() failing with ECONNRESET), hence both.
        with pytest.raises((ConnectionResetError, ssl.SSLEOFError)):
            while sock.recv(4096):
                pass
        sock.close()
        assert mock.count() == 1


def test_fault_trickle(aos_mock):
    """Every byte arrives within the client's idle timeout, yet the whole
    response takes far longer: only a total timeout bounds it."""
    aos_mock.fail = "trickle"
    aos_mock.trickle_interval = 0.01
    conn = connect(aos_mock, timeout=0.25)
    start = time.monotonic()
    conn.request("GET", "/api/user")
    r = conn.getresponse()
    assert r.status == 401 and "errors" in json.loads(r.read())
    assert time.monotonic() - start >= 1.0
    conn.close()


def test_delay(aos_mock):
    aos_mock.delay = 0.3
    start = time.monotonic()
    assert login(aos_mock).status == 201
    assert time.monotonic() - start >= 0.3


def test_stop_refuses_then_start_on_same_port(aos_mock):
    token = login(aos_mock).json()["token"]
    port = aos_mock.port
    aos_mock.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    aos_mock.start()
    assert aos_mock.port == port
    assert get_user(aos_mock, token).status == 200  # state survives


def test_stop_drops_open_connections(aos_mock):
    conn = connect(aos_mock)
    conn.request("GET", "/api/user")
    conn.getresponse().read()
    aos_mock.stop()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError)):
        conn.request("GET", "/api/user")
        conn.getresponse()


def test_unknown_fault_is_refused(aos_mock):
    with pytest.raises(ValueError):
        aos_mock.fail = "timeout"
