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
"""

import errno
import itertools
import json
import re

import pytest

from tests.integration.harness import (aos_section, assert_errno, idrac_section, new_password, strerror,
                                       sts_section)
from tests.integration.test_sts import MFA_SERIAL, ini_keys
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
