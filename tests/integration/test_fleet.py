"""Fleet mode: three daemons share one session per target through a real
etcd (README, "Fleet mode"; issue 13)."""

import base64
import errno
import json
import os
import secrets
import threading
import time

import pytest

from tests.integration import etcd as etcdh
from tests.integration.harness import aos_section, assert_errno, ini_section
from tests.mocks.common import wait_until

LOCK_TTL = 3


@pytest.fixture
def etcd(tmp_path):
    reason = etcdh.missing()
    if reason:
        pytest.skip(reason)
    d = tmp_path / "etcd"
    d.mkdir()
    c = etcdh.Cluster(d, 1).start()
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
    def factory(*sections, n=3, timeout=10, **overrides):
        return [make_daemon(fleet_section(etcd, key_file, f"node{i}", **overrides), *sections,
                            timeout=timeout) for i in range(n)]
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
