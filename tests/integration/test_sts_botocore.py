"""AWS profiles as botocore resolves them (issue 21, item 5): each case asks
botocore itself (Debian's python3-botocore, run on the same files in the same
environment, see botocore_oracle.py) and checks that sessionfs does the same
at the STS mock: which key signed, which endpoint got the request, which
region is in the SigV4 scope.

  a source profile with keys and a role_arn    its keys, not its role
  source_profile and credential_source         InvalidConfigError: EINVAL
  a profile name with a space                  listed under sts/, as botocore lists it
  AWS_DEFAULT_REGION, AWS_ENDPOINT_URL[_STS]    before the profile's region and endpoints

Debian 12's botocore (1.29) knows no configured endpoints at all
(endpoint_url, [services], AWS_ENDPOINT_URL*: botocore 1.31): those cases
follow the AWS SDKs' documented order, and are checked against a newer
botocore too when some python3 on PATH has one.
"""

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness import assert_errno
from tests.integration.test_sts import read_creds, status, status_errno
from tests.integration.test_sts_roles import aws_files, keys, profile
from tests.mocks.sts import StsMock

ORACLE = Path(__file__).with_name("botocore_oracle.py")
SCOPE = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/sts/aws4_request")


# --- the oracle -----------------------------------------------------------------

def oracle_env(env):
    """What the daemon gets (its AWS_* variables), for botocore."""
    return {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "LANG": "C.UTF-8", **env}


def ask(env, python=sys.executable, **request):
    r = subprocess.run([python, str(ORACLE), json.dumps(request)], env=oracle_env(env),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"botocore oracle failed:\n{r.stderr}"
    return json.loads(r.stdout)


def newer_botocore():
    """A python3 on PATH whose botocore knows configured endpoints (1.31 on),
    as (interpreter, version); None when there is none (Debian 12 alone)."""
    seen = set()
    for d in os.get_exec_path():
        candidate = Path(d) / "python3"
        if not os.access(candidate, os.X_OK):
            continue
        r = subprocess.run([str(candidate), "-c", "import sys, botocore; "
                            "print(sys.executable, botocore.__version__)"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0 or r.stdout.split()[0] in seen:
            continue
        executable, version = r.stdout.split()
        seen.add(executable)
        if tuple(int(x) for x in version.split(".")[:2]) >= (1, 31):
            return executable, version
    return None


# --- helpers ----------------------------------------------------------------------

def scope(request):
    """(access key id, region) of a request's SigV4 credential scope."""
    m = SCOPE.search(request.headers["authorization"])
    return m.group(1), m.group(2)


def assume_role_calls(mock, since=0):
    return [(c.access_key_id, c.params.get("RoleArn"), c.ok)
            for c in mock.calls_of("AssumeRole")[since:]]


def env_for(mock, aws, **extra):
    return {"AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"),
            "AWS_CONFIG_FILE": str(aws / "config"),
            "AWS_ENDPOINT_URL_STS": mock.url, "AWS_DEFAULT_REGION": "eu-west-1",
            **extra}


def daemon_env(mock, env):
    return {**env, "CURL_CA_BUNDLE": str(mock.ca.ca)}


# --- a source profile with keys and a role_arn ---------------------------------------

def test_source_with_keys_and_role_arn_uses_its_keys(sts_mock, make_daemon, tmp_path):
    base, mid = sts_mock.new_key(), sts_mock.new_key()
    mid_arn = sts_mock.add_role("mid", trusted=[base[0]])
    top_arn = sts_mock.add_role("top", trusted=[mid[0]])  # only mid's keys may
    aws = aws_files(tmp_path, keys("base", base) + keys("mid", mid),
                    profile("mid", role_arn=mid_arn, source_profile="base")
                    + profile("top", role_arn=top_arn, source_profile="mid"))
    env = env_for(sts_mock, aws)

    theirs = ask(env, op="credentials", profile="top", sts_url=sts_mock.url,
                 ca=str(sts_mock.ca.ca))
    assert "error" not in theirs, theirs
    assert sts_mock.credentials(theirs["access_key"]).role_arn == top_arn
    botocore_calls = assume_role_calls(sts_mock)
    assert botocore_calls == [(mid[0], top_arn, True)]  # mid's keys, mid's role untouched
    botocore_scope = scope(sts_mock.requests[-1])

    d = make_daemon(env=daemon_env(sts_mock, env))
    creds = read_creds(d, "top")
    assert sts_mock.credentials(creds["AccessKeyId"]).role_arn == top_arn
    assert assume_role_calls(sts_mock, len(botocore_calls)) == botocore_calls
    assert scope(sts_mock.requests[-1]) == botocore_scope == (mid[0], "eu-west-1")


# --- source_profile and credential_source ----------------------------------------------

def test_source_profile_and_credential_source_is_refused(sts_mock, make_daemon, tmp_path):
    base, envkey = sts_mock.new_key(), sts_mock.new_key()
    arn = sts_mock.add_role("both", trusted=[base[0], envkey[0]])
    aws = aws_files(tmp_path, keys("base", base),
                    profile("both", role_arn=arn, source_profile="base",
                            credential_source="Environment"))
    env = env_for(sts_mock, aws, AWS_ACCESS_KEY_ID=envkey[0], AWS_SECRET_ACCESS_KEY=envkey[1])

    theirs = ask(env, op="credentials", profile="both", sts_url=sts_mock.url,
                 ca=str(sts_mock.ca.ca))
    assert theirs.get("error") == "InvalidConfigError", theirs
    assert sts_mock.all_calls == []

    d = make_daemon(env=daemon_env(sts_mock, env))
    assert_errno(d.read_err("sts/both/creds.json"), errno.EINVAL, "both sources")
    st = status(d, "both")
    assert status_errno(st) == errno.EINVAL
    assert "source_profile" in st["last_error"] and "credential_source" in st["last_error"]
    assert sts_mock.all_calls == []  # neither source was used


# --- profile names with a space -------------------------------------------------------

SPACE_CONFIG = """\
[profile "quoted prof"]
role_arn = {arn}
source_profile = space prof

[profile my prof]
region = eu-central-1

[profile needs-unquoted]
role_arn = {arn}
source_profile = my prof
"""


def test_profile_names_with_a_space(sts_mock, make_daemon, tmp_path):
    key = sts_mock.new_key()
    arn = sts_mock.add_role("spaced", trusted=[key[0]])
    aws = aws_files(tmp_path, keys("space prof", key), SPACE_CONFIG.format(arn=arn))
    env = env_for(sts_mock, aws)

    # botocore: [space prof] in the credentials file and [profile "quoted prof"]
    # in the config file are profiles; [profile my prof] is none (three words).
    theirs = ask(env, op="profiles")["profiles"]
    assert sorted(theirs) == ["needs-unquoted", "quoted prof", "space prof"]
    d = make_daemon(env=daemon_env(sts_mock, env))
    assert d.listdir("sts") == sorted(theirs)

    # A profile with a space as a role and as a source, signed as botocore signs.
    theirs = ask(env, op="credentials", profile="quoted prof", sts_url=sts_mock.url,
                 ca=str(sts_mock.ca.ca))
    assert "error" not in theirs, theirs
    botocore_calls = assume_role_calls(sts_mock)
    assert botocore_calls == [(key[0], arn, True)]
    creds = read_creds(d, "quoted prof")
    assert sts_mock.credentials(creds["AccessKeyId"]).role_arn == arn
    assert assume_role_calls(sts_mock, 1) == botocore_calls

    # The space profile's own creds.json: GetSessionToken with its keys.
    creds = read_creds(d, "space prof")
    assert sts_mock.calls[-1].access_key_id == key[0] and sts_mock.calls[-1].ok

    # A source named after [profile my prof] does not exist, for botocore too.
    theirs = ask(env, op="credentials", profile="needs-unquoted", sts_url=sts_mock.url,
                 ca=str(sts_mock.ca.ca))
    assert theirs.get("error") == "InvalidConfigError", theirs
    assert_errno(d.read_err("sts/needs-unquoted/creds.json"), errno.EINVAL)
    assert "does not exist" in status(d, "needs-unquoted")["last_error"]


# --- the environment before the profile ---------------------------------------------

def endpoint_cases():
    """(id, profile settings, [services] section, environment, which mock must
    get the request: "env" or "profile")."""
    return [
        ("AWS_ENDPOINT_URL_STS-over-endpoint_url", {"endpoint_url": "{profile}"}, None,
         {"AWS_ENDPOINT_URL_STS": "{env}"}, "env"),
        ("AWS_ENDPOINT_URL-over-endpoint_url", {"endpoint_url": "{profile}"}, None,
         {"AWS_ENDPOINT_URL": "{env}"}, "env"),
        ("AWS_ENDPOINT_URL-over-services", {"services": "local"}, "{profile}",
         {"AWS_ENDPOINT_URL": "{env}"}, "env"),
        ("services-over-endpoint_url", {"services": "local", "endpoint_url": "{env}"},
         "{profile}", {}, "profile"),
    ]


@pytest.mark.parametrize("case", endpoint_cases(), ids=lambda c: c[0])
def test_environment_before_the_profile(case, ca, sts_mock, make_daemon, tmp_path, log_secrets):
    _, settings, services, endpoint_env, want = case
    key = sts_mock.new_key()
    with StsMock(ca) as profile_mock:
        log_secrets.add_source(profile_mock.secrets)
        profile_mock.add_key(*key)
        urls = {"env": sts_mock.url, "profile": profile_mock.url}
        fill = lambda v: v.format(**urls)  # noqa: E731
        config = profile("p", region="eu-central-1", **{k: fill(v) for k, v in settings.items()})
        if services:
            config += f"[services local]\nsts =\n  endpoint_url = {fill(services)}\n"
        aws = aws_files(tmp_path, keys("p", key), config)
        env = {"AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"),
               "AWS_CONFIG_FILE": str(aws / "config"), "AWS_DEFAULT_REGION": "eu-west-3",
               **{k: fill(v) for k, v in endpoint_env.items()}}

        # Region: Debian's botocore knows it, and takes AWS_DEFAULT_REGION.
        region = ask(env, op="region", profile="p")["region"]
        assert region == "eu-west-3"
        # Endpoint: a botocore that knows configured endpoints, where there is one.
        newer = newer_botocore()
        if newer:
            theirs = ask(env, python=newer[0], op="endpoint", profile="p")
            assert theirs == {"endpoint": urls[want], "region": region}, f"botocore {newer[1]}"

        d = make_daemon(env=daemon_env(sts_mock, env))
        read_creds(d, "p")
        got, other = (sts_mock, profile_mock) if want == "env" else (profile_mock, sts_mock)
        assert [c.access_key_id for c in got.calls] == [key[0]]
        assert other.all_calls == []
        assert scope(got.requests[-1]) == (key[0], region)
        assert status(d, "p")["server"] == urls[want]
