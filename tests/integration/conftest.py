"""Fixtures: mock servers and the real daemon on a real mount (the test CAs,
log_secrets and aos_mock are in tests/conftest.py, shared with the mocks'
own tests in tests/mocks/).

Every test that starts a daemon gets its log checked for secrets afterwards
(log_secrets); a leak fails the test at teardown.
"""

import pytest


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "concurrency: many threads at once; tests/run runs these again "
        "against the ThreadSanitizer build (build-tsan)")
    config.addinivalue_line("markers", "slow: a soak of 20 s or more; tests/run runs these in its "
                            "sanitizer pass only")

from tests.integration.harness import Daemon, aos_section, ini_section, missing_prerequisite, new_password


@pytest.fixture
def make_daemon(tmp_path, log_secrets):
    """Factory: make_daemon(*sections, timeout=5, refresh_margin=300,
    debug=False, env=None, start=True, settings=None) -> a started Daemon
    (settings: more [sessionfs] keys).

    sections: INI section texts (see harness.aos_section); [sessionfs] is
    written for you. Skips the test if the daemon cannot run here. Every
    daemon is stopped and unmounted at teardown, before the secret check.
    """
    reason = missing_prerequisite()
    if reason:
        pytest.skip(reason)
    daemons = []

    def factory(*sections, timeout=5, refresh_margin=300, debug=False, env=None,
                start=True, settings=None):
        workdir = tmp_path / f"sessionfs{len(daemons)}"
        workdir.mkdir()
        config = ini_section("sessionfs", {"state_dir": workdir / "state",
                                           "timeout": timeout,
                                           "refresh_margin": refresh_margin, **(settings or {})})
        config += "".join("\n" + s for s in sections)
        d = Daemon(workdir, config, debug=debug, env=env)
        daemons.append(d)
        log_secrets.watch(d.log_path)
        return d.start() if start else d

    yield factory
    for d in daemons:
        d.stop()


@pytest.fixture
def aos_daemon(aos_mock, make_daemon):
    """A daemon with one target, "lab", on aos_mock with valid credentials."""
    return make_daemon(aos_section(aos_mock, "lab"))


# --- Redfish ----------------------------------------------------------------

from tests.mocks.redfish import RedfishMock  # noqa: E402


@pytest.fixture
def redfish_mock(ca, log_secrets):
    """An HTTPS Redfish mock (iDRAC-like defaults); user root with a fresh
    random password. Its options (session_timeout, session_limit, location,
    layout, auth_error, ...) are attributes a test may change before use.
    Its passwords and tokens are added to the log secret check."""
    mock = RedfishMock(ca, {"root": new_password()})
    log_secrets.add_source(mock.secrets)
    with mock:
        yield mock


# --- STS --------------------------------------------------------------------

from tests.mocks.sts import StsMock  # noqa: E402


@pytest.fixture
def sts_mock(ca, log_secrets):
    """An HTTPS STS mock with no keys yet: add them with new_key() / add_key().
    Its options (lifetime, expiration_ms, region, inject(), ...) may be
    changed at any time. Every key secret, temporary secret and session
    token it knows or issues is added to the log secret check."""
    mock = StsMock(ca)
    log_secrets.add_source(mock.secrets)
    with mock:
        yield mock


# --- mount options and extra [sessionfs] settings ----------------------------

import os  # noqa: E402
import shlex  # noqa: E402
import tempfile  # noqa: E402

from tests.integration.harness import force_unmount  # noqa: E402


@pytest.fixture
def make_mount(make_daemon):
    """Factory like make_daemon, plus:

    options:  extra mount options, e.g. ("allow_other",), passed as -o
    settings: extra [sessionfs] keys, e.g. {"check_interval": 1}
    public:   mount on a directory every user can reach (the test tmp dirs
              are private to root), as tests acting as another uid need

    Returns a Daemon (started unless start=False); make_daemon's teardown
    and secret check apply as usual.
    """
    mountpoints = []

    def factory(*sections, options=(), settings=None, public=False, start=True, **kwargs):
        if settings:
            sections = (ini_section("sessionfs", settings),) + sections
        d = make_daemon(*sections, start=False, **kwargs)
        if options:
            # Daemon builds argv itself: a wrapper adds the options.
            wrapper = d.workdir / "sessionfs-with-options"
            wrapper.write_text("#!/bin/sh\nexec %s -o %s \"$@\"\n"
                               % (shlex.quote(str(d.binary)), shlex.quote(",".join(options))))
            wrapper.chmod(0o755)
            d.binary = wrapper
        if public:
            d.mnt = type(d.mnt)(tempfile.mkdtemp(prefix="sessionfs-mnt-", dir="/tmp"))
            d.mnt.chmod(0o755)
            mountpoints.append(d)
        return d.start() if start else d

    yield factory
    for d in mountpoints:
        d.stop()
        force_unmount(d.mnt)
        try:
            os.rmdir(d.mnt)
        except OSError:
            pass
