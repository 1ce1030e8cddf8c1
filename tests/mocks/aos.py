"""Mock Apstra AOS server: login, token validation and logout (DESIGN.md §3).

Behaves like a real AOS server as far as sessionfs can tell: tokens are
HS256 JWTs whose `exp` claim is the expiry, clients authenticate with the
AUTHTOKEN header, errors come back as {"errors": ...}. Every token ever
issued is kept with its lifetime, so a test can check that each token a
reader got was live when it was read.

Run it by hand for manual testing of the daemon:
    /usr/bin/python3 -m tests.mocks.aos [--port N] [--password PW] [--http]
"""

import base64
import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from .common import MockServer, json_body, json_response

DEFAULT_TTL = 24 * 3600  # current AOS servers issue 24 h tokens

LOGIN = "/api/user/login"
LOGOUT = "/api/user/logout"
USER = "/api/user"


@dataclass(frozen=True)
class TokenRecord:
    token: str
    username: str
    issued_at: float          # time.time() when issued
    exp: int                  # the JWT's exp claim (Unix seconds)
    revoked_at: float | None = None  # time.time() of logout / revoke_all()

    def live_at(self, t):
        return (self.issued_at <= t < self.exp
                and (self.revoked_at is None or t < self.revoked_at))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_claims(token):
    """The payload of a JWT, unverified (what a client can read)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _error(status, message):
    return json_response(status, {"errors": message})


class AosMock(MockServer):
    """An AOS server. ca: a common.CA for HTTPS, or None for plain HTTP.

    users: {username: password}. ttl: lifetime of new tokens in seconds,
    settable at any time.
    """

    def __init__(self, ca=None, users=None, ttl=DEFAULT_TTL):
        super().__init__(ca)
        self.ttl = ttl
        self._jwt_key = os.urandom(32)
        self._users = {}      # username -> (password, user id)
        self._passwords = []  # every password ever set, for the log check
        self._tokens = {}     # token -> TokenRecord
        self._state = threading.Lock()
        for user, password in (users or {}).items():
            self.set_password(user, password)
        self.route("POST", LOGIN, self._login)
        self.route("POST", LOGOUT, self._authed(self._logout))
        self.route("GET", USER, self._authed(self._user))
        self.route("GET", "/api/blueprints",
                   self._authed(lambda req, rec: json_response(200, {"items": []})))

    # -- test controls

    def set_password(self, user, password):
        """Create the user, or change its password (live tokens stay live)."""
        with self._state:
            uid = self._users.get(user, (None, str(uuid.uuid4())))[1]
            self._users[user] = (password, uid)
            self._passwords.append(password)

    def password(self, user="admin"):
        with self._state:
            return self._users[user][0]

    def user_id(self, user="admin"):
        with self._state:
            return self._users[user][1]

    def issue_token(self, user="admin", ttl=None, pad=""):
        """A token issued as if by a login, without recording a request;
        pad (a claim of its own) makes it longer."""
        now = time.time()
        exp = int(now + (self.ttl if ttl is None else ttl))
        header = {"alg": "HS256", "typ": "JWT"}
        claims = {"username": user, "user_session": str(uuid.uuid4()),
                  "created_at": datetime.fromtimestamp(now, timezone.utc).isoformat(),
                  "exp": exp}
        if pad:
            claims["pad"] = pad
        signing_input = ".".join(
            b64url(json.dumps(part, separators=(",", ":")).encode())
            for part in (header, claims))
        sig = hmac.new(self._jwt_key, signing_input.encode(), hashlib.sha256).digest()
        token = signing_input + "." + b64url(sig)
        with self._state:
            self._tokens[token] = TokenRecord(token, user, now, exp)
        return token

    def record(self, token):
        """The TokenRecord of a token this mock issued, else None."""
        with self._state:
            return self._tokens.get(token)

    @property
    def tokens(self):
        """Every token issued so far, oldest first."""
        with self._state:
            return sorted(self._tokens.values(), key=lambda r: r.issued_at)

    def is_live(self, token, at=None):
        rec = self.record(token)
        return rec is not None and rec.live_at(time.time() if at is None else at)

    def revoke(self, token):
        with self._state:
            rec = self._tokens[token]
            if rec.revoked_at is None:
                self._tokens[token] = replace(rec, revoked_at=time.time())

    def revoke_all(self):
        """What a server restart does: every token issued so far gets 401."""
        for rec in self.tokens:
            self.revoke(rec.token)

    @property
    def logins(self):
        """Login attempts, failed ones included."""
        return self.count("POST", LOGIN)

    @property
    def logouts(self):
        return self.count("POST", LOGOUT)

    @property
    def validations(self):
        return self.count("GET", USER)

    def secrets(self):
        """Everything that must never show up in the daemon's log."""
        with self._state:
            return list(self._passwords) + list(self._tokens)

    # -- the API

    def _login(self, req):
        body = json_body(req)
        if body is None:
            return _error(400, "Malformed JSON in request body")
        missing = {k: ["Missing data for required field."]
                   for k in ("username", "password")
                   if not isinstance(body.get(k), str)}
        if missing:
            return _error(422, missing)
        with self._state:
            password, uid = self._users.get(body["username"], (None, None))
        if password is None or password != body["password"]:
            return _error(401, "Invalid credentials")
        return json_response(201, {"token": self.issue_token(body["username"]), "id": uid})

    def _authed(self, handler):
        """Wrap a handler so it runs only for a live AUTHTOKEN."""
        def authed(req):
            token = req.headers.get("authtoken")
            if not token:
                return _error(401, "Authentication credentials were not provided")
            rec = self.record(token)
            if rec is None or not rec.live_at(time.time()):
                return _error(401, "Invalid or expired token")
            return handler(req, rec)
        return authed

    def _user(self, req, rec):
        return json_response(200, {"id": self.user_id(rec.username),
                                   "username": rec.username,
                                   "first_name": "", "last_name": "", "email": "",
                                   "roles": ["administrator"]})

    def _logout(self, req, rec):
        self.revoke(rec.token)
        return json_response(200, {})


def _main():
    import argparse
    import tempfile
    from .common import make_ca

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--password", default="admin")
    p.add_argument("--ttl", type=int, default=DEFAULT_TTL)
    p.add_argument("--http", action="store_true", help="plain HTTP, no TLS")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ca = None if args.http else make_ca(tmp)
        mock = AosMock(ca, {"admin": args.password}, ttl=args.ttl)
        mock.port = args.port
        with mock:
            print(f"AOS mock on {mock.url} (admin/{args.password})"
                  + (f", CA {ca.ca}" if ca else ""), flush=True)
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                pass


if __name__ == "__main__":
    _main()
