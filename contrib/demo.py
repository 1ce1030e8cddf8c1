"""sessionfs demo: mock AOS and Redfish servers on 127.0.0.1, a real mount,
and what a user does with it. Run by contrib/demo (as root, or a user
allowed to mount FUSE filesystems)."""

import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.mocks.aos import AosMock  # noqa: E402
from tests.mocks.common import make_ca  # noqa: E402
from tests.mocks.redfish import RedfishMock  # noqa: E402


def sh(cmd, mnt):
    print(f"\n$ {cmd}", flush=True)
    subprocess.run(cmd, shell=True, cwd=mnt, check=False)


def wait_mounted(mnt, daemon):
    for _ in range(100):
        if os.path.ismount(mnt):
            return
        if daemon.poll() is not None:
            sys.exit("sessionfs exited before mounting")
        time.sleep(0.1)
    sys.exit("sessionfs did not mount within 10 s")


def main():
    binary = os.environ.get("SESSIONFS_BIN", str(ROOT / "build" / "sessionfs"))
    with tempfile.TemporaryDirectory(prefix="sessionfs-demo-") as tmp:
        tmp = Path(tmp)
        ca = make_ca(tmp / "ca")
        aos_pw, bmc_pw = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
        with AosMock(ca, {"admin": aos_pw}) as aos, RedfishMock(ca, {"root": bmc_pw}) as bmc:
            bmc.create_session("operator")  # someone else's session, for sessions/
            (tmp / "aos.pw").write_text(aos_pw)
            (tmp / "aos.pw").chmod(0o600)
            config = tmp / "sessionfs.conf"
            config.write_text(f"""[sessionfs]
state_dir = {tmp / 'state'}
timeout = 10

[aos "demo"]
server = 127.0.0.1
port = {aos.port}
user = admin
password_file = {tmp / 'aos.pw'}
ca_path = {ca.ca}

[idrac "bmc"]
host = 127.0.0.1
port = {bmc.port}
user = root
password_env = DEMO_BMC_PASSWORD
ca_path = {ca.ca}
""")
            mnt = tmp / "mnt"
            mnt.mkdir()
            env = dict(os.environ, DEMO_BMC_PASSWORD=bmc_pw)
            print(f"AOS mock on {aos.url}, Redfish mock on {bmc.url}")
            print(f"$ sessionfs -f -o config={config} {mnt}")
            daemon = subprocess.Popen([binary, "-f", "-o", f"config={config}", str(mnt)],
                                      env=env, stderr=subprocess.PIPE, text=True)
            try:
                wait_mounted(str(mnt), daemon)
                sh("ls -l aos/demo idrac/bmc", mnt)
                sh("cat aos/demo/token | cut -c1-40; echo ...", mnt)
                sh(f'curl -s --cacert {ca.ca} -H "AUTHTOKEN: $(cat aos/demo/token)" {aos.url}/api/user', mnt)
                sh("cat aos/demo/status", mnt)
                sh("cat idrac/bmc/token | cut -c1-8; echo ...", mnt)
                sh("ls idrac/bmc/sessions/", mnt)
                sh("rm idrac/bmc/sessions/1 && ls idrac/bmc/sessions/", mnt)
                sh("rm aos/demo/token && cat aos/demo/status | grep -E 'state|logins'", mnt)
                print(f"\nlogins seen by the AOS mock: {aos.logins}, by the BMC: {bmc.logins}")
            finally:
                daemon.terminate()
                _, log = daemon.communicate(timeout=30)
                print("\n--- daemon log ---\n" + log, end="")
            print(f"after unmount, the daemon's BMC session is gone: live sessions = {len(bmc.live_sessions())}")


if __name__ == "__main__":
    main()
