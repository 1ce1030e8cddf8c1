"""Fleet mode: three daemons share one session per target through a real
etcd (README, "Fleet mode"; issue 13)."""

import base64
import errno
import json
import os
import secrets
import shutil
import subprocess
import threading
import time

import pytest

from tests.integration import etcd as etcdh
from tests.integration.harness import aos_section, assert_errno, idrac_section, ini_section, new_password, within
from tests.mocks.common import wait_until

LOCK_TTL = 3


def start_cluster(tmp_path, name, members):
    """A started etcd cluster of members in tmp_path/name (skips the test
    when etcd is not installed)."""
    reason = etcdh.missing()
    if reason:
        pytest.skip(reason)
    d = tmp_path / name
    d.mkdir()
    return etcdh.Cluster(d, members).start()


@pytest.fixture
def etcd(tmp_path):
    c = start_cluster(tmp_path, "etcd", 1)
    yield c
    c.stop()


def new_key_file(path):
    path.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def key_file(tmp_path):
    return new_key_file(tmp_path / "fleet.key")


def fleet_section(cluster, key_file, node, **overrides):
    values = {"endpoints": cluster.endpoints, "name": "test", "node": node,
              "key_file": key_file, "lock_ttl": LOCK_TTL}
    values.update(overrides)
    return ini_section("fleet", values)


@pytest.fixture
def fleet(etcd, key_file, make_daemon):
    """fleet(*sections, n=3, **fleet_overrides) -> n daemons of one fleet."""
    def factory(*sections, n=3, timeout=10, refresh_margin=300, **overrides):
        return [make_daemon(fleet_section(etcd, key_file, f"node{i}", **overrides), *sections,
                            timeout=timeout, refresh_margin=refresh_margin) for i in range(n)]
    return factory


def status(d, target):
    return json.loads(d.read(f"{target}/status"))


def concurrent_reads(daemons, rel, per_node=50):
    """per_node readers on each daemon at once; {(node, i): token or errno}."""
    results = {}
    barrier = threading.Barrier(len(daemons) * per_node)

    def reader(n, d, i):
        barrier.wait(10)
        try:
            results[(n, i)] = d.read(rel)
        except OSError as e:
            results[(n, i)] = e.errno

    threads = [threading.Thread(target=reader, args=(n, d, i))
               for n, d in enumerate(daemons) for i in range(per_node)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a reader hung"
    return results


def test_cold_readers_one_login(aos_mock, fleet, etcd):
    aos_mock.delay = 0.3  # a login long enough for every reader to pile up
    nodes = fleet(aos_section(aos_mock, "lab"))
    results = concurrent_reads(nodes, "aos/lab/token")
    tokens = set(results.values())
    assert len(tokens) == 1, tokens
    assert all(isinstance(t, str) for t in tokens), tokens
    assert aos_mock.logins == 1
    st = status(nodes[1], "aos/lab")
    assert st["fleet"]["state"] == "connected" and st["fleet"]["node"] == "node1", st
    assert etcd.get_prefix(), "nothing was published to etcd"
    # The fleet's status: who holds no lock now, at which revision.
    assert st["fleet"]["revision"] > 0 and st["fleet"].get("lock_holder") is None, st
    metrics = {}
    for d in nodes:
        text = d.read(".metrics")
        for line in text.splitlines():
            if line.startswith("sessionfs_fleet_"):
                name, value = line.split()
                metrics[name] = metrics.get(name, 0) + float(value)
        if shutil.which("promtool"):
            out = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True,
                                 timeout=20)
            assert out.returncode == 0, out.stdout + out.stderr
    assert metrics["sessionfs_fleet_lock_waits_total"] >= 1, metrics  # two nodes waited for the third
    assert metrics["sessionfs_fleet_lock_wait_seconds_total"] > 0, metrics
    assert metrics["sessionfs_fleet_store_requests_total"] > 0, metrics
    assert metrics["sessionfs_fleet_store_errors_total"] == 0, metrics
    # Cached reads make no etcd requests.
    started = time.monotonic()
    before = [d.read(".metrics") for d in nodes]
    for d in nodes:
        for _ in range(20):
            d.read("aos/lab/token")
    after = [d.read(".metrics") for d in nodes]

    def requests(text):
        return next(float(line.split()[1]) for line in text.splitlines()
                    if line.startswith("sessionfs_fleet_store_requests_total "))
    # Only the node lease's keep-alives (every lock_ttl / 3 s) may fall in between.
    keepalives = 1 + int((time.monotonic() - started) / (LOCK_TTL / 3))
    assert all(requests(b) + keepalives >= requests(a) for b, a in zip(before, after)), (before, after)


# Redfish keep-alive for the fleet: the BMC's idle timer is reset by a GET on
# the session, due L/2 after the last one (floor 0 for Redfish). The nodes take
# renewal turns (L/2) / (2 n) apart, at most 5 s (fleet_renewal_delay): 12 s is
# the shortest idle timeout that gives three nodes turns of a whole second.
BMC_IDLE = 12
KEEPALIVE_EVERY = BMC_IDLE / 2


def renewal_order(etcd, nodes):
    """nodes, first renewal turn first: the rendezvous hash fleet_renewal_delay
    ranks by (FNV-1a of node name then target key, highest first)."""
    (key,) = [k for k in etcd.get_prefix() if "/t/idrac/" in k and not k.endswith("/lock")]

    def fnv1a(text):
        h = 2166136261
        for b in text.encode():
            h = ((h ^ b) * 16777619) & 0xFFFFFFFF
        return h
    ranked = sorted(range(len(nodes)), key=lambda i: (-fnv1a(f"node{i}" + key), f"node{i}"))
    return [nodes[i] for i in ranked]


def keepalive_gets(mock, session_id, since=0.0, until=float("inf")):
    return [r for r in mock.requests if r.method == "GET" and r.path == mock.session_uri(session_id)
            and since <= r.time <= until]


def read_live(mock, readers, seconds, token, started):
    """Each of readers reads the token every 0.5 s for seconds: always token,
    live on the BMC with more than a second of its idle timeout left (the
    test never uses the token itself, which would keep it alive)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for d in readers:
            got, err, _ = within(10, d.read, "idrac/bmc/token")
            at = f"{time.monotonic() - started:.1f} s, {d.workdir.name}"
            assert err is None, f"{at}: {os.strerror(err)}"
            assert got == token, f"{at}: a new session (the old one lapsed?)"
            s = next((s for s in mock.live_sessions() if s["token"] == got), None)
            assert s is not None, f"{at}: the token read is dead on the BMC (expired: {mock.expired})"
            left = mock.session_timeout - (time.time() - s["last_activity"])
            assert left > 1, f"{at}: served with {left:.1f} s left on the BMC"
        time.sleep(0.5)


@pytest.mark.slow
def test_redfish_keepalive_counts_reads_on_any_node(redfish_mock, fleet, etcd):
    """Reads on one node only, first the one whose renewal turn comes last,
    then another: the node that is first to renew is not reading and lets
    its copy lapse, so the reading node renews in its turn for the whole
    fleet. One session all along."""
    mock = redfish_mock
    mock.session_timeout = BMC_IDLE
    nodes = fleet(idrac_section(mock))
    token, err, _ = within(10, nodes[0].read, "idrac/bmc/token")
    assert err is None, os.strerror(err)
    started = time.monotonic()
    first, middle, last = renewal_order(etcd, nodes)
    # Three keep-alive periods on the last in turn, two on the middle one.
    read_live(mock, [last], 3 * KEEPALIVE_EVERY, token, started)
    read_live(mock, [middle], 2 * KEEPALIVE_EVERY, token, started)
    assert mock.logins == 1 and mock.expired == []
    assert all(within(10, d.read, "idrac/bmc/token")[0] == token for d in nodes)


@pytest.mark.slow
def test_redfish_keepalive_once_for_the_fleet_lapses_unread(redfish_mock, fleet):
    """Reads on every node: one keep-alive GET per period for the fleet, not
    one per node, and the same token everywhere. Then nobody reads: the
    session is left to lapse, and the next read logs in again."""
    mock = redfish_mock
    mock.session_timeout = BMC_IDLE
    nodes = fleet(idrac_section(mock))
    token, err, _ = within(10, nodes[0].read, "idrac/bmc/token")
    assert err is None, os.strerror(err)
    (session,) = mock.live_sessions()
    started, since = time.monotonic(), time.time()
    period = 3 * KEEPALIVE_EVERY
    read_live(mock, nodes, period, token, started)
    last_read = time.time()
    gets = keepalive_gets(mock, session["id"], since, last_read)
    # About one per KEEPALIVE_EVERY (3); one per node would be 9.
    assert 2 <= len(gets) <= period / KEEPALIVE_EVERY + 2, \
        f"{len(gets)} keep-alive GETs in {period} s of a {BMC_IDLE} s idle timeout, 3 nodes reading"
    assert mock.logins == 1 and mock.expired == []

    # Nobody reads: the session is left to lapse (README: "A session nobody
    # reads is left to lapse"). A renewal by any node, adopted by the others,
    # starts a new "read since the last renewal" period on every node, so at
    # most the keep-alive already due when the last read came is made.
    bound = KEEPALIVE_EVERY + BMC_IDLE + 6
    lapsed = wait_until(lambda: session["id"] in mock.expired, bound, interval=0.5)
    took = time.time() - last_read
    after = [round(r.time - last_read, 1) for r in keepalive_gets(mock, session["id"], last_read)]
    print(f"{len(gets)} keep-alives in {period} s; lapsed {took:.1f} s after the last read; "
          f"keep-alives after it at {after}")
    assert lapsed, f"alive {took:.1f} s after the last read, keep-alives at {after}"
    assert len(after) <= 1, f"keep-alives without readers at {after}"
    new, err, _ = within(10, nodes[1].read, "idrac/bmc/token")
    assert err is None, os.strerror(err)
    assert new != token and mock.logins == 2
    assert all(within(10, d.read, "idrac/bmc/token")[0] == new for d in nodes)
    assert len(mock.live_sessions()) == 1


def test_bmc_holds_one_session(redfish_mock, fleet):
    redfish_mock.delay = 0.2
    nodes = fleet(idrac_section(redfish_mock))
    results = concurrent_reads(nodes, "idrac/bmc/token")
    tokens = set(results.values())
    assert len(tokens) == 1 and all(isinstance(t, str) for t in tokens), tokens
    assert redfish_mock.logins == 1
    assert len(redfish_mock.live_sessions()) == 1
    # logout_on_exit (Redfish's default) leaves the shared session alone while
    # other nodes are alive; the last one out ends it.
    nodes[0].stop()
    nodes[1].stop()
    assert len(redfish_mock.live_sessions()) == 1 and not redfish_mock.deletes
    nodes[2].stop()
    assert len(redfish_mock.live_sessions()) == 0 and len(redfish_mock.deletes) == 1


def test_refused_login_is_tried_once_for_the_fleet(redfish_mock, fleet, make_daemon, etcd, key_file, log_secrets):
    """A wrong password: one attempt for the whole fleet, restarts included
    (a BMC locks the account after a few). New credentials or rm token on a
    node let it try again."""
    redfish_mock.delay = 0.3
    log_secrets.add("not-the-password")
    wrong = idrac_section(redfish_mock, password="not-the-password")
    nodes = fleet(wrong)
    results = concurrent_reads(nodes, "idrac/bmc/token", per_node=10)
    assert set(results.values()) == {errno.EKEYREJECTED}, results
    assert redfish_mock.logins == 1, f"{redfish_mock.logins} login attempts with one wrong password"
    for d in nodes:
        assert_errno(d.read_err("idrac/bmc/token"), errno.EKEYREJECTED)
        st = status(d, "idrac/bmc")
        assert "login" in st["last_error"] and "rejected" in st["last_error"], st
    assert sum("no node tries these credentials again" in status(d, "idrac/bmc")["last_error"] for d in nodes) == 2
    # A node started now, with the same password, does not try either.
    late = make_daemon(fleet_section(etcd, key_file, "late"), wrong)
    assert_errno(late.read_err("idrac/bmc/token"), errno.EKEYREJECTED)
    assert redfish_mock.logins == 1

    # rm token on one node: that node may try (once) again.
    nodes[2].unlink("idrac/bmc/token")
    assert_errno(nodes[2].read_err("idrac/bmc/token"), errno.EKEYREJECTED)
    assert redfish_mock.logins == 2
    assert_errno(nodes[0].read_err("idrac/bmc/token"), errno.EKEYREJECTED)
    assert redfish_mock.logins == 2

    # The right password written on one node: its login serves the fleet.
    nodes[1].write("idrac/bmc/credentials", f"root:{redfish_mock.password('root')}\n")
    token = nodes[1].read("idrac/bmc/token")
    assert redfish_mock.logins == 3

    def served(d):
        try:
            return d.read("idrac/bmc/token")
        except OSError:
            return None
    assert wait_until(lambda: all(served(d) == token for d in (nodes[0], nodes[2], late)), 2), \
        [status(d, "idrac/bmc") for d in nodes]
    assert redfish_mock.logins == 3 and len(redfish_mock.live_sessions()) == 1


def test_lock_holder_killed_during_login(aos_mock, fleet, etcd):
    login_time = 3
    aos_mock.delay = login_time
    nodes = fleet(aos_section(aos_mock, "lab"), timeout=20)
    first = threading.Thread(target=nodes[0].read_err, args=("aos/lab/token",), daemon=True)
    first.start()
    assert wait_until(lambda: any(k.endswith("/lock") and v == b"node0" for k, v in etcd.get_prefix().items()), 5), \
        "node0 never took the fleet lock"
    assert wait_until(lambda: aos_mock.logins == 1, 5)
    nodes[0].kill9()
    started = time.monotonic()
    results = concurrent_reads(nodes[1:], "aos/lab/token", per_node=5)
    took = time.monotonic() - started
    tokens = set(results.values())
    assert len(tokens) == 1 and all(isinstance(t, str) for t in tokens), tokens
    assert aos_mock.logins == 2, "exactly one more login, by another node"
    assert took < LOCK_TTL + login_time + 3, took


def test_rm_token_invalidates_everywhere(aos_mock, fleet):
    nodes = fleet(aos_section(aos_mock, "lab"))
    old = {d.read("aos/lab/token") for d in nodes}
    assert len(old) == 1 and aos_mock.logins == 1
    old = old.pop()
    nodes[0].unlink("aos/lab/token")
    # rm returns once the fleet's copy is gone from etcd (the server's logout
    # goes on in the background); the other nodes drop theirs as their
    # watches deliver that removal: within 1 s, B serves a new token.
    assert wait_until(lambda: nodes[1].read("aos/lab/token") != old, 1.0), "B still serves the removed token"
    new = nodes[1].read("aos/lab/token")
    assert new != old and aos_mock.logins == 2
    # Not served again anywhere, page cache included.
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        for d in nodes:
            assert d.read("aos/lab/token") == new
    assert aos_mock.logins == 2


def test_session_json_write_reaches_the_fleet(aos_mock, fleet):
    """A session written to session.json on one node is the fleet's: every
    node serves it, and a node that later needs a session adopts it."""
    nodes = fleet(aos_section(aos_mock, "lab"))
    old = nodes[0].read("aos/lab/token")
    assert nodes[2].read("aos/lab/token") == old and aos_mock.logins == 1
    written = aos_mock.issue_token()
    nodes[1].write("aos/lab/session.json", json.dumps({"server": "127.0.0.1", "port": aos_mock.port,
                                                       "token": written}))
    assert nodes[1].read("aos/lab/token") == written

    def everywhere():
        return all(d.read("aos/lab/token") == written for d in nodes)
    assert wait_until(everywhere, 1.5, interval=0.1), [d.read("aos/lab/token") == written for d in nodes]
    assert aos_mock.logins == 1


def test_values_are_sealed(aos_mock, fleet, etcd, tmp_path):
    nodes = fleet(aos_section(aos_mock, "lab"), n=2)
    token = nodes[0].read("aos/lab/token")
    assert nodes[1].read("aos/lab/token") == token
    out = etcd.etcdctl("get", "--prefix", "sessionfs/")
    assert out.returncode == 0, out.stderr
    values = etcd.get_prefix()
    assert values
    blob = out.stdout + b"".join(values.values())
    for secret in (token, aos_mock.password("admin")):
        assert secret.encode() not in blob
        assert base64.b64encode(secret.encode())[:16] not in blob
    sealed = [v for k, v in values.items() if "/t/aos/" in k]
    assert len(sealed) == 1
    for word in (b"token", b"expires", b"server", b"\"s\":", b"admin"):
        assert word not in sealed[0]
    assert not sealed[0].startswith(b"{")
    assert "admin" not in "".join(values)  # the user is hashed in the key


def test_wrong_key_file_is_ebadmsg(aos_mock, fleet, etcd, tmp_path, make_daemon):
    nodes = fleet(aos_section(aos_mock, "lab"), n=1)
    nodes[0].read("aos/lab/token")
    other = new_key_file(tmp_path / "other.key")
    d = make_daemon(fleet_section(etcd, other, "stranger"), aos_section(aos_mock, "lab"))
    assert_errno(d.read_err("aos/lab/token"), errno.EBADMSG)
    st = status(d, "aos/lab")
    assert "decrypt" in st["last_error"], st
    assert aos_mock.logins == 1, "no login over a value it cannot read"


def test_etcd_auth_role_limited_to_prefix(aos_mock, etcd, key_file, make_daemon, tmp_path, log_secrets):
    root_pw, fleet_pw = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    log_secrets.add(root_pw)
    log_secrets.add(fleet_pw)
    for args in (("user", "add", f"root:{root_pw}"), ("role", "add", "sfs"),
                 ("role", "grant-permission", "sfs", "--prefix=true", "readwrite", "sessionfs/"),
                 ("user", "add", f"sfs:{fleet_pw}"), ("user", "grant-role", "sfs", "sfs"),
                 ("auth", "enable")):
        out = etcd.etcdctl(*args)
        assert out.returncode == 0, (args, out.stderr)
    pw_file = tmp_path / "etcd.pw"
    pw_file.write_text(fleet_pw)
    pw_file.chmod(0o600)
    nodes = [make_daemon(fleet_section(etcd, key_file, f"node{i}", user="sfs", password_file=pw_file),
                         aos_section(aos_mock, "lab")) for i in range(2)]
    token = nodes[0].read("aos/lab/token")
    assert nodes[1].read("aos/lab/token") == token and aos_mock.logins == 1
    # The role is limited to the prefix: the same user cannot write elsewhere.
    out = etcd.etcdctl("put", "elsewhere", "x", user=f"sfs:{fleet_pw}")
    assert out.returncode != 0 and b"permission denied" in out.stderr
    out = etcd.etcdctl("get", "--prefix", "sessionfs/", "--keys-only", user=f"root:{root_pw}")
    assert b"/t/aos/" in out.stdout


MFA_SERIAL = "arn:aws:iam::123456789012:mfa/sessionfs-fleet"


def test_sts_one_mfa_code_serves_the_fleet(sts_mock, fleet):
    akid, secret = sts_mock.new_key(mfa_serial=MFA_SERIAL, mfa_code="123456")
    section = ini_section('sts "p"', {"aws_access_key_id": akid, "aws_secret_access_key": secret,
                                      "region": "eu-west-1", "endpoint_url": sts_mock.url,
                                      "ca_path": sts_mock.ca.ca, "mfa_serial_number": MFA_SERIAL})
    nodes = fleet(section)
    assert_errno(nodes[1].read_err("sts/p/creds.json"), errno.ENOKEY)
    nodes[0].write("sts/p/mfa", "123456\n")
    creds = [json.loads(d.read("sts/p/creds.json")) for d in nodes]
    assert len({c["SessionToken"] for c in creds}) == 1
    assert len(sts_mock.calls_of("GetSessionToken")) == 1
    assert sts_mock.calls_of("GetSessionToken")[0].token_code == "123456"


@pytest.fixture
def etcd3(tmp_path):
    c = start_cluster(tmp_path, "etcd3", 3)
    yield c
    c.stop()


def test_three_member_cluster_quorum(aos_mock, etcd3, key_file, make_daemon):
    aos_mock.set_password("ops", new_password())
    nodes = [make_daemon(fleet_section(etcd3, key_file, f"node{i}"), aos_section(aos_mock, "lab"),
                         aos_section(aos_mock, "other", user="ops", password=aos_mock.password("ops")), timeout=15)
             for i in range(3)]
    token = nodes[0].read("aos/lab/token")
    assert all(d.read("aos/lab/token") == token for d in nodes)

    # The leader dies: everything keeps working, a new session included.
    leader = etcd3.leader()
    assert leader
    etcd3.kill(leader)
    time.sleep(1.5)  # an election (election timeout 1 s), and the watches move to other members
    nodes[0].unlink("aos/lab/token")
    old = token
    # The other nodes drop their copies as their watches deliver the delete.
    assert wait_until(lambda: nodes[1].read("aos/lab/token") != old, 2)
    token = nodes[1].read("aos/lab/token")
    assert wait_until(lambda: all(d.read("aos/lab/token") == token for d in nodes), 5), \
        ([d.read("aos/lab/token") == token for d in nodes], [status(d, "aos/lab") for d in nodes])
    assert aos_mock.logins == 2

    # Quorum lost: cached tokens are still served; rm cannot tell the fleet,
    # so it changes nothing and says so; a new login fails clearly.
    second = next(m for m in etcd3.names if m in etcd3.procs)
    etcd3.kill(second)
    assert all(d.read("aos/lab/token") == token for d in nodes)
    logouts = aos_mock.logouts
    with pytest.raises(OSError) as e:
        nodes[2].unlink("aos/lab/token")
    assert e.value.errno == errno.EHOSTDOWN
    assert nodes[2].read("aos/lab/token") == token
    st = status(nodes[2], "aos/lab")
    assert "fleet store" in st["last_error"] and st["fleet"]["state"] == "down", st
    time.sleep(0.5)  # a logout would go on in the background
    assert aos_mock.logouts == logouts
    assert_errno(nodes[2].read_err("aos/other/token"), errno.EHOSTDOWN)
    assert "etcd" in status(nodes[2], "aos/other")["last_error"]
    assert aos_mock.logins == 2

    # Quorum back: rm reaches the fleet again, and every node takes up the
    # new session.
    for m in etcd3.names:
        if m not in etcd3.procs:
            etcd3.start_member(m)
    etcd3.wait_healthy()

    def removed():
        try:
            nodes[2].unlink("aos/lab/token")
            return True
        except OSError:
            return False
    assert wait_until(removed, 20, interval=0.5)
    fresh = nodes[2].read("aos/lab/token")
    assert fresh != token
    assert wait_until(lambda: all(d.read("aos/lab/token") == fresh for d in nodes), 5)
    assert aos_mock.logins == 3
    assert status(nodes[0], "aos/lab")["fleet"]["state"] == "connected"


@pytest.mark.parametrize("paused", [1, 2])
def test_paused_members_removed_token_not_served(aos_mock, etcd3, key_file, make_daemon, paused):
    """Members SIGSTOPped (every node's watch is on the first): rm on one
    node returns within timeout, and no node serves the removed token more
    than 2 s after it returns. With one paused the watches move to a live
    member; with two there is no quorum and rm itself fails."""
    timeout = 10
    # Followers are paused, which the readers' watches are on; the remover
    # lists the leader first, so that its rm returns at once.
    leader = etcd3.leader()
    followers = [m for m in etcd3.names if m != leader]
    frozen = followers[:paused]
    order = {"readers": followers + [leader], "remover": [leader] + followers}
    nodes = [make_daemon(fleet_section(etcd3, key_file, f"node{i}", endpoints=",".join(
                 etcd3.url(m) for m in order["remover" if i == 0 else "readers"])),
                 aos_section(aos_mock, "lab"), timeout=timeout)
             for i in range(3)]
    old = nodes[0].read("aos/lab/token")
    assert all(d.read("aos/lab/token") == old for d in nodes)
    assert all(status(d, "aos/lab")["fleet"]["endpoint"] == etcd3.url(frozen[0]) for d in nodes[1:])
    for m in frozen:
        etcd3.pause(m)
    time.sleep(0.3)
    _, err, took = within(timeout + 5, nodes[0].unlink, "aos/lab/token")
    removed = time.monotonic()
    assert took <= timeout, took
    last_old = {}

    def read_until(d, n, until):
        while time.monotonic() < until:
            try:
                if d.read("aos/lab/token") == old:
                    last_old[n] = time.monotonic() - removed
            except OSError:
                pass
            time.sleep(0.05)
    readers = [threading.Thread(target=read_until, args=(d, n, removed + 4)) for n, d in enumerate(nodes[1:], 1)]
    for t in readers:
        t.start()
    for t in readers:
        t.join(20)
    sts = [status(d, "aos/lab")["fleet"] for d in nodes]
    print(f"{paused} paused: rm took {took:.2f} s; the removed token last served (s after rm) {last_old}")
    for m in frozen:
        etcd3.resume(m)
    if paused == 1:
        assert err is None, os.strerror(err)
        assert all(v <= 2.0 for v in last_old.values()), (last_old, sts)
        # Every watch moved off the paused member and shows where it is.
        assert all(s["state"] == "connected" and s["endpoint"] != etcd3.url(frozen[0]) for s in sts), sts
        assert took < 1, took
    else:
        # No quorum: the fleet cannot forget the session, so rm says so
        # and the others keep serving it as on_store_down = stale says.
        assert err == errno.EHOSTDOWN, err and os.strerror(err)
        assert all(s["state"] == "down" and s["progress_age"] > 1 for s in sts), sts


@pytest.mark.slow
def test_failed_logins_back_off_fleet_wide(aos_mock, fleet, etcd):
    """The server answers 500 to every login: 3 nodes read every 0.25 s for
    10 s, and the fleet logs in 1, 2, 4 ... s apart, not each node on its
    own. Every read gets the error; the next login that works ends it."""
    nodes = fleet(aos_section(aos_mock, "lab"))
    aos_mock.fail = "500"
    errors = []
    end = time.monotonic() + 10
    while time.monotonic() < end:
        errors += [d.read_err("aos/lab/token") for d in nodes]
        time.sleep(0.25)
    logins = aos_mock.logins
    print(f"500 on every login, 3 nodes, 10 s: {logins} logins, {len(errors)} reads")
    assert set(errors) == {errno.EIO}, set(errors)
    assert logins <= 5, f"{logins} logins in 10 s"  # at 0, 1, 3, 7 s (and one at a boundary)
    assert any("the fleet tries again after" in status(d, "aos/lab")["last_error"] for d in nodes)
    assert any(k.endswith("/backoff") for k in etcd.get_prefix()), etcd.get_prefix()

    aos_mock.fail = None

    def served(d):
        try:
            return d.read("aos/lab/token")
        except OSError:
            return None
    assert wait_until(lambda: all(served(d) for d in nodes), 70, interval=0.5)
    assert len({served(d) for d in nodes}) == 1
    assert not any(k.endswith("/backoff") for k in etcd.get_prefix()), "the record stays after a login that worked"


def fleet_metric(d, name):
    return next(float(line.split()[1]) for line in d.read(".metrics").splitlines()
                if line.startswith(name + " "))


def test_store_down_fail_on_a_minority_member(aos_mock, etcd3, key_file, make_daemon):
    """on_store_down = fail on nodes that only reach one member: when the
    other two die, that member keeps the watch open but has no quorum. The
    nodes stop serving within a few seconds (their lease cannot be kept),
    and heal by themselves when quorum returns."""
    survivor = etcd3.names[0]
    nodes = [make_daemon(fleet_section(etcd3, key_file, f"node{i}", endpoints=etcd3.url(survivor),
                                       on_store_down="fail"), aos_section(aos_mock, "lab"), timeout=5)
             for i in range(2)]
    token = nodes[0].read("aos/lab/token")
    assert nodes[1].read("aos/lab/token") == token and aos_mock.logins == 1
    reconnects = [fleet_metric(d, "sessionfs_fleet_watch_reconnects_total") for d in nodes]
    for m in etcd3.names[1:]:
        etcd3.kill(m)

    def refused(d):
        try:
            d.read("aos/lab/token")
            return False
        except OSError as e:
            assert e.errno == errno.EHOSTDOWN, e
            return True
    # A keep-alive every lock_ttl / 3 s, each given 5 s: refused within 8 s.
    assert wait_until(lambda: all(refused(d) for d in nodes), 12, interval=0.2), \
        [status(d, "aos/lab") for d in nodes]
    for d in nodes:
        st = status(d, "aos/lab")
        assert st["fleet"]["state"] == "down" and "on_store_down = fail" in st["last_error"], st
    # The minority case: the survivor keeps the watch open but cannot answer
    # the watch's probe (a linearizable read), so the watch is set up again.
    assert all(fleet_metric(d, "sessionfs_fleet_watch_reconnects_total") > r for d, r in zip(nodes, reconnects))
    assert aos_mock.logins == 1, "no login while the fleet cannot vouch for it"

    for m in etcd3.names[1:]:
        etcd3.start_member(m)
    etcd3.wait_healthy()

    def served(d):
        try:
            return d.read("aos/lab/token")
        except OSError:
            return None
    assert wait_until(lambda: all(served(d) == token for d in nodes), 20, interval=0.5), \
        [status(d, "aos/lab") for d in nodes]
    assert aos_mock.logins == 1, "the fleet's session is taken up again, no new login"
    assert all(status(d, "aos/lab")["fleet"]["state"] == "connected" for d in nodes)


def test_renewal_once_for_the_fleet(aos_mock, fleet):
    aos_mock.ttl = 20  # renewed 10 s after login (refresh_margin 8: 2 + min(8, 9) before exp)
    nodes = fleet(aos_section(aos_mock, "lab"), refresh_margin=8)
    token = nodes[0].read("aos/lab/token")
    deadline = time.monotonic() + 14
    while time.monotonic() < deadline:  # every node keeps it hot
        seen = {d.read("aos/lab/token") for d in nodes}
        assert len(seen) <= 2, seen
        time.sleep(0.3)
    final = {d.read("aos/lab/token") for d in nodes}
    assert len(final) == 1 and final != {token}, "renewed, and the same everywhere"
    assert aos_mock.logins == 2, "one renewal for the whole fleet"


def test_share_credentials(aos_mock, fleet, etcd):
    section = aos_section(aos_mock, "lab", user=None, password=None)
    nodes = fleet(section, share_credentials=True)
    assert_errno(nodes[1].read_err("aos/lab/token"), errno.ENOKEY)
    nodes[0].write("aos/lab/credentials", f"admin:{aos_mock.password('admin')}\n")

    def served():
        try:
            return nodes[1].read("aos/lab/token")
        except OSError as e:
            assert e.errno == errno.ENOKEY, e
            return None
    assert wait_until(served, 2, interval=0.1), "node1 never got the shared credentials"
    token = nodes[1].read("aos/lab/token")
    assert nodes[2].read("aos/lab/token") == token and aos_mock.logins == 1
    # Sealed in etcd like sessions.
    shared = [v for k, v in etcd.get_prefix().items() if "/c/aos/" in k]
    assert len(shared) == 1 and aos_mock.password("admin").encode() not in shared[0]
    assert b"username" not in shared[0]


def test_credentials_not_shared_by_default(aos_mock, fleet, etcd):
    nodes = fleet(aos_section(aos_mock, "lab", user=None, password=None), n=2)
    nodes[0].write("aos/lab/credentials", f"admin:{aos_mock.password('admin')}\n")
    nodes[0].read("aos/lab/token")
    assert not any("/c/" in k for k in etcd.get_prefix())
    time.sleep(0.5)
    assert_errno(nodes[1].read_err("aos/lab/token"), errno.ENOKEY)


def test_fenced_off_winner_ends_its_own_session(aos_mock, fleet, etcd):
    aos_mock.delay = 2
    nodes = fleet(aos_section(aos_mock, "lab"), n=2, timeout=20)
    results = {}

    def read(i):
        results[i] = nodes[i].read("aos/lab/token")
    first = threading.Thread(target=read, args=(0,))
    first.start()
    assert wait_until(lambda: aos_mock.logins == 1, 5)
    (lock,) = [k for k in etcd.get_prefix() if k.endswith("/lock")]
    # As if node0's lease had lapsed: node1 takes over while node0 logs in.
    etcd.call("kv/deleterange", {"key": etcdh.b64(lock)})
    second = threading.Thread(target=read, args=(1,))
    second.start()
    first.join(25)
    second.join(25)
    assert results.get(0) and results[0] == results.get(1), results
    assert aos_mock.logins == 2 and aos_mock.logouts == 1, "node0 ended the session it could not publish"
    live = [rec.token for rec in aos_mock.tokens if aos_mock.is_live(rec.token)]
    assert live == [results[0]], "only the published session is left on the server"


def test_store_down_local_logs_in_alone(aos_mock, fleet, etcd):
    aos_mock.set_password("ops", new_password())
    nodes = fleet(aos_section(aos_mock, "lab"), aos_section(aos_mock, "ops", user="ops",
                                                           password=aos_mock.password("ops")),
                  n=2, on_store_down="local", timeout=15)
    token = nodes[0].read("aos/lab/token")
    # node1 adopted it from the watch as it was published: served, no etcd needed.
    assert wait_until(lambda: nodes[1].read("aos/lab/token") == token, 1.5)
    etcd.stop()
    assert nodes[0].read("aos/lab/token") == token  # cached: no etcd needed
    local = nodes[1].read("aos/ops/token")          # a login of its own
    assert local != token and aos_mock.logins == 2
    st = status(nodes[1], "aos/ops")
    assert st["fleet"]["state"] == "down_local", st
    assert "session slots" in nodes[1].log()  # warned at start and when it happened


RECONCILE_WAIT = 10  # seconds after the store's return by which the fleet is one again


def live_tokens(mock):
    return [rec.token for rec in mock.tokens if mock.is_live(rec.token)]


def store_down(cluster, how):
    """Every member paused (SIGSTOP: connections hang) or killed."""
    for m in list(cluster.procs):
        cluster.pause(m) if how == "pause" else cluster.kill(m)


def store_back(cluster, how):
    """The members back and answering; the time they answered."""
    for m in cluster.names:
        cluster.resume(m) if how == "pause" else cluster.start_member(m)
    cluster.wait_healthy()
    return time.monotonic()


def alone_logins(nodes, rel, mock, logins):
    """Each node reads rel at once and logs in alone (logins: the mock's
    count after, None: any): their tokens."""
    results = concurrent_reads(nodes, rel, per_node=1)
    tokens = [results[(n, 0)] for n in range(len(nodes))]
    assert all(isinstance(t, str) for t in tokens), tokens
    assert len(set(tokens)) == len(nodes) and logins in (None, mock.logins), (tokens, mock.logins)
    assert all(status(d, rel.rsplit("/", 1)[0])["fleet"]["state"] == "down_local" for d in nodes)
    return tokens


def reconciled(nodes, rel, live, back):
    """Within RECONCILE_WAIT s of back, every node serves one token, the one
    live session at the server (live(): the tokens of those): that token."""
    def one():
        served = {d.read(rel) for d in nodes}
        return len(served) == 1 and live() == list(served)
    ok = wait_until(one, RECONCILE_WAIT, interval=0.1)
    took = time.monotonic() - back
    assert ok, (len({d.read(rel) for d in nodes}), len(live()),
                [status(d, rel.rsplit("/", 1)[0])["fleet"] for d in nodes])
    print(f"reconciled {took:.2f} s after the store's return")
    return nodes[0].read(rel)


@pytest.mark.parametrize("how", ["pause", "kill"])
def test_store_down_local_reconciles(aos_mock, fleet, etcd, how):
    """on_store_down = local: three nodes log in alone while every member is
    down; when the store is back, one node's session is published (the first
    fenced txn), the others serve it and end their own on the server."""
    nodes = fleet(aos_section(aos_mock, "lab"), on_store_down="local", timeout=15)
    store_down(etcd, how)
    tokens = alone_logins(nodes, "aos/lab/token", aos_mock, 3)
    assert sorted(live_tokens(aos_mock)) == sorted(tokens)
    if how == "kill":
        # rm token cannot tell the fleet: refused, the session kept (and
        # still to be reconciled).
        with pytest.raises(OSError) as e:
            nodes[0].unlink("aos/lab/token")
        assert e.value.errno == errno.EHOSTDOWN
        assert nodes[0].read("aos/lab/token") == tokens[0]
    back = store_back(etcd, how)
    token = reconciled(nodes, "aos/lab/token", lambda: live_tokens(aos_mock), back)
    assert token in tokens and aos_mock.logins == 3, "one of the alone sessions, no new login"
    assert wait_until(lambda: aos_mock.logouts == 2, 5), aos_mock.logouts
    assert wait_until(lambda: all(status(d, "aos/lab")["fleet"]["state"] == "connected" for d in nodes), 5), \
        [status(d, "aos/lab")["fleet"] for d in nodes]
    (key,) = [k for k in etcd.get_prefix() if "/t/aos/" in k and not k.endswith("/lock")]
    assert key  # the fleet has it: a node that needs it adopts it
    time.sleep(1)
    assert {d.read("aos/lab/token") for d in nodes} == {token} and live_tokens(aos_mock) == [token]


def test_store_down_local_reconciles_bmc_slots(redfish_mock, fleet, etcd):
    """The same with a BMC: its session slots are given back (DELETE)."""
    nodes = fleet(idrac_section(redfish_mock), on_store_down="local", timeout=15)
    store_down(etcd, "pause")
    tokens = alone_logins(nodes, "idrac/bmc/token", redfish_mock, 3)
    live = lambda: [s["token"] for s in redfish_mock.live_sessions()]
    assert sorted(live()) == sorted(tokens)
    back = store_back(etcd, "pause")
    token = reconciled(nodes, "idrac/bmc/token", live, back)
    assert token in tokens and redfish_mock.logins == 3
    assert len(redfish_mock.deletes) == 2


def test_store_down_local_reconciles_over_an_expired_session(aos_mock, fleet, etcd):
    """The key still holds the fleet's session from before the outage, which
    expired meanwhile: one node's alone session replaces it (a txn fenced on
    its revision), and the fleet is one again."""
    aos_mock.ttl = 6  # renewal due 2 s after login (min_validity 2, refresh_margin 2)
    nodes = fleet(aos_section(aos_mock, "lab"), on_store_down="local", timeout=15, refresh_margin=2)
    old = nodes[0].read("aos/lab/token")
    assert wait_until(lambda: all(d.read("aos/lab/token") == old for d in nodes), 1.5)
    store_down(etcd, "pause")
    aos_mock.ttl = 3600
    assert wait_until(lambda: not aos_mock.is_live(old), 8)
    # Renewed alone in the background, or logged in alone by this read.
    tokens = alone_logins(nodes, "aos/lab/token", aos_mock, None)
    assert old not in tokens and sorted(live_tokens(aos_mock)) == sorted(tokens)
    logins = aos_mock.logins
    back = store_back(etcd, "pause")
    token = reconciled(nodes, "aos/lab/token", lambda: live_tokens(aos_mock), back)
    assert token in tokens and aos_mock.logins == logins
    assert wait_until(lambda: aos_mock.logouts == 2, 5), aos_mock.logouts


def test_store_down_local_node_restarted_meanwhile(aos_mock, fleet, etcd):
    """A node killed (-9) after it logged in alone, restarted while the store
    is still down, resumes its saved session: that one is reconciled too."""
    nodes = fleet(aos_section(aos_mock, "lab"), on_store_down="local", timeout=15)
    store_down(etcd, "kill")
    tokens = alone_logins(nodes, "aos/lab/token", aos_mock, 3)
    nodes[2].kill9()
    nodes[2].restart()
    assert nodes[2].read("aos/lab/token") == tokens[2] and aos_mock.logins == 3, "resumed, no login"
    back = store_back(etcd, "kill")
    token = reconciled(nodes, "aos/lab/token", lambda: live_tokens(aos_mock), back)
    assert token in tokens and aos_mock.logins == 3
    assert wait_until(lambda: aos_mock.logouts == 2, 5), aos_mock.logouts


def test_store_down_local_never_alone_for_mfa(sts_mock, fleet, etcd):
    """A target that needs a one-time code never logs in alone (the code
    would serve one node): it waits for the store, then one call serves all."""
    akid, secret = sts_mock.new_key(mfa_serial=MFA_SERIAL, mfa_code="123456")
    section = ini_section('sts "p"', {"aws_access_key_id": akid, "aws_secret_access_key": secret,
                                      "region": "eu-west-1", "endpoint_url": sts_mock.url,
                                      "ca_path": sts_mock.ca.ca, "mfa_serial_number": MFA_SERIAL})
    nodes = fleet(section, n=2, on_store_down="local", timeout=15)
    store_down(etcd, "kill")
    nodes[0].write("sts/p/mfa", "123456\n")
    assert_errno(nodes[0].read_err("sts/p/creds.json"), errno.EHOSTDOWN)
    assert not sts_mock.calls_of("GetSessionToken")
    store_back(etcd, "kill")

    def served():
        try:
            return json.loads(nodes[0].read("sts/p/creds.json"))["SessionToken"]
        except OSError as e:
            assert e.errno == errno.EHOSTDOWN, e  # the read backoff after the failure
            return None
    token = wait_until(served, 10, interval=0.5)
    assert token and json.loads(nodes[1].read("sts/p/creds.json"))["SessionToken"] == token
    assert len(sts_mock.calls_of("GetSessionToken")) == 1


def test_tls_with_client_certificates(aos_mock, ca, key_file, make_daemon, tmp_path):
    reason = etcdh.missing()
    if reason:
        pytest.skip(reason)
    cert, key = etcdh.client_cert(ca.ca.parent)
    server_cert, server_key = etcdh.client_cert(ca.ca.parent, "etcd-server", server=True)
    (tmp_path / "etcd").mkdir()
    cluster = etcdh.Cluster(tmp_path / "etcd", 1, tls=(ca.ca, server_cert, server_key, cert, key)).start()
    try:
        nodes = [make_daemon(fleet_section(cluster, key_file, f"node{i}", ca_path=ca.ca, cert=cert, key=key),
                             aos_section(aos_mock, "lab")) for i in range(2)]
        token = nodes[0].read("aos/lab/token")
        assert nodes[1].read("aos/lab/token") == token and aos_mock.logins == 1
        assert status(nodes[1], "aos/lab")["fleet"]["state"] == "connected"
        assert any("/t/aos/" in k for k in cluster.get_prefix())
    finally:
        for d in nodes if "nodes" in locals() else ():
            d.stop()
        cluster.stop()


def rm_rounds(aos_mock, nodes, rounds, remover):
    """rounds of: every node serves the one token, then remover(i) removes
    it. Returns the tokens removed, in order."""
    removed = []
    for i in range(rounds):
        def agreed():
            tokens = {d.read("aos/lab/token") for d in nodes}
            return tokens.pop() if len(tokens) == 1 and not tokens & set(removed) else None
        assert wait_until(lambda: agreed() is not None, 3), [d.read("aos/lab/token") for d in nodes]
        removed.append(agreed())
        remover(i).unlink("aos/lab/token")
    return removed


@pytest.mark.concurrency  # the watch drops copies while rm logs out
@pytest.mark.parametrize("n", [1, 3])
def test_rm_token_logs_out_once_for_the_fleet(aos_mock, fleet, n):
    """rm token on a node logs the session out at the server exactly once;
    the other nodes drop their copy without a logout of their own."""
    nodes = fleet(aos_section(aos_mock, "lab"), n=n)
    removed = rm_rounds(aos_mock, nodes, 10, lambda i: nodes[i % n])
    assert len(set(removed)) == 10
    # rm answers from local state; the logout goes on in the background.
    wait_until(lambda: not any(aos_mock.is_live(t) for t in removed), 5)
    live = [t for t in removed if aos_mock.is_live(t)]
    assert not live, f"{len(live)} of 10 old tokens still live at the server"
    assert aos_mock.logouts == 10, f"{aos_mock.logouts} logouts for 10 rm"
    assert aos_mock.logins == 10


def test_lock_holder_is_shown_on_every_node(aos_mock, fleet, etcd):
    aos_mock.delay = 3
    nodes = fleet(aos_section(aos_mock, "lab"), timeout=20)
    first = threading.Thread(target=nodes[0].read_err, args=("aos/lab/token",), daemon=True)
    first.start()
    assert wait_until(lambda: any(k.endswith("/lock") and v == b"node0" for k, v in etcd.get_prefix().items()), 5), \
        "node0 never took the fleet lock"

    def holders():
        return [status(d, "aos/lab")["fleet"].get("lock_holder") for d in nodes]
    assert wait_until(lambda: holders() == ["node0"] * 3, 1.5), holders()
    first.join(10)
    assert wait_until(lambda: holders() == [None] * 3, 1.5), holders()
