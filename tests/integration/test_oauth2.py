"""OAuth 2.0 client credentials (RFC 6749 §4.4) end to end, against a real,
independent authorization server: node's oidc-provider (OpenID Certified),
installed into tests/oauth2 by contrib/install-deps and run here on
127.0.0.1 over HTTPS with the test CA. Tokens are checked the way a resource
server checks them: through the provider's introspection endpoint (RFC 7662).

  oauth2/<name>/token         r  the access token
  oauth2/<name>/header        r  "Authorization: Bearer <token>", no newline
  oauth2/<name>/session.json  r  token_type, scope, expires_at (no token, no refresh token)
  oauth2/<name>/credentials   w  client_id:client_secret or {"client_id","client_secret"}
  oauth2/<name>/status        r
"""

import base64
import calendar
import errno
import json
import os
import secrets
import select
import shutil
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.harness import assert_errno, ini_section
from tests.mocks.common import wait_until

NODE_DIR = Path(__file__).resolve().parents[1] / "oauth2"
START_WAIT = 30  # seconds oidc-provider gets to listen (node's start on a loaded machine)

TOKEN = "oauth2/api/token"
HEADER = "oauth2/api/header"
SESSION = "oauth2/api/session.json"
CREDENTIALS = "oauth2/api/credentials"
STATUS = "oauth2/api/status"


class OidcProvider:
    """oidc-provider with four clients: app (client_credentials, scopes
    api:read api:write), app-post (the same, client_secret_post only), web
    (authorization_code only) and rs (the resource server: introspection)."""

    def __init__(self, ca, workdir, ttl):
        self.ca = ca
        self.workdir = Path(workdir)
        self.ttl = ttl
        self.secrets = {c: "cs-" + secrets.token_urlsafe(24) for c in ("app", "app-post", "web", "rs")}
        self.proc = None
        self.port = None

    def _clients(self):
        base = {"redirect_uris": [], "response_types": []}
        return [
            dict(base, client_id="app", client_secret=self.secrets["app"], grant_types=["client_credentials"],
                 scope="api:read api:write"),
            dict(base, client_id="app-post", client_secret=self.secrets["app-post"],
                 grant_types=["client_credentials"], scope="api:read",
                 token_endpoint_auth_method="client_secret_post"),
            dict(client_id="web", client_secret=self.secrets["web"], grant_types=["authorization_code"],
                 response_types=["code"], redirect_uris=["https://127.0.0.1/cb"]),
            dict(base, client_id="rs", client_secret=self.secrets["rs"], grant_types=[]),
        ]

    def start(self):
        config = self.workdir / "oidc.json"
        config.write_text(json.dumps({"cert": str(self.ca.cert), "key": str(self.ca.key), "ttl": self.ttl,
                                      "scopes": ["api:read", "api:write", "api:admin"],
                                      "clients": self._clients()}))
        self.log = open(self.workdir / "oidc.log", "w")
        self.proc = subprocess.Popen(["node", str(NODE_DIR / "server.mjs"), str(config)], cwd=NODE_DIR,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline and self.proc.poll() is None:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                if line.startswith("listening "):
                    self.port = int(line.split()[1])
                    return self
        self.stop()
        raise RuntimeError(f"oidc-provider did not start: {(self.workdir / 'oidc.log').read_text()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc:
            self.proc.stdout.close()
            self.log.close()

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    def _post(self, path, form, client="rs"):
        req = urllib.request.Request(self.url + path, data=urllib.parse.urlencode(form).encode(), method="POST")
        req.add_header("Authorization", "Basic " + base64.b64encode(
            f"{client}:{self.secrets[client]}".encode()).decode())
        ctx = ssl.create_default_context(cafile=str(self.ca.ca))
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return json.loads(resp.read())

    def introspect(self, token):
        """RFC 7662, as the resource server rs asks."""
        return self._post("/token/introspection", {"token": token})

    def section(self, name="api", client="app", **overrides):
        values = {"token_url": self.url + "/token", "client_id": client,
                  "client_secret": self.secrets.get(client), "scope": "api:read", "ca_path": self.ca.ca}
        values.update(overrides)
        return ini_section(f'oauth2 "{name}"', values)


@pytest.fixture
def oidc_factory(ca, tmp_path, log_secrets):
    if not shutil.which("node") or not (NODE_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("oidc-provider is not installed: run contrib/install-deps (npm ci in tests/oauth2)")
    servers = []

    def factory(ttl=600):
        server = OidcProvider(ca, tmp_path, ttl)
        for s in server.secrets.values():
            log_secrets.add(s)
        servers.append(server)
        return server.start()

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def oidc(oidc_factory):
    return oidc_factory()


class ResourceServer:
    """An API that accepts a bearer token when oidc-provider's introspection
    says it is active: GET /api → 200 {"client_id","scope"}, else 401."""

    def __init__(self, oidc):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                auth = self.headers.get("Authorization", "")
                info = outer.oidc.introspect(auth[7:]) if auth.startswith("Bearer ") else {}
                if self.path != "/api" or not info.get("active"):
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Bearer error="invalid_token"')
                    body = b'{"error":"invalid_token"}'
                else:
                    self.send_response(200)
                    body = json.dumps({"client_id": info["client_id"], "scope": info.get("scope")}).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt, *args):
                pass

        self.oidc = oidc
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/api"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def resource_server(oidc):
    rs = ResourceServer(oidc)
    yield rs
    rs.close()


def status(d, name="api"):
    return json.loads(d.read(f"oauth2/{name}/status"))


def as_unix(iso):
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))


# --- tests ------------------------------------------------------------------

def test_token_header_session_json(oidc, make_daemon, log_secrets):
    d = make_daemon(oidc.section())
    assert d.listdir("oauth2/api") == ["credentials", "header", "session.json", "status", "token"]
    token = d.read(TOKEN)
    log_secrets.add(token)
    info = oidc.introspect(token)
    assert info["active"] and info["client_id"] == "app" and info["scope"] == "api:read", info
    assert d.read(HEADER) == f"Authorization: Bearer {token}", "the whole header, no newline"
    session = json.loads(d.read(SESSION))
    assert session["token_type"] == "Bearer" and session["scope"] == "api:read"
    assert abs(as_unix(session["expires_at"]) - info["exp"]) <= 2, (session, info)
    assert not {"access_token", "refresh_token"} & set(session), "session.json holds no token"
    st = status(d)
    assert st["state"] == "valid" and st["provider"] == "oauth2" and st["counters"]["logins"] == 1, st
    assert d.read(TOKEN) == token, "served from the session, no second token request"


def test_curl_with_header_against_resource_server(oidc, resource_server, make_daemon, log_secrets):
    d = make_daemon(oidc.section())
    log_secrets.add(d.read(TOKEN))
    header = d.path(HEADER)
    run = subprocess.run(["bash", "-c", 'curl -sS --fail --max-time 10 -H "$(cat "$1")" "$2"', "curl",
                         header, resource_server.url], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"client_id": "app", "scope": "api:read"}
    # The resource server does check: a made-up token is refused.
    bad = subprocess.run(["curl", "-sS", "--fail", "--max-time", "10", "-H", "Authorization: Bearer made-up",
                          resource_server.url], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 22, bad


def test_expiry_and_renewal(oidc_factory, make_daemon, log_secrets):
    """Tokens of 6 s: served while more than 3 s are left, renewed in the
    background 2 s after issue while read. Every token a reader gets is active."""
    oidc = oidc_factory(ttl=6)
    d = make_daemon(oidc.section(), timeout=10)
    tokens = []
    deadline = time.monotonic() + 14
    while time.monotonic() < deadline:
        token = d.read(TOKEN)
        log_secrets.add(token)
        if not tokens or tokens[-1] != token:
            tokens.append(token)
            info = oidc.introspect(token)
            assert info["active"] and info["exp"] - time.time() > 1, "a token about to expire was served"
        time.sleep(0.3)
    st = status(d)
    assert len(tokens) >= 3, f"{len(tokens)} tokens in 14 s of 6 s tokens"
    assert st["counters"]["refreshes"] >= 1, f"no background renewal: {st['counters']}"
    assert st["state"] == "valid", st


def test_bad_secret_is_ekeyrejected(oidc, make_daemon, log_secrets):
    wrong = "cs-wrong-" + secrets.token_urlsafe(12)
    log_secrets.add(wrong)
    d = make_daemon(oidc.section(client_secret=wrong))
    assert_errno(d.read_err(TOKEN), errno.EKEYREJECTED, "wrong client secret")
    st = status(d)
    assert st["errno"] == "EKEYREJECTED" and "invalid_client" in st["last_error"], st
    assert "client authentication failed" in st["last_error"], "status carries error_description"
    # New credentials, as JSON: accepted, and the next read gets a token.
    d.write(CREDENTIALS, json.dumps({"client_id": "app", "client_secret": oidc.secrets["app"]}))
    token = d.read(TOKEN)
    log_secrets.add(token)
    assert oidc.introspect(token)["active"]


def test_bad_scope_is_einval(oidc, make_daemon):
    d = make_daemon(oidc.section(scope="api:admin"))
    assert_errno(d.read_err(TOKEN), errno.EINVAL, "a scope the client may not have")
    st = status(d)
    assert st["errno"] == "EINVAL" and "invalid_scope" in st["last_error"], st
    assert "requested scope is not allowed" in st["last_error"], st


def test_grant_not_allowed(oidc, make_daemon):
    """oidc-provider answers a client without the client_credentials grant
    with invalid_request (RFC 6749 would say unauthorized_client; Keycloak
    does, see below): EINVAL, and status says why."""
    d = make_daemon(oidc.section(client="web", scope=None))
    assert_errno(d.read_err(TOKEN), errno.EINVAL)
    assert "requested grant type is not allowed for this client" in status(d)["last_error"], status(d)


class KeycloakLike:
    """A token endpoint answering as Keycloak does for a client whose service
    account is off (400 unauthorized_client), or failing (503)."""

    def __init__(self, ca, status, body):
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
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
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/realms/x/protocol/openid-connect/token"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("status_code, body, expected, words", [
    (400, b'{"error":"unauthorized_client","error_description":"Client not enabled to retrieve service account"}',
     errno.EACCES, "Client not enabled to retrieve service account"),
    (503, b'{"error":"temporarily_unavailable"}', errno.EIO, "temporarily_unavailable"),
    (500, b"<html>Internal Server Error</html>", errno.EIO, "Internal Server Error"),
])
def test_error_mapping(ca, make_daemon, log_secrets, status_code, body, expected, words):
    server = KeycloakLike(ca, status_code, body)
    secret = "s-" + secrets.token_urlsafe(12)
    log_secrets.add(secret)
    try:
        d = make_daemon(ini_section('oauth2 "api"', {"token_url": server.url, "client_id": "c",
                                                     "client_secret": secret, "ca_path": ca.ca}))
        assert_errno(d.read_err(TOKEN), expected)
        assert words in status(d)["last_error"], status(d)
    finally:
        server.close()


def test_jwt_exp_without_expires_in(ca, make_daemon, log_secrets):
    """A server that sends a JWT and no expires_in: the token expires at its exp."""
    b64 = lambda obj: base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    exp = int(time.time()) + 3600
    jwt = f"{b64({'alg': 'RS256'})}.{b64({'exp': exp, 'sub': 'c'})}.c2lnbmF0dXJl"
    log_secrets.add(jwt)
    server = KeycloakLike(ca, 200, json.dumps({"access_token": jwt, "token_type": "bearer"}).encode())
    secret = "s-" + secrets.token_urlsafe(12)
    log_secrets.add(secret)
    try:
        d = make_daemon(ini_section('oauth2 "api"', {"token_url": server.url, "client_id": "c",
                                                     "client_secret": secret, "ca_path": ca.ca}))
        assert d.read(TOKEN) == jwt
        assert as_unix(json.loads(d.read(SESSION))["expires_at"]) == exp
    finally:
        server.close()


def test_client_secret_post(oidc, make_daemon, log_secrets):
    d = make_daemon(oidc.section(client="app-post", auth_method="client_secret_post"))
    token = d.read(TOKEN)
    log_secrets.add(token)
    assert oidc.introspect(token)["client_id"] == "app-post"
    # A wrong secret in the body is refused as one in the header is.
    wrong = "cs-wrong-" + secrets.token_urlsafe(12)
    log_secrets.add(wrong)
    d2 = make_daemon(oidc.section(name="bad", client="app-post", client_secret=wrong,
                                  auth_method="client_secret_post"))
    assert_errno(d2.read_err("oauth2/bad/token"), errno.EKEYREJECTED)
    assert "invalid_client" in status(d2, "bad")["last_error"]


def test_credentials_write(oidc, make_daemon, log_secrets):
    d = make_daemon(oidc.section(client_id=None, client_secret=None))
    assert_errno(d.read_err(TOKEN), errno.ENOKEY, "no client credentials")
    assert "client_id:client_secret" in status(d)["last_error"]
    assert_errno(d.write_err(CREDENTIALS, "no-colon\n"), errno.EINVAL)
    d.write(CREDENTIALS, f"app:{oidc.secrets['app']}\n")
    token = d.read(TOKEN)
    log_secrets.add(token)
    assert oidc.introspect(token)["active"]


def test_restart_resumes(oidc, make_daemon, log_secrets):
    d = make_daemon(oidc.section())
    token = d.read(TOKEN)
    log_secrets.add(token)
    d.restart()
    assert d.read(TOKEN) == token, "the saved token is served after a restart"
    assert status(d)["counters"]["logins"] == 0, "no new token request"
    assert oidc.introspect(token)["active"]


def test_rm_token_revokes(oidc, make_daemon, log_secrets):
    d = make_daemon(oidc.section(revocation_url=oidc.url + "/token/revocation"))
    token = d.read(TOKEN)
    log_secrets.add(token)
    os.unlink(d.path(TOKEN))  # the revocation goes on in the background
    assert wait_until(lambda: not oidc.introspect(token)["active"], 10), "rm token revokes it (RFC 7009)"
    again = d.read(TOKEN)
    log_secrets.add(again)
    assert again != token and oidc.introspect(again)["active"]


def test_mkdir_with_defaults(oidc, make_daemon, log_secrets):
    """A target made with mkdir takes everything from the [oauth2] defaults
    (the client credentials only where `hosts` allows): its name is a name,
    not a host."""
    defaults = oidc.section(hosts="report*").replace('[oauth2 "api"]', "[oauth2]")
    d = make_daemon(defaults)
    os.mkdir(d.path("oauth2/reports"))
    token = d.read("oauth2/reports/token")
    log_secrets.add(token)
    assert oidc.introspect(token)["active"]
    assert "reports" in d.listdir("oauth2")
    os.mkdir(d.path("oauth2/other"))
    assert_errno(d.read_err("oauth2/other/token"), errno.ENOKEY, "the defaults' secret does not follow any name")
