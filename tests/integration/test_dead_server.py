"""No directory waits on a server (issue 24, item 4).

The kernel holds a directory's lock for the whole of an unlink or rmdir in
it. So `rm token` and `rmdir` answer from local state at once, and the
server's logout goes on in the background: with the BMC paused (the mock
reads each request and holds its answer), `rm`/`rmdir` return, `ls` of the
target's and the provider's directory answer within 0.5 s meanwhile, and
the logout is done once the server is back, once.
"""

import os
import threading
import time

from tests.integration.harness import idrac_section, within
from tests.mocks.common import wait_until

FAST = 0.5


def _deletes(mock):
    return mock.count("DELETE")


def _ls_while(d, action, dirs):
    """Runs action in a thread; while it runs (or right after it returns),
    times `ls` of each of dirs. Returns (action's elapsed, {dir: elapsed})."""
    box = {}
    th = threading.Thread(target=lambda: box.update(r=within(20, action)), daemon=True)
    th.start()
    time.sleep(0.2)
    ls = {}
    for rel in dirs:
        _, err, elapsed = within(20, d.listdir, rel)
        ls[rel] = elapsed
    th.join(20)
    _, err, elapsed = box["r"]
    assert err is None, f"{action}: errno {err}"
    return elapsed, ls


def test_rm_token_with_the_bmc_paused(redfish_mock, make_mount, ca):
    mock = redfish_mock
    d = make_mount(idrac_section(mock, "bmc"), timeout=5)
    d.read("idrac/bmc/token")
    mock.fail = "hang"  # paused: requests are read, answers held
    elapsed, ls = _ls_while(d, lambda: d.unlink("idrac/bmc/token"), ["idrac/bmc", "idrac"])
    print(f"rm token: {elapsed:.2f} s; ls: {ls}")
    assert elapsed < FAST, f"rm token took {elapsed:.2f} s with the BMC paused"
    assert all(v < FAST for v in ls.values()), ls
    # The session is forgotten at once: status shows none.
    assert '"state"' in d.read("idrac/bmc/status")
    time.sleep(1)
    mock.fail = None  # back
    assert wait_until(lambda: not mock.live_sessions(), 10), "the session was not logged out"
    time.sleep(1)
    assert _deletes(mock) == 1


def test_rmdir_with_the_bmc_paused(redfish_mock, make_mount, ca):
    mock = redfish_mock
    d = make_mount(timeout=5, env={"SSL_CERT_FILE": str(ca.ca), "CURL_CA_BUNDLE": str(ca.ca)})
    name = f"127.0.0.1:{mock.port}"
    os.mkdir(d.path(f"idrac/{name}"))
    d.write(f"idrac/{name}/credentials", f"root:{mock.password()}\n")
    d.read(f"idrac/{name}/token")
    mock.fail = "hang"
    elapsed, ls = _ls_while(d, lambda: os.rmdir(d.path(f"idrac/{name}")), ["idrac"])
    print(f"rmdir: {elapsed:.2f} s; ls: {ls}")
    assert elapsed < FAST, f"rmdir took {elapsed:.2f} s with the BMC paused"
    assert all(v < FAST for v in ls.values()), ls
    assert name not in d.listdir("idrac")
    time.sleep(1)
    mock.fail = None
    assert wait_until(lambda: not mock.live_sessions(), 10), "the removed target's session was not logged out"
    time.sleep(1)
    assert _deletes(mock) == 1
    assert "removed target" in d.log()


def test_logout_failure_is_in_status_and_log(redfish_mock, make_mount):
    mock = redfish_mock
    d = make_mount(idrac_section(mock, "bmc"), timeout=2)
    d.read("idrac/bmc/token")
    mock.fail = "hang"
    _, err, elapsed = within(10, d.unlink, "idrac/bmc/token")
    assert err is None and elapsed < FAST
    assert wait_until(lambda: "ETIMEDOUT" in d.read("idrac/bmc/status")
                      or "timed out" in d.read("idrac/bmc/status").lower(), 10), d.read("idrac/bmc/status")
    assert "logout failed" in d.log()
    mock.fail = None


def test_rm_of_another_session_holds_only_sessions_dir(redfish_mock, make_mount):
    """rm sessions/<id> must hear the BMC's answer (a 403 is EACCES): it waits,
    but only sessions/ is held, not the target's directory."""
    mock = redfish_mock
    d = make_mount(idrac_section(mock, "bmc"), timeout=5)
    d.read("idrac/bmc/token")
    sid, _ = mock.create_session()
    assert wait_until(lambda: sid in d.listdir("idrac/bmc/sessions"), 5)
    mock.fail = "hang"
    box = {}
    th = threading.Thread(target=lambda: box.update(r=within(20, d.unlink, f"idrac/bmc/sessions/{sid}")),
                          daemon=True)
    th.start()
    time.sleep(0.3)
    ls = {rel: within(20, d.listdir, rel)[2] for rel in ("idrac/bmc", "idrac")}
    time.sleep(0.5)
    mock.fail = None
    th.join(20)
    print(f"rm sessions/<id>: {box['r'][2]:.2f} s; ls: {ls}")
    assert box["r"][1] is None
    assert all(v < FAST for v in ls.values()), ls
    assert mock.session(sid) is None
