"""Mock Redfish BMC (Dell iDRAC-like): service root, SessionService, sessions.

Behaves like a real BMC as far as sessionfs can tell (DSP0266, iDRAC):
sessions are created by POSTing {"UserName","Password"} to the Sessions
collection, which answers 201 with X-Auth-Token and Location; every other
resource wants X-Auth-Token (or HTTP Basic); a session dies after
SessionTimeout seconds without a request, or when DELETEd; the BMC allows
only a few sessions at once. Errors carry Redfish error bodies
({"error": {"code", "message", "@Message.ExtendedInfo": [...]}}).

Paths are matched exactly as the BMC advertises them: adding or dropping a
trailing slash gets 404 (only the service root answers both ways).

Run it by hand for manual testing of the daemon:
    /usr/bin/python3 -m tests.mocks.redfish [--port N] [--user root]
        [--password PW] [--http] [--layout old] [--timeout S] [--limit N]
"""

import base64
import binascii
import secrets
import threading
import time
import uuid
from dataclasses import asdict, dataclass

from .common import MockServer, Response, json_body, json_response

SERVICE_ROOT = "/redfish/v1"
SESSION_SERVICE = "/redfish/v1/SessionService"
SESSIONS = "/redfish/v1/SessionService/Sessions"   # DSP0266 default
OLD_SESSIONS = "/redfish/v1/Sessions"               # old iDRAC firmware
SYSTEMS = "/redfish/v1/Systems"
SYSTEM = "/redfish/v1/Systems/System.Embedded.1"
MANAGERS = "/redfish/v1/Managers"
MANAGER = "/redfish/v1/Managers/iDRAC.Embedded.1"

LAYOUTS = ("standard", "old")
LOCATIONS = ("relative", "absolute", None)
AUTH_ERRORS = ("idrac", "base", "empty")
LIMIT_MESSAGE_IDS = ("idrac", "base", "both")
DELETE_STATUSES = (200, 202, 204)

DEFAULT_SESSION_LIMIT = 8        # what iDRAC allows for Redfish
DEFAULT_SESSION_TIMEOUT = 1800   # iDRAC's default inactivity timeout, seconds
SESSION_TIMEOUT_RANGE = (30, 86400)  # what a PATCH of SessionService accepts

# Where sessions made with create_session() come from ("another client").
OTHER_CLIENT_IP = "192.0.2.10"

CONTENT_TYPE = "application/json;odata.metadata=minimal;charset=utf-8"

BASE = "Base.1.12"
GENERAL_ERROR = f"{BASE}.GeneralError"
GENERAL_ERROR_MESSAGE = "A general error has occurred. See ExtendedInfo for more information."
NO_VALID_SESSION = f"{BASE}.NoValidSession"
SESSION_LIMIT_EXCEEDED = f"{BASE}.SessionLimitExceeded"
IDRAC_BAD_LOGIN = "IDRAC.2.8.SYS415"
IDRAC_SESSION_LIMIT = "IDRAC.2.8.RAC0218"
INSUFFICIENT_PRIVILEGE = f"{BASE}.InsufficientPrivilege"
INSUFFICIENT_PRIVILEGE_MESSAGE = ("There are insufficient privileges for the account or "
                                  "credentials associated with the current session to "
                                  "perform the requested operation.")
# Redfish's predefined roles; only these may end another user's session
# (ConfigureUsers privilege). Anyone may end their own (ConfigureSelf).
ROLES = ("Administrator", "Operator", "ReadOnly")
ADMIN_ROLES = ("Administrator",)
SESSION_LIMIT_MESSAGE = "The maximum number of user sessions is reached."


# --- Redfish bodies ---------------------------------------------------------

def message(message_id, text, resolution, severity="Critical", args=()):
    """One entry of @Message.ExtendedInfo."""
    return {"@odata.type": "#Message.v1_1_1.Message",
            "MessageId": message_id, "Message": text,
            "MessageArgs": list(args), "MessageArgs@odata.count": len(args),
            "RelatedProperties": [], "RelatedProperties@odata.count": 0,
            "Severity": severity, "Resolution": resolution}


def redfish_error(status, *messages, code=GENERAL_ERROR, headers=None):
    """A Redfish error response (DSP0266 §9.6 error responses)."""
    return redfish_response(status, {"error": {
        "code": code, "message": GENERAL_ERROR_MESSAGE,
        "@Message.ExtendedInfo": list(messages)}}, headers)


def redfish_response(status, obj, headers=None):
    return json_response(status, obj, {"Content-Type": CONTENT_TYPE, **(headers or {})})


def error_message_ids(body):
    """The MessageIds of a Redfish error body (a dict), in order."""
    return [m.get("MessageId") for m in body["error"]["@Message.ExtendedInfo"]]


def _link(path):
    return {"@odata.id": path}


def _success_body():
    return {"@Message.ExtendedInfo": [message(
        f"{BASE}.Success", "The request completed successfully.", "None", "OK")]}


# --- sessions ---------------------------------------------------------------

@dataclass
class _Session:
    id: str
    user: str
    token: str
    created: float        # time.time()
    last_activity: float  # time.time() of the last authenticated request
    origin: str           # client IP (ClientOriginIPAddress)

    def public(self):
        d = asdict(self)
        del d["origin"]
        return d


@dataclass(frozen=True)
class _Auth:
    user: str
    session: _Session | None  # None: HTTP Basic


class RedfishMock(MockServer):
    """A Redfish BMC.

    ca: a common.CA for HTTPS; None, or http=True, for plain HTTP.
    users: {username: password}.

    Options (constructor keywords; also attributes a test may change later):
      layout           "standard": service root has Links.Sessions, sessions at
                       SESSIONS; "old": old iDRAC, no Links.Sessions in the
                       root and sessions at OLD_SESSIONS (SESSIONS gets 404)
      sessions_path    the Sessions collection's path, overriding the layout's
                       (e.g. a non-default one that Links.Sessions points to)
      location         Location header of a new session: "relative" (path),
                       "absolute" (https://127.0.0.1:port/path) or None (no
                       header: the client must use the body's @odata.id)
      session_limit    live sessions allowed; a login beyond gets limit_status
      session_timeout  SessionService.SessionTimeout: a session idle (no
                       authenticated request) longer than this is dead
      limit_status     503 (iDRAC) or 400
      limit_message_ids  ExtendedInfo of the limit error: "idrac" (RAC0218),
                       "base" (Base SessionLimitExceeded) or "both"
      auth_error       body of every 401: "idrac" (a bad login says
                       IDRAC.2.8.SYS415), "base" (Base NoValidSession) or
                       "empty" (no body at all)
      delete_status    204 (empty), 200 (with a body) or 202 for a DELETE
      require_json     POST/PATCH bodies must come as application/json, else
                       415 (as on iDRAC; curl's default form type fails)
      echo_password    a session resource (the login's reply, GETs) shows the
                       POSTed Password, also nested as an Oem "password" and
                       "PASSWORD" (as some BMCs echo the request body)
    """

    def __init__(self, ca=None, users=None, *, http=False, layout="standard",
                 sessions_path=None, location="relative",
                 session_limit=DEFAULT_SESSION_LIMIT,
                 session_timeout=DEFAULT_SESSION_TIMEOUT,
                 limit_status=503, limit_message_ids="both", auth_error="idrac",
                 delete_status=204, require_json=True, echo_password=False):
        super().__init__(None if http else ca)
        self.layout = layout
        self.sessions_path = sessions_path
        self.location = location
        self.session_limit = session_limit
        self.session_timeout = session_timeout
        self.limit_status = limit_status
        self.limit_message_ids = limit_message_ids
        self.auth_error = auth_error
        self.delete_status = delete_status
        self.require_json = require_json
        self.echo_password = echo_password
        self._echoed = {}      # id -> the Password POSTed for it (echo_password)
        self.uuid = str(uuid.uuid4())
        self._state = threading.Lock()
        self._users = {}
        self._roles = {}       # user -> one of ROLES
        self._passwords = []   # every password ever set, for the log check
        self._tokens = []      # every token ever issued, likewise
        self._sessions = {}    # id -> _Session, live (until reaped)
        self._next_id = 1
        self._logins = 0
        self._deletes = []
        self._expired = []
        for user, password in (users or {}).items():
            self.add_user(user, password)

    # -- test controls

    @property
    def sessions_uri(self):
        """The Sessions collection's path, as the BMC advertises it."""
        if self.sessions_path:
            return self.sessions_path
        return OLD_SESSIONS if self.layout == "old" else SESSIONS

    def session_uri(self, session_id):
        """A session's path (what Location and @odata.id hold)."""
        return self.sessions_uri.rstrip("/") + "/" + session_id

    def add_user(self, name, password, role="Administrator"):
        """Create a user or change its password (live sessions stay). role:
        one of ROLES; a non-Administrator gets 403 InsufficientPrivilege for
        a DELETE of another user's session."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; one of {ROLES}")
        with self._state:
            self._users[name] = password
            self._roles[name] = role
            self._passwords.append(password)

    def remove_user(self, name):
        """The user can no longer log in (live sessions stay)."""
        with self._state:
            self._users.pop(name, None)

    def password(self, user="root"):
        with self._state:
            return self._users[user]

    def create_session(self, user="root"):
        """A session made by another client, without a request and ignoring
        session_limit. Returns (id, token)."""
        s = self._new_session(user, OTHER_CLIENT_IP)
        return s.id, s.token

    def live_sessions(self):
        """Live sessions, oldest first: dicts with id, user, token, created,
        last_activity (time.time() values). Expires idle ones first."""
        with self._state:
            self._reap(time.time())
            return [s.public() for s in self._sessions.values()]

    def session(self, session_id):
        """One live session as in live_sessions(), or None."""
        return next((s for s in self.live_sessions() if s["id"] == session_id), None)

    def kill_session(self, session_id):
        """End a session server-side (an admin, a timeout of another kind):
        its token gets 401 from now on. Not recorded in deletes."""
        with self._state:
            return self._sessions.pop(session_id, None) is not None

    def kill_all(self):
        """What a BMC reboot does to sessions: all gone."""
        with self._state:
            self._sessions.clear()

    @property
    def logins(self):
        """POSTs to the Sessions collection, failed ones included."""
        with self._state:
            return self._logins

    @property
    def deletes(self):
        """Ids of the sessions ended by a DELETE, in order."""
        with self._state:
            return list(self._deletes)

    @property
    def expired(self):
        """Ids of the sessions that died of inactivity, in order."""
        with self._state:
            self._reap(time.time())
            return list(self._expired)

    def requests_without_odata_version(self):
        """Recorded requests that did not send OData-Version: 4.0."""
        return [r for r in self.requests
                if r.headers.get("odata-version", "").strip() != "4.0"]

    def secrets(self):
        """Everything that must never show up in the daemon's log."""
        with self._state:
            return list(self._passwords) + list(self._tokens)

    # -- session state (callers hold no lock unless noted)

    def _new_session(self, user, origin):
        with self._state:
            return self._new_session_locked(user, origin)

    def _new_session_locked(self, user, origin):
        now = time.time()
        s = _Session(str(self._next_id), user, secrets.token_hex(16), now, now, origin)
        self._next_id += 1
        self._sessions[s.id] = s
        self._tokens.append(s.token)
        return s

    def _reap(self, now):
        """Drop sessions idle longer than session_timeout (lock held)."""
        for sid, s in list(self._sessions.items()):
            if now - s.last_activity > self.session_timeout:
                del self._sessions[sid]
                self._expired.append(sid)

    def _authenticate(self, req):
        """An _Auth for the request's credentials, or None. A session's
        token counts as activity of that session."""
        token = req.headers.get("x-auth-token")
        if token is not None:
            now = time.time()
            with self._state:
                self._reap(now)
                for s in self._sessions.values():
                    if secrets.compare_digest(s.token, token):
                        s.last_activity = now
                        return _Auth(s.user, s)
            return None
        scheme, _, cred = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                user, sep, password = base64.b64decode(cred.strip(), validate=True) \
                    .decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            with self._state:
                if sep and self._users.get(user) == password:
                    return _Auth(user, None)
        return None

    # -- errors

    def _unauthorized(self, req):
        if self.auth_error == "empty":
            return Response(401)
        if self.auth_error == "idrac" and req.headers.get("authorization") \
                and "x-auth-token" not in req.headers:
            return self._bad_login(req, "")
        return redfish_error(401, message(
            NO_VALID_SESSION,
            "There is no valid session established with the implementation.",
            "Establish a session before attempting any operations."))

    def _bad_login(self, req, user):
        if self.auth_error == "empty":
            return Response(401)
        message_id = IDRAC_BAD_LOGIN if self.auth_error == "idrac" else NO_VALID_SESSION
        who = f"for {user} " if user else ""
        return redfish_error(401, message(
            message_id,
            f"Unable to log in {who}from {req.client[0]} because the username "
            "or password is incorrect.",
            "Enter valid user name and password and retry the operation."))

    def _limit_reached(self):
        entries = []
        if self.limit_message_ids in ("idrac", "both"):
            entries.append(message(
                IDRAC_SESSION_LIMIT, SESSION_LIMIT_MESSAGE,
                "Close one or more sessions and retry the operation."))
        if self.limit_message_ids in ("base", "both"):
            entries.append(message(
                SESSION_LIMIT_EXCEEDED,
                "The session establishment failed due to the number of "
                "simultaneous sessions exceeding the limit of the implementation.",
                "Reduce the number of other sessions before trying to establish "
                "the session or increase the limit of simultaneous sessions "
                "(if supported)."))
        code = SESSION_LIMIT_EXCEEDED if self.limit_message_ids == "base" else GENERAL_ERROR
        return redfish_error(self.limit_status, *entries, code=code)

    @staticmethod
    def _not_found(path):
        return redfish_error(404, message(
            f"{BASE}.ResourceMissingAtURI",
            f"The resource at the URI {path} was not found.",
            "Place a valid resource at the URI or correct the URI and resubmit "
            "the request.", args=(path,)))

    @staticmethod
    def _not_allowed(allowed):
        return redfish_error(405, message(
            f"{BASE}.OperationNotAllowed",
            "The operation was not allowed by the service.",
            "Change the request and resubmit."),
            headers={"Allow": ", ".join(allowed)})

    @staticmethod
    def _malformed_json():
        return redfish_error(400, message(
            f"{BASE}.MalformedJSON",
            "The request body submitted was malformed JSON and could not be "
            "parsed by the receiving service.",
            "Ensure that the request body is valid JSON and resubmit the request."))

    @staticmethod
    def _property_missing(name):
        return redfish_error(400, message(
            f"{BASE}.PropertyMissing",
            f"The property {name} is a required property and must be included "
            "in the request.",
            "Ensure that the property is in the request body and has a valid "
            "value and resubmit the request.", "Warning", args=(name,)))

    def _media_type_error(self, req):
        """415 if a body is not sent as JSON and require_json is set."""
        ctype = req.headers.get("content-type", "")
        if self.require_json and req.body \
                and ctype.split(";")[0].strip().lower() != "application/json":
            return redfish_error(415, message(
                GENERAL_ERROR,
                f"The request specified a Content-Type of '{ctype}', which is "
                "not supported.",
                "Send the request body as application/json."))
        return None

    # -- routing

    def handle(self, req):
        resp = self._route(req)
        resp.headers.setdefault("OData-Version", "4.0")
        return resp

    def _route(self, req):
        version = req.headers.get("odata-version")
        if version is not None and version.strip() != "4.0":
            return redfish_error(412, message(
                GENERAL_ERROR, f"OData-Version {version} is not supported.",
                "Send OData-Version: 4.0 or leave the header out."))
        path = req.path
        method = "GET" if req.method == "HEAD" else req.method
        coll = self.sessions_uri
        prefix = coll.rstrip("/") + "/"
        if path == "/redfish":
            routes = {"GET": lambda: redfish_response(200, {"v1": "/redfish/v1/"})}
        elif path in (SERVICE_ROOT, SERVICE_ROOT + "/"):
            routes = {"GET": self._service_root}
        elif path == coll:
            routes = {"GET": self._authed(req, self._list_sessions),
                      "POST": lambda: self._login(req)}
        elif path.startswith(prefix) and "/" not in path[len(prefix):] \
                and path != prefix:
            sid = path[len(prefix):]
            routes = {"GET": self._authed(req, lambda auth: self._get_session(sid)),
                      "DELETE": self._authed(req, lambda auth: self._delete(sid, auth))}
        elif path == SESSION_SERVICE:
            routes = {"GET": self._authed(req, lambda auth: self._session_service()),
                      "PATCH": self._authed(req, lambda auth: self._patch_service(req))}
        elif path in self._static():
            body = self._static()[path]
            routes = {"GET": self._authed(req, lambda auth: redfish_response(200, body))}
        else:
            return self._not_found(path)
        if method not in routes:
            return self._not_allowed(sorted(routes) + (["HEAD"] if "GET" in routes else []))
        return routes[method]()

    def _authed(self, req, handler):
        """A thunk running handler(auth) for a live session or Basic user."""
        def run():
            auth = self._authenticate(req)
            if auth is None:
                return self._unauthorized(req)
            return handler(auth)
        return run

    # -- resources

    def _service_root(self):
        old = self.layout == "old"
        root = {
            "@odata.context": "/redfish/v1/$metadata#ServiceRoot.ServiceRoot",
            "@odata.id": SERVICE_ROOT,
            "@odata.type": "#ServiceRoot.v1_0_2.ServiceRoot" if old
                           else "#ServiceRoot.v1_6_0.ServiceRoot",
            "Id": "RootService",
            "Name": "Root Service",
            "Description": "Root Service",
            "RedfishVersion": "1.0.2" if old else "1.11.0",
            "Product": "Integrated Dell Remote Access Controller",
            "Vendor": "Dell",
            "UUID": self.uuid,
            "SessionService": _link(SESSION_SERVICE),
            "Systems": _link(SYSTEMS),
            "Managers": _link(MANAGERS),
        }
        if not old:
            root["Links"] = {"Sessions": _link(self.sessions_uri)}
        return redfish_response(200, root)

    def _session_service(self):
        return redfish_response(200, {
            "@odata.context": "/redfish/v1/$metadata#SessionService.SessionService",
            "@odata.id": SESSION_SERVICE,
            "@odata.type": "#SessionService.v1_1_8.SessionService",
            "Id": "SessionService",
            "Name": "Session Service",
            "Description": "Session Service",
            "ServiceEnabled": True,
            "SessionTimeout": self.session_timeout,
            "Status": {"Health": "OK", "State": "Enabled"},
            "Sessions": _link(self.sessions_uri),
        })

    def _patch_service(self, req):
        bad = self._media_type_error(req)
        if bad:
            return bad
        body = json_body(req)
        if body is None:
            return self._malformed_json()
        timeout = body.get("SessionTimeout")
        lo, hi = SESSION_TIMEOUT_RANGE
        if set(body) != {"SessionTimeout"} or not isinstance(timeout, int) \
                or isinstance(timeout, bool) or not lo <= timeout <= hi:
            return redfish_error(400, message(
                f"{BASE}.PropertyValueNotInList",
                f"SessionTimeout must be an integer from {lo} to {hi}; "
                "no other property can be changed.",
                "Choose a value from the enumeration list and resubmit the request.",
                "Warning"))
        self.session_timeout = timeout
        return redfish_response(200, _success_body())

    def _session_body(self, s):
        old = self.layout == "old"
        return {
            "@odata.context": "/redfish/v1/$metadata#Session.Session",
            "@odata.id": self.session_uri(s.id),
            "@odata.type": "#Session.v1_0_2.Session" if old else "#Session.v1_3_0.Session",
            "Id": s.id,
            "Name": "User Session",
            "Description": "User Session",
            "UserName": s.user,
            "Password": None,
            "ClientOriginIPAddress": s.origin,
        } | self._echo(s)

    def _echo(self, s):
        pw = self._echoed.get(s.id) if self.echo_password else None
        if pw is None:
            return {}
        return {"Password": pw, "Oem": {"Vendor": {"password": pw,
                                                   "Logins": [{"PASSWORD": pw, "Kept": 1}]}}}

    def _login(self, req):
        with self._state:
            self._logins += 1
        bad = self._media_type_error(req)
        if bad:
            return bad
        body = json_body(req)
        if body is None:
            return self._malformed_json()
        for key in ("UserName", "Password"):
            if not isinstance(body.get(key), str):
                return self._property_missing(key)
        user = body["UserName"]
        with self._state:
            ok = user in self._users and secrets.compare_digest(
                self._users[user].encode(), body["Password"].encode())
            self._reap(time.time())
            full = len(self._sessions) >= self.session_limit
            # Checked and created under one lock: concurrent logins cannot
            # get past the limit together.
            s = self._new_session_locked(user, req.client[0]) if ok and not full else None
            if s is not None:
                self._echoed[s.id] = body["Password"]
        if not ok:
            return self._bad_login(req, user)
        if full:
            return self._limit_reached()
        uri = self.session_uri(s.id)
        headers = {"X-Auth-Token": s.token}
        if self.location == "relative":
            headers["Location"] = uri
        elif self.location == "absolute":
            headers["Location"] = self.url + uri
        return redfish_response(201, self._session_body(s), headers)

    def _list_sessions(self, auth):
        with self._state:
            ids = list(self._sessions)
        members = [_link(self.session_uri(i)) for i in ids]
        return redfish_response(200, {
            "@odata.context": "/redfish/v1/$metadata#SessionCollection.SessionCollection",
            "@odata.id": self.sessions_uri,
            "@odata.type": "#SessionCollection.SessionCollection",
            "Name": "Session Collection",
            "Description": "Session Collection",
            "Members": members,
            "Members@odata.count": len(members),
        })

    def _get_session(self, sid):
        with self._state:
            s = self._sessions.get(sid)
            body = self._session_body(s) if s else None
        if body is None:
            return self._not_found(self.session_uri(sid))
        return redfish_response(200, body)

    @staticmethod
    def _insufficient_privilege():
        return redfish_error(403, message(
            INSUFFICIENT_PRIVILEGE, INSUFFICIENT_PRIVILEGE_MESSAGE,
            "Either abandon the operation or change the associated access rights "
            "and resubmit the request if the operation failed."),
            code=INSUFFICIENT_PRIVILEGE)

    def _delete(self, sid, auth):
        with self._state:
            s = self._sessions.get(sid)
            if s is not None and s.user != auth.user \
                    and self._roles.get(auth.user) not in ADMIN_ROLES:
                return self._insufficient_privilege()
            s = self._sessions.pop(sid, None)
            if s is not None:
                self._deletes.append(sid)
        if s is None:
            return self._not_found(self.session_uri(sid))
        if self.delete_status == 204:
            return Response(204)
        return redfish_response(self.delete_status, _success_body())

    def _static(self):
        """The other resources, enough for a client to use its token."""
        return {
            SYSTEMS: {"@odata.id": SYSTEMS,
                      "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
                      "Name": "Computer System Collection",
                      "Members": [_link(SYSTEM)], "Members@odata.count": 1},
            SYSTEM: {"@odata.id": SYSTEM,
                     "@odata.type": "#ComputerSystem.v1_12_0.ComputerSystem",
                     "Id": "System.Embedded.1", "Name": "System",
                     "Manufacturer": "Dell Inc.", "Model": "PowerEdge R640",
                     "PowerState": "On", "UUID": self.uuid},
            MANAGERS: {"@odata.id": MANAGERS,
                       "@odata.type": "#ManagerCollection.ManagerCollection",
                       "Name": "Manager", "Members": [_link(MANAGER)],
                       "Members@odata.count": 1},
            MANAGER: {"@odata.id": MANAGER, "@odata.type": "#Manager.v1_9_0.Manager",
                      "Id": "iDRAC.Embedded.1", "Name": "Manager",
                      "ManagerType": "BMC", "FirmwareVersion": "5.10.50.00"},
        }


def _main():
    import argparse
    import tempfile
    from .common import make_ca

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--user", default="root")
    p.add_argument("--password", default="calvin")
    p.add_argument("--layout", choices=LAYOUTS, default="standard")
    p.add_argument("--timeout", type=int, default=DEFAULT_SESSION_TIMEOUT,
                   help="SessionTimeout (inactivity), seconds")
    p.add_argument("--limit", type=int, default=DEFAULT_SESSION_LIMIT)
    p.add_argument("--http", action="store_true", help="plain HTTP, no TLS")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ca = None if args.http else make_ca(tmp)
        mock = RedfishMock(ca, {args.user: args.password}, layout=args.layout,
                           session_timeout=args.timeout, session_limit=args.limit)
        mock.port = args.port
        with mock:
            print(f"Redfish mock on {mock.url} ({args.user}/{args.password}, "
                  f"sessions at {mock.sessions_uri})"
                  + (f", CA {ca.ca}" if ca else ""), flush=True)
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                pass


if __name__ == "__main__":
    _main()
