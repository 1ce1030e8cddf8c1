"""AWS STS end to end: the real daemon on a real mount against the STS mock.

Each test acts as a user would (cat, `. env`, echo >, rm, the AWS CLI's
credential_process) and checks what STS saw. The expected behaviour is
DESIGN.md §1, §3 and §4 for sts/<profile>/:

  creds.json   r  credential_process JSON, never with 15 minutes or less left
  env          r  export AWS_...='...' lines for `. env`
  credentials  w  long-term key pair: INI lines ([profile] optional) or JSON
  mfa          w  six digits, used once by the next GetSessionToken
  status       r  JSON: state, last_error, errno, counters
"""

import errno
import json
import re
import shlex
import subprocess
import time
from datetime import datetime, timezone

import pytest

from tests.integration.harness import (STS_REGION, DaemonDied, assert_errno, ini_section, strerror,
                                       sts_section, timed_err, within)
from tests.mocks.sts import new_secret_access_key

AWS = "/usr/bin/aws"
BASH = "/bin/bash"
REGION = STS_REGION
MFA_SERIAL = "arn:aws:iam::123456789012:mfa/sessionfs-test"
FILES = ["credentials", "creds.json", "env", "mfa", "status"]
EXPIRATION = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
ENV_LINE = re.compile(r"export (AWS_[A-Z_]+)='([^']*)'")
ENV_NAMES = {"AWS_ACCESS_KEY_ID": "AccessKeyId", "AWS_SECRET_ACCESS_KEY": "SecretAccessKey",
             "AWS_SESSION_TOKEN": "SessionToken", "AWS_CREDENTIAL_EXPIRATION": "Expiration"}
BOTOCORE_WINDOW = 900  # seconds: creds.json is never served with this little left


# --- helpers ----------------------------------------------------------------

def ini_keys(key, profile=None):
    """A key pair as ~/.aws/credentials lines, as `cat >> credentials` gets it."""
    header = f"[{profile}]\n" if profile else ""
    return f"{header}aws_access_key_id = {key[0]}\naws_secret_access_key = {key[1]}\n"


def as_unix(expiration):
    return datetime.strptime(expiration, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=timezone.utc).timestamp()


def read_creds(d, name="p"):
    """creds.json of sts/<name>, checked for the credential_process shape."""
    text = d.read(f"sts/{name}/creds.json")
    creds = json.loads(text)
    assert set(creds) == {"Version", "AccessKeyId", "SecretAccessKey", "SessionToken",
                          "Expiration"}, text
    assert creds["Version"] == 1
    assert EXPIRATION.fullmatch(creds["Expiration"]), creds["Expiration"]
    return creds


def check_issued(mock, creds):
    """creds are what the mock issued (secret, token, expiry); returns the
    mock's IssuedCredentials."""
    issued = mock.credentials(creds["AccessKeyId"])
    assert issued is not None, "served credentials STS never issued"
    assert creds["SecretAccessKey"] == issued.secret_access_key
    assert creds["SessionToken"] == issued.session_token
    # Whole seconds, never later than what STS said.
    assert issued.expiration - 1 < as_unix(creds["Expiration"]) <= issued.expiration
    return issued


def status(d, name="p"):
    return json.loads(d.read(f"sts/{name}/status"))


def status_errno(st):
    """status.errno as an errno number (it may be given by name or number)."""
    value = st["errno"]
    return getattr(errno, value) if isinstance(value, str) else value


def caller_identity_calls(mock):
    return [c for c in mock.all_calls if c.action == "GetCallerIdentity"]


def cli_env(tmp_path, mock, config_text):
    """An environment for the AWS CLI that knows nothing but what the test
    gives it: its own config file, an empty credentials file, the mock's CA."""
    home = tmp_path / "cli-home"
    home.mkdir(exist_ok=True)
    (home / "aws-config").write_text(config_text)
    (home / "aws-credentials").write_text("")
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
            "AWS_CONFIG_FILE": str(home / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
            "AWS_CA_BUNDLE": str(mock.ca.ca)}


def run(argv, env, timeout=90):
    r = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    assert r.returncode == 0, f"{argv[0]} exited {r.returncode}:\n{r.stderr}"
    return r.stdout


# --- the AWS CLI with credential_process ------------------------------------

def test_cli_credential_process_uses_session_credentials(sts_mock, make_daemon, tmp_path):
    key = sts_mock.new_key()
    d = make_daemon(sts_section(sts_mock, key=key))
    env = cli_env(tmp_path, sts_mock,
                  f"[profile sfs]\nregion = {REGION}\n"
                  f"credential_process = cat {d.path('sts/p/creds.json')}\n")
    argv = [AWS, "sts", "get-caller-identity", "--profile", "sfs",
            "--endpoint-url", sts_mock.url, "--output", "json"]

    for _ in range(2):
        identity = json.loads(run(argv, env))
        assert identity["Arn"] == sts_mock.arn()
        assert identity["Account"] == sts_mock.account

    assert len(sts_mock.calls) == 1, "two CLI calls made more than one GetSessionToken"
    gst = sts_mock.calls[0]
    assert gst.ok and gst.access_key_id == key[0]  # signed with the long-term key
    issued = gst.credentials
    gci = caller_identity_calls(sts_mock)
    assert len(gci) == 2
    for call in gci:
        assert call.ok, call.error
        assert call.access_key_id == issued.access_key_id  # the ASIA key
        assert call.access_key_id.startswith("ASIA")
    check_issued(sts_mock, read_creds(d))


# --- the lifetime rule: botocore's 15-minute window, or half the lifetime ------

def test_short_lived_credentials_are_served_for_half_their_life(sts_mock, make_daemon):
    """A credential of lifetime L is served while more than min(900, L/2)
    seconds are left (README, "How sessions are kept"). 935 s can never meet
    botocore's 15 minutes for long: the old rule renewed it in a loop."""
    key = sts_mock.new_key()
    sts_mock.lifetime = 935
    d = make_daemon(sts_section(sts_mock, key=key), refresh_margin=10, timeout=5)
    first = read_creds(d)  # cold: this one waits for GetSessionToken
    sts_mock.delay = 1.0  # from now on a read that waits for STS is slow

    samples, failures = [], []  # (start, creds, end)
    end_of_test = time.time() + 20
    while time.time() < end_of_test:
        start = time.time()
        try:
            creds = read_creds(d)
        except OSError as e:
            failures.append(f"{start:.1f}: {strerror(e.errno)}")
            continue
        samples.append((start, creds, time.time()))
        time.sleep(0.1)

    assert not failures, f"reads failed: {failures}"
    for start, creds, end in samples:
        assert creds == first, "renewed long before half the lifetime"
        left = as_unix(creds["Expiration"]) - end
        assert left > 935 / 2, f"served credentials with {left:.1f} s left"
        assert end - start < 0.5, f"a steady-state read waited {end - start:.1f} s"
    assert len(sts_mock.calls) == 1, "GetSessionToken more than once"
    st = status(d)
    assert st["counters"]["reader_waits"] == 1


@pytest.mark.slow
def test_short_credentials_are_renewed_in_the_background_at_the_rule(sts_mock, make_daemon):
    """Credentials that can never have 15 minutes left (here 40 s, as if
    DurationSeconds were short) follow the documented rule instead of
    looping: served while more than min(900, L/2) = 20 s are left, renewed
    in the background min(refresh_margin, ...) = 10 s before that, i.e.
    10 s after issue. A reader every 0.1 s never waits for STS."""
    key = sts_mock.new_key()
    sts_mock.lifetime = 40
    d = make_daemon(sts_section(sts_mock, key=key), refresh_margin=10, timeout=5)
    within(10, read_creds, d)  # cold: this one waits for GetSessionToken
    sts_mock.delay = 1.0  # from now on a read that waits for STS is slow

    samples, failures = [], []  # (start, creds, end)
    end_of_test = time.time() + 35
    while time.time() < end_of_test:
        start = time.time()
        creds, err, _ = within(10, read_creds, d)
        if err:
            failures.append(f"{start:.1f}: {strerror(err)}")
            continue
        samples.append((start, creds, time.time()))
        time.sleep(0.1)

    assert not failures, f"reads failed: {failures}"
    for start, creds, end in samples:
        check_issued(sts_mock, creds)
        left = as_unix(creds["Expiration"]) - end
        assert left > 19, f"served credentials with {left:.1f} s left (read at {end:.1f})"
        assert sts_mock.is_valid(creds["AccessKeyId"], at=end)
        assert end - start < 0.5, \
            f"a steady-state read waited {end - start:.1f} s (for STS?)"
    # 35 s of 40 s credentials renewed every ~11 s (10 s, plus the 1 s answer).
    assert 3 <= len(sts_mock.calls) <= 6, len(sts_mock.calls)
    assert all(c.ok for c in sts_mock.calls), [c.error for c in sts_mock.calls]
    assert len({c["AccessKeyId"] for _, c, _ in samples}) >= 3
    issued = sts_mock.issued
    for old, new in zip(issued, issued[1:]):
        assert new.issued_at < old.expiration - 20, \
            f"renewed {new.issued_at - (old.expiration - 20):+.1f} s after the serving floor"
        assert new.issued_at - old.issued_at >= 8, "renewed more often than the rule says"


def test_long_lived_credentials_keep_botocores_window(sts_mock, make_daemon):
    """43,200 s: min(900, L/2) is botocore's 15 minutes."""
    key = sts_mock.new_key()
    d = make_daemon(sts_section(sts_mock, key=key), timeout=5)
    creds = read_creds(d)
    check_issued(sts_mock, creds)
    assert as_unix(creds["Expiration"]) - time.time() > 43200 - 60
    st = status(d)
    assert st["state"] == "valid" and len(sts_mock.calls) == 1


# --- rejected keys ----------------------------------------------------------

def test_wrong_secret_is_rejected_and_not_retried(sts_mock, make_daemon, log_secrets):
    akid, secret = sts_mock.new_key()
    wrong = log_secrets.add(new_secret_access_key())
    d = make_daemon(sts_section(sts_mock, key=(akid, wrong)))

    assert_errno(d.read_err("sts/p/creds.json"), errno.EKEYREJECTED)
    st = status(d)
    assert "SignatureDoesNotMatch" in st["last_error"]  # STS's Code
    assert "does not match the signature you provided" in st["last_error"]  # and Message
    assert status_errno(st) == errno.EKEYREJECTED
    assert st["counters"]["failures"] >= 1

    for rel in ("sts/p/creds.json", "sts/p/env", "sts/p/creds.json", "sts/p/creds.json"):
        err, elapsed = timed_err(d, rel)
        assert_errno(err, errno.EKEYREJECTED)
        assert elapsed < 1, f"a rejected target took {elapsed:.1f} s to fail"
    assert len(sts_mock.calls) == 1
    assert sts_mock.calls[0].error == "SignatureDoesNotMatch"

    # Writing the right key is a new user action: the next read tries again.
    d.write("sts/p/credentials", ini_keys((akid, secret)))
    check_issued(sts_mock, read_creds(d))
    assert len(sts_mock.calls) == 2 and sts_mock.calls[-1].ok


def test_unknown_key_is_rejected(sts_mock, make_daemon):
    sts_mock.new_key()
    unknown = ("AKIA" + "Q" * 16, new_secret_access_key())
    d = make_daemon(sts_section(sts_mock, key=unknown))
    assert_errno(d.read_err("sts/p/creds.json"), errno.EKEYREJECTED)
    assert "InvalidClientTokenId" in status(d)["last_error"]
    assert_errno(d.read_err("sts/p/creds.json"), errno.EKEYREJECTED)
    assert len(sts_mock.calls) == 1


# --- MFA --------------------------------------------------------------------

def test_mfa_code(sts_mock, make_daemon):
    akid, secret = sts_mock.new_key(mfa_serial=MFA_SERIAL, mfa_code="123456")
    d = make_daemon(sts_section(sts_mock, key=(akid, secret), mfa_serial_number=MFA_SERIAL))

    # No code yet: nothing to send.
    assert_errno(d.read_err("sts/p/creds.json"), errno.ENOKEY)
    st = status(d)
    assert "mfa" in st["last_error"].lower(), st["last_error"]  # write the code to mfa
    assert status_errno(st) == errno.ENOKEY
    assert sts_mock.calls == []

    for bad in ("12345\n", "1234567\n", "abcdef\n", "12 456\n", "123456 \n",
                " 123456\n", "123456\n\n", "12345x", "-12345"):
        assert_errno(d.write_err("sts/p/mfa", bad), errno.EINVAL)
    assert_errno(d.read_err("sts/p/creds.json"), errno.ENOKEY)
    assert sts_mock.calls == []

    # As `echo 123456 > mfa`.
    d.write("sts/p/mfa", "123456\n")
    issued = check_issued(sts_mock, read_creds(d))
    assert issued.mfa
    call = sts_mock.calls[-1]
    assert call.ok and call.serial_number == MFA_SERIAL and call.token_code == "123456"
    assert len(sts_mock.calls) == 1
    assert_errno(d.read_err("sts/p/mfa"), errno.EACCES)  # write-only

    # The code was used once: new credentials need a new code.
    d.unlink("sts/p/creds.json")
    assert_errno(d.read_err("sts/p/creds.json"), errno.ENOKEY)
    assert "mfa" in status(d)["last_error"].lower()
    assert len(sts_mock.calls) == 1

    # A wrong code: rejected, and not tried again until a new one is written.
    d.write("sts/p/mfa", "000000\n")
    assert_errno(d.read_err("sts/p/creds.json"), errno.EKEYREJECTED)
    st = status(d)
    assert "AccessDenied" in st["last_error"]
    assert "MultiFactorAuthentication failed" in st["last_error"]
    assert status_errno(st) == errno.EKEYREJECTED
    assert len(sts_mock.calls) == 2
    assert sts_mock.calls[-1].token_code == "000000"
    err, elapsed = timed_err(d, "sts/p/creds.json")
    assert_errno(err, errno.EKEYREJECTED)
    assert elapsed < 1
    assert len(sts_mock.calls) == 2

    # The next code (without a newline this time).
    sts_mock.set_mfa_code(akid, "654321")
    d.write("sts/p/mfa", "654321")
    issued = check_issued(sts_mock, read_creds(d))
    assert issued.mfa
    assert len(sts_mock.calls) == 3
    assert sts_mock.calls[-1].token_code == "654321"
    assert sts_mock.calls[-1].serial_number == MFA_SERIAL


# --- `. env` ----------------------------------------------------------------

def test_env_sourced_by_bash_works_for_the_cli(sts_mock, make_daemon, tmp_path):
    key = sts_mock.new_key()
    d = make_daemon(sts_section(sts_mock, key=key))
    env_path = shlex.quote(d.path("sts/p/env"))

    text = d.read("sts/p/env")
    lines = text.splitlines()
    parsed = dict(ENV_LINE.fullmatch(line).groups() for line in lines if line.strip())
    assert set(parsed) == set(ENV_NAMES), text.replace(parsed.get("AWS_SECRET_ACCESS_KEY", "@"),
                                                       "<SECRET>")
    creds = read_creds(d)
    for var, field in ENV_NAMES.items():
        assert parsed[var] == creds[field], var

    # What bash makes of it (the secret and token hold '/' and '+').
    env = cli_env(tmp_path, sts_mock, f"[default]\nregion = {REGION}\n")
    out = run([BASH, "-c", f". {env_path} && printf '%s\\n' \"$AWS_ACCESS_KEY_ID\" "
               "\"$AWS_SECRET_ACCESS_KEY\" \"$AWS_SESSION_TOKEN\" \"$AWS_CREDENTIAL_EXPIRATION\""],
              env)
    assert out.splitlines() == [creds[f] for f in ENV_NAMES.values()]

    identity = json.loads(run([BASH, "-c", f". {env_path} && exec {AWS} sts get-caller-identity "
                               f"--endpoint-url {sts_mock.url} --output json"], env))
    assert identity["Arn"] == sts_mock.arn()
    gci = caller_identity_calls(sts_mock)
    assert len(gci) == 1 and gci[0].ok
    assert gci[0].access_key_id == creds["AccessKeyId"]
    assert len(sts_mock.calls) == 1


# --- profiles from the AWS shared files -------------------------------------

def test_profiles_from_shared_files_in_env(sts_mock, make_daemon, tmp_path):
    k_default, k_dev = sts_mock.new_key(), sts_mock.new_key()
    k_secure = sts_mock.new_key(mfa_serial=MFA_SERIAL, mfa_code="246810")
    region = "eu-west-1"
    sts_mock.region = region  # only credentials scoped to the profiles' region pass
    aws = tmp_path / "aws"
    aws.mkdir()
    (aws / "credentials").write_text(
        ini_keys(k_default, "default") + "\n" + ini_keys(k_dev, "dev") + "\n"
        + ini_keys(k_secure, "secure"))
    (aws / "config").write_text(
        f"[default]\nregion = {region}\n\n"
        f"[profile dev]\nregion = {region}\nduration_seconds = 3600\n\n"
        f"[profile secure]\nregion = {region}\nmfa_serial = {MFA_SERIAL}\n\n"
        f"[profile cfgonly]\nregion = {region}\n")
    d = make_daemon(env={"AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"),
                         "AWS_CONFIG_FILE": str(aws / "config"),
                         "AWS_ENDPOINT_URL_STS": sts_mock.url,
                         "CURL_CA_BUNDLE": str(sts_mock.ca.ca)})

    assert d.listdir("sts") == ["cfgonly", "default", "dev", "secure"]
    for name in d.listdir("sts"):
        assert d.listdir(f"sts/{name}") == FILES, name

    check_issued(sts_mock, read_creds(d, "default"))
    call = sts_mock.calls[-1]
    assert call.ok and call.access_key_id == k_default[0]

    creds = read_creds(d, "dev")
    check_issued(sts_mock, creds)
    call = sts_mock.calls[-1]
    assert call.ok and call.access_key_id == k_dev[0]
    assert call.duration_seconds == "3600"  # from the config file
    assert abs(as_unix(creds["Expiration"]) - (call.time + 3600)) < 5

    # mfa_serial from the config file.
    assert_errno(d.read_err("sts/secure/creds.json"), errno.ENOKEY)
    assert "mfa" in status(d, "secure")["last_error"].lower()
    d.write("sts/secure/mfa", "246810\n")
    check_issued(sts_mock, read_creds(d, "secure"))
    call = sts_mock.calls[-1]
    assert call.ok and call.access_key_id == k_secure[0]
    assert call.serial_number == MFA_SERIAL and call.token_code == "246810"

    # A profile without keys.
    before = len(sts_mock.calls)
    assert_errno(d.read_err("sts/cfgonly/creds.json"), errno.ENOKEY)
    assert status(d, "cfgonly")["last_error"]  # how to provide them
    assert len(sts_mock.calls) == before
    assert len(sts_mock.calls) == 3


def test_profiles_from_home_aws_and_profile_alias(sts_mock, make_daemon, tmp_path):
    k_default, k_other = sts_mock.new_key(), sts_mock.new_key()
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text(
        ini_keys(k_default, "default") + "\n" + ini_keys(k_other, "other"))
    (home / ".aws" / "config").write_text(
        f"[default]\nregion = {REGION}\n\n[profile other]\nregion = {REGION}\n")
    d = make_daemon(ini_section('sts "x"', {"profile": "other", "ca_path": sts_mock.ca.ca}),
                    env={"HOME": str(home), "AWS_ENDPOINT_URL": sts_mock.url,
                         "CURL_CA_BUNDLE": str(sts_mock.ca.ca)})

    assert d.listdir("sts") == ["default", "other", "x"]

    check_issued(sts_mock, read_creds(d, "x"))
    call = sts_mock.calls[-1]
    assert call.ok and call.access_key_id == k_other[0]  # the keys of profile "other"

    check_issued(sts_mock, read_creds(d, "default"))
    call = sts_mock.calls[-1]
    assert call.ok and call.access_key_id == k_default[0]

    check_issued(sts_mock, read_creds(d, "other"))
    assert sts_mock.calls[-1].access_key_id == k_other[0]
    assert len(sts_mock.calls) == 3


@pytest.mark.parametrize("source", ["file", "env"])
def test_secret_from_file_or_env(sts_mock, make_daemon, tmp_path, source):
    akid, secret = sts_mock.new_key()
    if source == "file":
        path = tmp_path / "secret"
        path.write_text(secret + "\n")
        path.chmod(0o600)
        section = sts_section(sts_mock, aws_access_key_id=akid,
                              aws_secret_access_key_file=path)
        env = None
    else:
        section = sts_section(sts_mock, aws_access_key_id=akid,
                              aws_secret_access_key_env="SFS_TEST_STS_SECRET")
        env = {"SFS_TEST_STS_SECRET": secret}
    d = make_daemon(section, env=env)
    check_issued(sts_mock, read_creds(d))
    assert sts_mock.calls[-1].access_key_id == akid


# --- writing credentials ----------------------------------------------------

def test_credentials_write_and_restart(sts_mock, make_daemon):
    k1, k2 = sts_mock.new_key(), sts_mock.new_key()
    d = make_daemon(sts_section(sts_mock))  # no keys

    assert_errno(d.read_err("sts/p/creds.json"), errno.ENOKEY)
    st = status(d)
    assert st["last_error"] and status_errno(st) == errno.ENOKEY
    assert sts_mock.calls == []
    assert_errno(d.read_err("sts/p/credentials"), errno.EACCES)  # write-only

    # INI lines with a [profile] header, as copied from ~/.aws/credentials.
    d.write("sts/p/credentials", ini_keys(k1, "p"))
    check_issued(sts_mock, read_creds(d))
    assert sts_mock.calls[-1].access_key_id == k1[0]

    # INI lines without a header.
    d.write("sts/p/credentials", ini_keys(k2))
    d.unlink("sts/p/creds.json")
    check_issued(sts_mock, read_creds(d))
    assert sts_mock.calls[-1].access_key_id == k2[0]

    # JSON.
    d.write("sts/p/credentials", json.dumps({"AccessKeyId": k1[0], "SecretAccessKey": k1[1]}))
    d.unlink("sts/p/creds.json")
    check_issued(sts_mock, read_creds(d))
    assert sts_mock.calls[-1].access_key_id == k1[0]

    # Malformed: refused, nothing saved.
    for bad in (f"aws_access_key_id = {k2[0]}\n",
                f"aws_secret_access_key = {k2[1]}\n",
                json.dumps({"AccessKeyId": k2[0]}),
                json.dumps({"SecretAccessKey": k2[1]}),
                "{not json",
                "just some text\n"):
        assert_errno(d.write_err("sts/p/credentials", bad), errno.EINVAL)
    d.unlink("sts/p/creds.json")
    check_issued(sts_mock, read_creds(d))
    assert sts_mock.calls[-1].access_key_id == k1[0]

    # The written key survives a restart (and the malformed writes were not saved).
    calls = len(sts_mock.calls)
    d.restart()
    d.unlink("sts/p/creds.json")
    check_issued(sts_mock, read_creds(d))
    assert len(sts_mock.calls) == calls + 1
    assert sts_mock.calls[-1].access_key_id == k1[0]
    assert all(c.ok for c in sts_mock.calls)


# --- the cache: rm, restart, kill -9 -----------------------------------------

def test_rm_restart_and_kill9(sts_mock, make_daemon):
    sts_mock.expiration_ms = True  # Expiration as "...T16:00:00.500Z"
    sts_mock.lifetime = 3600.5
    key = sts_mock.new_key()
    d = make_daemon(sts_section(sts_mock, key=key))

    c1 = read_creds(d)
    issued = check_issued(sts_mock, c1)
    assert issued.expiration_text.endswith(".500Z")  # what the daemon had to parse
    assert len(sts_mock.calls) == 1

    d.unlink("sts/p/creds.json")
    assert len(sts_mock.calls) == 1  # STS cannot revoke; rm only drops the cache
    c2 = read_creds(d)
    check_issued(sts_mock, c2)
    assert c2["AccessKeyId"] != c1["AccessKeyId"]
    assert len(sts_mock.calls) == 2
    env = d.read("sts/p/env")

    d.restart()
    c3 = read_creds(d)
    assert c3["AccessKeyId"] == c2["AccessKeyId"], "a restart dropped the saved credentials"
    assert c3 == c2
    assert d.read("sts/p/env") == env
    assert len(sts_mock.calls) == 2, "a restart asked STS again"

    d.kill9()
    d.start()
    c4 = read_creds(d)
    assert c4["AccessKeyId"] == c2["AccessKeyId"], "kill -9 lost the saved credentials"
    assert c4 == c2
    assert len(sts_mock.calls) == 2, "a restart after kill -9 asked STS again"


# --- DurationSeconds and STS errors ------------------------------------------

def test_duration_seconds_from_config(sts_mock, make_daemon):
    key = sts_mock.new_key()
    d = make_daemon(sts_section(sts_mock, key=key, duration_seconds=3600))
    creds = read_creds(d)
    check_issued(sts_mock, creds)
    call = sts_mock.calls[-1]
    assert call.duration_seconds == "3600"
    assert abs(as_unix(creds["Expiration"]) - (call.time + 3600)) < 5


def test_duration_out_of_range_refuses_to_mount(sts_mock, make_daemon):
    """A duration STS can't issue would only fail every read: the config is
    checked at mount, naming the file, the line and the range."""
    key = sts_mock.new_key()
    for bad in ("100", "abc", "200000"):
        d = make_daemon(sts_section(sts_mock, key=key, duration_seconds=bad), start=False)
        with pytest.raises(DaemonDied) as died:
            d.start()
        line = next(n for n, text in enumerate(d.config_path.read_text().splitlines(), 1)
                    if text.startswith("duration_seconds"))
        assert f"{d.config_path}:{line}: duration_seconds = {bad}: expected a whole number " \
               "from 900 to 129600" in str(died.value)
    assert sts_mock.calls == []


def test_duration_below_minimum_is_validation_error(tmp_path, sts_mock, make_daemon):
    """A duration from the AWS config file is STS's to judge."""
    key = sts_mock.new_key()
    aws = tmp_path / "aws"
    aws.mkdir()
    (aws / "credentials").write_text(ini_keys(key, "p"))
    (aws / "config").write_text(f"[profile p]\nregion = {REGION}\nduration_seconds = 100\n")
    d = make_daemon(env={"AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"),
                         "AWS_CONFIG_FILE": str(aws / "config"),
                         "AWS_ENDPOINT_URL_STS": sts_mock.url,
                         "CURL_CA_BUNDLE": str(sts_mock.ca.ca)})
    assert_errno(d.read_err("sts/p/creds.json"), errno.EINVAL)
    assert len(sts_mock.calls) == 1
    call = sts_mock.calls[0]
    assert call.duration_seconds == "100" and call.error == "ValidationError"
    st = status(d)
    assert "ValidationError" in st["last_error"]
    assert "durationSeconds" in st["last_error"]  # STS's message
    assert status_errno(st) == errno.EINVAL


def test_throttling_is_eagain(sts_mock, make_daemon):
    key = sts_mock.new_key()
    d = make_daemon(sts_section(sts_mock, key=key))
    sts_mock.inject("throttling")
    assert_errno(d.read_err("sts/p/creds.json"), errno.EAGAIN)
    st = status(d)
    assert "Throttling" in st["last_error"]
    assert status_errno(st) == errno.EAGAIN
    assert sts_mock.calls and sts_mock.calls[0].error == "Throttling"
    sts_mock.inject(None)
