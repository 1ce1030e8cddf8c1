"""The Redfish mock, exercised directly over HTTPS (urllib, trusting the test CA).

The daemon's Redfish tests are only as good as this mock, so it is held to
the behaviour of a real BMC (DSP0266, iDRAC) here.
"""

import base64
import re
import time

import pytest

from tests.integration.harness import new_password
from tests.mocks.redfish import (IDRAC_BAD_LOGIN, IDRAC_SESSION_LIMIT, NO_VALID_SESSION,
                                 OLD_SESSIONS, OTHER_CLIENT_IP, SESSION_LIMIT_EXCEEDED,
                                 SESSION_LIMIT_MESSAGE, SESSION_SERVICE, SESSIONS,
                                 RedfishMock, error_message_ids)

ODATA = {"OData-Version": "4.0"}


@pytest.fixture
def make_mock(ca):
    """Factory: make_mock(**options) -> a started HTTPS RedfishMock with
    users root and operator (random passwords)."""
    mocks = []

    def factory(**options):
        users = {"root": new_password(), "operator": new_password()}
        mock = RedfishMock(ca, users, **options).start()
        mocks.append(mock)
        return mock

    yield factory
    for mock in mocks:
        mock.stop()


@pytest.fixture
def bmc(make_mock):
    return make_mock()


def login(mock, user="root", password=None, path=None):
    if password is None:
        password = mock.password(user)
    return mock.call("POST", path or mock.sessions_uri,
                     {"UserName": user, "Password": password}, headers=ODATA)


def new_session(mock, user="root"):
    """Log in; return (token, session path)."""
    r = login(mock, user)
    assert r.status == 201, r.body
    return r.headers["X-Auth-Token"], r.json()["@odata.id"]


def get(mock, path, token=None, headers=None):
    h = dict(ODATA, **(headers or {}))
    if token is not None:
        h["X-Auth-Token"] = token
    return mock.call("GET", path, headers=h)


def delete(mock, path, token):
    return mock.call("DELETE", path, headers=dict(ODATA, **{"X-Auth-Token": token}))


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def assert_redfish_error(reply, status, message_id):
    assert reply.status == status
    assert reply.headers["Content-Type"].startswith("application/json")
    err = reply.json()["error"]
    assert isinstance(err["code"], str) and isinstance(err["message"], str)
    assert message_id in error_message_ids(reply.json())
    for m in err["@Message.ExtendedInfo"]:
        assert {"MessageId", "Message", "Severity", "Resolution"} <= set(m)
    return err


# --- service root and discovery ---------------------------------------------

@pytest.mark.parametrize("path", ["/redfish/v1/", "/redfish/v1"])
def test_service_root_is_public_and_links_sessions(bmc, path):
    r = bmc.call("GET", path)
    assert r.status == 200
    assert r.headers["OData-Version"] == "4.0"
    assert r.headers["Content-Type"].startswith("application/json")
    root = r.json()
    assert root["@odata.id"] == "/redfish/v1"
    assert root["@odata.type"].startswith("#ServiceRoot.")
    assert re.fullmatch(r"1\.\d+\.\d+", root["RedfishVersion"])
    assert root["SessionService"] == {"@odata.id": SESSION_SERVICE}
    assert root["Links"]["Sessions"] == {"@odata.id": SESSIONS}
    assert bmc.sessions_uri == SESSIONS


def test_redfish_version_document(bmc):
    r = bmc.call("GET", "/redfish")
    assert r.status == 200 and r.json() == {"v1": "/redfish/v1/"}


def test_old_layout_needs_the_second_fallback(make_mock):
    bmc = make_mock(layout="old")
    root = bmc.call("GET", "/redfish/v1/").json()
    assert "Sessions" not in root.get("Links", {})
    assert root["SessionService"] == {"@odata.id": SESSION_SERVICE}
    # The DSP0266 default is not there ...
    assert_redfish_error(login(bmc, path=SESSIONS), 404, "Base.1.12.ResourceMissingAtURI")
    # ... the old iDRAC path is.
    r = login(bmc, path=OLD_SESSIONS)
    assert r.status == 201
    sid = r.json()["Id"]
    assert r.headers["Location"] == f"{OLD_SESSIONS}/{sid}"
    assert r.json()["@odata.id"] == f"{OLD_SESSIONS}/{sid}"
    token = r.headers["X-Auth-Token"]
    service = get(bmc, SESSION_SERVICE, token).json()
    assert service["Sessions"] == {"@odata.id": OLD_SESSIONS}
    assert get(bmc, OLD_SESSIONS, token).json()["Members"] == [
        {"@odata.id": f"{OLD_SESSIONS}/{sid}"}]
    assert get(bmc, SESSIONS, token).status == 404
    assert bmc.logins == 1  # the 404 was no login


def test_links_sessions_with_a_non_default_path(make_mock):
    custom = "/redfish/v1/Managers/BMC/ActiveSessions"
    bmc = make_mock(sessions_path=custom)
    root = bmc.call("GET", "/redfish/v1/").json()
    assert root["Links"]["Sessions"] == {"@odata.id": custom}
    assert login(bmc, path=SESSIONS).status == 404
    r = login(bmc, path=custom)
    assert r.status == 201
    assert r.headers["Location"] == f"{custom}/{r.json()['Id']}"
    token = r.headers["X-Auth-Token"]
    assert get(bmc, SESSION_SERVICE, token).json()["Sessions"] == {"@odata.id": custom}
    assert get(bmc, custom, token).json()["Members@odata.count"] == 1


def test_trailing_slash_collection_is_exact_too(make_mock):
    """An iLO-like BMC that advertises its collection with a slash."""
    bmc = make_mock(sessions_path=SESSIONS + "/")
    assert bmc.call("GET", "/redfish/v1").json()["Links"]["Sessions"]["@odata.id"] \
        == SESSIONS + "/"
    assert login(bmc, path=SESSIONS).status == 404
    token, uri = new_session(bmc)
    assert uri == f"{SESSIONS}/{bmc.live_sessions()[0]['id']}"
    assert get(bmc, SESSIONS + "/", token).status == 200
    assert get(bmc, uri, token).status == 200


# --- logging in -------------------------------------------------------------

def test_login_creates_a_session(bmc):
    before = time.time()
    r = login(bmc)
    assert r.status == 201
    token = r.headers["X-Auth-Token"]
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert r.headers["OData-Version"] == "4.0"
    body = r.json()
    sid = body["Id"]
    assert r.headers["Location"] == f"{SESSIONS}/{sid}"
    assert body["@odata.id"] == f"{SESSIONS}/{sid}"
    assert body["@odata.type"] == "#Session.v1_3_0.Session"
    assert body["Name"] == "User Session" and body["UserName"] == "root"
    assert "Description" in body and body.get("Password") is None
    assert body["ClientOriginIPAddress"] == "127.0.0.1"
    [s] = bmc.live_sessions()
    assert set(s) == {"id", "user", "token", "created", "last_activity"}
    assert (s["id"], s["user"], s["token"]) == (sid, "root", token)
    assert before <= s["created"] <= s["last_activity"] <= time.time()
    assert bmc.logins == 1
    assert token in bmc.secrets() and bmc.password("root") in bmc.secrets()
    # The token works.
    assert get(bmc, SESSION_SERVICE, token).status == 200
    assert get(bmc, "/redfish/v1/Systems", token).json()["Members@odata.count"] == 1


def test_each_login_is_a_new_session(bmc):
    (t1, u1), (t2, u2) = new_session(bmc), new_session(bmc, "operator")
    assert t1 != t2 and u1 != u2
    assert {s["user"] for s in bmc.live_sessions()} == {"root", "operator"}


def test_absolute_location(make_mock):
    bmc = make_mock(location="absolute")
    r = login(bmc)
    sid = r.json()["Id"]
    assert r.headers["Location"] == f"https://127.0.0.1:{bmc.port}{SESSIONS}/{sid}"


def test_missing_location_leaves_the_body(make_mock):
    bmc = make_mock(location=None)
    r = login(bmc)
    assert r.status == 201 and "Location" not in r.headers
    token, uri = r.headers["X-Auth-Token"], r.json()["@odata.id"]
    assert uri == f"{SESSIONS}/{r.json()['Id']}"
    assert get(bmc, uri, token).json()["Id"] == r.json()["Id"]


def test_location_is_settable_later(bmc):
    bmc.location = "absolute"
    assert login(bmc).headers["Location"].startswith(bmc.url + SESSIONS + "/")
    bmc.location = None
    assert "Location" not in login(bmc).headers


@pytest.mark.parametrize("user,password", [("root", "wrong-password"),
                                           ("nobody", "wrong-password")])
def test_bad_credentials_idrac_body(bmc, user, password):
    r = login(bmc, user, password)
    err = assert_redfish_error(r, 401, IDRAC_BAD_LOGIN)
    [info] = err["@Message.ExtendedInfo"]
    assert re.fullmatch(r"Unable to log in .* because the username or password is incorrect\.",
                        info["Message"])
    assert info["Severity"] == "Critical"
    assert err["code"] == "Base.1.12.GeneralError"
    assert "X-Auth-Token" not in r.headers and password not in r.body.decode()
    assert bmc.live_sessions() == [] and bmc.logins == 1


def test_bad_credentials_base_body(make_mock):
    bmc = make_mock(auth_error="base")
    err = assert_redfish_error(login(bmc, password="wrong-password"), 401, NO_VALID_SESSION)
    assert "username or password is incorrect" in err["@Message.ExtendedInfo"][0]["Message"]


def test_bad_credentials_empty_body(make_mock):
    bmc = make_mock(auth_error="empty")
    r = login(bmc, password="wrong-password")
    assert r.status == 401 and r.body == b""
    assert r.headers["Content-Length"] == "0"
    # Every 401 is empty then, token failures included.
    r = get(bmc, SESSION_SERVICE, "0" * 32)
    assert r.status == 401 and r.body == b""


def test_users_can_be_added_and_changed(bmc):
    bmc.add_user("ops2", "ops2-password")
    assert login(bmc, "ops2").status == 201
    old = bmc.password("root")
    bmc.add_user("root", "new-root-password")
    assert login(bmc, "root", old).status == 401
    assert login(bmc, "root").status == 201
    bmc.remove_user("ops2")
    assert login(bmc, "ops2", "ops2-password").status == 401
    assert len(bmc.live_sessions()) == 2  # sessions outlive password changes


@pytest.mark.parametrize("body,status,message_id", [
    (b"not json", 400, "Base.1.12.MalformedJSON"),
    (b"[]", 400, "Base.1.12.MalformedJSON"),
    (b'{"UserName": "root"}', 400, "Base.1.12.PropertyMissing"),
    (b'{"Password": "x"}', 400, "Base.1.12.PropertyMissing")])
def test_malformed_login_body(bmc, body, status, message_id):
    r = bmc.call("POST", SESSIONS, body, headers={"Content-Type": "application/json"})
    assert_redfish_error(r, status, message_id)
    assert bmc.live_sessions() == []


def test_login_body_must_be_json_typed(bmc):
    body = f'{{"UserName": "root", "Password": "{bmc.password()}"}}'.encode()
    r = bmc.call("POST", SESSIONS, body,
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 415 and bmc.live_sessions() == []
    r = bmc.call("POST", SESSIONS, body,
                 headers={"Content-Type": "application/json; charset=utf-8"})
    assert r.status == 201
    bmc.require_json = False
    r = bmc.call("POST", SESSIONS, body,
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 201


def test_unsupported_odata_version_is_rejected(bmc):
    r = bmc.call("GET", "/redfish/v1/", headers={"OData-Version": "4.01"})
    assert r.status == 412


# --- the session limit ------------------------------------------------------

def test_ninth_login_gets_503_rac0218(bmc):
    assert bmc.session_limit == 8
    tokens = [new_session(bmc)[0] for _ in range(8)]
    r = login(bmc)
    err = assert_redfish_error(r, 503, IDRAC_SESSION_LIMIT)
    assert error_message_ids(r.json()) == [IDRAC_SESSION_LIMIT,
                                           "Base.1.12.SessionLimitExceeded"]
    assert err["@Message.ExtendedInfo"][0]["Message"] == SESSION_LIMIT_MESSAGE
    assert "X-Auth-Token" not in r.headers and len(bmc.live_sessions()) == 8
    # Bad credentials still say so when the BMC is full.
    assert login(bmc, password="wrong-password").status == 401
    # Freeing one slot lets the next login in.
    sid = bmc.live_sessions()[0]["id"]
    assert delete(bmc, f"{SESSIONS}/{sid}", tokens[0]).status == 204
    assert login(bmc).status == 201
    assert bmc.logins == 11


@pytest.mark.parametrize("which,ids", [
    ("idrac", [IDRAC_SESSION_LIMIT]),
    ("base", [SESSION_LIMIT_EXCEEDED]),
    ("both", [IDRAC_SESSION_LIMIT, SESSION_LIMIT_EXCEEDED])])
def test_limit_message_ids_and_status(make_mock, which, ids):
    bmc = make_mock(session_limit=1, limit_status=400, limit_message_ids=which)
    new_session(bmc)
    r = login(bmc)
    assert r.status == 400
    assert error_message_ids(r.json()) == ids
    assert any("SessionLimitExceeded" in i or "RAC0218" in i for i in ids)


def test_other_clients_sessions_count_toward_the_limit(bmc):
    bmc.session_limit = 2
    (id1, t1), (id2, t2) = bmc.create_session(), bmc.create_session("operator")
    assert bmc.requests == []  # made out of band
    assert id1 != id2 and re.fullmatch(r"[0-9a-f]{32}", t1)
    assert login(bmc).status == 503
    assert get(bmc, f"{SESSIONS}/{id1}", t2).json()["ClientOriginIPAddress"] \
        == OTHER_CLIENT_IP
    assert bmc.kill_session(id1)
    assert not bmc.kill_session(id1)
    assert get(bmc, SESSION_SERVICE, t1).status == 401
    assert login(bmc).status == 201
    assert bmc.deletes == []  # kills are not DELETEs


def test_concurrent_logins_respect_the_limit(bmc):
    import threading
    bmc.session_limit = 3
    statuses = []
    threads = [threading.Thread(target=lambda: statuses.append(login(bmc).status))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201] * 3 + [503] * 5
    assert len(bmc.live_sessions()) == 3


# --- authentication of other requests ---------------------------------------

@pytest.mark.parametrize("path", [SESSION_SERVICE, SESSIONS, f"{SESSIONS}/1",
                                  "/redfish/v1/Systems"])
@pytest.mark.parametrize("token", [None, "", "0123456789abcdef0123456789abcdef"])
def test_missing_or_unknown_token_gets_401(bmc, path, token):
    bmc.create_session()  # session 1 exists
    assert_redfish_error(get(bmc, path, token), 401, NO_VALID_SESSION)


def test_basic_auth_works_without_a_session(bmc):
    r = get(bmc, SESSION_SERVICE, headers=basic("root", bmc.password()))
    assert r.status == 200 and r.json()["SessionTimeout"] == 1800
    assert bmc.live_sessions() == []
    token, uri = new_session(bmc)
    assert delete(bmc, uri, token).status == 204
    assert get(bmc, SESSIONS, headers=basic("operator", bmc.password("operator"))) \
        .json()["Members"] == []
    r = get(bmc, SESSIONS, headers=basic("root", "wrong-password"))
    assert_redfish_error(r, 401, IDRAC_BAD_LOGIN)
    r = get(bmc, SESSIONS, headers={"Authorization": "Basic !!!"})
    assert r.status == 401


# --- SessionService and inactivity ------------------------------------------

def test_session_service(bmc):
    token, _ = new_session(bmc)
    svc = get(bmc, SESSION_SERVICE, token).json()
    assert svc["@odata.id"] == SESSION_SERVICE
    assert svc["Sessions"] == {"@odata.id": SESSIONS}
    assert svc["SessionTimeout"] == 1800
    bmc.session_timeout = 120
    assert get(bmc, SESSION_SERVICE, token).json()["SessionTimeout"] == 120


def test_session_timeout_can_be_patched(bmc):
    token, _ = new_session(bmc)
    headers = dict(ODATA, **{"X-Auth-Token": token})
    assert bmc.call("PATCH", SESSION_SERVICE, {"SessionTimeout": 300},
                    headers=headers).status == 200
    assert bmc.session_timeout == 300
    for bad in (10, 90000, "300", True):
        assert bmc.call("PATCH", SESSION_SERVICE, {"SessionTimeout": bad},
                        headers=headers).status == 400
    assert bmc.session_timeout == 300


def test_idle_session_expires(make_mock):
    bmc = make_mock(session_timeout=1)
    token, uri = new_session(bmc)
    other_id, other_token = bmc.create_session("operator")
    time.sleep(1.3)
    # Gone from the listings before anyone touched it.
    assert bmc.live_sessions() == []
    assert sorted(bmc.expired) == sorted([uri.rsplit("/", 1)[1], other_id])
    r = get(bmc, SESSION_SERVICE, token)
    assert_redfish_error(r, 401, NO_VALID_SESSION)
    assert get(bmc, SESSION_SERVICE, other_token).status == 401
    assert delete(bmc, uri, token).status == 401


def test_activity_keeps_a_session_alive(make_mock):
    bmc = make_mock(session_timeout=1)
    token, uri = new_session(bmc)
    idle_id, idle_token = bmc.create_session("operator")
    end = time.monotonic() + 2.2
    while time.monotonic() < end:
        assert get(bmc, uri, token).status == 200
        time.sleep(0.3)
    # Only the active session survived; the idle one is gone from the listing.
    assert get(bmc, SESSIONS, token).json()["Members"] == [{"@odata.id": uri}]
    assert get(bmc, f"{SESSIONS}/{idle_id}", token).status == 404
    [s] = bmc.live_sessions()
    assert s["last_activity"] - s["created"] >= 2


def test_requests_with_another_token_do_not_refresh(make_mock):
    bmc = make_mock(session_timeout=1)
    token, _ = new_session(bmc)
    other_id, _ = bmc.create_session("operator")
    time.sleep(0.6)
    assert get(bmc, f"{SESSIONS}/{other_id}", token).status == 200
    time.sleep(0.6)
    assert bmc.session(other_id) is None and bmc.session(bmc.live_sessions()[0]["id"])


# --- listing, reading and deleting sessions ---------------------------------

def test_collection_lists_live_sessions(bmc):
    token, uri = new_session(bmc)
    other_id, _ = bmc.create_session("operator")
    c = get(bmc, SESSIONS, token).json()
    assert c["@odata.id"] == SESSIONS
    assert c["Members"] == [{"@odata.id": uri}, {"@odata.id": f"{SESSIONS}/{other_id}"}]
    assert c["Members@odata.count"] == 2
    s = get(bmc, f"{SESSIONS}/{other_id}", token).json()
    assert (s["Id"], s["UserName"], s["@odata.id"]) == (other_id, "operator",
                                                        f"{SESSIONS}/{other_id}")
    assert_redfish_error(get(bmc, f"{SESSIONS}/999", token), 404,
                         "Base.1.12.ResourceMissingAtURI")


def test_delete_own_session(bmc):
    token, uri = new_session(bmc)
    r = delete(bmc, uri, token)
    assert r.status == 204 and r.body == b""
    assert bmc.live_sessions() == [] and bmc.deletes == [uri.rsplit("/", 1)[1]]
    # The token died with it.
    assert delete(bmc, uri, token).status == 401
    other, _ = new_session(bmc)
    assert_redfish_error(delete(bmc, uri, other), 404, "Base.1.12.ResourceMissingAtURI")
    assert len(bmc.deletes) == 1


def test_delete_another_session(bmc):
    token, _ = new_session(bmc)
    other_id, other_token = bmc.create_session("operator")
    assert delete(bmc, f"{SESSIONS}/{other_id}", token).status == 204
    assert get(bmc, SESSION_SERVICE, other_token).status == 401
    assert bmc.deletes == [other_id]
    assert [s["user"] for s in bmc.live_sessions()] == ["root"]


@pytest.mark.parametrize("status", [200, 202])
def test_delete_status_variants(make_mock, status):
    bmc = make_mock(delete_status=status)
    token, uri = new_session(bmc)
    r = delete(bmc, uri, token)
    assert r.status == status and "@Message.ExtendedInfo" in r.json()
    assert bmc.live_sessions() == []


def test_delete_needs_authentication(bmc):
    _, uri = new_session(bmc)
    r = bmc.call("DELETE", uri, headers=ODATA)
    assert r.status == 401 and len(bmc.live_sessions()) == 1
    assert bmc.call("DELETE", SESSIONS, headers=ODATA).status == 405


def test_trailing_slash_is_not_the_same_path(bmc):
    token, uri = new_session(bmc)
    for path in (SESSIONS + "/", uri + "/", SESSION_SERVICE + "/",
                 "/redfish/v1/Systems/"):
        assert_redfish_error(get(bmc, path, token), 404, "Base.1.12.ResourceMissingAtURI")
    assert delete(bmc, uri + "/", token).status == 404
    assert login(bmc, path=SESSIONS + "/").status == 404
    assert bmc.logins == 1 and len(bmc.live_sessions()) == 1


def test_unknown_path_and_method(bmc):
    assert bmc.call("GET", "/redfish/v1/Nothing").status == 404
    r = bmc.call("PUT", SESSIONS, {"x": 1}, headers=ODATA)
    assert r.status == 405 and "POST" in r.headers["Allow"]


# --- shared machinery as the Redfish tests use it ---------------------------

def test_requests_are_recorded_with_headers(bmc):
    token, uri = new_session(bmc)
    bmc.call("GET", SESSION_SERVICE, headers={"X-Auth-Token": token})  # no OData-Version
    first, second = bmc.requests
    assert (first.method, first.path) == ("POST", SESSIONS)
    assert first.headers["odata-version"] == "4.0"
    assert first.json()["UserName"] == "root"
    assert second.headers["x-auth-token"] == token
    assert bmc.requests_without_odata_version() == [second]
    assert bmc.count("POST", SESSIONS) == 1


def test_plain_http(ca):
    with RedfishMock(ca, {"root": "plain-password"}, http=True) as bmc:
        assert bmc.url.startswith("http://") and bmc.scheme == "http"
        assert login(bmc).status == 201


def test_fault_500_creates_no_session(bmc):
    bmc.fail = "500"
    assert login(bmc).status == 500
    assert bmc.live_sessions() == [] and bmc.count("POST") == 1
    bmc.fail = None
    assert login(bmc).status == 201


def test_sessions_survive_a_restart_unless_killed(bmc):
    token, _ = new_session(bmc)
    bmc.stop()
    bmc.start()
    assert get(bmc, SESSION_SERVICE, token).status == 200
    bmc.kill_all()
    assert get(bmc, SESSION_SERVICE, token).status == 401
