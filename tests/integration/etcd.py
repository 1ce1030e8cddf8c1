"""A real etcd (Debian's etcd-server) on 127.0.0.1 ports in a temp dir, for
fleet mode tests: one member or a 3-member cluster, with bounded waits and
cleanup. No pytest here: test_fleet.py makes fixtures of it."""

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"
START_WAIT = 20  # seconds a member (or the cluster) gets to answer


def missing():
    if not os.access(ETCD, os.X_OK) or not os.access(ETCDCTL, os.X_OK):
        return "etcd-server / etcd-client not installed (contrib/install-deps)"
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


class Cluster:
    """n members; endpoints is the comma list for [fleet] endpoints."""

    def __init__(self, workdir, n=1, tls=None):
        """tls: (ca, server cert, server key, client cert, client key) for
        https with client certificates required, or None for http."""
        self.workdir = workdir
        self.tls = tls
        self.names = [f"m{i}" for i in range(n)]
        self.client = {m: free_port() for m in self.names}
        self.peer = {m: free_port() for m in self.names}
        self.procs = {}
        self.auth_token = None

    @property
    def endpoints(self):
        return ",".join(self.url(m) for m in self.names)

    def url(self, m):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.client[m]}"

    def start_member(self, m):
        initial = ",".join(f"{x}=http://127.0.0.1:{self.peer[x]}" for x in self.names)
        data = self.workdir / f"{m}.etcd"
        argv = [ETCD, "--name", m, "--data-dir", str(data),
                "--listen-client-urls", self.url(m), "--advertise-client-urls", self.url(m),
                "--listen-peer-urls", f"http://127.0.0.1:{self.peer[m]}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer[m]}",
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--heartbeat-interval", "100", "--election-timeout", "1000",
                "--log-level", "error"]
        if self.tls:
            ca, cert, key, _, _ = self.tls
            argv += ["--cert-file", str(cert), "--key-file", str(key), "--trusted-ca-file", str(ca),
                     "--client-cert-auth"]
        log = open(self.workdir / f"{m}.log", "ab")
        self.procs[m] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True, env={"PATH": os.environ.get("PATH", ""),
                                                                      "ETCD_UNSUPPORTED_ARCH": "amd64"})
        log.close()

    def start(self):
        for m in self.names:
            self.start_member(m)
        self.wait_healthy()
        return self

    def wait_healthy(self, members=None, timeout=START_WAIT):
        deadline = time.monotonic() + timeout
        for m in members or self.names:
            while True:
                try:
                    self.call("kv/range", {"key": b64("health")}, member=m, timeout=2)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"etcd member {m} not healthy within {timeout} s")
                    time.sleep(0.1)

    def kill(self, m):
        p = self.procs.pop(m, None)
        if p and p.poll() is None:
            p.kill()
            p.wait(10)

    def pause(self, m):
        """SIGSTOP: a frozen or partitioned member as the others see it (its
        kernel still accepts connections and acknowledges data)."""
        self.procs[m].send_signal(signal.SIGSTOP)

    def resume(self, m):
        self.procs[m].send_signal(signal.SIGCONT)

    def stop(self):
        for m in list(self.procs):
            p = self.procs[m]
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)  # a paused member cannot end
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
            del self.procs[m]

    def leader(self):
        for m in self.names:
            if m not in self.procs:
                continue
            st = self.call("maintenance/status", {}, member=m)
            if st.get("leader") == st["header"].get("member_id"):
                return m
        return None

    # -- the gateway, as a test's own client

    def call(self, path, body, member=None, timeout=5):
        members = [member] if member else [m for m in self.names if m in self.procs]
        last = None
        for m in members:
            req = urllib.request.Request(f"{self.url(m)}/v3/{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            if self.auth_token:
                req.add_header("Authorization", self.auth_token)
            ctx = None
            if self.tls:
                ctx = ssl.create_default_context(cafile=str(self.tls[0]))
                ctx.load_cert_chain(str(self.tls[3]), str(self.tls[4]))
            try:
                with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
                    return json.loads(r.read())
            except (urllib.error.URLError, OSError) as e:
                last = e
        raise last

    def get_prefix(self, prefix="sessionfs/"):
        """{key: value bytes} under prefix."""
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        r = self.call("kv/range", {"key": b64(prefix), "range_end": b64(end)})
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv.get("value", ""))
                for kv in r.get("kvs", [])}

    def etcdctl(self, *args, user=None):
        if self.tls:
            args = ("--cacert", str(self.tls[0]), "--cert", str(self.tls[3]), "--key", str(self.tls[4])) + args
        argv = [ETCDCTL, "--endpoints", self.endpoints] + (["--user", user] if user else []) + list(args)
        return subprocess.run(argv, capture_output=True, timeout=20, env={"ETCDCTL_API": "3",
                                                                         "PATH": os.environ.get("PATH", "")})


def client_cert(ca_dir, name="client", server=False):
    """A client certificate without a CN (SANs only), signed by the test CA
    in ca_dir (tests.mocks.common.make_ca): etcd's gateway would take a CN
    as the etcd user. server=True: etcd's own certificate, for 127.0.0.1 and
    for client auth too (its gateway dials etcd itself with it). Returns
    (cert, key)."""
    d = ca_dir
    usage = "serverAuth,clientAuth\nsubjectAltName = IP:127.0.0.1" if server else \
        "clientAuth\nsubjectAltName = DNS:sessionfs-node"
    (d / f"{name}.cnf").write_text("[req]\ndistinguished_name = dn\n[dn]\n[client_ext]\n"
                                   "basicConstraints = critical,CA:FALSE\n"
                                   "keyUsage = critical,digitalSignature,keyEncipherment\n"
                                   f"extendedKeyUsage = {usage}\n")
    run = lambda *a: subprocess.run(("openssl",) + a, cwd=d, check=True, capture_output=True)
    run("req", "-config", f"{name}.cnf", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", "/O=sessionfs tests")
    run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "0x" + os.urandom(8).hex(),
        "-days", "7", "-extfile", f"{name}.cnf", "-extensions", "client_ext", "-out", f"{name}.pem")
    (d / f"{name}.key").chmod(0o600)
    return d / f"{name}.pem", d / f"{name}.key"
