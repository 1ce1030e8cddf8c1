"""Secrets stay secret; TLS is verified unless told otherwise.

For each provider the daemon runs with -d (its own debug log plus libfuse's)
through everything a user does: log in, read every file, write credentials
(and mfa, session.json), rm, a rejected login, a restart. No password, token,
secret key or session token may show up in its output, nor in status or
.metrics, which anyone allowed to read them may see. The log check is the
automatic one (log_secrets); status and .metrics are saved after each step
into files that the same check reads, so a leak is reported with the step.

TLS (README "Security"): a server certificate from a CA the target does not
trust fails with EPROTO before any credential is sent; validate_certs = false
works, with a warning in the log and "tls_verify": false in status.

Memory (SECURITY.md, "Copies of secrets in the daemon's memory"): for each
provider, the daemon's heap, secure heap and thread stacks, live and cached,
are read through /proc/PID/mem: a written password is there once, and
nothing of a token is left after rm token (no piece of 15 bytes or more).
Needs root (the daemon is not dumpable); works with the ASan build too
(its shadow memory is skipped, its heap is scanned).
"""

import base64
import errno
import hashlib
import itertools
import json
import os
import re
import secrets
import ssl
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.integration.harness import (aos_section, assert_errno, idrac_section, ini_section, new_password,
                                       strerror, sts_section)
from tests.integration.test_oauth2 import oidc, oidc_factory  # noqa: F401 (fixtures used here)
from tests.integration import test_oauth2 as oauth2
from tests.integration.test_sts import MFA_SERIAL, ini_keys
from tests.mocks.common import wait_until
from tests.mocks.sts import new_secret_access_key


# --- helpers ----------------------------------------------------------------

def no_padding(text, rel):
    """Content as the spec says it: no NUL bytes (a size reported as an
    upper bound must come back cut to the real one)."""
    assert "\0" not in text, (f"{rel}: read {len(text)} bytes: {text.index(chr(0))} bytes of "
                               f"content, then NUL padding")
    return text


def read_token(d, rel):
    text = no_padding(d.read(rel), rel)
    token = text.strip()
    assert token, f"{rel} is empty"
    return token


def read_json(d, rel):
    return json.loads(no_padding(d.read(rel), rel))


@pytest.fixture
def outputs(tmp_path, log_secrets):
    """snap(d, step, *rels): save what status, .metrics (and rels) read now
    into files the secret check reads too. Returns the parsed status files."""
    where = tmp_path / "outputs"
    where.mkdir()
    seq = itertools.count()

    def snap(d, step, *rels):
        statuses = {}
        for rel in rels + (".metrics",):
            text = no_padding(d.read(rel), rel)  # status and .metrics never fail
            path = where / f"{next(seq):02d}-{step}-{rel.replace('/', '_')}"
            path.write_text(text)
            log_secrets.watch(path)
            if rel.endswith("status"):
                statuses[rel] = json.loads(text)
        return statuses

    return snap


def assert_debug_output(d):
    """-d really was on: the daemon's debug lines and libfuse's."""
    log = d.log()
    assert "[debug]" in log, "no debug lines from the daemon with -d"
    assert "opcode" in log, "no libfuse debug output with -d"


# --- each provider, with -d --------------------------------------------------

def test_aos(aos_mock, make_daemon, log_secrets, outputs):
    tok, sess, cred, st = ("aos/lab/" + f for f in ("token", "session.json",
                                                     "credentials", "status"))
    d = make_daemon(aos_section(aos_mock), debug=True)

    # Log in; read every file.
    token = read_token(d, tok)
    assert read_json(d, sess)["token"] == token  # served there on purpose
    assert "lab" in d.listdir("aos")
    assert_errno(d.read_err(cred), errno.EACCES, "reading credentials")
    outputs(d, "login", st)

    # New credentials, as user:password and as JSON; rm token; log in again.
    aos_mock.set_password("admin", new_password())
    d.write(cred, f"admin:{aos_mock.password()}\n")
    d.unlink(tok)
    assert aos_mock.is_live(read_token(d, tok))
    aos_mock.set_password("admin", new_password())
    d.write(cred, json.dumps({"username": "admin", "password": aos_mock.password()}))
    d.unlink(tok)
    assert aos_mock.is_live(read_token(d, tok))
    outputs(d, "credentials", st)

    # Adopt a session by writing session.json; a refused one too.
    adopted = aos_mock.issue_token()
    d.write(sess, json.dumps({"server": "127.0.0.1", "port": aos_mock.port, "token": adopted}))
    assert read_token(d, tok) == adopted
    dead = aos_mock.issue_token()
    aos_mock.revoke(dead)
    assert d.write_err(sess, json.dumps({"server": "127.0.0.1", "port": aos_mock.port,
                                         "token": dead})) != 0
    outputs(d, "session-json", st)

    # Restart: the saved session is validated and resumed.
    d.restart()
    assert read_token(d, tok) == adopted
    outputs(d, "restart", st)

    # A rejected login.
    wrong = log_secrets.add(new_password())
    d.write(cred, f"admin:{wrong}\n")
    d.unlink(tok)
    assert_errno(d.read_err(tok), errno.EKEYREJECTED, "wrong password")
    status = outputs(d, "rejected", st)[st]
    assert status["last_error"] and status["errno"] == "EKEYREJECTED"

    d.stop()
    assert_debug_output(d)
    log_secrets.check()


def test_redfish(redfish_mock, make_daemon, log_secrets, outputs):
    mock = redfish_mock
    tok, sess, cred, st, sdir = ("idrac/bmc/" + f for f in (
        "token", "session.json", "credentials", "status", "sessions"))
    d = make_daemon(idrac_section(mock), debug=True)

    token = read_token(d, tok)
    assert read_json(d, sess)["x_auth_token"] == token  # served there on purpose
    other_id, _ = mock.create_session()
    ids = d.listdir(sdir)
    assert other_id in ids and len(ids) == 2
    for sid in ids:
        assert read_json(d, f"{sdir}/{sid}")["Id"] == sid
    d.unlink(f"{sdir}/{other_id}")
    assert mock.session(other_id) is None
    assert_errno(d.read_err(cred), errno.EACCES, "reading credentials")
    outputs(d, "login", st)

    # New credentials; rm token (DELETE of the daemon's session); log in again.
    mock.add_user("root", new_password())
    d.write(cred, f"root:{mock.password()}\n")
    d.unlink(tok)
    token = read_token(d, tok)
    assert [s["token"] for s in mock.live_sessions()] == [token]
    outputs(d, "credentials", st)

    # Restart: logged out on exit, logged in again.
    d.restart()
    read_token(d, tok)
    outputs(d, "restart", st)

    # A rejected login.
    wrong = log_secrets.add(new_password())
    d.write(cred, f"root:{wrong}\n")
    d.unlink(tok)
    assert_errno(d.read_err(tok), errno.EKEYREJECTED, "wrong password")
    status = outputs(d, "rejected", st)[st]
    assert status["last_error"] and status["errno"] == "EKEYREJECTED"

    d.stop()
    assert_debug_output(d)
    log_secrets.check()


def test_sts(sts_mock, make_daemon, log_secrets, outputs):
    mock = sts_mock
    creds, env, cred, mfa, st = ("sts/p/" + f for f in (
        "creds.json", "env", "credentials", "mfa", "status"))
    key1 = mock.new_key(mfa_serial=MFA_SERIAL, mfa_code="123456")
    d = make_daemon(sts_section(mock, key=key1, mfa_serial_number=MFA_SERIAL), debug=True)

    # An MFA code; every file.
    assert_errno(d.read_err(creds), errno.ENOKEY, "before an MFA code")
    d.write(mfa, "123456\n")
    served = read_json(d, creds)
    assert mock.credentials(served["AccessKeyId"]) is not None
    assert served["SessionToken"] in no_padding(d.read(env), env)  # served there on purpose
    for rel in (cred, mfa):
        assert_errno(d.read_err(rel), errno.EACCES, f"reading {rel}")
    outputs(d, "mfa", st)

    # Another key pair, written as INI lines; rm creds.json; a new code.
    key2 = mock.new_key(mfa_serial=MFA_SERIAL, mfa_code="234567")
    d.write(cred, ini_keys(key2, profile="p"))
    d.unlink(creds)
    d.write(mfa, "234567")
    served = read_json(d, creds)
    assert mock.calls[-1].ok and mock.calls[-1].access_key_id == key2[0]
    outputs(d, "credentials", st)

    # Restart: the cached credentials are resumed.
    d.restart()
    assert read_json(d, creds) == served
    outputs(d, "restart", st)

    # A rejected login: wrong secret.
    wrong = log_secrets.add(new_secret_access_key())
    d.write(cred, ini_keys((key2[0], wrong)))
    d.unlink(creds)
    mock.set_mfa_code(key2[0], "345678")
    d.write(mfa, "345678\n")
    assert_errno(d.read_err(creds), errno.EKEYREJECTED, "wrong secret")
    status = outputs(d, "rejected", st)[st]
    assert status["last_error"] and status["errno"] == "EKEYREJECTED"

    d.stop()
    assert_debug_output(d)
    log_secrets.check()


# --- TLS --------------------------------------------------------------------

def target_for(provider, request, name, **overrides):
    """(mock, INI section, the file that needs a login, status path)."""
    if provider == "aos":
        mock = request.getfixturevalue("aos_mock")
        return mock, aos_section(mock, name, **overrides), f"aos/{name}/token", f"aos/{name}/status"
    if provider == "idrac":
        mock = request.getfixturevalue("redfish_mock")
        return (mock, idrac_section(mock, name, **overrides), f"idrac/{name}/token",
                f"idrac/{name}/status")
    mock = request.getfixturevalue("sts_mock")
    key = getattr(mock, "_test_key", None) or mock.new_key()
    mock._test_key = key
    return (mock, sts_section(mock, name, key=key, **overrides), f"sts/{name}/creds.json",
            f"sts/{name}/status")


@pytest.mark.parametrize("provider", ["idrac", "sts"])
def test_certificate_from_another_ca_is_eproto(provider, request, other_ca, make_daemon):
    # (AOS: test_aos.py::test_untrusted_certificate.)
    mock, section, rel, st = target_for(provider, request, "t", ca_path=other_ca.ca)
    d = make_daemon(section)
    assert_errno(d.read_err(rel), errno.EPROTO, "untrusted server certificate")
    status = read_json(d, st)
    assert status["errno"] == "EPROTO" and status["last_error"]
    assert status["tls_verify"] is True
    assert mock.requests == [], "a request got through an untrusted TLS connection"
    assert mock.tls_failures >= 1


@pytest.mark.parametrize("provider", ["aos", "idrac", "sts"])
def test_validate_certs_false(provider, request, other_ca, make_daemon):
    mock, insecure, rel, st = target_for(provider, request, "insecure",
                                         ca_path=other_ca.ca, validate_certs=False)
    _, checked, _, checked_st = target_for(provider, request, "checked")
    d = make_daemon(insecure, checked)
    assert d.read_err(rel) == 0, f"validate_certs = false: {strerror(d.read_err(rel))}"
    assert read_json(d, st)["tls_verify"] is False
    assert read_json(d, checked_st)["tls_verify"] is True
    warnings = [line for line in d.log().splitlines()
                if re.search(r"warn", line, re.I) and re.search(r"valid|verif", line, re.I)]
    assert any("insecure" in line for line in warnings), \
        f"no warning about validate_certs = false in the log:\n{d.log()}"
    assert not any("checked" in line for line in warnings), warnings


# --- copies of secrets in the daemon's memory (SECURITY.md) -----------------

SCAN_MAX_MAPPING = 1 << 30  # larger: a sanitizer's shadow memory, not a heap
SCAN_CHUNK = 1 << 20
FRAGMENT = 12  # bytes: any copied piece of 12 + STRIDE - 1 = 15 bytes or more is found
STRIDE = 4
READERS = 8
SETTLE = 0.3  # seconds: a login thread ends just after it answers its readers
OAUTH2_TTL = 6  # seconds: renewed in the background 2 s after issue (as in test_oauth2.py)


def _writable_anonymous(pid):
    """(start, end) of the brk heap and every anonymous writable mapping:
    malloc arenas, OpenSSL's secure heap, thread stacks (live and cached)."""
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split()
            name = fields[5] if len(fields) > 5 else ""
            if not fields[1].startswith("rw") or name not in ("", "[heap]"):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if end - start <= SCAN_MAX_MAPPING:
                yield start, end


def find_all(pid, needles):
    """{needle: [addresses]} of every occurrence of each needle (bytes) in
    the daemon's heap and stacks, read from /proc/PID/mem in chunks that
    overlap by a needle's length, so none is missed or found twice."""
    hits = {n: [] for n in needles}
    overlap = max(len(n) for n in needles) - 1
    with open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for start, end in _writable_anonymous(pid):
            tail = b""
            for at in range(start, end, SCAN_CHUNK):
                try:
                    mem.seek(at)
                    chunk = mem.read(min(SCAN_CHUNK, end - at))
                except OSError:
                    tail = b""
                    continue
                if chunk.count(0) == len(chunk):  # untouched or wiped: most of it
                    tail = b""
                    continue
                data, base = tail + chunk, at - len(tail)
                for n in needles:
                    i = data.find(n)
                    while i >= 0:
                        if i + len(n) > len(tail):  # not wholly inside the old tail
                            hits[n].append(base + i)
                        i = data.find(n, i + 1)
                tail = data[-overlap:] if overlap else b""
    return hits


def pieces(secret):
    """The FRAGMENT-byte pieces of secret, every STRIDE bytes (and its end)."""
    b = secret.encode()
    starts = sorted(set(range(0, len(b) - FRAGMENT + 1, STRIDE)) | {len(b) - FRAGMENT})
    return [b[i:i + FRAGMENT] for i in starts]


def mappings(pid):
    """{start: (end, what)} of the scanned mappings: the secure heap (locked,
    not dumped), a live thread's stack (its stack pointer, from
    /proc/PID/task/TID/syscall, lies in it), or anonymous (malloc arenas and
    the cached stacks of ended threads)."""
    result, flags, start = {}, {}, None
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):
                start = int(line.split("-")[0], 16)
            elif line.startswith("VmFlags:"):
                flags[start] = line.split()[1:]
    sps = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                fields = f.read().split()
        except OSError:
            continue
        if len(fields) >= 3:
            sps.append((int(fields[-2], 16), tid))
    for start, end in _writable_anonymous(pid):
        tids = [tid for sp, tid in sps if start <= sp < end]
        what = ("secure heap" if "dd" in flags.get(start, ()) else
                f"stack of thread {tids[0]}" if tids else "anonymous")
        result[start] = (end, f"{what}, {(end - start) >> 10} KiB")
    return result


def copies(pid, secrets_):
    """For each secret (str): (whole copies, places with a piece of it, where
    those are), a place being a run of addresses no further apart than the
    secret's length, so a whole copy counts once and a stray piece of 15
    bytes or more counts too."""
    needles = {s: [s.encode()] + pieces(s) for s in secrets_}
    hits = find_all(pid, [n for ns in needles.values() for n in ns])
    maps = mappings(pid)
    result = {}
    for s, ns in needles.items():
        found = sorted((a, s.encode().index(n)) for n in ns[1:] for a in hits[n])
        places = []
        for i, (a, off) in enumerate(found):
            if i == 0 or a - found[i - 1][0] > len(s):
                places.append([a, off, off + FRAGMENT])
            else:
                places[-1][2] = max(places[-1][2], off + FRAGMENT)
        result[s] = (len(hits[ns[0]]), len(places), [
            f"bytes {lo}-{hi} of {len(s)} at {a:#x} ({maps[m][1]})"
            for a, lo, hi in places for m in maps if m <= a < maps[m][0]])
    return result


class Scenario:
    """A provider's part of the memory test: a daemon whose target got its
    credentials (the password) by a write, login() (read the token: returns
    {name: secret} for what must not outlive rm), files() to read, remove()
    (rm token or creds.json, and its check), and for a background renewal
    short(on) (sessions issued from now on are short-lived, or not) and
    renew() (wait for the renewal: returns the new {name: secret})."""

    def __init__(self, d, password, login, files, remove, short=None, renew=None):
        self.d, self.password, self.login, self.files = d, password, login, files
        self.remove, self.short, self.renew = remove, short, renew


def _aos(request, make_daemon):
    mock = request.getfixturevalue("aos_mock")
    d = make_daemon(aos_section(mock, "lab", user=None, password=None))
    password = mock.password("admin")
    d.write("aos/lab/credentials", f"admin:{password}\n")

    def login():
        token = read_token(d, "aos/lab/token")
        assert mock.is_live(token)
        return {"token": token}

    def remove(tokens):
        d.unlink("aos/lab/token")  # the logout goes on in the background
        assert wait_until(lambda: not mock.is_live(tokens["token"]), 10), "rm token logs out"
    return Scenario(d, password, login, lambda: ["aos/lab/" + f for f in ("token", "session.json", "status")],
                    remove)


def _redfish(request, make_daemon):
    mock = request.getfixturevalue("redfish_mock")
    d = make_daemon(idrac_section(mock, "bmc", user=None, password=None))
    password = mock.password("root")
    d.write("idrac/bmc/credentials", f"root:{password}\n")

    def login():
        token = read_token(d, "idrac/bmc/token")
        assert [s["token"] for s in mock.live_sessions()] == [token]
        return {"X-Auth-Token": token}

    def remove(tokens):
        d.unlink("idrac/bmc/token")  # the logout goes on in the background
        assert wait_until(lambda: mock.live_sessions() == [], 10), "rm token deletes the session"
    # sessions/<id>: a request with the token from the FUSE loop's threads.
    return Scenario(d, password, login, lambda: ["idrac/bmc/" + f for f in ("token", "session.json", "status")] + [
        f"idrac/bmc/sessions/{sid}" for sid in d.listdir("idrac/bmc/sessions")], remove)


def _sts(request, make_daemon):
    mock = request.getfixturevalue("sts_mock")
    key = mock.new_key()
    d = make_daemon(sts_section(mock, "p"))
    d.write("sts/p/credentials", ini_keys(key, profile="p"))

    def login():
        served = read_json(d, "sts/p/creds.json")
        assert mock.credentials(served["AccessKeyId"]) is not None
        return {"SessionToken": served["SessionToken"], "SecretAccessKey": served["SecretAccessKey"]}

    def remove(tokens):
        d.unlink("sts/p/creds.json")
    return Scenario(d, key[1], login, lambda: ["sts/p/" + f for f in ("creds.json", "env", "status")], remove)


class JwtIssuer:
    """A token endpoint as Keycloak's: client credentials (HTTP Basic) get a
    signed JWT access token of about Keycloak's size (1.1 KB), expiring after
    expires_in seconds; RFC 7009 revocation. Tokens are checked here, as a
    resource server would ask: active(token)."""

    def __init__(self, ca, client_id, client_secret, ttl):
        outer = self
        self.issued, self.revoked, self.ttl, self.secret = [], set(), ttl, client_secret
        self.key = os.urandom(32)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                form = urllib.parse.parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
                basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {basic}":
                    self.answer(401, {"error": "invalid_client"})
                elif self.path == "/token" and form.get("grant_type") == ["client_credentials"]:
                    self.answer(200, {"access_token": outer.issue(), "token_type": "Bearer",
                                      "expires_in": outer.ttl, "scope": "api:read"})
                elif self.path == "/revoke":
                    outer.revoked.update(form.get("token", []))
                    self.answer(200, {})
                else:
                    self.answer(400, {"error": "invalid_request"})

            def answer(self, status, obj):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ca.cert, ca.key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"

    def issue(self):
        b64 = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")
        now = int(time.time())
        claims = {"exp": now + self.ttl, "iat": now, "jti": str(uuid.uuid4()), "iss": self.url + "/realms/x",
                  "aud": "account", "sub": str(uuid.uuid4()), "typ": "Bearer", "azp": "app",
                  "realm_access": {"roles": ["offline_access", "uma_authorization", "default-roles-x"]},
                  "resource_access": {"account": {"roles": ["manage-account", "view-profile"]}},
                  "scope": "api:read profile email", "clientHost": "127.0.0.1", "clientAddress": "127.0.0.1",
                  "client_id": "app", "preferred_username": "service-account-app", "email_verified": False}
        signing_input = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "k1"}).encode()) + "." + \
            b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = hashlib.sha512(self.key + signing_input.encode()).digest() * 4  # RS256's 256 bytes
        token = signing_input + "." + b64(sig)
        self.issued.append(token)
        return token

    def active(self, token):
        return token in self.issued and token not in self.revoked

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwt_issuer(ca, log_secrets):
    issuer = JwtIssuer(ca, "app", "cs-" + secrets.token_urlsafe(24), 3600)
    log_secrets.add_source(lambda: issuer.issued + [issuer.secret])
    yield issuer
    issuer.close()


def _oauth2(request, make_daemon):
    issuer = request.getfixturevalue("jwt_issuer")
    d = make_daemon(ini_section('oauth2 "api"', {
        "token_url": issuer.url + "/token", "revocation_url": issuer.url + "/revoke", "scope": "api:read",
        "ca_path": request.getfixturevalue("ca").ca}), timeout=10)
    password = issuer.secret
    d.write("oauth2/api/credentials", f"app:{password}\n")

    def login():
        token = d.read("oauth2/api/token")
        assert issuer.active(token)
        return {"access token": token}

    def remove(tokens):
        d.unlink("oauth2/api/token")  # the revocation goes on in the background
        assert wait_until(lambda: not issuer.active(tokens["access token"]), 10), "rm token revokes it"

    def short(on):
        issuer.ttl = OAUTH2_TTL if on else 3600

    def renew():
        """The next token, which a refresh worker got (read meanwhile, as it
        renews only what is read); rm comes well before the one after."""
        first = d.read("oauth2/api/token")
        deadline = time.monotonic() + OAUTH2_TTL + 2
        while time.monotonic() < deadline:
            time.sleep(0.2)
            token = d.read("oauth2/api/token")
            if token != first:
                return {"access token": token}
        pytest.fail(f"no renewal in {OAUTH2_TTL + 2} s of {OAUTH2_TTL} s tokens")
    return Scenario(d, password, login,
                    lambda: ["oauth2/api/" + f for f in ("token", "header", "session.json", "status")], remove,
                    short, renew)


@pytest.mark.parametrize("provider", ["aos", "redfish", "sts", "oauth2"])
def test_secrets_do_not_outlive_their_use(provider, request, make_daemon):
    """SECURITY.md: after a credentials write and the login it enables, the
    password is in the daemon's memory once (the secure heap's copy); after
    rm token (rm creds.json), nothing of the old token is left, not even a
    piece of 15 bytes on the stack of a thread that handled it. Twice: after
    one reader's login (its thread has ended), then after many readers at
    once (the FUSE loop's threads) and, for OAuth 2.0, a background renewal
    (a refresh worker, which lives on)."""
    if os.geteuid() != 0:
        pytest.skip("reading the daemon's memory needs root (the daemon is not dumpable)")
    sc = globals()["_" + provider](request, make_daemon)
    problems, figures = [], []

    # Every scan after rm finds no session alive, so a piece of what tokens
    # share (a JWT's header) counts as a piece of the old token too.
    def check(step, secrets_, want):
        found = copies(sc.d.proc.pid, list(secrets_.values()))
        for name, v in secrets_.items():
            figures.append(f"{step}: {name} {found[v][0]} whole / {found[v][1]} with a piece")
            if found[v][:2] != want:
                problems.append(f"{step}: {name}: {found[v][0]} copies, {found[v][1]} places with a "
                                f"piece of it: {found[v][2]}")

    tokens = sc.login()
    for rel in sc.files():
        sc.d.read(rel)
    time.sleep(SETTLE)
    check("after login", {"password": sc.password}, (1, 1))
    sc.remove(tokens)
    time.sleep(SETTLE)
    check("after rm", {f"old {name}": v for name, v in tokens.items()}, (0, 0))

    if sc.short:
        sc.short(True)
    tokens = sc.login()
    with ThreadPoolExecutor(READERS) as pool:
        assert all(pool.map(sc.d.read, sc.files() * READERS * 4))
    if sc.renew:
        tokens = sc.renew()
    sc.remove(tokens)
    time.sleep(SETTLE)
    check("after readers and rm", {f"old {name}": v for name, v in tokens.items()}, (0, 0))

    # A restart: the password comes from the state dir now. (No renewal
    # running: it would hold a second copy while in use.)
    if sc.short:
        sc.short(False)
    sc.d.restart()
    sc.login()
    for rel in sc.files():
        sc.d.read(rel)
    time.sleep(SETTLE)
    check("after restart", {"password": sc.password}, (1, 1))
    print(f"{provider}: " + "; ".join(figures))
    assert not problems, "\n".join(problems)
