"""Writes as programs make them, and the tools that remove and replace files
(issue 21): a value written in pieces is applied once, complete, never a
prefix; tools that write a temp file and rename it; sessions/ entries that
exist only when they are on the BMC; rm -r of a target; no password shown
in sessions/.

Each test checks what the mock received (the full password), not only what
the daemon says.
"""

import errno
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from tests.integration.harness import aos_section, assert_errno, idrac_section, new_password, sts_section, strerror
from tests.integration.test_redfish import read_token
from tests.integration.test_sts import MFA_SERIAL, check_issued, read_creds
from tests.mocks.redfish import OLD_SESSIONS, SESSIONS

BMC = "idrac/bmc"
CREDENTIALS = f"{BMC}/credentials"
TOKEN = f"{BMC}/token"
STATUS = f"{BMC}/status"
SESSIONS_DIR = f"{BMC}/sessions"


# --- helpers ----------------------------------------------------------------

def shell(d, script, **env):
    # bash: its echo reports write()'s errno (dash's says "I/O error" for all).
    return subprocess.run(["/bin/bash", "-c", script], cwd=d.mnt, env={**d.env, **env},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=20)


def status(d, rel=STATUS):
    return json.loads(d.read(rel))


def last_login(mock):
    """The body of the last login POST the Redfish mock received."""
    posts = [r for r in mock.requests if r.method == "POST"
             and r.path in (mock.sessions_uri, SESSIONS, OLD_SESSIONS)]
    return posts[-1].json() if posts else None


def relogin(d):
    """Log out and in again, so the next login uses the current credentials."""
    d.unlink(TOKEN)
    return read_token(d)


@pytest.fixture
def bmc(redfish_mock, make_daemon, log_secrets):
    """(mock, daemon, user, password): a daemon logged in as root on the mock,
    and a second user "ops" whose credentials the test writes."""
    mock = redfish_mock
    password = log_secrets.add("s3cret-" + new_password())
    mock.add_user("ops", password)
    d = make_daemon(idrac_section(mock))
    read_token(d)
    return mock, d, "ops", password


def assert_logs_in_as(mock, d, user, password):
    relogin(d)
    assert last_login(mock) == {"UserName": user, "Password": password}, \
        "the BMC did not get the full password"


def assert_kept_root(mock, d):
    relogin(d)
    assert last_login(mock)["UserName"] == "root", "a refused value replaced the credentials"


# --- 1. a value written in pieces ----------------------------------------------------

@pytest.mark.parametrize("newline", ["", "\n"])
def test_dd_bs1_writes_the_whole_password(bmc, newline):
    mock, d, user, password = bmc
    r = shell(d, f'printf "%s" "$V" | dd of={CREDENTIALS} bs=1 status=none',
              V=f"{user}:{password}{newline}")
    assert r.returncode == 0, r.stderr
    assert "saved new credentials for user ops" in d.log()
    assert d.log().count("saved new credentials") == 1, "applied more than once"
    assert_logs_in_as(mock, d, user, password)


@pytest.mark.parametrize("printf", ["printf", "/usr/bin/printf"])
def test_printf_pieces(bmc, printf):
    # /usr/bin/printf: each child inherits the descriptor and closes it
    # before the next piece is written.
    mock, d, user, password = bmc
    half = len(password) // 2
    r = shell(d, f'{{ {printf} "%s" "$A"; {printf} "%s" "$B"; }} > {CREDENTIALS}',
              A=f"{user}:{password[:half]}", B=password[half:])
    assert r.returncode == 0, r.stderr
    assert_logs_in_as(mock, d, user, password)


def test_python_unbuffered_print(bmc):
    mock, d, user, password = bmc
    r = shell(d, f"/usr/bin/python3 -c 'import os; print(os.environ[\"V\"])' > {CREDENTIALS}",
              V=f"{user}:{password}", PYTHONUNBUFFERED="1")
    assert r.returncode == 0, r.stderr
    assert_logs_in_as(mock, d, user, password)


@pytest.mark.parametrize("form", ["line", "json"])
def test_writes_split_at_4096_bytes(bmc, log_secrets, form):
    mock, d, user, _ = bmc
    password = log_secrets.add(("p" + new_password() * 200)[:6000])
    mock.add_user(user, password)
    value = (f"{user}:{password}" if form == "line"
             else json.dumps({"username": user, "password": password})).encode()
    fd = os.open(d.path(CREDENTIALS), os.O_WRONLY | os.O_TRUNC)
    try:
        for i in range(0, len(value), 4096):
            assert os.write(fd, value[i:i + 4096]) == len(value[i:i + 4096])
    finally:
        os.close(fd)
    assert_logs_in_as(mock, d, user, password)


def test_echo_applies_at_the_newline_and_refuses_at_write(bmc):
    mock, d, user, password = bmc
    r = shell(d, f'echo "$V" > {CREDENTIALS}', V=f"{user}:{password}")
    assert r.returncode == 0, r.stderr
    assert_logs_in_as(mock, d, user, password)
    r = shell(d, f"echo nocolon > {CREDENTIALS}")
    assert r.returncode != 0 and "Invalid argument" in r.stderr, (r.returncode, r.stderr)
    assert_logs_in_as(mock, d, user, password)


def test_incomplete_at_close_is_refused_at_close_and_shown_in_status(bmc):
    mock, d, _, _ = bmc
    fd = os.open(d.path(CREDENTIALS), os.O_WRONLY | os.O_TRUNC)
    os.write(fd, b"nocolon")
    with pytest.raises(OSError) as e:
        os.close(fd)
    assert_errno(e.value.errno, errno.EINVAL, "close() of a value that is none")
    st = status(d)
    assert "credentials" in (st["last_error"] or ""), st
    assert st["last_write"]["result"] == "refused", st
    assert "refused" in d.log()
    # A shell never sees close()'s error; status and the log still do.
    r = shell(d, f"printf 'admin:' > {CREDENTIALS}")
    assert status(d)["last_write"]["result"] == "refused"
    assert_kept_root(mock, d)


def test_json_applied_when_the_object_closes(bmc):
    mock, d, user, password = bmc
    value = json.dumps({"username": user, "password": password})
    r = shell(d, f'printf "%s" "$V" | dd of={CREDENTIALS} bs=1 status=none', V=value)
    assert r.returncode == 0, r.stderr
    assert_logs_in_as(mock, d, user, password)
    # Malformed JSON is refused by the write that makes it so.
    fd = os.open(d.path(CREDENTIALS), os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, b'{"username": "ops", ')
        with pytest.raises(OSError) as e:
            os.write(fd, b'"password": 5}')
        assert_errno(e.value.errno, errno.EINVAL)
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    assert_logs_in_as(mock, d, user, password)


def test_rewriting_the_same_credentials_changes_nothing(bmc):
    mock, d, user, password = bmc
    d.write(CREDENTIALS, f"{user}:{password}\n")
    assert status(d)["last_write"]["result"] == "applied"
    d.write(CREDENTIALS, f"{user}:{password}\n")
    assert status(d)["last_write"]["result"] == "unchanged"
    assert d.log().count("saved new credentials") == 1


def test_mfa_code_byte_by_byte(sts_mock, make_daemon):
    akid, secret = sts_mock.new_key(mfa_serial=MFA_SERIAL, mfa_code="123456")
    d = make_daemon(sts_section(sts_mock, key=(akid, secret), mfa_serial_number=MFA_SERIAL))
    for bad in ("12", "12345\n"):
        r = shell(d, f'printf "{bad}" | dd of=sts/p/mfa bs=1 status=none')
        assert r.returncode != 0 or status(d, "sts/p/status")["last_write"]["result"] == "refused"
    assert sts_mock.calls == []
    r = shell(d, 'printf "1234567" | dd of=sts/p/mfa bs=1 status=none')
    assert "Invalid argument" in r.stderr, r.stderr  # the seventh digit's write
    r = shell(d, 'printf "123456\\n" | dd of=sts/p/mfa bs=1 status=none')
    assert r.returncode == 0, r.stderr
    check_issued(sts_mock, read_creds(d))
    assert sts_mock.calls[-1].token_code == "123456"


def test_sts_key_lines_in_pieces(sts_mock, make_daemon, log_secrets):
    # key = value lines end at close (a session token line may follow the pair).
    d = make_daemon(sts_section(sts_mock))
    akid, secret = sts_mock.new_key()
    text = f"aws_access_key_id = {akid}\naws_secret_access_key = {secret}\n"
    r = shell(d, f'printf "%s" "$V" | dd of=sts/p/credentials bs=1 status=none', V=text)
    assert r.returncode == 0, r.stderr
    check_issued(sts_mock, read_creds(d))
    r = shell(d, "printf 'aws_access_key_id = x\\nnot a key line\\n' > sts/p/credentials")
    assert "Invalid argument" in r.stderr, r.stderr


def test_session_json_byte_by_byte(aos_mock, make_daemon):
    d = make_daemon(aos_section(aos_mock))
    adopted = aos_mock.issue_token()
    value = json.dumps({"server": "127.0.0.1", "port": aos_mock.port, "token": adopted}) + "\n"
    r = shell(d, f'printf "%s" "$V" | dd of=aos/lab/session.json bs=1 status=none', V=value)
    assert r.returncode == 0, r.stderr
    assert d.read("aos/lab/token") == adopted
    assert aos_mock.logins == 0


# --- 6. no password in sessions/ -----------------------------------------------------

def test_sessions_entries_and_session_json_show_no_password(redfish_mock, make_daemon):
    mock = redfish_mock
    mock.echo_password = True
    d = make_daemon(idrac_section(mock))
    token = read_token(d)
    [own] = [s["id"] for s in mock.live_sessions() if s["token"] == token]
    # The BMC does echo it (the mock's own reply), so the redaction is ours.
    assert mock.password() in mock.call("GET", mock.session_uri(own), headers={
        "OData-Version": "4.0", "X-Auth-Token": token}).body.decode()
    for rel in (f"{SESSIONS_DIR}/{own}", f"{BMC}/session.json"):
        text = d.read(rel)
        assert mock.password() not in text, f"{rel} shows the password"
        entry = json.loads(text)
        if rel.endswith("session.json"):
            entry = entry["session_data"]
        assert entry["Password"] is None
        vendor = entry["Oem"]["Vendor"]
        assert vendor["password"] is None and vendor["Logins"] == [{"PASSWORD": None, "Kept": 1}]
        assert entry["UserName"] == "root"


# --- 3. sessions/<id> exists when it is on the BMC ------------------------------------

def listings(mock, after=0.0):
    return [r for r in mock.requests if r.method == "GET" and r.path == mock.sessions_uri
            and r.time > after]


def test_sessions_entry_of_an_id_not_on_the_bmc_is_enoent(redfish_mock, make_daemon):
    mock = redfish_mock
    d = make_daemon(idrac_section(mock))
    read_token(d)
    missing = d.path(f"{SESSIONS_DIR}/NOSUCHID")
    with pytest.raises(FileNotFoundError):
        os.stat(missing)
    with pytest.raises(FileNotFoundError):
        open(missing).close()
    assert not os.path.exists(missing)
    with pytest.raises(FileNotFoundError):
        os.unlink(missing)
    r = shell(d, f"rm -f {SESSIONS_DIR}/NOSUCHID")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert [x for x in mock.requests if x.method == "DELETE"] == []

    # A session made since the last listing is found (listed again on a miss).
    sid, _ = mock.create_session("root")
    deadline = time.monotonic() + 3
    while not os.path.exists(d.path(f"{SESSIONS_DIR}/{sid}")):
        assert time.monotonic() < deadline, "a new session never showed up"
        time.sleep(0.2)
    assert os.stat(d.path(f"{SESSIONS_DIR}/{sid}")).st_size > 0

    # One ended on the BMC is gone within a few seconds.
    mock.kill_session(sid)
    deadline = time.monotonic() + 5
    while os.path.exists(d.path(f"{SESSIONS_DIR}/{sid}")):
        assert time.monotonic() < deadline, "a session ended on the BMC still shows"
        time.sleep(0.2)
    r = shell(d, f"rm {SESSIONS_DIR}/{sid}")
    assert r.returncode != 0 and "No such file" in r.stderr, r.stderr


def test_misses_list_at_most_once_a_second(redfish_mock, make_daemon):
    mock = redfish_mock
    d = make_daemon(idrac_section(mock))
    read_token(d)
    start = time.time()
    for i in range(200):
        assert not os.path.exists(d.path(f"{SESSIONS_DIR}/{900000 + i}"))
    elapsed = time.time() - start
    n = len(listings(mock, after=start))
    assert 1 <= n <= elapsed + 2, f"{n} listings in {elapsed:.1f} s for 200 misses"


# --- 4. rm -r of a target -----------------------------------------------------------

def rmtree_target(d):
    """What Ansible's `file: state=absent` does: shutil.rmtree."""
    import shutil
    shutil.rmtree(d.path(BMC))


@pytest.mark.parametrize("how", ["rm -rf", "rm -r", "rmtree"])
def test_rm_r_of_a_target_deletes_no_session(redfish_mock, make_daemon, how):
    mock = redfish_mock
    d = make_daemon(idrac_section(mock))
    token = read_token(d)
    others = [mock.create_session("root")[0] for _ in range(3)]
    assert set(others) <= set(d.listdir(SESSIONS_DIR))
    if how == "rmtree":
        with pytest.raises(OSError) as e:
            rmtree_target(d)
        assert_errno(e.value.errno, errno.EPERM, "rmtree")
    else:
        r = shell(d, f"{how} {BMC}")
        assert r.returncode != 0, "rm -r reported success"
        assert "Operation not permitted" in r.stderr, r.stderr
    # Nothing was deleted on the BMC, the daemon is still logged in, the
    # target is still there.
    assert mock.deletes == []
    assert all(mock.session(s) is not None for s in others)
    assert read_token(d) == token and mock.logins == 1
    assert "bmc" in d.listdir("idrac")
    assert "rmdir" in d.log()
    # One explicit rm still deletes that session; rm -r of sessions/ itself
    # (asked for by name) empties it.
    d.unlink(f"{SESSIONS_DIR}/{others[0]}")
    assert mock.deletes == [others[0]]
    r = shell(d, f"rm -rf {SESSIONS_DIR}/")
    assert mock.session(others[1]) is None and mock.session(others[2]) is None


# --- 2. tools that write a temp file and rename it ---------------------------------

# What Ansible's copy module does once it decided to write (atomic_move): its
# file on local disk can't be renamed across file systems (EXDEV), so it
# makes a temp file beside the destination, copies into it (shutil.copy:
# sendfile, then chmod), sets owner and times, and renames it over.
ANSIBLE_ATOMIC_MOVE = r"""
import errno, os, shutil, sys, tempfile, time
dest = sys.argv[1]
fd, src = tempfile.mkstemp()
os.write(fd, os.environ["V"].encode())
os.close(fd)
try:
    os.rename(src, dest)
    sys.exit("rename across file systems worked?")
except OSError as e:
    assert e.errno == errno.EXDEV, e
fd, tmp = tempfile.mkstemp(prefix=".ansible_tmp", dir=os.path.dirname(dest),
                           suffix=os.path.basename(dest))
os.close(fd)
shutil.move(src, tmp, copy_function=shutil.copy)
st = os.stat(tmp)
os.chown(tmp, st.st_uid, st.st_gid)
os.utime(tmp, times=(time.time(), time.time()))
os.rename(tmp, dest)
"""

# The plain form: mkstemp in the directory, write, fsync, rename over.
MKSTEMP_RENAME = r"""
import os, sys, tempfile
dest = sys.argv[1]
fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest))
os.write(fd, os.environ["V"].encode())
os.fsync(fd)
os.close(fd)
os.rename(tmp, dest)
"""


def run_python(script, dest, value):
    return subprocess.run(["/usr/bin/python3", "-c", script, dest], env={**os.environ, "V": value},
                          capture_output=True, text=True, timeout=20)


@pytest.mark.parametrize("script", [ANSIBLE_ATOMIC_MOVE, MKSTEMP_RENAME], ids=["ansible", "mkstemp"])
def test_temp_file_renamed_over_credentials_applies_it(bmc, script):
    mock, d, user, password = bmc
    r = run_python(script, d.path(CREDENTIALS), f"{user}:{password}")
    assert r.returncode == 0, r.stderr
    assert_logs_in_as(mock, d, user, password)
    # No temp file left, none shown, and credentials is still write-only.
    assert d.listdir(BMC) == sorted(["credentials", "session.json", "sessions", "status", "token"])
    assert_errno(d.read_err(CREDENTIALS), errno.EACCES)
    # Renaming the same value again changes nothing.
    r = run_python(script, d.path(CREDENTIALS), f"{user}:{password}\n")
    assert r.returncode == 0, r.stderr
    assert status(d)["last_write"]["result"] == "unchanged"


def test_temp_files_are_write_only_and_a_bad_rename_is_refused(bmc):
    mock, d, _, _ = bmc
    fd, tmp = tempfile.mkstemp(dir=d.path(BMC), prefix=".tmp")
    try:
        os.write(fd, b"nocolon")
    finally:
        os.close(fd)
    assert os.stat(tmp).st_mode & 0o777 == 0o200 and os.stat(tmp).st_size == 0
    os.chmod(tmp, 0o644)  # accepted (copying tools do it), changes nothing
    assert os.stat(tmp).st_mode & 0o777 == 0o200
    with pytest.raises(PermissionError):
        open(tmp).read()
    with pytest.raises(OSError) as e:
        os.rename(tmp, d.path(CREDENTIALS))
    assert_errno(e.value.errno, errno.EINVAL, "rename of a malformed value")
    assert status(d)["last_write"]["result"] == "refused"
    os.unlink(tmp)
    assert not os.path.exists(tmp)
    assert_kept_root(mock, d)
    # Nothing but temp files moves, and not over read-only files.
    with pytest.raises(OSError):
        os.rename(d.path(TOKEN), d.path(f"{BMC}/x"))
    fd, tmp = tempfile.mkstemp(dir=d.path(BMC))
    os.close(fd)
    with pytest.raises(OSError):
        os.rename(tmp, d.path(TOKEN))
    os.unlink(tmp)


# Ansible can't compare what it can't read (copy reads the destination for its
# checksum, and credentials is write-only, even to root), so the idempotent
# way is a task that writes and reads back what became of the write.
PLAYBOOK = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: BMC credentials
      ansible.builtin.shell: |
        cat > {dir}/credentials
        cat {dir}/status
      args:
        stdin: "{{{{ bmc_user }}}}:{{{{ bmc_password }}}}"
      no_log: true
      register: written
      changed_when: (written.stdout | from_json).last_write.result == "applied"
"""


def ansible_playbook(d, tmp_path, user, password):
    book = tmp_path / "credentials.yml"
    book.write_text(PLAYBOOK.format(dir=d.path(BMC)))
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({"bmc_user": user, "bmc_password": password}))
    extra.chmod(0o600)
    env = {**os.environ, "HOME": str(tmp_path), "ANSIBLE_LOCALHOST_WARNING": "False",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False", "ANSIBLE_NOCOLOR": "1"}
    r = subprocess.run(["ansible-playbook", "-i", "localhost,", str(book), "-e", f"@{extra}"],
                       env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert password not in r.stdout + r.stderr
    [recap] = [line for line in r.stdout.splitlines() if line.startswith("localhost")]
    return recap


@pytest.mark.skipif(not shutil.which("ansible-playbook"), reason="ansible is not installed")
def test_ansible_writes_credentials_idempotently(bmc, tmp_path):
    mock, d, user, password = bmc
    assert "changed=1" in ansible_playbook(d, tmp_path, user, password)
    assert_logs_in_as(mock, d, user, password)
    assert "changed=0" in ansible_playbook(d, tmp_path, user, password)
    assert d.log().count("saved new credentials") == 1


def test_temp_files_at_most_8_per_target_and_none_outlives_it(aos_mock, make_daemon):
    d = make_daemon(aos_section(aos_mock))
    os.mkdir(d.path("aos/127.0.0.1:1"))
    fd, tmp = tempfile.mkstemp(dir=d.path("aos/127.0.0.1:1"))
    os.write(fd, b"admin:x")
    os.close(fd)
    for i in range(7):
        os.close(os.open(d.path(f"aos/127.0.0.1:1/t{i}"), os.O_CREAT | os.O_WRONLY, 0o600))
    with pytest.raises(OSError) as e:  # at most 8 per target
        os.open(d.path("aos/127.0.0.1:1/t8"), os.O_CREAT | os.O_WRONLY, 0o600)
    assert_errno(e.value.errno, errno.ENOSPC)
    os.rmdir(d.path("aos/127.0.0.1:1"))
    os.mkdir(d.path("aos/127.0.0.1:1"))
    assert not os.path.exists(tmp)
    assert d.listdir("aos/127.0.0.1:1") == ["credentials", "session.json", "status", "token"]
