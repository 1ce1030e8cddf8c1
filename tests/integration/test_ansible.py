"""contrib/ansible/ run by Debian's ansible against the mocks (issue 21, item 7):
each playbook replaces a module the users have today.

  aos_login.yml           aos_login: uri with AUTHTOKEN from aos/<t>/token
  idrac_session.yml       idrac_session present/absent: redfish_info with
                          auth_token; file state=absent on sessions/<id>
  sts_session_token.yml   sts_session_token: aws_caller_info through a
                          credential_process profile reading creds.json
  credentials.yml         credentials from a vaulted variable, no_log, idempotent

Offline and fast: `ansible-playbook -i localhost, -c local`, the JSON stdout
callback, ANSIBLE_HOME / ANSIBLE_LOCAL_TEMP / HOME in the test's tmp dir,
interpreter /usr/bin/python3, TLS to the mocks with the test CA.
"""

import json
import os
import shutil
import subprocess

import pytest

from tests.integration.harness import REPO, aos_section, idrac_section, new_password
from tests.integration.test_sts import check_issued, read_creds
from tests.integration.test_sts_roles import aws_files, keys, profile
from tests.mocks.aos import LOGIN

PLAYBOOKS = REPO / "contrib" / "ansible"
ANSIBLE_PLAYBOOK = "/usr/bin/ansible-playbook"
ANSIBLE_VAULT = "/usr/bin/ansible-vault"

pytestmark = pytest.mark.skipif(
    not os.access(ANSIBLE_PLAYBOOK, os.X_OK),
    reason=f"{ANSIBLE_PLAYBOOK} not installed (Debian's ansible: contrib/install-deps)")


class Ansible:
    """ansible-playbook on localhost with an environment of its own."""

    def __init__(self, tmp_path, env=None):
        self.home = tmp_path / "ansible-home"
        (self.home / "tmp").mkdir(parents=True, exist_ok=True)
        self.env = {"PATH": "/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8",
                    "ANSIBLE_HOME": str(self.home / ".ansible"),
                    "ANSIBLE_LOCAL_TEMP": str(self.home / "tmp"),
                    "ANSIBLE_REMOTE_TEMP": str(self.home / "tmp"),
                    "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
                    "ANSIBLE_STDOUT_CALLBACK": "json",
                    "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0",
                    "ANSIBLE_LOCALHOST_WARNING": "0",
                    "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
                    **(env or {})}

    def run(self, playbook, extra_vars, *args, check=True):
        """The play's JSON result; its stdout and stderr too (for leak checks)."""
        argv = [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local",
                str(PLAYBOOKS / playbook), "-e", json.dumps(extra_vars), *args]
        r = subprocess.run(argv, env=self.env, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=180)
        start = 0 if r.stdout.startswith("{") else r.stdout.find("\n{") + 1  # after -v's lines
        result = json.loads(r.stdout[start:]) if start >= 0 and r.stdout[start:].startswith("{") \
            else None
        if check:
            assert r.returncode == 0 and result, \
                f"{playbook} exited {r.returncode}:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
        return Result(result, r.stdout + r.stderr, r.returncode)


class Result:
    def __init__(self, result, output, returncode):
        self.json, self.output, self.returncode = result, output, returncode

    @property
    def stats(self):
        return self.json["stats"]["localhost"]

    def task(self, name):
        """The localhost result of the task whose name starts with name."""
        for play in self.json["plays"]:
            for t in play["tasks"]:
                if t["task"]["name"].startswith(name):
                    return t["hosts"]["localhost"]
        raise KeyError(name)


@pytest.fixture
def ansible(tmp_path):
    return Ansible(tmp_path)


# --- aos_login -------------------------------------------------------------------

def test_aos_login_replaced_by_the_token_file(aos_mock, make_daemon, ansible):
    d = make_daemon(aos_section(aos_mock, "lab"))

    r = ansible.run("aos_login.yml", {"sessionfs_mount": d.path(), "aos_target": "lab",
                                      "aos_url": aos_mock.url, "aos_ca_path": str(aos_mock.ca.ca)})

    assert r.task("List the blueprints")["status"] == 200
    calls = [q for q in aos_mock.requests if q.path == "/api/blueprints"]
    assert len(calls) == 1 and aos_mock.is_live(calls[0].headers["authtoken"])
    assert aos_mock.logins == 1
    assert r.stats["failures"] == 0


# --- idrac_session ---------------------------------------------------------------

def test_idrac_session_present_and_absent(redfish_mock, make_daemon, ansible):
    d = make_daemon(idrac_section(redfish_mock, "bmc"))
    stale, _ = redfish_mock.create_session()  # left behind by another client
    common = {"sessionfs_mount": d.path(), "idrac_target": "bmc",
              "idrac_baseuri": f"{redfish_mock.host}:{redfish_mock.port}"}

    # present: the daemon's session as auth_token
    r = ansible.run("idrac_session.yml", common)
    entries = r.task("Sessions on the BMC")["redfish_facts"]["session"]["entries"]
    ids = sorted(e["Id"] for e in entries)
    assert ids == sorted(s["id"] for s in redfish_mock.live_sessions())
    assert stale in ids and len(ids) == 2  # the stale one and the daemon's own
    assert redfish_mock.logins == 1  # no login of Ansible's own

    # absent: DELETE on the BMC, then nothing to do
    absent = {**common, "idrac_state": "absent", "idrac_session_id": stale}
    r = ansible.run("idrac_session.yml", absent)
    assert r.task("End session")["changed"] is True
    assert redfish_mock.deletes == [stale]
    r = ansible.run("idrac_session.yml", absent)
    # file: state=absent alone is idempotent: the gone id is ENOENT.
    assert r.task("End session")["changed"] is False and r.stats["changed"] == 0
    assert redfish_mock.deletes == [stale]
    assert redfish_mock.session(stale) is None and len(redfish_mock.live_sessions()) == 1


# --- sts_session_token -----------------------------------------------------------

def test_sts_session_token_replaced_by_creds_json(sts_mock, make_daemon, ansible, tmp_path):
    key = sts_mock.new_key()
    aws = aws_files(tmp_path, keys("ci", key), profile("ci", region="eu-west-1"))
    d = make_daemon(env={"AWS_SHARED_CREDENTIALS_FILE": str(aws / "credentials"),
                         "AWS_CONFIG_FILE": str(aws / "config"),
                         "AWS_ENDPOINT_URL_STS": sts_mock.url,
                         "CURL_CA_BUNDLE": str(sts_mock.ca.ca)})
    # The controller's own AWS config: a profile whose credentials are sessionfs's.
    config = ansible.home / "aws-config"
    config.write_text(profile("ci-session", region="eu-west-1",
                              credential_process=f"cat {d.path('sts/ci/creds.json')}"))
    (ansible.home / "aws-credentials").write_text("")
    ansible.env.update(AWS_CONFIG_FILE=str(config),
                       AWS_SHARED_CREDENTIALS_FILE=str(ansible.home / "aws-credentials"))

    r = ansible.run("sts_session_token.yml", {
        "sessionfs_mount": d.path(), "sts_profile": "ci", "aws_profile": "ci-session",
        "aws_region": "eu-west-1", "sts_endpoint_url": sts_mock.url,
        "aws_ca_bundle": str(sts_mock.ca.ca)})

    creds = read_creds(d, "ci")
    check_issued(sts_mock, creds)
    who = [c for c in sts_mock.all_calls if c.action == "GetCallerIdentity"]
    assert [c.access_key_id for c in who] == [creds["AccessKeyId"]] * 2, \
        "both calls signed with the session credentials sessionfs got"
    assert all(c.ok for c in who)
    assert [c.access_key_id for c in sts_mock.calls] == [key[0]]  # one GetSessionToken
    assert r.task("Who am I, through")["arn"] == sts_mock.arn()
    assert r.task("Who am I, with")["account"] == sts_mock.account
    assert creds["SecretAccessKey"] not in r.output and creds["SessionToken"] not in r.output


# --- credentials from the vault --------------------------------------------------

def vault_file(ansible, value):
    """vars file with sessionfs_credentials, encrypted with ansible-vault."""
    secret = ansible.home / "vault-pass"
    secret.write_text(new_password() + "\n")
    vars_file = ansible.home / "vault.yml"
    vars_file.write_text(f"sessionfs_credentials: {json.dumps(value)}\n")
    subprocess.run([ANSIBLE_VAULT, "encrypt", "--vault-password-file", str(secret),
                    str(vars_file)], env=ansible.env, check=True, capture_output=True,
                   timeout=60)
    assert value not in vars_file.read_text()
    return ["-e", f"@{vars_file}", "--vault-password-file", str(secret)]


def test_credentials_from_the_vault(aos_mock, make_daemon, ansible, log_secrets):
    d = make_daemon(aos_section(aos_mock, "lab", user=None, password=None))
    extra = {"sessionfs_mount": d.path(), "sessionfs_target": "aos/lab"}
    password = aos_mock.password("admin")
    value = f"admin:{password}"
    vault = vault_file(ansible, value)

    r = ansible.run("credentials.yml", extra, *vault, "-v")
    assert r.task("Write the credentials")["changed"] is True
    assert d.read("aos/lab/token") and aos_mock.logins == 1
    assert password not in r.output
    assert r.task("Write the credentials")["censored"]  # no_log

    # Again: the same credentials, reported unchanged, no new login.
    r = ansible.run("credentials.yml", extra, *vault, "-v")
    assert r.stats["changed"] == 0, r.output[-3000:]
    assert r.task("Write the credentials")["changed"] is False
    assert d.log().count("saved new credentials") == 1
    assert d.read("aos/lab/token") and aos_mock.logins == 1
    assert password not in r.output

    # A new password in the vault: written once more.
    new = log_secrets.add(new_password())
    aos_mock.set_password("admin", new)
    r = ansible.run("credentials.yml", extra, *vault_file(ansible, f"admin:{new}"), "-v")
    assert r.task("Write the credentials")["changed"] is True
    assert d.log().count("saved new credentials") == 2
    assert new not in r.output
    d.unlink("aos/lab/token")
    assert d.read("aos/lab/token") and aos_mock.logins == 2
    logins = [q for q in aos_mock.requests if q.path == LOGIN]
    assert json.loads(logins[-1].body)["password"] == new
