"""Hostile servers and inputs (issue 11): nothing a server sends, or a user
writes, can run code through `. env`, forge a header through
`curl -H "AUTHTOKEN: $(cat token)"`, send credentials or tokens elsewhere, or
make the daemon hold more than a bounded amount of memory.

Each payload of tests/mocks/hostile.py is served to a target "evil" of one
daemon that also has a well-behaved AOS target "good": the read of evil fails
with the documented errno, nothing is executed, nothing reaches the capture
server, the daemon's RSS stays bounded, and good keeps working.
"""

import errno
import json
import os
import subprocess
import time

import pytest

from tests.integration.harness import (aos_section, assert_errno, idrac_section, ini_section, new_password,
                                       timed_err)
from tests.mocks.common import MockServer
from tests.mocks.hostile import SESSIONS, STS_FIELDS, HostileMock

RSS_GROWTH_MAX = 64 * 2**20  # bytes the daemon may grow by per payload (the body cap is 1 MiB)
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
KEY_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
FILE = {"aos": "token", "idrac": "token", "sts": "env"}
REDIRECTS = ["redirect-301", "redirect-302", "redirect-307", "redirect-308"]

# (provider, payload, errno of the read)
CASES = (
    [("aos", p, errno.EBADMSG) for p in ["token-crlf", "token-nul", "token-space", "token-quote",
                                          "token-dquote", "deep", "laughs", "xxe", "big", "endless"]]
    + [("idrac", p, errno.EBADMSG) for p in ["token-cr", "token-space", "token-quote", "token-dquote",
                                              "location-host", "location-systems", "location-query",
                                              "big", "endless"]]
    + [("sts", p, errno.EBADMSG) for p in ["token-crlf", "token-nul", "token-space", "token-quote",
                                            "deep", "laughs", "xxe", "big", "endless"]]
    + [(prov, p, errno.EIO) for prov in ("aos", "idrac", "sts") for p in REDIRECTS]
)


@pytest.fixture
def capture():
    """A plain HTTP server that records whatever reaches it (and answers 404)."""
    with MockServer() as m:
        yield m


@pytest.fixture
def hostile(ca, capture, tmp_path):
    with HostileMock(ca, marker=tmp_path / "pwned", capture=capture.url) as m:
        yield m


def evil_section(provider, mock, password):
    common = {"ca_path": mock.ca.ca}
    if provider == "aos":
        return ini_section('aos "evil"', {"server": mock.host, "port": mock.port, "user": "admin",
                                          "password": password, **common})
    if provider == "idrac":
        return ini_section('idrac "evil"', {"host": mock.host, "port": mock.port, "user": "root",
                                            "password": password, **common})
    return ini_section('sts "evil"', {"aws_access_key_id": KEY_ID, "aws_secret_access_key": KEY_SECRET,
                                      "region": "us-east-1", "endpoint_url": mock.url, **common})


def rss(d):
    with open(f"/proc/{d.proc.pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def evil_daemon(make_daemon, aos_mock, hostile, provider, log_secrets, **kwargs):
    password = log_secrets.add(new_password())
    return make_daemon(evil_section(provider, hostile, password), aos_section(aos_mock, "good"), **kwargs)


def assert_contained(d, hostile, capture, aos_mock, before):
    """Nothing ran, nothing left for elsewhere, memory bounded, others served."""
    assert not os.path.exists(hostile.marker), "a payload ran a command"
    assert capture.requests == [], f"requests reached another origin: {[r.path for r in capture.requests]}"
    bad = [f"{r.method} {r.path}" for r in hostile.requests
           if r.path.startswith("/redfish/v1/Systems") or (r.method == "DELETE" and not r.path.startswith(SESSIONS + "/"))]
    assert bad == [], f"requests outside the Sessions collection: {bad}"
    grown = rss(d) - before
    assert grown < RSS_GROWTH_MAX, f"daemon RSS grew by {grown / 2**20:.1f} MiB"
    assert d.read("aos/good/token").strip() and aos_mock.logins >= 1, "the good target stopped working"


@pytest.mark.parametrize("provider,payload,err", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_payload_is_refused(make_daemon, aos_mock, hostile, capture, log_secrets, provider, payload, err):
    hostile.payload = payload
    d = evil_daemon(make_daemon, aos_mock, hostile, provider, log_secrets)
    before = rss(d)
    got, took = timed_err(d, f"{provider}/evil/{FILE[provider]}")
    assert_errno(got, err, payload)
    assert took < 10, f"refusing took {took:.1f} s"
    status = json.loads(d.read(f"{provider}/evil/status"))
    assert status["errno"] == errno.errorcode[err] and status["last_error"], status
    if payload.startswith("token-"):
        # The offending bytes are in no log line or status.
        assert "X-Injected" not in d.log() and "X-Injected" not in json.dumps(status)
    assert_contained(d, hostile, capture, aos_mock, before)


@pytest.mark.parametrize("field", STS_FIELDS)
def test_sts_shell_payload_never_runs(make_daemon, aos_mock, hostile, capture, log_secrets, field):
    """`. env` after GetSessionToken answered AccessKeyId ASIA'$(touch /tmp/x)' (and
    the same in every other field): the read fails, and no shell ever runs it."""
    hostile.payload, hostile.field = "shell", field
    d = evil_daemon(make_daemon, aos_mock, hostile, "sts", log_secrets)
    before = rss(d)
    assert_errno(d.read_err("sts/evil/env"), errno.EBADMSG, field)
    assert_errno(d.read_err("sts/evil/creds.json"), errno.EBADMSG, field)
    sh = subprocess.run(["/bin/bash", "-c", ". ./env"], cwd=d.path("sts/evil"), capture_output=True, timeout=30)
    assert sh.returncode != 0
    assert field in json.loads(d.read("sts/evil/status"))["last_error"]
    assert_contained(d, hostile, capture, aos_mock, before)


def test_forged_header_never_reaches_curl(make_daemon, aos_mock, hostile, capture, log_secrets):
    """curl -H "AUTHTOKEN: $(cat token)" with a token the server laced with CR LF."""
    hostile.payload = "token-crlf"
    d = evil_daemon(make_daemon, aos_mock, hostile, "aos", log_secrets)
    script = 'curl -s -o /dev/null --max-time 10 -H "AUTHTOKEN: $(cat aos/evil/token)" "$1/api/blueprints"'
    subprocess.run(["/bin/bash", "-c", script, "sh", capture.url], cwd=d.path(), capture_output=True, timeout=30)
    sent = capture.requests
    assert len(sent) == 1, "curl reached the capture server"
    assert "x-injected" not in sent[0].headers, f"forged header sent: {sent[0].headers}"


@pytest.mark.parametrize("provider", ["aos", "idrac", "sts"])
def test_slow_drip_ends_within_timeout(make_daemon, aos_mock, hostile, capture, log_secrets, provider):
    hostile.fail, hostile.trickle_interval = "trickle", 0.5
    d = evil_daemon(make_daemon, aos_mock, hostile, provider, log_secrets, timeout=2)
    before = rss(d)
    got, took = timed_err(d, f"{provider}/evil/{FILE[provider]}")
    assert_errno(got, errno.ETIMEDOUT)
    assert took < 2 + 5, f"a slow-drip reply held the read for {took:.1f} s (timeout = 2)"
    hostile.fail = None
    assert_contained(d, hostile, capture, aos_mock, before)


# --- what users write --------------------------------------------------------

def test_session_json_write_with_crlf_token_is_refused(aos_mock, make_daemon):
    d = make_daemon(aos_section(aos_mock, "lab"))
    smuggled = json.dumps({"token": "tok\r\nX-Smuggled: 1\r\nHost: evil.example"})
    assert_errno(d.write_err("aos/lab/session.json", smuggled), errno.EINVAL)
    assert d.read("aos/lab/token").strip()
    d.unlink("aos/lab/token")
    assert all("x-smuggled" not in r.headers for r in aos_mock.requests)
    assert all(r.headers.get("host", "").startswith("127.0.0.1") for r in aos_mock.requests)


@pytest.mark.parametrize("name", ["%2e%2e", "a?b", "a#b", ".hidden", "%2F"])
def test_session_ids_cannot_leave_the_collection(redfish_mock, make_daemon, name):
    d = make_daemon(idrac_section(redfish_mock))
    d.read("idrac/bmc/token")
    seen = len(redfish_mock.requests)
    assert_errno(d.read_err(f"idrac/bmc/sessions/{name}"), errno.EINVAL, "read")
    with pytest.raises(OSError) as e:
        d.unlink(f"idrac/bmc/sessions/{name}")
    assert_errno(e.value.errno, errno.EINVAL, "rm")
    assert len(redfish_mock.requests) == seen, "a request was made for a malformed id"


# --- default credentials and the hosts they may go to -------------------------

def defaults(mock, **extra):
    return ini_section("aos", {"user": "admin", "password": mock.password(), "ca_path": mock.ca.ca, **extra})


def test_defaults_without_hosts_stay_with_configured_targets(aos_mock, make_daemon):
    d = make_daemon(defaults(aos_mock))
    name = f"127.0.0.1:{aos_mock.port}"
    os.mkdir(d.path(f"aos/{name}"))
    assert_errno(d.read_err(f"aos/{name}/token"), errno.ENOKEY)
    assert aos_mock.requests == [], "default credentials went to a mkdir'd host"
    assert "withheld" in json.loads(d.read(f"aos/{name}/status"))["warning"]
    # Its own credentials write is what it needs.
    d.write(f"aos/{name}/credentials", f"admin:{aos_mock.password()}")
    assert d.read(f"aos/{name}/token").strip()


def test_defaults_go_only_to_hosts_matching_the_pattern(aos_mock, make_daemon):
    d = make_daemon(defaults(aos_mock, hosts="*.dc1.example.net 10.1.*"))
    name = f"127.0.0.1:{aos_mock.port}"
    os.mkdir(d.path(f"aos/{name}"))
    assert_errno(d.read_err(f"aos/{name}/token"), errno.ENOKEY)
    assert aos_mock.requests == []


def test_defaults_apply_inside_the_pattern(aos_mock, make_daemon):
    d = make_daemon(defaults(aos_mock, hosts="10.1.* 127.0.0.*"))
    name = f"127.0.0.1:{aos_mock.port}"
    os.mkdir(d.path(f"aos/{name}"))
    assert d.read(f"aos/{name}/token").strip()
    assert aos_mock.logins == 1


@pytest.mark.parametrize("hosts,works", [(None, False), ("10.99.*", False), ("127.0.0.*", True)])
def test_idrac_environment_defaults_follow_hosts(redfish_mock, make_daemon, hosts, works):
    sections = [ini_section("idrac", {"hosts": hosts, "ca_path": redfish_mock.ca.ca})]
    d = make_daemon(*sections, env={"IDRAC_USERNAME": "root", "IDRAC_PASSWORD": redfish_mock.password()})
    name = f"127.0.0.1:{redfish_mock.port}"
    os.mkdir(d.path(f"idrac/{name}"))
    if works:
        assert d.read(f"idrac/{name}/token").strip()
    else:
        assert_errno(d.read_err(f"idrac/{name}/token"), errno.ENOKEY)
        assert not any(r.method == "POST" for r in redfish_mock.requests), "credentials went out"


def test_port_in_the_name_wins_over_the_defaults(aos_mock, make_daemon, capture):
    # The defaults' port is the capture server's: nothing may go there.
    d = make_daemon(defaults(aos_mock, hosts="127.0.0.1", port=capture.port))
    name = f"127.0.0.1:{aos_mock.port}"
    os.mkdir(d.path(f"aos/{name}"))
    assert d.read(f"aos/{name}/token").strip()
    assert capture.requests == [] and aos_mock.logins == 1


@pytest.mark.parametrize("setting", [{"validate_certs": False}, {"scheme": "http"}])
def test_mkdir_warns_of_inherited_insecure_settings(aos_mock, make_daemon, setting):
    d = make_daemon(ini_section("aos", {"ca_path": aos_mock.ca.ca, **setting}))
    name = f"127.0.0.1:{aos_mock.port}"
    os.mkdir(d.path(f"aos/{name}"))
    key = next(iter(setting))
    warning = json.loads(d.read(f"aos/{name}/status")).get("warning") or ""
    assert key in warning, warning
    assert any(key in line and "warn" in line.lower() or key in line and name in line
               for line in d.log().splitlines()), "not in the log"
