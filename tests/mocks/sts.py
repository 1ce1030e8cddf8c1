"""Mock AWS STS: GetSessionToken, AssumeRole and GetCallerIdentity (DESIGN.md §3).

Behaves like the real service as far as a client can tell: the AWS query
protocol (form-encoded parameters, POST or GET on /), every request
authenticated with Signature Version 4 and checked the way STS checks it
(key, session token, clock skew, signature over exactly the SignedHeaders),
responses and errors in STS's XML shapes with its codes, messages and HTTP
statuses. Signatures are recomputed with botocore's SigV4Auth, an
implementation independent of the libcurl signer the daemon uses.

Roles (add_role) have a trust policy as far as a test needs one: the source
keys (or roles, for chaining) allowed to assume them, an ExternalId, MFA.
Roles are assumed with long-term keys or temporary credentials; role
chaining is limited to one hour, as in AWS; a session made with MFA (by
GetSessionToken, or AssumeRole with a code) carries MFA on to the roles
assumed with it.

Every temporary credential issued is kept with its expiry, and every call
with its action, parameters and outcome (calls_of(action)), so a test can
check what the daemon asked for and whether what it serves is still valid.

Run it by hand for manual testing of the daemon:
    /usr/bin/python3 -m tests.mocks.sts [--port N] [--http] [--mfa-serial ARN]
"""

import base64
import hashlib
import hmac
import re
import secrets as _secrets
import string
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from .common import MockServer, Response

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
VERSION = "2011-06-15"
SERVICE = "sts"
ALGORITHM = "AWS4-HMAC-SHA256"

DEFAULT_DURATION = 43200            # 12 h, STS's default for IAM users
MIN_DURATION, MAX_DURATION = 900, 129600
MAX_SKEW = 15 * 60                  # how far X-Amz-Date may be from now
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_USER = "sessionfs-test"

# Values of StsMock.sts_fault: (HTTP status, code, message).
STS_FAULTS = {
    "throttling": (400, "Throttling", "Rate exceeded"),
    "region_disabled": (403, "RegionDisabledException",
                        f"STS is not activated in this region for account:{DEFAULT_ACCOUNT}. "
                        "Your account administrator can activate STS in this region using "
                        "the IAM Console."),
    "unavailable": (503, "ServiceUnavailable", "Service is unavailable. Please try again later."),
}

MSG_INVALID_TOKEN = "The security token included in the request is invalid."
MSG_EXPIRED_TOKEN = "The security token included in the request is expired"
MSG_SIGNATURE = ("The request signature we calculated does not match the signature "
                 "you provided. Check your AWS Secret Access Key and signing method. "
                 "Consult the service documentation for details.")
MSG_MFA_CODE = "MultiFactorAuthentication failed with invalid MFA one time pass code."
MSG_MFA_BOTH = ("MultiFactorAuthentication failed, must provide both MFA serial number "
                "and one time pass code.")
MSG_MFA_SERIAL = ("MultiFactorAuthentication failed, unable to validate MFA code.  "
                  "Please verify your MFA serial number is valid and associated with "
                  "this user.")
MSG_SESSION_CREDS = "Cannot call GetSessionToken with session credentials"
MSG_ROLE_CHAINING = ("The requested DurationSeconds exceeds the 1 hour session limit for "
                     "roles assumed by role chaining.")
MSG_MAX_SESSION = ("The requested DurationSeconds exceeds the MaxSessionDuration set for "
                   "this role.")
ROLE_CHAINING_MAX = 3600
DEFAULT_ROLE_DURATION = 3600        # AssumeRole without DurationSeconds

_KEY_ALPHABET = string.ascii_uppercase + "234567"
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


# --- credentials ------------------------------------------------------------

def _key_id(prefix):
    return prefix + "".join(_secrets.choice(_KEY_ALPHABET) for _ in range(16))


def _with_slash_and_plus(make):
    """make() until the value holds both '/' and '+': real AWS secrets and
    tokens often do, and those are the characters quoting code gets wrong."""
    while True:
        value = make()
        if "/" in value and "+" in value:
            return value


def new_access_key_id():
    """A long-term access key id: AKIA + 16 characters, as IAM makes them."""
    return _key_id("AKIA")


def new_secret_access_key():
    """40 characters of the base64 alphabet, '/' and '+' included."""
    return _with_slash_and_plus(
        lambda: "".join(_secrets.choice(_SECRET_ALPHABET) for _ in range(40)))


def new_key_pair():
    """(access key id, secret access key) for add_key()."""
    return new_access_key_id(), new_secret_access_key()


def _new_session_token():
    # Real GetSessionToken tokens are a few hundred base64 characters; this
    # one ends in '=' (a 302-byte payload), as real ones may.
    return _with_slash_and_plus(lambda: "IQoJb3JpZ2luX2VjE" + base64.b64encode(
        _secrets.token_bytes(302)).decode())


def format_expiration(t, ms=False):
    """STS's Expiration: ISO 8601 UTC, to the second (or millisecond)."""
    dt = datetime.fromtimestamp(t, timezone.utc)
    if ms:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class LongTermKey:
    access_key_id: str
    secret_access_key: str = field(repr=False)
    user: str                       # the IAM user the key belongs to
    mfa_serial: str | None = None   # set: GetSessionToken requires MFA
    mfa_code: str | None = None     # the code that is valid now


@dataclass(frozen=True)
class Role:
    """An IAM role and what its trust policy allows."""
    arn: str
    role_id: str                    # AROA...
    trusted: frozenset              # access key ids, user ARNs or role ARNs
    external_id: str | None = None  # set: sts:ExternalId must match
    mfa: bool = False               # aws:MultiFactorAuthPresent required
    max_duration: int = 3600        # MaxSessionDuration

    @property
    def name(self):
        return self.arn.rsplit("/", 1)[1]


@dataclass(frozen=True)
class IssuedCredentials:
    """Temporary credentials issued by GetSessionToken or AssumeRole."""
    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: float       # Unix time (what Expiration says)
    expiration_text: str    # Expiration as sent
    issued_at: float        # the mock's clock when issued
    duration_seconds: int   # what the caller asked for (or the default)
    parent: str             # access key id of the credentials that asked for them
    user: str               # the IAM user at the root of it all
    mfa: bool               # issued after an MFA check (or from such a session)
    root_key: str = ""      # the long-term key at the root of it all
    role_arn: str | None = None          # AssumeRole: the role,
    assumed_role_arn: str | None = None  # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION
    assumed_role_id: str | None = None   # AROA...:SESSION

    def valid_at(self, t):
        return self.issued_at <= t < self.expiration


@dataclass(frozen=True)
class Call:
    """One request to the STS action dispatcher, with its outcome."""
    time: float                 # time.time() when handled
    action: str | None          # the Action parameter as sent
    params: dict                # every parameter but Action and Version, as sent
    access_key_id: str | None   # from the Authorization header, if any
    status: int                 # HTTP status of the answer
    error: str | None           # error code, None on success
    credentials: IssuedCredentials | None = None  # what was issued, if anything

    @property
    def ok(self):
        return self.error is None

    @property
    def duration_seconds(self):
        return self.params.get("DurationSeconds")

    @property
    def serial_number(self):
        return self.params.get("SerialNumber")

    @property
    def token_code(self):
        return self.params.get("TokenCode")


# --- errors and responses ---------------------------------------------------

class StsError(Exception):
    def __init__(self, status, code, message):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def _signature_error(message=MSG_SIGNATURE):
    return StsError(403, "SignatureDoesNotMatch", message)


def _incomplete(message):
    return StsError(400, "IncompleteSignature", message)


def _xml(elem, children, pretty, depth=0):
    """children: a string (text) or a list of (name, children)."""
    pad = "\n" + "  " * depth if pretty else ""
    if isinstance(children, str):
        return f"{pad}<{elem}>{escape(children)}</{elem}>"
    inner = "".join(_xml(n, c, pretty, depth + 1) for n, c in children)
    return f"{pad}<{elem}>{inner}{pad}</{elem}>"


def _document(root, children, pretty):
    # Real STS indents by two spaces and ends with a newline.
    body = _xml(root, children, pretty)
    body = body.replace(f"<{root}>", f'<{root} xmlns="{NAMESPACE}">', 1).lstrip("\n")
    return (body + ("\n" if pretty else "")).encode()


def _xml_response(status, body, request_id):
    return Response(status, body, {"x-amzn-RequestId": request_id,
                                   "Content-Type": "text/xml"})


# --- SigV4 verification -----------------------------------------------------

_AMZ_DATE = re.compile(r"\d{8}T\d{6}Z")
_CREDENTIAL_KEY = re.compile(r"Credential=([^/,\s]+)/")


class _Verifier(SigV4Auth):
    """botocore's SigV4 signer, canonicalising exactly the headers the
    client listed in SignedHeaders (botocore's own choice of headers, e.g.
    leaving out User-Agent, is a signing policy, not part of the check)."""

    def __init__(self, credentials, region, signed_headers):
        super().__init__(credentials, SERVICE, region)
        self._signed_headers = signed_headers

    def headers_to_sign(self, request):
        headers = HTTPHeaders()
        for name in self._signed_headers:
            headers[name] = request.headers[name]
        return headers


def _parse_authorization(value):
    """(access key id, scope parts, signed header names, signature)."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(f"Unsupported AWS 'algorithm': '{algorithm}'")
    parts = {}
    for item in rest.split(","):
        name, eq, val = item.strip().partition("=")
        if eq:
            parts[name] = val
    missing = [p for p in ("Credential", "Signature", "SignedHeaders") if p not in parts]
    if missing:
        raise _incomplete(" ".join(f"Authorization header requires '{p}' parameter."
                                   for p in missing)
                          + f" Authorization={value}")
    scope = parts["Credential"].split("/")
    if len(scope) != 5 or not all(scope):
        raise _incomplete(f"Authorization header requires 'Credential' parameter. "
                          f"Authorization={value}")
    signed = parts["SignedHeaders"].split(";")
    return scope[0], scope[1:], signed, parts["Signature"]


def _request_time(req):
    """The request's signing time as (SigV4 timestamp, Unix time)."""
    amz_date = req.headers.get("x-amz-date")
    if amz_date is not None:
        if not _AMZ_DATE.fullmatch(amz_date):
            raise _incomplete(f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'. "
                              "See http://en.wikipedia.org/wiki/ISO_8601")
        dt = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        return amz_date, dt.timestamp()
    date = req.headers.get("date")
    if date is not None:
        try:
            dt = parsedate_to_datetime(date).astimezone(timezone.utc)
        except (TypeError, ValueError):
            dt = None
        if dt is not None:
            return dt.strftime("%Y%m%dT%H%M%SZ"), dt.timestamp()
    raise _incomplete("Authorization header requires existence of either a 'X-Amz-Date' "
                      "or a 'Date' header. Authorization=" + req.headers["authorization"])


def _stamp(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y%m%dT%H%M%SZ")


# --- the mock ---------------------------------------------------------------

class StsMock(MockServer):
    """An STS endpoint. ca: a common.CA for HTTPS, or None for plain HTTP.

    keys: {access key id: secret} of long-term keys (see add_key for MFA).

    Attributes a test may set at any time:
      lifetime        None, or seconds: issue credentials expiring this long
                      after issue, whatever DurationSeconds asked for
      expiration_ms   format Expiration with milliseconds (...T16:00:00.000Z)
      region          None (accept any), or the only region the credential
                      scope may name
      clock_offset    seconds added to the mock's clock (expiry, skew check)
      mfa_single_use  True: an MFA code is accepted once (as AWS does); the
                      next GetSessionToken needs a new one (set_mfa_code)
      pretty          True: XML indented like real STS; False: one line
      sts_fault       None, or a key of STS_FAULTS ("throttling",
                      "unavailable"): answer with that error instead
      sts_fault_times None: every request while sts_fault is set; N: the next
                      N requests, then sts_fault clears itself
    plus fail/delay from MockServer (transport-level faults).
    """

    def __init__(self, ca=None, keys=None, account=DEFAULT_ACCOUNT, lifetime=None,
                 expiration_ms=False):
        super().__init__(ca)
        self.account = account
        self.lifetime = lifetime
        self.expiration_ms = expiration_ms
        self.region = None
        self.clock_offset = 0.0
        self.mfa_single_use = True
        self.pretty = True
        self.sts_fault = None
        self.sts_fault_times = None
        self._state = threading.Lock()
        self._keys = {}         # access key id -> LongTermKey
        self._user_ids = {}     # IAM user name -> AIDA... id
        self._used_codes = {}   # mfa serial -> codes already accepted
        self._issued = {}       # access key id -> IssuedCredentials
        self._roles = {}        # role ARN -> Role
        self._calls = []
        self._secret_log = []   # every secret ever configured or issued
        for akid, secret in (keys or {}).items():
            self.add_key(akid, secret)
        self.route("POST", "/", self._serve_sts)
        self.route("GET", "/", self._serve_sts)

    # -- test controls

    def now(self):
        """The mock's clock (time.time() + clock_offset)."""
        return time.time() + self.clock_offset

    def add_key(self, access_key_id, secret, mfa_serial=None, mfa_code=None,
                user=DEFAULT_USER):
        """Add (or replace) a long-term key of an IAM user. With mfa_serial,
        GetSessionToken needs SerialNumber=mfa_serial and TokenCode=mfa_code."""
        with self._state:
            self._keys[access_key_id] = LongTermKey(access_key_id, secret, user,
                                                    mfa_serial, mfa_code)
            self._user_ids.setdefault(user, "AIDA" + "".join(
                _secrets.choice(_KEY_ALPHABET) for _ in range(17)))
            self._secret_log.append(secret)

    def new_key(self, mfa_serial=None, mfa_code=None, user=DEFAULT_USER):
        """add_key() with a fresh random key pair; returns (id, secret)."""
        akid, secret = new_key_pair()
        self.add_key(akid, secret, mfa_serial, mfa_code, user)
        return akid, secret

    def remove_key(self, access_key_id):
        """Delete a long-term key: it gets InvalidClientTokenId from now on
        (credentials already issued with it stay valid, as in AWS)."""
        with self._state:
            del self._keys[access_key_id]

    def key(self, access_key_id):
        with self._state:
            return self._keys[access_key_id]

    def set_mfa_code(self, access_key_id, code):
        """The MFA code valid from now on for this key's device."""
        with self._state:
            self._keys[access_key_id] = replace(self._keys[access_key_id], mfa_code=code)

    @property
    def calls(self):
        """Every GetSessionToken call so far (failed ones too), oldest first."""
        return self.calls_of("GetSessionToken")

    def calls_of(self, action):
        """Every call of this action so far (failed ones too), oldest first."""
        with self._state:
            return [c for c in self._calls if c.action == action]

    def add_role(self, name, trusted=(), external_id=None, mfa=False, max_duration=3600):
        """Add a role that the given access key ids, user ARNs or role ARNs
        may assume (with ExternalId external_id, with MFA if mfa). Returns
        its ARN."""
        arn = f"arn:aws:iam::{self.account}:role/{name}"
        with self._state:
            self._roles[arn] = Role(arn, "AROA" + "".join(
                _secrets.choice(_KEY_ALPHABET) for _ in range(17)), frozenset(trusted),
                external_id, mfa, max_duration)
        return arn

    def assumed_role_arn(self, role_arn, session_name):
        return (f"arn:aws:sts::{self.account}:assumed-role/"
                f"{role_arn.rsplit('/', 1)[1]}/{session_name}")

    @property
    def all_calls(self):
        """Every request that got an STS answer, any action, oldest first."""
        with self._state:
            return list(self._calls)

    @property
    def issued(self):
        """Every temporary credential issued so far, oldest first."""
        with self._state:
            return sorted(self._issued.values(), key=lambda c: c.issued_at)

    def credentials(self, access_key_id):
        """The IssuedCredentials of a temporary key id, else None."""
        with self._state:
            return self._issued.get(access_key_id)

    def is_valid(self, access_key_id, at=None):
        """Whether STS would accept this key id now (or at mock time `at`):
        a configured long-term key, or issued credentials not yet expired."""
        t = self.now() if at is None else at
        with self._state:
            if access_key_id in self._keys:
                return True
            creds = self._issued.get(access_key_id)
        return creds is not None and creds.valid_at(t)

    def expire(self, access_key_id):
        """Make issued credentials expire now (ExpiredToken from now on)."""
        with self._state:
            creds = self._issued[access_key_id]
            t = min(self.now(), creds.expiration)
            self._issued[access_key_id] = replace(
                creds, expiration=t, expiration_text=format_expiration(t, self.expiration_ms))

    def inject(self, fault, times=None):
        """Answer the next `times` requests (None: all, until cleared with
        inject(None)) with the STS error STS_FAULTS[fault]."""
        if fault is not None and fault not in STS_FAULTS:
            raise ValueError(f"unknown STS fault {fault!r}")
        with self._state:
            self.sts_fault, self.sts_fault_times = fault, times

    def secrets(self):
        """Everything that must never show up in the daemon's log."""
        with self._state:
            issued = [s for c in self._issued.values()
                      for s in (c.secret_access_key, c.session_token)]
            return list(self._secret_log) + issued

    # -- the API

    def _serve_sts(self, req):
        request_id = str(uuid.uuid4())
        params = self._params(req)
        action = params.get("Action")
        m = _CREDENTIAL_KEY.search(req.headers.get("authorization", ""))
        akid = m.group(1) if m else None
        creds = None
        try:
            fault = self._take_fault()
            if fault is not None:
                raise StsError(*STS_FAULTS[fault])
            caller = self._authenticate(req)
            version = params.get("Version")
            if action not in ("GetSessionToken", "GetCallerIdentity", "AssumeRole") \
                    or version != VERSION:
                raise StsError(400, "InvalidAction",
                               f"Could not find operation {action or ''} for version "
                               f"{version or 'NO_VERSION_SPECIFIED'}")
            if action == "GetSessionToken":
                creds = self._get_session_token(params, caller)
                body = self._session_token_body(creds, request_id)
            elif action == "AssumeRole":
                creds = self._assume_role(params, caller)
                body = self._assume_role_body(creds, params, request_id)
            else:
                body = self._caller_identity_body(caller, request_id)
            status, error = 200, None
        except StsError as e:
            status, error = e.status, e.code
            body = _document("ErrorResponse", [
                ("Error", [("Type", "Sender" if e.status < 500 else "Receiver"),
                           ("Code", e.code), ("Message", e.message)]),
                ("RequestId", request_id)], self.pretty)
        with self._state:
            self._calls.append(Call(
                time=time.time(), action=action,
                params={k: v for k, v in params.items() if k not in ("Action", "Version")},
                access_key_id=akid, status=status, error=error, credentials=creds))
        return _xml_response(status, body, request_id)

    def _take_fault(self):
        with self._state:
            fault = self.sts_fault
            if fault is not None and self.sts_fault_times is not None:
                self.sts_fault_times -= 1
                if self.sts_fault_times <= 0:
                    self.sts_fault, self.sts_fault_times = None, None
            return fault

    @staticmethod
    def _params(req):
        """Query-protocol parameters: the query string, plus a form body."""
        pairs = parse_qsl(req.query, keep_blank_values=True)
        ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
        if req.method == "POST" and ctype == "application/x-www-form-urlencoded":
            pairs += parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True)
        params = {}
        for k, v in pairs:
            params.setdefault(k, v)
        return params

    def _authenticate(self, req):
        """Check the request's SigV4 signature, as STS does. Returns the
        LongTermKey or IssuedCredentials that signed it."""
        auth = req.headers.get("authorization")
        if auth is None:
            raise StsError(403, "MissingAuthenticationToken",
                           "Request is missing Authentication Token")
        akid, (scope_date, region, service, terminator), signed, signature = \
            _parse_authorization(auth)
        if terminator != "aws4_request":
            raise _signature_error("Credential should be scoped with a valid terminator: "
                                   f"'aws4_request', not '{terminator}'. ")
        if service != SERVICE:
            raise _signature_error(f"Credential should be scoped to correct service: "
                                   f"'{SERVICE}'. ")
        if self.region is not None and region != self.region:
            raise _signature_error("Credential should be scoped to a valid region. ")

        now = self.now()
        token = req.headers.get("x-amz-security-token")
        with self._state:
            key = self._keys.get(akid)
            temp = self._issued.get(akid)
        if key is not None:
            if token is not None:
                raise StsError(403, "InvalidClientTokenId", MSG_INVALID_TOKEN)
            caller, secret = key, key.secret_access_key
        elif temp is not None:
            if token is None or not hmac.compare_digest(token.encode(),
                                                        temp.session_token.encode()):
                raise StsError(403, "InvalidClientTokenId", MSG_INVALID_TOKEN)
            if now >= temp.expiration:
                raise StsError(403, "ExpiredToken", MSG_EXPIRED_TOKEN)
            caller, secret = temp, temp.secret_access_key
        else:
            raise StsError(403, "InvalidClientTokenId", MSG_INVALID_TOKEN)

        timestamp, t = _request_time(req)
        if t < now - MAX_SKEW:
            raise _signature_error(f"Signature expired: {timestamp} is now earlier than "
                                   f"{_stamp(now - MAX_SKEW)} ({_stamp(now)} - 15 min.)")
        if t > now + MAX_SKEW:
            raise _signature_error(f"Signature not yet current: {timestamp} is still later "
                                   f"than {_stamp(now + MAX_SKEW)} ({_stamp(now)} + 15 min.)")
        if scope_date != timestamp[:8]:
            raise _signature_error(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version "
                f"of date from HTTP: '{scope_date}' != '{timestamp[:8]}', from "
                f"'{timestamp}'.")
        for required in ("host", "x-amz-date"):
            if required in req.headers and required not in signed:
                raise _signature_error(f"'{required.title()}' must be a signed header")
        if any(h not in req.headers for h in signed):
            raise _signature_error()
        body_hash = hashlib.sha256(req.body).hexdigest()
        claimed = req.headers.get("x-amz-content-sha256")
        if claimed is not None and claimed != body_hash:
            raise _signature_error()  # STS hashes the payload itself

        expected = self._signature(req, secret, region, signed, timestamp)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise _signature_error()
        return caller

    def _signature(self, req, secret, region, signed, timestamp):
        """The signature botocore computes for this request and secret."""
        host = req.headers.get("host", f"{self.host}:{self.port}")
        areq = AWSRequest(method=req.method, url=f"{self.scheme}://{host}{req.path}",
                          headers={h: req.headers[h] for h in signed},
                          data=req.body,
                          params=parse_qsl(req.query, keep_blank_values=True))
        areq.context["timestamp"] = timestamp
        verifier = _Verifier(Credentials("unused", secret), region, signed)
        canonical = verifier.canonical_request(areq)
        return verifier.signature(verifier.string_to_sign(areq, canonical), areq)

    def _get_session_token(self, params, caller):
        if isinstance(caller, IssuedCredentials):
            raise StsError(403, "AccessDenied", MSG_SESSION_CREDS)
        problems = []
        duration = params.get("DurationSeconds")
        seconds = DEFAULT_DURATION
        if duration is not None:
            if not re.fullmatch(r"-?\d+", duration):
                problems.append((duration, "durationSeconds", "Member must be a number"))
            else:
                seconds = int(duration)
                if seconds < MIN_DURATION:
                    problems.append((duration, "durationSeconds",
                                     f"Member must have value greater than or equal to "
                                     f"{MIN_DURATION}"))
                elif seconds > MAX_DURATION:
                    problems.append((duration, "durationSeconds",
                                     f"Member must have value less than or equal to "
                                     f"{MAX_DURATION}"))
        serial, code = params.get("SerialNumber"), params.get("TokenCode")
        if serial is not None:
            if len(serial) < 9:
                problems.append((serial, "serialNumber",
                                 "Member must have length greater than or equal to 9"))
            elif len(serial) > 256:
                problems.append((serial, "serialNumber",
                                 "Member must have length less than or equal to 256"))
            elif not re.fullmatch(r"[\w+=/:,.@-]*", serial):
                problems.append((serial, "serialNumber", "Member must satisfy regular "
                                 "expression pattern: [\\w+=/:,.@-]*"))
        if code is not None:
            if len(code) != 6:
                bound = "greater" if len(code) < 6 else "less"
                problems.append((code, "tokenCode",
                                 f"Member must have length {bound} than or equal to 6"))
            elif not re.fullmatch(r"\d*", code):
                problems.append((code, "tokenCode", "Member must satisfy regular "
                                 "expression pattern: [\\d]*"))
        if problems:
            n = len(problems)
            raise StsError(400, "ValidationError", f"{n} validation error"
                           f"{'s' if n > 1 else ''} detected: " + "; ".join(
                               f"Value '{v}' at '{f}' failed to satisfy constraint: {c}"
                               for v, f, c in problems))

        with self._state:
            key = self._keys.get(caller.access_key_id)  # the current MFA code
            if key is None:  # removed since the signature was checked
                raise StsError(403, "InvalidClientTokenId", MSG_INVALID_TOKEN)
            if (serial is None) != (code is None):
                raise StsError(403, "AccessDenied", MSG_MFA_BOTH)
            if serial is not None:
                if serial != key.mfa_serial:
                    raise StsError(403, "AccessDenied", MSG_MFA_SERIAL)
                used = self._used_codes.setdefault(serial, set())
                if (key.mfa_code is None or not hmac.compare_digest(code, key.mfa_code)
                        or (self.mfa_single_use and code in used)):
                    raise StsError(403, "AccessDenied", MSG_MFA_CODE)
                used.add(code)
            elif key.mfa_serial is not None:
                raise StsError(403, "AccessDenied", MSG_MFA_CODE)

            return self._issue(seconds, parent=key.access_key_id, user=key.user, mfa=serial is not None,
                               root_key=key.access_key_id)

    def _issue(self, seconds, **fields):
        """New temporary credentials for seconds (lock held), recorded as
        issued; fields: who they are for (IssuedCredentials)."""
        now = self.now()
        lifetime = seconds if self.lifetime is None else self.lifetime
        # STS's Expiration has whole seconds (milliseconds only if asked).
        expiration = float(int(now)) + lifetime
        if not self.expiration_ms:
            expiration = float(int(expiration))
        creds = IssuedCredentials(
            access_key_id=_key_id("ASIA"), secret_access_key=new_secret_access_key(),
            session_token=_new_session_token(), expiration=expiration,
            expiration_text=format_expiration(expiration, self.expiration_ms),
            issued_at=now, duration_seconds=seconds, **fields)
        self._issued[creds.access_key_id] = creds
        return creds

    @staticmethod
    def _validation_error(problems):
        n = len(problems)
        return StsError(400, "ValidationError", f"{n} validation error"
                        f"{'s' if n > 1 else ''} detected: " + "; ".join(
                            f"Value '{v}' at '{f}' failed to satisfy constraint: {c}"
                            for v, f, c in problems))

    @staticmethod
    def _check_string(problems, params, name, field, low, high, pattern, required=False):
        value = params.get(name)
        if value is None:
            if required:
                problems.append(("null", field, "Member must not be null"))
        elif len(value) < low:
            problems.append((value, field, f"Member must have length greater than or equal to {low}"))
        elif len(value) > high:
            problems.append((value, field, f"Member must have length less than or equal to {high}"))
        elif not re.fullmatch(pattern, value):
            problems.append((value, field, f"Member must satisfy regular expression pattern: {pattern}"))
        return value

    def _caller_arn(self, caller):
        if isinstance(caller, IssuedCredentials) and caller.assumed_role_arn:
            return caller.assumed_role_arn
        return self.arn(caller.user)

    def _assume_role(self, params, caller):
        problems = []
        role_arn = self._check_string(problems, params, "RoleArn", "roleArn", 20, 2048,
                                      r"[\u0009\u000A\u000D\u0020-\u007E\u0085\u00A0-\uD7FF\uE000-\uFFFD]+",
                                      required=True)
        session = self._check_string(problems, params, "RoleSessionName", "roleSessionName",
                                     2, 64, r"[\w+=,.@-]*", required=True)
        external_id = self._check_string(problems, params, "ExternalId", "externalId", 2, 1224,
                                         r"[\w+=,.@:\/-]*")
        serial = self._check_string(problems, params, "SerialNumber", "serialNumber", 9, 256,
                                    r"[\w+=/:,.@-]*")
        code = self._check_string(problems, params, "TokenCode", "tokenCode", 6, 6, r"[\d]*")
        self._check_string(problems, params, "SourceIdentity", "sourceIdentity", 2, 64,
                           r"[\w+=,.@-]*")
        duration = params.get("DurationSeconds")
        seconds = DEFAULT_ROLE_DURATION
        if duration is not None:
            if not re.fullmatch(r"-?\d+", duration):
                problems.append((duration, "durationSeconds", "Member must be a number"))
            else:
                seconds = int(duration)
                if seconds < MIN_DURATION:
                    problems.append((duration, "durationSeconds",
                                     f"Member must have value greater than or equal to {MIN_DURATION}"))
                elif seconds > 43200:
                    problems.append((duration, "durationSeconds",
                                     "Member must have value less than or equal to 43200"))
        if problems:
            raise self._validation_error(problems)

        chained = isinstance(caller, IssuedCredentials) and caller.role_arn is not None
        denied = StsError(403, "AccessDenied", f"User: {self._caller_arn(caller)} is not "
                          f"authorized to perform: sts:AssumeRole on resource: {role_arn}")
        with self._state:
            role = self._roles.get(role_arn)
            if isinstance(caller, IssuedCredentials):
                principals = {caller.role_arn} if chained else {caller.parent, self.arn(caller.user)}
                root_key, mfa = caller.root_key, caller.mfa
            else:
                principals = {caller.access_key_id, self.arn(caller.user)}
                root_key, mfa = caller.access_key_id, False
            if role is None or not principals & role.trusted:
                raise denied
            if (serial is None) != (code is None):
                raise StsError(403, "AccessDenied", MSG_MFA_BOTH)
            if serial is not None:
                key = self._keys.get(root_key)
                used = self._used_codes.setdefault(serial, set())
                if (key is None or serial != key.mfa_serial or key.mfa_code is None
                        or not hmac.compare_digest(code, key.mfa_code)
                        or (self.mfa_single_use and code in used)):
                    raise StsError(403, "AccessDenied", MSG_MFA_CODE)
                used.add(code)
                mfa = True
            if role.mfa and not mfa:
                raise denied
            if role.external_id is not None and not (
                    external_id is not None
                    and hmac.compare_digest(external_id.encode(), role.external_id.encode())):
                raise denied
            if chained and seconds > ROLE_CHAINING_MAX:
                raise StsError(400, "ValidationError", MSG_ROLE_CHAINING)
            if seconds > role.max_duration:
                raise StsError(400, "ValidationError", MSG_MAX_SESSION)

            return self._issue(seconds, parent=caller.access_key_id, user=caller.user, mfa=mfa,
                               root_key=root_key, role_arn=role_arn,
                               assumed_role_arn=self.assumed_role_arn(role_arn, session),
                               assumed_role_id=f"{role.role_id}:{session}")

    def _assume_role_body(self, creds, params, request_id):
        result = []
        if "SourceIdentity" in params:
            result.append(("SourceIdentity", params["SourceIdentity"]))
        result += [
            ("AssumedRoleUser", [("Arn", creds.assumed_role_arn),
                                 ("AssumedRoleId", creds.assumed_role_id)]),
            ("Credentials", [("AccessKeyId", creds.access_key_id),
                             ("SecretAccessKey", creds.secret_access_key),
                             ("SessionToken", creds.session_token),
                             ("Expiration", creds.expiration_text)])]
        return _document("AssumeRoleResponse", [
            ("AssumeRoleResult", result),
            ("ResponseMetadata", [("RequestId", request_id)])], self.pretty)

    def _session_token_body(self, creds, request_id):
        return _document("GetSessionTokenResponse", [
            ("GetSessionTokenResult", [
                ("Credentials", [("AccessKeyId", creds.access_key_id),
                                 ("SecretAccessKey", creds.secret_access_key),
                                 ("SessionToken", creds.session_token),
                                 ("Expiration", creds.expiration_text)])]),
            ("ResponseMetadata", [("RequestId", request_id)])], self.pretty)

    def _caller_identity_body(self, caller, request_id):
        with self._state:
            user_id = self._user_ids[caller.user]
        if isinstance(caller, IssuedCredentials) and caller.assumed_role_id:
            user_id = caller.assumed_role_id
        return _document("GetCallerIdentityResponse", [
            ("GetCallerIdentityResult", [
                ("Arn", self._caller_arn(caller)),
                ("UserId", user_id),
                ("Account", self.account)]),
            ("ResponseMetadata", [("RequestId", request_id)])], self.pretty)

    def arn(self, user=DEFAULT_USER):
        return f"arn:aws:iam::{self.account}:user/{user}"

    def user_id(self, user=DEFAULT_USER):
        with self._state:
            return self._user_ids[user]


def _main():
    import argparse
    import tempfile
    from .common import make_ca

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--http", action="store_true", help="plain HTTP, no TLS")
    p.add_argument("--mfa-serial", help="require MFA with this serial number")
    p.add_argument("--mfa-code", default="123456")
    p.add_argument("--lifetime", type=int, help="seconds issued credentials live")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ca = None if args.http else make_ca(tmp)
        mock = StsMock(ca, lifetime=args.lifetime)
        mock.mfa_single_use = False
        akid, secret = mock.new_key(args.mfa_serial,
                                    args.mfa_code if args.mfa_serial else None)
        mock.port = args.port
        with mock:
            print(f"STS mock on {mock.url}" + (f", CA {ca.ca}" if ca else ""))
            print(f"aws_access_key_id = {akid}\naws_secret_access_key = {secret}")
            if args.mfa_serial:
                print(f"MFA {args.mfa_serial}, code {args.mfa_code}")
            print(flush=True)
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                pass


if __name__ == "__main__":
    _main()
