"""Teardown is safe at any moment (issue 24, item 5).

Replies that come after the FUSE session ended (the connection aborted
through /sys/fs/fuse/connections/<dev>/abort, then `umount -l`) are
dropped safely, and the logins behind them end as at exit. Run against the
ASan build (SESSIONFS_BIN=build-fuzz/sessionfs) too: no crash, no report.
"""

import os
import signal
import subprocess
import threading
import time

import pytest

from tests.integration.harness import abort_connection, aos_section, idrac_section, is_mounted
from tests.integration.test_fleet import fleet_section, new_key_file, start_cluster
from tests.mocks.aos import LOGIN, LOGOUT

EXIT_WAIT = 15


def _cat(d, rel, out):
    try:
        out.append(d.read(rel))
    except OSError as e:
        out.append(e.errno)


def _abort_and_lazy_unmount(d):
    assert abort_connection(d.mnt)
    subprocess.run(["umount", "-l", str(d.mnt)], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def _exit_status(d):
    try:
        d.proc.wait(EXIT_WAIT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the daemon did not exit within {EXIT_WAIT} s of the abort")
    return d.proc.returncode


def _assert_clean(d, rc):
    log = d.log()
    assert "AddressSanitizer" not in log and "runtime error" not in log, log[-4000:]
    # Exit status as documented: 0 after an unmount, whoever made it.
    assert rc == 0, f"exit status {rc}; log:\n{log[-4000:]}"
    assert not is_mounted(d.mnt)


def _end(d, how):
    if how == "abort":
        _abort_and_lazy_unmount(d)
    elif how == "fusermount":
        subprocess.run(["fusermount3", "-u", "-z", str(d.mnt)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    else:
        d.proc.send_signal(signal.SIGTERM)


@pytest.mark.parametrize("how,logout_on_exit", [("abort", False), ("abort", True),
                                                ("fusermount", True), ("sigterm", True)])
def test_abort_during_a_slow_login(aos_mock, make_daemon, how, logout_on_exit):
    aos_mock.set_slow(4, "POST", LOGIN)
    d = make_daemon(aos_section(aos_mock, "lab", logout_on_exit=str(logout_on_exit).lower()),
                    timeout=8)
    out = []
    reader = threading.Thread(target=_cat, args=(d, "aos/lab/token", out))
    reader.start()
    time.sleep(1)
    _end(d, how)
    reader.join(10)
    assert not reader.is_alive()
    rc = _exit_status(d)
    _assert_clean(d, rc)
    # The login that was running ended as at exit: no session left behind
    # when the target asks for logout at exit.
    time.sleep(0.5)
    assert aos_mock.logins == 1
    if logout_on_exit:
        assert aos_mock.logouts == 1, d.log()[-3000:]


def test_abort_during_a_renewal(aos_mock, make_daemon):
    aos_mock.ttl = 6
    d = make_daemon(aos_section(aos_mock, "lab", logout_on_exit="true"), timeout=8,
                    refresh_margin=3)
    d.read("aos/lab/token")
    aos_mock.set_slow(4, "POST", LOGIN)
    # Keep it hot until the renewal starts (due about 1.5..3 s after login).
    deadline = time.monotonic() + 6
    while aos_mock.logins < 2 and time.monotonic() < deadline:
        d.read("aos/lab/token")
        time.sleep(0.2)
    assert aos_mock.logins == 2, "no renewal started"
    time.sleep(0.5)
    _abort_and_lazy_unmount(d)
    _assert_clean(d, _exit_status(d))


def test_abort_during_rm(redfish_mock, make_daemon):
    d = make_daemon(idrac_section(redfish_mock, "bmc"), timeout=8)
    d.read("idrac/bmc/token")
    redfish_mock.set_slow(4, "DELETE")
    rm = threading.Thread(target=lambda: subprocess.run(["rm", "-f", d.path("idrac/bmc/token")],
                                                        stderr=subprocess.DEVNULL))
    rm.start()
    time.sleep(1)
    _abort_and_lazy_unmount(d)
    rm.join(10)
    assert not rm.is_alive()
    _assert_clean(d, _exit_status(d))
    time.sleep(0.5)
    assert redfish_mock.count("DELETE") == 1


def test_abort_after_rmdir_during_a_slow_login(aos_mock, make_daemon, ca):
    """A target removed while its login runs, then the mount aborted: the
    login's session is ended, and nothing of the target is saved."""
    aos_mock.set_slow(3, "POST", LOGIN)
    d = make_daemon(timeout=8, env={"SSL_CERT_FILE": str(ca.ca), "CURL_CA_BUNDLE": str(ca.ca)})
    name = f"127.0.0.1:{aos_mock.port}"
    os.mkdir(d.path(f"aos/{name}"))
    d.write(f"aos/{name}/credentials", f"admin:{aos_mock.password('admin')}\n")
    out = []
    reader = threading.Thread(target=_cat, args=(d, f"aos/{name}/token", out))
    reader.start()
    time.sleep(1)
    os.rmdir(d.path(f"aos/{name}"))
    _abort_and_lazy_unmount(d)
    reader.join(10)
    _assert_clean(d, _exit_status(d))
    assert aos_mock.logins == 1
    assert aos_mock.logouts == 1, d.log()[-3000:]
    assert not list((d.state_dir).rglob(f"*{name}*")), list(d.state_dir.rglob("*"))


@pytest.mark.parametrize("aborted", ["waiter", "holder"])
def test_abort_during_a_fleet_lock_wait(aos_mock, make_daemon, tmp_path, aborted):
    """Two fleet nodes, a 4 s login: node0 holds the target's lock, node1's
    read waits for it. Either mount is aborted during the wait: that daemon
    exits cleanly, the other's read gets a token, and no session is left
    behind at the server."""
    etcd = start_cluster(tmp_path, "etcd", 1)
    key = new_key_file(tmp_path / "fleet.key")
    try:
        aos_mock.set_slow(4, "POST", LOGIN)
        nodes = [make_daemon(fleet_section(etcd, key, f"node{i}"), aos_section(aos_mock, "lab"), timeout=10)
                 for i in range(2)]
        outs = [[], []]
        readers = [threading.Thread(target=_cat, args=(d, "aos/lab/token", out)) for d, out in zip(nodes, outs)]
        readers[0].start()
        time.sleep(0.5)
        readers[1].start()
        time.sleep(1)
        assert aos_mock.logins == 1 and not outs[1], "node1 should be waiting for node0's login"
        gone, kept = (1, 0) if aborted == "waiter" else (0, 1)
        _abort_and_lazy_unmount(nodes[gone])
        for r in readers:
            r.join(15)
        assert not any(r.is_alive() for r in readers)
        _assert_clean(nodes[gone], _exit_status(nodes[gone]))
        assert isinstance(outs[kept][0], str), outs
        assert nodes[kept].read("aos/lab/token") == outs[kept][0]
        time.sleep(0.5)
        live = [r.token for r in aos_mock.tokens if aos_mock.is_live(r.token)]
        print(f"{aborted} aborted: logins {aos_mock.logins}, logouts {aos_mock.logouts}, live {len(live)}")
        # Nothing left behind: the one live session is the one served. An
        # aborted holder's lease goes at its exit, so its login, if it lands
        # after that, is fenced off and logged out, and the waiter logs in.
        assert live == [outs[kept][0]], (live, outs)
        assert aos_mock.logins == 1 if aborted == "waiter" else aos_mock.logins <= 2
        assert aos_mock.logouts == aos_mock.logins - 1
    finally:
        etcd.stop()
