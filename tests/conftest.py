"""Fixtures shared by the daemon's tests (tests/integration/) and the mocks'
own tests (tests/mocks/): the test CAs, the log secret check, the AOS mock.
"""

import pytest

from tests.integration.harness import SecretGuard, new_password
from tests.mocks.aos import AosMock
from tests.mocks.common import make_ca


@pytest.fixture(scope="session")
def ca(tmp_path_factory):
    """The test CA the mocks' server certificates are signed by."""
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def other_ca(tmp_path_factory):
    """An unrelated CA: trusting it must not validate the mocks."""
    return make_ca(tmp_path_factory.mktemp("other-ca"), name="unrelated CA")


@pytest.fixture
def log_secrets():
    """SecretGuard for this test; checked once the daemons have stopped.

    Add every secret a test makes up itself (e.g. a wrong password) with
    log_secrets.add(); the mocks' passwords and tokens are added for you.
    """
    guard = SecretGuard()
    yield guard
    guard.check()


@pytest.fixture
def aos_mock(ca, log_secrets):
    """An HTTPS AOS mock; user admin with a fresh random password."""
    mock = AosMock(ca, {"admin": new_password()})
    log_secrets.add_source(mock.secrets)
    with mock:
        yield mock
