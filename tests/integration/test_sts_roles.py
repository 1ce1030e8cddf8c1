"""AWS role profiles end to end: the real daemon on a real mount against the
STS mock, with ~/.aws files as the AWS CLI, botocore and aws-vault read them.

  role_arn + source_profile    AssumeRole signed with the source's keys
  chains                       each role assumed with the one before (1 h cap)
  mfa_serial                   one GetSessionToken per source key and serial,
                               reused for every role behind them (aws-vault)
  credential_source            Environment: the daemon's AWS_* variables
  credential_process, sso_*    not run by the daemon: EOPNOTSUPP
"""

import errno
import json
import re
import shutil
import subprocess
import time

import botocore.session
import pytest
from botocore.config import Config

from tests.integration.harness import aos_section, assert_errno, idrac_section, sts_section
from tests.integration.test_sts import (AWS, REGION, check_issued, cli_env, read_creds, run,
                                        status, status_errno)

MFA_SERIAL = "arn:aws:iam::123456789012:mfa/sessionfs-test"
SESSION_NAME = re.compile(r"sessionfs-\d{10}")
DEAD_URL = "https://127.0.0.1:1"  # nothing listens there


# --- helpers ----------------------------------------------------------------

def aws_files(tmp_path, credentials="", config=""):
    """~/.aws/credentials and ~/.aws/config in a directory of their own."""
    aws = tmp_path / "aws"
    aws.mkdir(exist_ok=True)
    (aws / "credentials").write_text(credentials)
    (aws / "config").write_text(config)
    return aws


def keys(profile, key, token=None):
    text = f"[{profile}]\naws_access_key_id = {key[0]}\naws_secret_access_key = {key[1]}\n"
    return text + (f"aws_session_token = {token}\n" if token else "") + "\n"


def profile(name, **settings):
    header = "default" if name == "default" else f"profile {name}"
    return f"[{header}]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()) + "\n"


def daemon_env(mock, aws, endpoint=True, **extra):
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"),
           "AWS_CONFIG_FILE": str(aws / "config"),
           "CURL_CA_BUNDLE": str(mock.ca.ca)}
    if endpoint:
        env["AWS_ENDPOINT_URL_STS"] = mock.url
    env.update(extra)
    return env


def assume_calls(mock):
    return mock.calls_of("AssumeRole")


def role_of(mock, creds):
    """The role whose credentials creds are (checked against the mock)."""
    issued = check_issued(mock, creds)
    assert issued.role_arn, "served credentials that are no role's"
    return issued


def signed_headers(request):
    m = re.search(r"SignedHeaders=([^,\s]+)", request.headers["authorization"])
    return m.group(1).split(";")


def daemon_version(d):
    out = subprocess.run([str(d.binary), "--version"], capture_output=True, text=True,
                         timeout=10).stdout
    return re.search(r"^sessionfs (\S+)$", out, re.M).group(1)


def temporary_keys(mock, key):
    """GetSessionToken with botocore, as a user's own tooling would: (id,
    secret, token) of temporary credentials."""
    c = botocore.session.Session().create_client(
        "sts", region_name=REGION, endpoint_url=mock.url, verify=str(mock.ca.ca),
        aws_access_key_id=key[0], aws_secret_access_key=key[1],
        config=Config(retries={"total_max_attempts": 1}))
    creds = c.get_session_token(DurationSeconds=3600)["Credentials"]
    return creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"]


def clis():
    """Debian's aws-cli 2.9 (ignores AWS_ENDPOINT_URL_STS: --endpoint-url), and
    a current one (botocore reads AWS_ENDPOINT_URL_STS) where installed."""
    found = [pytest.param((AWS, True), id="debian")]
    current = shutil.which("aws")
    if current and shutil.which("aws", path="/usr/bin:/bin") != current:
        found.append(pytest.param((current, False), id="current"))
    return found


# --- a role profile -----------------------------------------------------------

def test_role_profile_serves_the_role_credentials(sts_mock, make_daemon, tmp_path):
    key = sts_mock.new_key()
    arn = sts_mock.add_role("deploy", trusted=[key[0]])
    aws = aws_files(tmp_path, keys("base", key),
                    profile("base", region=REGION)
                    + profile("deploy", role_arn=arn, source_profile="base", region=REGION))
    d = make_daemon(env=daemon_env(sts_mock, aws))

    creds = read_creds(d, "deploy")
    issued = role_of(sts_mock, creds)
    assert issued.role_arn == arn and issued.parent == key[0]
    calls = assume_calls(sts_mock)
    assert len(calls) == 1 and calls[0].ok and calls[0].access_key_id == key[0]
    params = calls[0].params
    assert params["RoleArn"] == arn
    assert SESSION_NAME.fullmatch(params["RoleSessionName"]), params["RoleSessionName"]
    assert abs(int(params["RoleSessionName"].split("-")[1]) - calls[0].time) < 60
    assert "DurationSeconds" not in params and "ExternalId" not in params
    assert sts_mock.calls == []  # no GetSessionToken without MFA

    request = sts_mock.requests[-1]
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert request.headers["user-agent"] == f"sessionfs/{daemon_version(d)}"
    assert "x-amz-security-token" not in request.headers  # long-term source keys

    st = status(d, "deploy")
    assert st["role_arn"] == arn
    assert st["assumed_role_arn"] == sts_mock.assumed_role_arn(arn, params["RoleSessionName"])
    assert st["state"] == "valid"

    # Read again: cached, no second call.
    assert read_creds(d, "deploy") == creds
    assert len(assume_calls(sts_mock)) == 1


@pytest.mark.parametrize("cli", clis())
def test_cli_credential_process_sees_the_assumed_role(sts_mock, make_daemon, tmp_path, cli):
    aws_bin, needs_endpoint_option = cli
    key = sts_mock.new_key()
    arn = sts_mock.add_role("deploy", trusted=[key[0]])
    aws = aws_files(tmp_path, keys("base", key),
                    profile("deploy", role_arn=arn, source_profile="base", region=REGION))
    d = make_daemon(env=daemon_env(sts_mock, aws))
    env = cli_env(tmp_path, sts_mock,
                  f"[profile sfs]\nregion = {REGION}\n"
                  f"credential_process = cat {d.path('sts/deploy/creds.json')}\n")
    argv = [aws_bin, "sts", "get-caller-identity", "--profile", "sfs", "--output", "json"]
    if needs_endpoint_option:
        argv += ["--endpoint-url", sts_mock.url]
    else:
        env["AWS_ENDPOINT_URL_STS"] = sts_mock.url

    identity = json.loads(run(argv, env))
    session = assume_calls(sts_mock)[0].params["RoleSessionName"]
    assert identity["Arn"] == sts_mock.assumed_role_arn(arn, session)
    assert identity["UserId"].endswith(":" + session)
    gci = sts_mock.calls_of("GetCallerIdentity")
    assert len(gci) == 1 and gci[0].ok
    assert gci[0].access_key_id == read_creds(d, "deploy")["AccessKeyId"]


# --- MFA once, roles many -------------------------------------------------------

def test_two_roles_behind_one_mfa_serial(sts_mock, make_daemon, tmp_path):
    key = sts_mock.new_key(mfa_serial=MFA_SERIAL, mfa_code="123456")
    arn_a = sts_mock.add_role("admin-a", trusted=[key[0]], mfa=True)
    arn_b = sts_mock.add_role("admin-b", trusted=[key[0]], mfa=True)
    aws = aws_files(tmp_path, keys("base", key),
                    profile("a", role_arn=arn_a, source_profile="base", mfa_serial=MFA_SERIAL)
                    + profile("b", role_arn=arn_b, source_profile="base", mfa_serial=MFA_SERIAL))
    d = make_daemon(env=daemon_env(sts_mock, aws), debug=True)

    assert_errno(d.read_err("sts/a/creds.json"), errno.ENOKEY)
    st = status(d, "a")
    assert "mfa" in st["last_error"].lower() and status_errno(st) == errno.ENOKEY
    assert sts_mock.all_calls == []

    d.write("sts/a/mfa", "123456\n")
    role_a = role_of(sts_mock, read_creds(d, "a"))
    assert role_a.role_arn == arn_a and role_a.mfa
    gst = sts_mock.calls
    assert len(gst) == 1 and gst[0].ok
    assert gst[0].access_key_id == key[0]
    assert (gst[0].serial_number, gst[0].token_code) == (MFA_SERIAL, "123456")
    mfa_session = gst[0].credentials
    calls = assume_calls(sts_mock)
    assert len(calls) == 1 and calls[0].access_key_id == mfa_session.access_key_id
    assert "TokenCode" not in calls[0].params
    assert "x-amz-security-token" in signed_headers(sts_mock.requests[-1])

    # The second role: no new code, no new GetSessionToken.
    role_b = role_of(sts_mock, read_creds(d, "b"))
    assert role_b.role_arn == arn_b and role_b.mfa
    assert len(sts_mock.calls) == 1
    calls = assume_calls(sts_mock)
    assert len(calls) == 2 and all(c.ok for c in calls)
    assert calls[1].access_key_id == mfa_session.access_key_id

    # The source's status tells how long the MFA session has left.
    sessions = status(d, "base")["mfa_sessions"]
    assert len(sessions) == 1 and sessions[0]["mfa_serial"] == MFA_SERIAL
    left = mfa_session.expiration - time.time()
    assert left - 5 <= sessions[0]["seconds_left"] <= left + 1

    # New role credentials, still no code needed.
    d.unlink("sts/a/creds.json")
    assert role_of(sts_mock, read_creds(d, "a")).role_arn == arn_a
    assert len(sts_mock.calls) == 1 and len(assume_calls(sts_mock)) == 3


def test_mfa_role_with_a_wrong_code_is_rejected(sts_mock, make_daemon, tmp_path):
    key = sts_mock.new_key(mfa_serial=MFA_SERIAL, mfa_code="123456")
    arn = sts_mock.add_role("admin", trusted=[key[0]], mfa=True)
    aws = aws_files(tmp_path, keys("base", key),
                    profile("a", role_arn=arn, source_profile="base", mfa_serial=MFA_SERIAL))
    d = make_daemon(env=daemon_env(sts_mock, aws))
    d.write("sts/a/mfa", "000000")
    assert_errno(d.read_err("sts/a/creds.json"), errno.EKEYREJECTED)
    assert "MultiFactorAuthentication failed" in status(d, "a")["last_error"]
    assert len(sts_mock.calls) == 1 and assume_calls(sts_mock) == []
    assert_errno(d.read_err("sts/a/creds.json"), errno.EKEYREJECTED)  # not retried by itself
    assert len(sts_mock.calls) == 1
    d.write("sts/a/mfa", "123456")
    assert role_of(sts_mock, read_creds(d, "a")).mfa


# --- chains and loops -------------------------------------------------------------

def test_three_profile_chain(sts_mock, make_daemon, tmp_path):
    key = sts_mock.new_key()
    middle = sts_mock.add_role("middle", trusted=[key[0]])
    top = sts_mock.add_role("top", trusted=[middle], max_duration=43200)
    aws = aws_files(tmp_path, keys("base", key),
                    profile("mid", role_arn=middle, source_profile="base")
                    + profile("top", role_arn=top, source_profile="mid", duration_seconds=7200,
                              role_session_name="chained", source_identity="alice",
                              tags="team=infra,cost center=42"))
    d = make_daemon(env=daemon_env(sts_mock, aws), debug=True)

    issued = role_of(sts_mock, read_creds(d, "top"))
    assert issued.role_arn == top
    first, second = assume_calls(sts_mock)
    assert first.ok and first.params["RoleArn"] == middle and first.access_key_id == key[0]
    assert second.ok and second.params["RoleArn"] == top
    assert second.access_key_id == first.credentials.access_key_id  # the middle role's
    assert second.params["DurationSeconds"] == "3600"  # role chaining: capped at 1 h
    assert second.params["RoleSessionName"] == "chained"
    assert second.params["SourceIdentity"] == "alice"
    assert {k: v for k, v in second.params.items() if k.startswith("Tags.")} == {
        "Tags.member.1.Key": "team", "Tags.member.1.Value": "infra",
        "Tags.member.2.Key": "cost center", "Tags.member.2.Value": "42"}
    assert "SourceIdentity" not in first.params and "DurationSeconds" not in first.params
    assert status(d, "top")["assumed_role_arn"] == sts_mock.assumed_role_arn(top, "chained")


def test_source_profile_loop_is_einval(sts_mock, make_daemon, tmp_path):
    key = sts_mock.new_key()
    arn = sts_mock.add_role("r", trusted=[key[0]])
    aws = aws_files(tmp_path, keys("base", key),
                    profile("x", role_arn=arn, source_profile="y")
                    + profile("y", role_arn=arn, source_profile="z")
                    + profile("z", role_arn=arn, source_profile="x")
                    + profile("self", role_arn=arn, source_profile="self")
                    + profile("orphan", role_arn=arn, source_profile="nowhere")
                    + profile("short", role_arn=arn, source_profile="base", duration_seconds=100)
                    + profile("bad-name", role_arn=arn, source_profile="base",
                              role_session_name="no spaces"))
    d = make_daemon(env=daemon_env(sts_mock, aws))

    assert_errno(d.read_err("sts/x/creds.json"), errno.EINVAL)
    st = status(d, "x")
    assert "x -> y -> z -> x" in st["last_error"] and status_errno(st) == errno.EINVAL
    assert_errno(d.read_err("sts/y/creds.json"), errno.EINVAL)
    assert "y -> z -> x -> y" in status(d, "y")["last_error"]
    assert_errno(d.read_err("sts/self/creds.json"), errno.EINVAL)
    assert "self -> self" in status(d, "self")["last_error"]
    assert_errno(d.read_err("sts/orphan/creds.json"), errno.EINVAL)
    assert "nowhere" in status(d, "orphan")["last_error"]
    assert_errno(d.read_err("sts/short/creds.json"), errno.EINVAL)
    assert "duration_seconds" in status(d, "short")["last_error"]
    assert_errno(d.read_err("sts/bad-name/creds.json"), errno.EINVAL)
    assert "role_session_name" in status(d, "bad-name")["last_error"]
    assert sts_mock.all_calls == []


# --- trust policy and STS's errors ------------------------------------------------

def test_wrong_external_id_is_eacces(sts_mock, make_daemon, tmp_path):
    key = sts_mock.new_key()
    arn = sts_mock.add_role("vendor", trusted=[key[0]], external_id="right-external-id")
    aws = aws_files(tmp_path, keys("base", key),
                    profile("v", role_arn=arn, source_profile="base",
                            external_id="wrong-external-id"))
    d = make_daemon(env=daemon_env(sts_mock, aws))

    assert_errno(d.read_err("sts/v/creds.json"), errno.EACCES)
    st = status(d, "v")
    assert status_errno(st) == errno.EACCES
    assert "AccessDenied" in st["last_error"]
    assert f"is not authorized to perform: sts:AssumeRole on resource: {arn}" in st["last_error"]
    call = assume_calls(sts_mock)[0]
    assert call.params["ExternalId"] == "wrong-external-id" and call.error == "AccessDenied"

    # The files are read at each login: fixing the profile is enough.
    aws_files(tmp_path, keys("base", key),
              profile("v", role_arn=arn, source_profile="base", external_id="right-external-id"))
    time.sleep(1.2)  # past the "same failure again" second
    assert role_of(sts_mock, read_creds(d, "v")).role_arn == arn
    assert assume_calls(sts_mock)[-1].params["ExternalId"] == "right-external-id"


def test_region_disabled_is_ehostunreach(sts_mock, make_daemon, tmp_path):
    key = sts_mock.new_key()
    arn = sts_mock.add_role("r", trusted=[key[0]])
    aws = aws_files(tmp_path, keys("base", key), profile("r", role_arn=arn, source_profile="base"))
    d = make_daemon(env=daemon_env(sts_mock, aws))
    sts_mock.inject("region_disabled")
    assert_errno(d.read_err("sts/r/creds.json"), errno.EHOSTUNREACH)
    st = status(d, "r")
    assert "RegionDisabledException" in st["last_error"]
    assert status_errno(st) == errno.EHOSTUNREACH


# --- source credentials ------------------------------------------------------------

def test_temporary_source_credentials(sts_mock, make_daemon, tmp_path):
    key = sts_mock.new_key()
    temp = temporary_keys(sts_mock, key)
    env_temp = temporary_keys(sts_mock, key)
    written = temporary_keys(sts_mock, key)
    arn = sts_mock.add_role("r", trusted=[key[0]])
    aws = aws_files(tmp_path, keys("tmp", temp[:2], temp[2]),
                    profile("from-file", role_arn=arn, source_profile="tmp")
                    + profile("from-env", role_arn=arn, credential_source="Environment")
                    + profile("written", role_arn=arn))
    d = make_daemon(debug=True, env=daemon_env(sts_mock, aws, AWS_ACCESS_KEY_ID=env_temp[0],
                                   AWS_SECRET_ACCESS_KEY=env_temp[1],
                                   AWS_SESSION_TOKEN=env_temp[2]))

    # aws_session_token in the credentials file.
    assert role_of(sts_mock, read_creds(d, "from-file")).parent == temp[0]
    call = assume_calls(sts_mock)[-1]
    assert call.ok and call.access_key_id == temp[0]
    request = sts_mock.requests[-1]
    assert request.headers["x-amz-security-token"] == temp[2]
    assert "x-amz-security-token" in signed_headers(request)

    # credential_source = Environment: the daemon's AWS_* variables.
    assert role_of(sts_mock, read_creds(d, "from-env")).parent == env_temp[0]

    # A credentials write with SessionToken: the source of that role.
    assert_errno(d.read_err("sts/written/creds.json"), errno.EINVAL)  # no source yet
    d.write("sts/written/credentials", json.dumps(
        {"AccessKeyId": written[0], "SecretAccessKey": written[1], "SessionToken": written[2]}))
    assert role_of(sts_mock, read_creds(d, "written")).parent == written[0]

    # Expired temporary source credentials: EKEYEXPIRED, naming the profile.
    sts_mock.expire(temp[0])
    d.unlink("sts/from-file/creds.json")
    assert_errno(d.read_err("sts/from-file/creds.json"), errno.EKEYEXPIRED)
    st = status(d, "from-file")
    assert "ExpiredToken" in st["last_error"] and "profile tmp" in st["last_error"]
    assert status_errno(st) == errno.EKEYEXPIRED


def test_credential_process_and_sso_are_eopnotsupp(sts_mock, make_daemon, tmp_path):
    arn = sts_mock.add_role("r", trusted=[])
    aws = aws_files(tmp_path, "",
                    profile("proc", credential_process="/bin/false")
                    + profile("via-proc", role_arn=arn, source_profile="proc")
                    + profile("sso", sso_start_url="https://example.awsapps.com/start",
                              sso_account_id="123456789012", sso_role_name="Admin",
                              sso_region=REGION)
                    + profile("imds", role_arn=arn, credential_source="Ec2InstanceMetadata"))
    d = make_daemon(env=daemon_env(sts_mock, aws))

    for name, words in (("via-proc", "credential_process"), ("proc", "credential_process"),
                        ("sso", "sso"), ("imds", "Ec2InstanceMetadata")):
        assert_errno(d.read_err(f"sts/{name}/creds.json"), errno.EOPNOTSUPP, name)
        st = status(d, name)
        assert status_errno(st) == errno.EOPNOTSUPP, name
        assert words in st["last_error"] and "not" in st["last_error"], st["last_error"]
        assert st["state"] != "no_credentials"
    assert "profile proc" in status(d, "via-proc")["last_error"]
    assert sts_mock.all_calls == []


# --- endpoints and regions -----------------------------------------------------------

def test_endpoint_url_from_the_profile(sts_mock, make_daemon, tmp_path):
    key = sts_mock.new_key()
    arn = sts_mock.add_role("r", trusted=[key[0]])
    sts_mock.region = "eu-north-1"  # only credentials scoped to this region pass
    aws = aws_files(
        tmp_path, keys("base", key),
        profile("p", role_arn=arn, source_profile="base", endpoint_url=sts_mock.url)
        + profile("svc", role_arn=arn, source_profile="base", endpoint_url=DEAD_URL,
                  services="local")
        + f"[services local]\nsts =\n  endpoint_url = {sts_mock.url}\n\n")
    # Without AWS_ENDPOINT_URL(_STS), the profile's endpoints (test_sts_botocore:
    # the environment's come first).
    d = make_daemon(env=daemon_env(sts_mock, aws, endpoint=False, AWS_DEFAULT_REGION="eu-north-1"))

    assert role_of(sts_mock, read_creds(d, "p")).role_arn == arn
    assert status(d, "p")["server"] == sts_mock.url
    assert role_of(sts_mock, read_creds(d, "svc")).role_arn == arn
    assert status(d, "svc")["server"] == sts_mock.url
    assert all(c.ok for c in assume_calls(sts_mock)) and len(assume_calls(sts_mock)) == 2
    # Without an endpoint anywhere, the regional one of the region.
    assert status(d, "base")["server"] == "https://sts.eu-north-1.amazonaws.com"


# --- restart -------------------------------------------------------------------------

def test_restart_resumes_role_credentials(sts_mock, make_daemon, tmp_path):
    key = sts_mock.new_key()
    arn = sts_mock.add_role("r", trusted=[key[0]])
    aws = aws_files(tmp_path, keys("base", key), profile("r", role_arn=arn, source_profile="base"))
    d = make_daemon(env=daemon_env(sts_mock, aws))
    creds = read_creds(d, "r")
    assumed = status(d, "r")["assumed_role_arn"]
    assert len(sts_mock.all_calls) == 1

    d.restart()
    assert read_creds(d, "r") == creds
    assert status(d, "r")["assumed_role_arn"] == assumed
    d.kill9()
    d.start()
    assert read_creds(d, "r") == creds
    assert len(sts_mock.all_calls) == 1, "a restart asked STS again"


# --- User-Agent --------------------------------------------------------------------

def test_user_agent_on_every_request_of_every_provider(sts_mock, aos_mock, redfish_mock,
                                                       make_daemon):
    key = sts_mock.new_key()
    d = make_daemon(sts_section(sts_mock, key=key), aos_section(aos_mock, "lab"),
                    idrac_section(redfish_mock, "bmc"))
    d.read("sts/p/creds.json")
    d.read("aos/lab/token")
    d.read("idrac/bmc/token")
    d.listdir("idrac/bmc/sessions")
    agent = f"sessionfs/{daemon_version(d)}"
    for mock in (sts_mock, aos_mock, redfish_mock):
        assert mock.requests, mock
        assert [r.headers.get("user-agent") for r in mock.requests] == \
            [agent] * len(mock.requests), mock


# --- roles in the daemon's config -------------------------------------------------

def test_role_in_an_sts_section(sts_mock, make_daemon, tmp_path):
    key, other = sts_mock.new_key(), sts_mock.new_key()
    arn = sts_mock.add_role("deploy", trusted=[key[0], other[0]], external_id="abc-123")
    aws = aws_files(tmp_path, keys("ci", key))
    d = make_daemon(
        sts_section(sts_mock, "deploy", role_arn=arn, source_profile="ci", external_id="abc-123",
                    role_session_name="from-config"),
        sts_section(sts_mock, "own-keys", key=other, role_arn=arn, external_id="abc-123"),
        env=daemon_env(sts_mock, aws, endpoint=False))

    assert role_of(sts_mock, read_creds(d, "deploy")).parent == key[0]
    call = assume_calls(sts_mock)[-1]
    assert call.params["RoleSessionName"] == "from-config"
    assert call.params["ExternalId"] == "abc-123"
    # Keys in the section are the role's source.
    assert role_of(sts_mock, read_creds(d, "own-keys")).parent == other[0]
    assert sts_mock.calls == []
