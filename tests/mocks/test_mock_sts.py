"""The STS mock, exercised directly with real AWS clients.

The daemon's STS tests are only as good as this mock, so it is held to what
real clients expect of STS: botocore (the reference for the XML shapes and
for SigV4), the AWS CLI, and curl's --aws-sigv4, which is the libcurl signer
(CURLOPT_AWS_SIGV4) the daemon itself uses.
"""

import hashlib
import http.client
import os
import re
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.mocks.common import client_context
from tests.mocks.sts import (IssuedCredentials, StsMock, format_expiration,
                             new_key_pair)

NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
GST = "Action=GetSessionToken&Version=2011-06-15"
GCI = "Action=GetCallerIdentity&Version=2011-06-15"
MFA_SERIAL = "arn:aws:iam::123456789012:mfa/sessionfs-test"
REGION = "us-east-1"


# --- fixtures and clients ---------------------------------------------------

@pytest.fixture(autouse=True)
def clean_aws_env(monkeypatch, tmp_path):
    """No AWS settings or proxies from the environment reach the clients."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    for name in ("config", "credentials"):
        (tmp_path / f"aws-{name}").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def sts(ca):
    with StsMock(ca) as mock:
        yield mock


@pytest.fixture
def key(sts):
    """A long-term key pair (id, secret) the mock knows."""
    return sts.new_key()


def client(mock, access_key, secret, token=None, **config):
    """A botocore STS client on the mock: no retries, no client-side
    parameter validation (the server's validation is what is tested)."""
    session = botocore.session.Session()
    return session.create_client(
        "sts", region_name=REGION, endpoint_url=mock.url,
        verify=str(mock.ca.ca) if mock.ca else None,
        aws_access_key_id=access_key, aws_secret_access_key=secret,
        aws_session_token=token,
        config=Config(retries={"total_max_attempts": 1}, parameter_validation=False,
                      **config))


def temp_client(mock, creds):
    return client(mock, creds.access_key_id, creds.secret_access_key, creds.session_token)


def client_error(call, **kwargs):
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    return e.value.response


def assert_error(response, status, code, message=None):
    assert response["Error"]["Code"] == code
    assert response["Error"]["Type"] == "Sender"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    uuid.UUID(response["ResponseMetadata"]["RequestId"])
    if message is not None:
        assert response["Error"]["Message"] == message


def issue(mock, key, **params):
    """GetSessionToken with botocore; returns the mock's IssuedCredentials."""
    r = client(mock, *key).get_session_token(**params)
    return mock.credentials(r["Credentials"]["AccessKeyId"])


def curl(mock, access_key, secret, data=GST, headers=(), extra=()):
    """POST data signed by curl's --aws-sigv4; returns (status, body)."""
    cmd = ["curl", "-sS", "--noproxy", "*", "-o", "-", "-w", "\n%{http_code}",
           "--aws-sigv4", f"aws:amz:{REGION}:sts", "--user", f"{access_key}:{secret}"]
    if mock.ca:
        cmd += ["--cacert", str(mock.ca.ca)]
    for h in headers:
        cmd += ["-H", h]
    cmd += [*extra, "-d", data, mock.url + "/"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=30).stdout
    body, _, status = out.rpartition("\n")
    return int(status), body


def parse(body):
    return ET.fromstring(body)


def error_code(body):
    return parse(body).find(f"{NS}Error/{NS}Code").text


def signed_request(mock, access_key, secret, body=GST, token=None, headers=None,
                   when=None):
    """A request signed by botocore's SigV4Auth, as (headers, body) to send
    with send(): lets a test tamper with it after signing."""
    req = AWSRequest("POST", mock.url + "/", data=body.encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
        "Host": f"{mock.host}:{mock.port}", **(headers or {})})
    signer = SigV4Auth(Credentials(access_key, secret, token), "sts", REGION)
    signer.add_auth(req)
    if when is not None:  # re-sign as of another time
        req.context["timestamp"] = when
        del req.headers["X-Amz-Date"]
        req.headers["X-Amz-Date"] = when
        del req.headers["Authorization"]
        canonical = signer.canonical_request(req)
        sig = signer.signature(signer.string_to_sign(req, canonical), req)
        signer._inject_signature_to_request(req, sig)
    return dict(req.headers.items()), body.encode()


def send(mock, headers, body, method="POST", path="/"):
    """Send exactly these headers (http.client adds only what is missing)."""
    if mock.ca:
        conn = http.client.HTTPSConnection(mock.host, mock.port, timeout=10,
                                           context=client_context(mock.ca))
    else:
        conn = http.client.HTTPConnection(mock.host, mock.port, timeout=10)
    names = {k.lower() for k in headers}
    conn.putrequest(method, path, skip_host="host" in names,
                    skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    if "content-length" not in names:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), data.decode()


# --- GetSessionToken --------------------------------------------------------

def test_get_session_token_parsed_by_botocore(sts, key):
    before = sts.now()
    r = client(sts, *key).get_session_token()
    c = r["Credentials"]
    assert set(c) == {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
    assert re.fullmatch(r"ASIA[A-Z2-7]{16}", c["AccessKeyId"])
    assert re.fullmatch(r"[A-Za-z0-9+/]{40}", c["SecretAccessKey"])
    assert re.fullmatch(r"[A-Za-z0-9+/]{300,}=*", c["SessionToken"])
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    uuid.UUID(r["ResponseMetadata"]["RequestId"])

    rec = sts.credentials(c["AccessKeyId"])
    assert isinstance(rec, IssuedCredentials)
    assert (rec.secret_access_key, rec.session_token) == (c["SecretAccessKey"],
                                                          c["SessionToken"])
    assert rec.parent == key[0] and not rec.mfa
    assert c["Expiration"] == datetime.fromtimestamp(rec.expiration, timezone.utc)
    # No DurationSeconds: STS's default of 12 hours.
    assert rec.duration_seconds == 43200
    assert int(before) + 43200 <= rec.expiration <= sts.now() + 43200
    assert sts.issued == [rec]
    assert sts.is_valid(rec.access_key_id) and sts.is_valid(key[0])

    [call] = sts.calls
    assert call.ok and call.status == 200 and call.params == {}
    assert call.access_key_id == key[0] and call.credentials == rec


def test_duration_seconds_sets_expiration_and_is_recorded(sts, key):
    before = int(sts.now())
    rec = issue(sts, key, DurationSeconds=900)
    assert rec.duration_seconds == 900
    assert before + 900 <= rec.expiration <= sts.now() + 900
    assert sts.calls[-1].params == {"DurationSeconds": "900"}
    assert sts.calls[-1].duration_seconds == "900"
    rec = issue(sts, key, DurationSeconds=129600)
    assert rec.expiration - rec.issued_at == pytest.approx(129600, abs=1)


def test_lifetime_override_shortens_expiration(sts, key):
    sts.lifetime = 905
    rec = issue(sts, key, DurationSeconds=3600)
    assert rec.duration_seconds == 3600
    assert rec.expiration - rec.issued_at == pytest.approx(905, abs=1)
    assert sts.calls[-1].params == {"DurationSeconds": "3600"}


def test_success_xml_is_exactly_sts_shaped(sts, key):
    status, body = curl(sts, *key, data=GST + "&DurationSeconds=3600")
    assert status == 200
    root = parse(body)
    assert root.tag == NS + "GetSessionTokenResponse"
    assert [e.tag for e in root] == [NS + "GetSessionTokenResult", NS + "ResponseMetadata"]
    [creds] = root.find(NS + "GetSessionTokenResult")
    assert creds.tag == NS + "Credentials"
    assert [e.tag for e in creds] == [NS + t for t in ("AccessKeyId", "SecretAccessKey",
                                                       "SessionToken", "Expiration")]
    rec = sts.credentials(creds.find(NS + "AccessKeyId").text)
    assert creds.find(NS + "SessionToken").text == rec.session_token
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", creds.find(NS + "Expiration").text)
    assert creds.find(NS + "Expiration").text == format_expiration(rec.expiration)
    uuid.UUID(root.find(f"{NS}ResponseMetadata/{NS}RequestId").text)
    assert body.startswith('<GetSessionTokenResponse xmlns="https://sts.amazonaws.com/'
                           'doc/2011-06-15/">\n  <GetSessionTokenResult>\n')

    sts.pretty = False
    status, body = curl(sts, *key)
    assert re.fullmatch(
        r'<GetSessionTokenResponse xmlns="https://sts\.amazonaws\.com/doc/2011-06-15/">'
        r"<GetSessionTokenResult><Credentials><AccessKeyId>ASIA\w{16}</AccessKeyId>"
        r"<SecretAccessKey>[\w+/]{40}</SecretAccessKey><SessionToken>[\w+/=]+"
        r"</SessionToken><Expiration>[\dT:-]+Z</Expiration></Credentials>"
        r"</GetSessionTokenResult><ResponseMetadata><RequestId>[\w-]{36}</RequestId>"
        r"</ResponseMetadata></GetSessionTokenResponse>", body)


def test_expiration_with_milliseconds(sts, key):
    sts.expiration_ms = True
    status, body = curl(sts, *key)
    text = parse(body).find(f".//{NS}Expiration").text
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z", text)
    r = client(sts, *key).get_session_token(DurationSeconds=1800)
    rec = sts.credentials(r["Credentials"]["AccessKeyId"])
    assert rec.expiration_text.endswith(".000Z")
    assert r["Credentials"]["Expiration"].timestamp() == rec.expiration


def test_wrong_secret_is_signature_does_not_match(sts, key):
    wrong = new_key_pair()[1]
    r = client_error(client(sts, key[0], wrong).get_session_token)
    assert_error(r, 403, "SignatureDoesNotMatch",
                 "The request signature we calculated does not match the signature you "
                 "provided. Check your AWS Secret Access Key and signing method. Consult "
                 "the service documentation for details.")
    [call] = sts.calls
    assert call.error == "SignatureDoesNotMatch" and call.access_key_id == key[0]
    assert sts.issued == []


def test_unknown_key_is_invalid_client_token_id(sts):
    r = client_error(client(sts, *new_key_pair()).get_session_token)
    assert_error(r, 403, "InvalidClientTokenId",
                 "The security token included in the request is invalid.")
    assert not sts.is_valid(new_key_pair()[0])


def test_removed_key_is_rejected(sts, key):
    sts.remove_key(key[0])
    r = client_error(client(sts, *key).get_session_token)
    assert_error(r, 403, "InvalidClientTokenId")
    assert not sts.is_valid(key[0])


def test_duration_out_of_range_is_validation_error(sts, key):
    c = client(sts, *key)
    r = client_error(c.get_session_token, DurationSeconds=100)
    assert_error(r, 400, "ValidationError",
                 "1 validation error detected: Value '100' at 'durationSeconds' failed to "
                 "satisfy constraint: Member must have value greater than or equal to 900")
    r = client_error(c.get_session_token, DurationSeconds=129601)
    assert_error(r, 400, "ValidationError",
                 "1 validation error detected: Value '129601' at 'durationSeconds' failed "
                 "to satisfy constraint: Member must have value less than or equal to 129600")
    r = client_error(c.get_session_token, DurationSeconds=899, SerialNumber=MFA_SERIAL,
                     TokenCode="12ab56")
    assert_error(r, 400, "ValidationError")
    assert r["Error"]["Message"].startswith("2 validation errors detected: ")
    assert "at 'tokenCode' failed to satisfy constraint: Member must satisfy regular " \
           "expression pattern: [\\d]*" in r["Error"]["Message"]
    assert [c.error for c in sts.calls] == ["ValidationError"] * 3
    assert sts.issued == []


# --- MFA --------------------------------------------------------------------

@pytest.fixture
def mfa_key(sts):
    return sts.new_key(mfa_serial=MFA_SERIAL, mfa_code="123456")


def test_mfa_missing_is_access_denied(sts, mfa_key):
    r = client_error(client(sts, *mfa_key).get_session_token)
    assert_error(r, 403, "AccessDenied",
                 "MultiFactorAuthentication failed with invalid MFA one time pass code.")


def test_mfa_wrong_code_is_access_denied(sts, mfa_key):
    r = client_error(client(sts, *mfa_key).get_session_token,
                     SerialNumber=MFA_SERIAL, TokenCode="654321")
    assert_error(r, 403, "AccessDenied",
                 "MultiFactorAuthentication failed with invalid MFA one time pass code.")
    assert sts.calls[-1].params == {"SerialNumber": MFA_SERIAL, "TokenCode": "654321"}


def test_mfa_wrong_serial_or_half_given_is_access_denied(sts, mfa_key):
    c = client(sts, *mfa_key)
    r = client_error(c.get_session_token, SerialNumber=MFA_SERIAL + "x", TokenCode="123456")
    assert_error(r, 403, "AccessDenied")
    assert "unable to validate MFA code" in r["Error"]["Message"]
    r = client_error(c.get_session_token, SerialNumber=MFA_SERIAL)
    assert_error(r, 403, "AccessDenied", "MultiFactorAuthentication failed, must provide "
                 "both MFA serial number and one time pass code.")
    r = client_error(c.get_session_token, TokenCode="123456")
    assert_error(r, 403, "AccessDenied")
    assert sts.issued == []


def test_mfa_right_code_works_once(sts, mfa_key):
    c = client(sts, *mfa_key)
    r = c.get_session_token(SerialNumber=MFA_SERIAL, TokenCode="123456",
                            DurationSeconds=3600)
    rec = sts.credentials(r["Credentials"]["AccessKeyId"])
    assert rec.mfa and rec.duration_seconds == 3600
    assert sts.calls[-1].token_code == "123456" and sts.calls[-1].serial_number == MFA_SERIAL
    # AWS accepts a one-time code once.
    r = client_error(c.get_session_token, SerialNumber=MFA_SERIAL, TokenCode="123456")
    assert_error(r, 403, "AccessDenied")
    sts.set_mfa_code(mfa_key[0], "000042")
    c.get_session_token(SerialNumber=MFA_SERIAL, TokenCode="000042")
    assert len(sts.issued) == 2
    sts.mfa_single_use = False
    c.get_session_token(SerialNumber=MFA_SERIAL, TokenCode="000042")
    assert len(sts.issued) == 3


def test_mfa_given_for_a_key_without_mfa_is_access_denied(sts, key):
    r = client_error(client(sts, *key).get_session_token,
                     SerialNumber=MFA_SERIAL, TokenCode="123456")
    assert_error(r, 403, "AccessDenied")


# --- GetCallerIdentity and temporary credentials ----------------------------

def test_get_caller_identity_with_issued_credentials(sts, key):
    rec = issue(sts, key)
    r = temp_client(sts, rec).get_caller_identity()
    assert r["Arn"] == "arn:aws:iam::123456789012:user/sessionfs-test"
    assert r["Account"] == "123456789012"
    assert r["UserId"] == sts.user_id() and re.fullmatch(r"AIDA[A-Z2-7]{17}", r["UserId"])
    # The long-term key is the same IAM user.
    assert client(sts, *key).get_caller_identity()["Arn"] == r["Arn"]
    assert [c.action for c in sts.all_calls] == ["GetSessionToken", "GetCallerIdentity",
                                                  "GetCallerIdentity"]
    assert len(sts.calls) == 1


def test_temporary_credentials_need_their_session_token(sts, key):
    rec = issue(sts, key)
    other = issue(sts, key)
    for token in (None, other.session_token):
        r = client_error(client(sts, rec.access_key_id, rec.secret_access_key,
                                token).get_caller_identity)
        assert_error(r, 403, "InvalidClientTokenId",
                     "The security token included in the request is invalid.")
    # A long-term key with a session token is not valid either.
    r = client_error(client(sts, *key, rec.session_token).get_caller_identity)
    assert_error(r, 403, "InvalidClientTokenId")
    r = client_error(client(sts, rec.access_key_id, key[1],
                            rec.session_token).get_caller_identity)
    assert_error(r, 403, "SignatureDoesNotMatch")


def test_expired_credentials_are_expired_token(sts, key):
    rec = issue(sts, key)
    c = temp_client(sts, rec)
    c.get_caller_identity()
    sts.expire(rec.access_key_id)
    assert not sts.is_valid(rec.access_key_id)
    r = client_error(c.get_caller_identity)
    assert_error(r, 403, "ExpiredToken", "The security token included in the request is expired")

    sts.lifetime = 905
    rec = issue(sts, key, DurationSeconds=900)
    assert sts.is_valid(rec.access_key_id, at=rec.issued_at + 904)
    assert not sts.is_valid(rec.access_key_id, at=rec.expiration)
    temp_client(sts, rec).get_caller_identity()


def test_get_session_token_with_session_credentials_is_denied(sts, key):
    rec = issue(sts, key)
    r = client_error(temp_client(sts, rec).get_session_token)
    assert_error(r, 403, "AccessDenied", "Cannot call GetSessionToken with session credentials")


def test_aws_cli_get_caller_identity_with_issued_credentials(sts, key, tmp_path):
    rec = issue(sts, key)
    empty = tmp_path / "empty"
    empty.write_text("")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "AWS_ACCESS_KEY_ID": rec.access_key_id,
           "AWS_SECRET_ACCESS_KEY": rec.secret_access_key,
           "AWS_SESSION_TOKEN": rec.session_token,
           "AWS_CA_BUNDLE": str(sts.ca.ca), "AWS_DEFAULT_REGION": REGION,
           "AWS_CONFIG_FILE": str(empty), "AWS_SHARED_CREDENTIALS_FILE": str(empty),
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_PAGER": ""}
    p = subprocess.run(["/usr/bin/aws", "sts", "get-caller-identity", "--output", "json",
                        "--endpoint-url", sts.url], env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert f'"Arn": "{sts.arn()}"' in p.stdout
    call = sts.all_calls[-1]
    assert call.ok and call.action == "GetCallerIdentity"
    assert call.access_key_id == rec.access_key_id
    # It signed the session token along with the rest.
    auth = sts.requests[-1].headers["authorization"]
    assert "x-amz-security-token" in auth.split("SignedHeaders=")[1].split(",")[0]


# --- curl's --aws-sigv4 (libcurl's CURLOPT_AWS_SIGV4, the daemon's signer) --

def test_curl_signed_get_session_token_is_accepted(sts, key):
    status, body = curl(sts, *key, data=GST + "&DurationSeconds=900")
    assert status == 200, body
    akid = parse(body).find(f".//{NS}AccessKeyId").text
    assert sts.credentials(akid).duration_seconds == 900
    req = sts.requests[-1]
    # What curl 7.88 sends: only host and x-amz-date signed; the default
    # Content-Type (form) is sent but not signed; no x-amz-content-sha256.
    assert re.fullmatch(
        rf"AWS4-HMAC-SHA256 Credential={key[0]}/\d{{8}}/us-east-1/sts/aws4_request, "
        r"SignedHeaders=host;x-amz-date, Signature=[0-9a-f]{64}", req.headers["authorization"])
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    assert "x-amz-content-sha256" not in req.headers
    assert req.body == (GST + "&DurationSeconds=900").encode()


def test_curl_signs_the_headers_it_is_given(sts, key):
    # Headers set with -H (CURLOPT_HTTPHEADER) are signed, User-Agent
    # included, which botocore itself never signs: the mock must verify
    # over exactly SignedHeaders.
    status, body = curl(sts, *key, headers=(
        "Content-Type: application/x-www-form-urlencoded; charset=utf-8",
        "User-Agent: sessionfs/0.1", "Accept: text/xml"))
    assert status == 200, body
    auth = sts.requests[-1].headers["authorization"]
    assert "SignedHeaders=accept;content-type;host;user-agent;x-amz-date," in auth


def test_curl_signed_caller_identity_with_session_token(sts, key):
    rec = issue(sts, key)
    status, body = curl(sts, rec.access_key_id, rec.secret_access_key, data=GCI,
                        headers=(f"X-Amz-Security-Token: {rec.session_token}",))
    assert status == 200, body
    assert parse(body).find(f".//{NS}Arn").text == sts.arn()
    assert "x-amz-security-token" in sts.requests[-1].headers["authorization"]
    status, body = curl(sts, rec.access_key_id, rec.secret_access_key, data=GCI)
    assert (status, error_code(body)) == (403, "InvalidClientTokenId")


def test_curl_with_wrong_secret_or_unknown_key_is_rejected(sts, key):
    status, body = curl(sts, key[0], new_key_pair()[1])
    assert (status, error_code(body)) == (403, "SignatureDoesNotMatch")
    status, body = curl(sts, *new_key_pair())
    assert (status, error_code(body)) == (403, "InvalidClientTokenId")


def test_curl_removing_content_type_breaks_the_signature(sts, key):
    # curl 7.88 lists a header removed with "Content-Type:" in SignedHeaders
    # (empty value) but does not send it: a signed header that is missing.
    status, body = curl(sts, *key, headers=("Content-Type:",))
    assert (status, error_code(body)) == (403, "SignatureDoesNotMatch")
    assert "content-type" in sts.requests[-1].headers["authorization"]
    assert "content-type" not in sts.requests[-1].headers


def test_plain_http_on_request():
    with StsMock(None) as mock:
        akid, secret = mock.new_key()
        assert mock.url.startswith("http://")
        r = client(mock, akid, secret).get_session_token(DurationSeconds=900)
        assert mock.is_valid(r["Credentials"]["AccessKeyId"])
        assert curl(mock, akid, secret)[0] == 200


# --- what the signature covers ----------------------------------------------

def test_signature_covers_body_and_signed_headers_only(sts, key):
    headers, body = signed_request(sts, *key)
    assert send(sts, headers, body)[0] == 200
    # The body is covered...
    status, _, data = send(sts, headers, body + b"&DurationSeconds=900")
    assert (status, error_code(data)) == (403, "SignatureDoesNotMatch")
    # ...and so is every signed header (content-type here)...
    status, _, data = send(sts, {**headers, "Content-Type":
                                 "application/x-www-form-urlencoded"}, body)
    assert (status, error_code(data)) == (403, "SignatureDoesNotMatch")
    # ...but not an unsigned one.
    assert send(sts, {**headers, "User-Agent": "something else"}, body)[0] == 200
    # A signed header that is missing fails too.
    status, _, data = send(sts, {k: v for k, v in headers.items() if k != "Content-Type"},
                           body)
    assert status == 403


def test_content_sha256_header_must_match_the_body(sts, key):
    good = hashlib.sha256(GST.encode()).hexdigest()
    headers, body = signed_request(sts, *key, headers={"X-Amz-Content-SHA256": good})
    assert send(sts, headers, body)[0] == 200
    bad = hashlib.sha256(b"other").hexdigest()
    headers, body = signed_request(sts, *key, headers={"X-Amz-Content-SHA256": bad})
    status, _, data = send(sts, headers, body)
    assert (status, error_code(data)) == (403, "SignatureDoesNotMatch")


def test_clock_skew_beyond_15_minutes_is_rejected(sts, key):
    c = client(sts, *key)
    sts.clock_offset = 14 * 60
    c.get_session_token()
    sts.clock_offset = 16 * 60
    r = client_error(c.get_session_token)
    assert_error(r, 403, "SignatureDoesNotMatch")
    assert re.fullmatch(r"Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z "
                        r"\(\d{8}T\d{6}Z - 15 min\.\)", r["Error"]["Message"])
    sts.clock_offset = -16 * 60
    r = client_error(c.get_session_token)
    assert_error(r, 403, "SignatureDoesNotMatch")
    assert r["Error"]["Message"].startswith("Signature not yet current: ")
    sts.clock_offset = 0
    # A correctly signed request from 20 minutes ago.
    when = datetime.fromtimestamp(time.time() - 1200, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    headers, body = signed_request(sts, *key, when=when)
    status, _, data = send(sts, headers, body)
    assert (status, error_code(data)) == (403, "SignatureDoesNotMatch")
    assert f"Signature expired: {when} is now earlier than" in data


def test_credential_scope_is_checked(sts, key):
    c = client(sts, *key)
    sts.region = "eu-west-1"
    r = client_error(c.get_session_token)
    assert_error(r, 403, "SignatureDoesNotMatch")
    assert "region" in r["Error"]["Message"]
    sts.region = REGION
    c.get_session_token()
    headers, body = signed_request(sts, *key)
    headers["Authorization"] = headers["Authorization"].replace("/sts/", "/iam/")
    status, _, data = send(sts, headers, body)
    assert (status, error_code(data)) == (403, "SignatureDoesNotMatch")


def test_unsigned_and_malformed_requests(sts, key):
    status, _, data = send(sts, {"Content-Type": "application/x-www-form-urlencoded"},
                           GST.encode())
    assert (status, error_code(data)) == (403, "MissingAuthenticationToken")
    headers, body = signed_request(sts, *key)
    headers["Authorization"] = headers["Authorization"].split(", Signature=")[0]
    status, _, data = send(sts, headers, body)
    assert (status, error_code(data)) == (400, "IncompleteSignature")


# --- the query protocol and errors ------------------------------------------

def test_error_envelope_is_sts_shaped(sts):
    status, headers, body = send(sts, {"Content-Type": "application/x-www-form-urlencoded"},
                                 GST.encode())
    assert status == 403 and headers["Content-Type"] == "text/xml"
    root = parse(body)
    assert root.tag == NS + "ErrorResponse"
    assert [e.tag for e in root] == [NS + "Error", NS + "RequestId"]
    assert [e.tag for e in root.find(NS + "Error")] == [NS + "Type", NS + "Code",
                                                        NS + "Message"]
    assert root.find(NS + "RequestId").text == headers["x-amzn-RequestId"]
    assert body.startswith('<ErrorResponse xmlns="https://sts.amazonaws.com/doc/'
                           '2011-06-15/">\n  <Error>\n    <Type>Sender</Type>\n')


def test_unknown_action_or_version(sts, key):
    status, body = curl(sts, *key, data="Action=AssumeRoleWithSAML&Version=2011-06-15")
    assert (status, error_code(body)) == (400, "InvalidAction")
    status, body = curl(sts, *key, data="Action=GetSessionToken")
    assert (status, error_code(body)) == (400, "InvalidAction")
    assert "NO_VERSION_SPECIFIED" in body
    status, body = curl(sts, *key, data="Action=GetSessionToken&Version=2010-01-01")
    assert status == 400


def test_get_with_query_parameters(sts, key):
    status, body = curl(sts, *key, data=GCI, extra=("-G",))
    assert status == 200, body
    assert sts.requests[-1].method == "GET"


def test_throttling_fault(sts, key):
    c = client(sts, *key)
    sts.inject("throttling", times=2)
    for _ in range(2):
        r = client_error(c.get_session_token)
        assert_error(r, 400, "Throttling", "Rate exceeded")
    c.get_session_token()
    assert [call.error for call in sts.calls] == ["Throttling", "Throttling", None]
    sts.sts_fault = "throttling"
    for _ in range(3):
        assert_error(client_error(c.get_caller_identity), 400, "Throttling")
    sts.inject(None)
    c.get_caller_identity()
    sts.inject("unavailable", times=1)
    r = client_error(c.get_session_token)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert r["Error"]["Code"] == "ServiceUnavailable" and r["Error"]["Type"] == "Receiver"


def test_transport_faults_from_common(sts, key):
    sts.fail = "500"
    assert curl(sts, *key)[0] == 500
    sts.fail = None
    assert curl(sts, *key)[0] == 200
    assert sts.count("POST", "/") == 2


def test_secrets_cover_long_term_and_issued(sts, key):
    rec = issue(sts, key)
    s = sts.secrets()
    assert key[1] in s and rec.secret_access_key in s and rec.session_token in s
    assert key[0] not in s
    assert rec.secret_access_key not in repr(rec) and rec.session_token not in repr(rec)


# --- AssumeRole ---------------------------------------------------------------

def test_assume_role_parsed_by_botocore(sts, key):
    arn = sts.add_role("deploy", trusted=[key[0]], max_duration=7200)
    r = client(sts, *key).assume_role(RoleArn=arn, RoleSessionName="s1", DurationSeconds=7200,
                                       SourceIdentity="alice")
    user = r["AssumedRoleUser"]
    assert user["Arn"] == f"arn:aws:sts::{sts.account}:assumed-role/deploy/s1"
    assert user["AssumedRoleId"].startswith("AROA") and user["AssumedRoleId"].endswith(":s1")
    assert r["SourceIdentity"] == "alice"
    creds = r["Credentials"]
    rec = sts.credentials(creds["AccessKeyId"])
    assert rec.role_arn == arn and rec.parent == key[0] and rec.duration_seconds == 7200
    assert abs(creds["Expiration"].timestamp() - (time.time() + 7200)) < 5
    identity = client(sts, creds["AccessKeyId"], creds["SecretAccessKey"],
                      creds["SessionToken"]).get_caller_identity()
    assert identity["Arn"] == user["Arn"] and identity["UserId"] == user["AssumedRoleId"]
    calls = sts.calls_of("AssumeRole")
    assert len(calls) == 1 and calls[0].ok and calls[0].access_key_id == key[0]
    assert calls[0].params["RoleArn"] == arn and calls[0].params["RoleSessionName"] == "s1"
    assert sts.calls == []  # GetSessionToken's log is its own


def test_assume_role_trust_external_id_and_validation(sts, key):
    other = sts.new_key()
    arn = sts.add_role("ext", trusted=[key[0]], external_id="the-external-id")
    denied = (f"User: {sts.arn()} is not authorized to perform: sts:AssumeRole on "
              f"resource: {arn}")
    c = client(sts, *key)
    assert_error(client_error(c.assume_role, RoleArn=arn, RoleSessionName="ss"),
                 403, "AccessDenied", denied)
    assert_error(client_error(c.assume_role, RoleArn=arn, RoleSessionName="ss",
                              ExternalId="wrong-id"), 403, "AccessDenied", denied)
    assert_error(client_error(client(sts, *other).assume_role, RoleArn=arn,
                              RoleSessionName="ss", ExternalId="the-external-id"),
                 403, "AccessDenied", denied)
    unknown = arn.replace("ext", "nope")
    assert_error(client_error(c.assume_role, RoleArn=unknown, RoleSessionName="ss",
                              ExternalId="the-external-id"), 403, "AccessDenied")
    for bad in ({"RoleSessionName": "x"}, {"RoleSessionName": "a b"},
                {"RoleSessionName": "ss", "DurationSeconds": 899}):
        r = client_error(c.assume_role, RoleArn=arn, ExternalId="the-external-id", **bad)
        assert_error(r, 400, "ValidationError")
    assert_error(client_error(c.assume_role, RoleArn=arn, RoleSessionName="ss",
                              ExternalId="the-external-id", DurationSeconds=7200),
                 400, "ValidationError", "The requested DurationSeconds exceeds the "
                 "MaxSessionDuration set for this role.")
    c.assume_role(RoleArn=arn, RoleSessionName="ss", ExternalId="the-external-id")
    assert [x.error for x in sts.calls_of("AssumeRole")] == \
        ["AccessDenied"] * 4 + ["ValidationError"] * 4 + [None]


def test_assume_role_mfa_by_code_or_by_mfa_session(sts):
    key = sts.new_key(mfa_serial=MFA_SERIAL, mfa_code="123456")
    arn = sts.add_role("admin", trusted=[key[0]], mfa=True)
    c = client(sts, *key)
    assert_error(client_error(c.assume_role, RoleArn=arn, RoleSessionName="ss"),
                 403, "AccessDenied")
    assert_error(client_error(c.assume_role, RoleArn=arn, RoleSessionName="ss",
                              SerialNumber=MFA_SERIAL, TokenCode="000000"),
                 403, "AccessDenied", "MultiFactorAuthentication failed with invalid MFA "
                 "one time pass code.")
    r = c.assume_role(RoleArn=arn, RoleSessionName="ss", SerialNumber=MFA_SERIAL,
                      TokenCode="123456")
    assert sts.credentials(r["Credentials"]["AccessKeyId"]).mfa
    # aws-vault's way: one GetSessionToken with MFA, then roles with no code.
    sts.set_mfa_code(key[0], "654321")
    session = issue(sts, key, SerialNumber=MFA_SERIAL, TokenCode="654321")
    for name in ("aa", "bb"):
        r = temp_client(sts, session).assume_role(RoleArn=arn, RoleSessionName=name)
        rec = sts.credentials(r["Credentials"]["AccessKeyId"])
        assert rec.mfa and rec.parent == session.access_key_id
    # A session without MFA does not do.
    plain_key = sts.new_key()
    plain_role = sts.add_role("plain", trusted=[plain_key[0]], mfa=True)
    plain = issue(sts, plain_key)
    assert_error(client_error(temp_client(sts, plain).assume_role, RoleArn=plain_role,
                              RoleSessionName="ss"), 403, "AccessDenied")


def test_role_chaining(sts, key):
    first = sts.add_role("first", trusted=[key[0]], max_duration=43200)
    second_arn = f"arn:aws:iam::{sts.account}:role/second"
    sts.add_role("second", trusted=[first], max_duration=43200)
    r = client(sts, *key).assume_role(RoleArn=first, RoleSessionName="one")
    first_creds = sts.credentials(r["Credentials"]["AccessKeyId"])
    c = temp_client(sts, first_creds)
    r = client_error(c.assume_role, RoleArn=second_arn, RoleSessionName="two",
                     DurationSeconds=7200)
    assert_error(r, 400, "ValidationError", "The requested DurationSeconds exceeds the 1 "
                 "hour session limit for roles assumed by role chaining.")
    r = c.assume_role(RoleArn=second_arn, RoleSessionName="two", DurationSeconds=3600)
    rec = sts.credentials(r["Credentials"]["AccessKeyId"])
    assert rec.role_arn == second_arn and rec.parent == first_creds.access_key_id
    assert rec.root_key == key[0]
    # The long-term key itself is not trusted by the second role.
    assert_error(client_error(client(sts, *key).assume_role, RoleArn=second_arn,
                              RoleSessionName="xx"), 403, "AccessDenied")
    # Expired source credentials.
    sts.expire(first_creds.access_key_id)
    assert_error(client_error(c.assume_role, RoleArn=second_arn, RoleSessionName="three"),
                 403, "ExpiredToken")


def test_region_disabled_fault(sts, key):
    sts.inject("region_disabled", times=1)
    r = client_error(client(sts, *key).get_session_token)
    assert_error(r, 403, "RegionDisabledException")
    assert "STS is not activated in this region" in r["Error"]["Message"]
