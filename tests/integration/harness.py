"""Run the real sessionfs daemon on a temporary mount point, as a user would.

No pytest here: conftest.py turns these into fixtures.
"""

import errno
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("SESSIONFS_BIN", REPO / "build" / "sessionfs"))


def sanitized():
    """Whether the daemon under test is an ASan or TSan build (tests/run's
    build-fuzz and build-tsan), which runs several times slower."""
    data = Path(BINARY).read_bytes()
    return b"__tsan_init" in data or b"__asan_init" in data
MOUNT_WAIT = 10  # seconds the daemon gets to mount
STOP_WAIT = 10   # seconds it gets to exit after SIGTERM

# Inherited variables that would change what the daemon under test does:
# targets or AWS profiles of the developer's own, proxies, extra trusted CAs.
_STRIPPED_ENV_PREFIXES = ("AOS_", "IDRAC_", "AWS_")
_STRIPPED_ENV = {"http_proxy", "https_proxy", "all_proxy", "no_proxy",
                 "ssl_cert_file", "ssl_cert_dir", "curl_ca_bundle"}


def missing_prerequisite():
    """Why the daemon cannot run here, or None."""
    if not os.access(BINARY, os.X_OK):
        return f"sessionfs binary not built: {BINARY} (run meson/ninja, or set SESSIONFS_BIN)"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not usable"
    if shutil.which("fusermount3") is None:
        return "fusermount3 not installed"
    return None


# --- config -----------------------------------------------------------------

def ini_section(header, values):
    """An INI section; keys whose value is None are left out."""
    lines = [f"[{header}]"]
    for key, value in values.items():
        if value is not None:
            if isinstance(value, bool):
                value = "true" if value else "false"
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


def aos_section(mock, name="lab", **overrides):
    """The [aos "name"] section for an AosMock, with the credentials of its
    admin user. Override any key; None removes it, e.g. password=None for a
    target without credentials."""
    values = {"server": mock.host, "port": mock.port, "scheme": mock.scheme,
              "user": "admin", "password": mock.password("admin"),
              "ca_path": mock.ca.ca if mock.ca else None,
              "validate_certs": True}
    values.update(overrides)
    return ini_section(f'aos "{name}"', values)


def idrac_section(mock, name="bmc", **overrides):
    """The [idrac "name"] section for a RedfishMock, with the credentials of
    its root user. Override any key; None removes it."""
    values = {"host": mock.host, "port": mock.port, "scheme": mock.scheme,
              "user": "root", "password": mock.password("root"),
              "ca_path": mock.ca.ca if mock.ca else None,
              "validate_certs": True if mock.ca else None}
    values.update(overrides)
    return ini_section(f'idrac "{name}"', values)


STS_REGION = "us-east-1"


def sts_section(mock, name="p", key=None, **overrides):
    """The [sts "name"] section for an StsMock; key = (id, secret) or None
    for a target without keys. Override any key; None removes it."""
    values = {"aws_access_key_id": key[0] if key else None,
              "aws_secret_access_key": key[1] if key else None,
              "region": STS_REGION, "endpoint_url": mock.url, "ca_path": mock.ca.ca}
    values.update(overrides)
    return ini_section(f'sts "{name}"', values)


def access_section(rules):
    """An [access] section from (path pattern, "uid:N gid:N mode:0NNN")
    pairs, in order."""
    return "[access]\n" + "".join(f"{path} = {value}\n" for path, value in rules)


def new_password():
    """A password distinctive enough to search a log for."""
    return "pw-" + secrets.token_urlsafe(18)


# --- mounts -----------------------------------------------------------------

def is_mounted(path):
    """Whether path is a mount point, even of a dead FUSE daemon (where
    os.path.ismount() says False because stat() fails with ENOTCONN)."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mount_point = line.split()[4]
            # mountinfo escapes space, tab, newline and backslash as \ooo.
            mount_point = mount_point.encode().decode("unicode_escape")
            if mount_point == target:
                return True
    return False


FUSECTL = Path("/sys/fs/fuse/connections")


def mount_fusectl():
    """Mount the fusectl file system where it belongs, if it is not there
    yet (some machines boot without it): the way to abort a hung mount."""
    if not is_mounted(FUSECTL):
        subprocess.run(["mount", "-t", "fusectl", "fusectl", str(FUSECTL)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def fuse_connection(path):
    """The /sys/fs/fuse/connections/N directory of the FUSE mount at path,
    or None. Found through mountinfo (N is the mount's device minor), so it
    works when the daemon is hung or dead and stat() of the mount would
    block or fail."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4].encode().decode("unicode_escape") == target:
                major, minor = (int(x) for x in fields[2].split(":"))
                # Named after the kernel's own dev_t encoding.
                mount_fusectl()
                conn = FUSECTL / str((major << 20) | minor)
                return conn if conn.is_dir() else None
    return None


def abort_connection(path):
    """Abort the FUSE connection of the mount at path, as an admin frees a
    hung mount: every request waiting on the daemon fails with ENOTCONN.
    Returns whether there was one to abort."""
    conn = fuse_connection(path)
    if conn is None:
        return False
    try:
        (conn / "abort").write_text("1")
    except OSError:
        return False
    return True


def threads_in_d_state(pid):
    """{tid: wchan} of the process's threads in uninterruptible sleep (D)."""
    stuck = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            stat = (task / "stat").read_text()
            state = stat.rsplit(")", 1)[1].split()[0]
            if state == "D":
                stuck[task.name] = (task / "wchan").read_text().strip() or "?"
        except (OSError, IndexError):
            continue  # the thread (or process) is gone
    return stuck


def force_unmount(path):
    for cmd in (["fusermount3", "-u", "-z", str(path)], ["umount", "-l", str(path)]):
        if not is_mounted(path):
            return
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- the daemon -------------------------------------------------------------

class DaemonDied(Exception):
    pass


class Daemon:
    """One sessionfs process with its own config, state dir, mount and log.

    The log file collects stdout and stderr of every run (restarts append),
    so the secret check after the test sees all of it.
    """

    def __init__(self, workdir, config, debug=False, env=None, binary=BINARY):
        self.workdir = Path(workdir)
        self.mnt = self.workdir / "mnt"
        self.state_dir = self.workdir / "state"
        self.config_path = self.workdir / "sessionfs.conf"
        self.log_path = self.workdir / "sessionfs.log"
        self.debug = debug
        self.binary = binary
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(_STRIPPED_ENV_PREFIXES)
                    and k.lower() not in _STRIPPED_ENV}
        # No ~/.aws or other per-user files of whoever runs the tests.
        self.env["HOME"] = str(self.workdir)
        self.env.update(env or {})
        self.proc = None
        self.clean_stop = None  # did the last stop() find the mount gone?
        for d in (self.mnt, self.state_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)
        self.config_path.write_text(config)

    def __repr__(self):
        return f"<Daemon {self.mnt} pid={self.proc.pid if self.proc else None}>"

    # -- lifecycle

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        argv = [str(self.binary), "-f"] + (["-d"] if self.debug else []) + \
               ["-o", f"config={self.config_path}", str(self.mnt)]
        with open(self.log_path, "ab") as log:
            log.write(f"=== {' '.join(argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=self.env,
                                         start_new_session=True)
        deadline = time.monotonic() + MOUNT_WAIT
        while not is_mounted(self.mnt):
            if self.proc.poll() is not None:
                raise DaemonDied(f"sessionfs exited with {self.proc.returncode} "
                                 f"before mounting; log:\n{self.log()}")
            if time.monotonic() > deadline:
                self.kill9()
                raise DaemonDied(f"sessionfs did not mount {self.mnt} within "
                                 f"{MOUNT_WAIT} s; log:\n{self.log()}")
            time.sleep(0.02)
        return self

    def stop(self):
        """SIGTERM, wait, and make sure the mount is gone. Returns the exit
        status; clean_stop tells whether the daemon had unmounted by itself."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_WAIT)
            except subprocess.TimeoutExpired:
                self._kill_and_reap()
        self.clean_stop = not is_mounted(self.mnt)
        force_unmount(self.mnt)
        return self.proc.returncode

    def _kill_and_reap(self, wait=5):
        """SIGKILL and wait; a process that stays a zombie (a thread stuck
        in the kernel on its own mount) is freed by aborting the connection,
        so no test can hang here."""
        self.proc.kill()
        try:
            self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            abort_connection(self.mnt)
            self.proc.wait(wait)

    def kill9(self):
        """Die without cleanup, as on a crash; the dead mount is removed."""
        if self.proc is not None and self.proc.poll() is None:
            self._kill_and_reap()
        force_unmount(self.mnt)

    def restart(self):
        """Stop (if running) and start again with the same config and state."""
        if self.running:
            self.stop()
        return self.start()

    def log(self):
        return self.log_path.read_text(errors="replace")

    # -- acting as a user

    def path(self, rel=""):
        return str(self.mnt / rel)

    def read(self, rel):
        """Open, read to EOF, close, as cat does. Raises OSError."""
        fd = os.open(self.path(rel), os.O_RDONLY)
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(fd)
        return b"".join(chunks).decode()

    def read_err(self, rel):
        """The errno of a failed open or read of rel, or 0 if it worked."""
        try:
            self.read(rel)
        except OSError as e:
            return e.errno
        return 0

    def write(self, rel, data):
        """Write data as `echo > file` does (O_TRUNC, then close). Errors
        from write() or close() (where a daemon reports a rejected write
        it checks at flush) raise OSError."""
        if isinstance(data, str):
            data = data.encode()
        fd = os.open(self.path(rel), os.O_WRONLY | os.O_TRUNC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            os.close(fd)
            raise
        os.close(fd)

    def write_err(self, rel, data):
        """The errno of a failed write of rel, or 0 if it worked."""
        try:
            self.write(rel, data)
        except OSError as e:
            return e.errno
        return 0

    def unlink(self, rel):
        os.unlink(self.path(rel))

    def listdir(self, rel=""):
        return sorted(os.listdir(self.path(rel)))


def strerror(err):
    """errno -> 'EKEYREJECTED (Key was rejected by service)', for messages."""
    return f"{errno.errorcode.get(err, err)} ({os.strerror(err)})" if err else "success"


def timed_err(d, rel):
    """The errno of reading rel (0 if it worked), and how long that took."""
    start = time.monotonic()
    err = d.read_err(rel)
    return err, time.monotonic() - start


class Hung(AssertionError):
    pass


def within(seconds, fn, *args):
    """Run fn(*args) in a thread; return (value, None, elapsed) or (None,
    errno, elapsed) for an OSError. A call still running after `seconds`
    fails the test (the thread is left to the teardown's abort)."""
    box = {}

    def run():
        start = time.monotonic()
        try:
            box["value"] = fn(*args)
        except OSError as e:
            box["errno"] = e.errno
        except BaseException as e:  # e.g. an assertion of fn: raised below
            box["exception"] = e
        box["elapsed"] = time.monotonic() - start

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise Hung(f"{getattr(fn, '__name__', fn)}{args} did not return within {seconds} s")
    if "exception" in box:
        raise box["exception"]
    return box.get("value"), box.get("errno"), box["elapsed"]


def assert_errno(err, expected, what=""):
    """err must be expected, or one of expected (a tuple)."""
    if isinstance(expected, int):
        expected = (expected,)
    assert err in expected, (f"{what + ': ' if what else ''}got {strerror(err)}, expected "
                             + " or ".join(strerror(e) for e in expected))


# --- secrets in logs --------------------------------------------------------

# What AddressSanitizer, LeakSanitizer, UBSan and ThreadSanitizer print when
# they find something (TSan: "WARNING: ThreadSanitizer: data race ...", and
# "FATAL: ThreadSanitizer: ..." when it cannot run at all).
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "ThreadSanitizer:")


class SecretGuard:
    """Checks that no secret shows up in any watched log.

    Secrets come from add() and from sources (callables returning strings,
    such as a mock's secrets()) asked only at check time, so tokens issued
    late in a test are covered too.
    """

    MIN_LEN = 8  # shorter "secrets" would match ordinary log text

    def __init__(self):
        self._secrets = set()
        self._sources = []
        self._logs = []

    def add(self, secret):
        if len(secret) < self.MIN_LEN:
            raise ValueError(f"test secret too short to search logs for: {len(secret)} chars")
        self._secrets.add(secret)
        return secret

    def add_source(self, source):
        self._sources.append(source)

    def watch(self, log_path):
        self._logs.append(Path(log_path))

    def _all(self):
        found = set(self._secrets)
        for source in self._sources:
            found.update(source())
        # A JWT's signature alone is enough to be worth flagging, e.g. in a
        # log line that cut the token short.
        found.update(s.rsplit(".", 1)[1] for s in list(found) if s.count(".") == 2)
        return sorted(s for s in found if len(s) >= self.MIN_LEN)

    def check(self):
        """Raise AssertionError naming each log line that holds a secret, or
        a sanitizer report (a daemon built with ASan/UBSan/TSan writes them there)."""
        all_secrets = self._all()
        problems, reports = [], []
        for log_path in self._logs:
            if not log_path.exists():
                continue
            for n, line in enumerate(log_path.read_text(errors="replace").splitlines(), 1):
                if any(m in line for m in SANITIZER_MARKS):
                    reports.append(f"{log_path}:{n}: {line}")
                leaked = [s for s in all_secrets if s in line]
                for s in leaked:
                    line = line.replace(s, "<SECRET>")
                if leaked:
                    problems.append(f"{log_path}:{n}: {line}")
        if reports:
            raise AssertionError("sanitizer report(s) in the daemon's log:\n" + "\n".join(reports))
        if problems:
            raise AssertionError("secret(s) in the daemon's log:\n" + "\n".join(problems))
