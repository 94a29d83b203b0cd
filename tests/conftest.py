import pytest

from tests.factories import make_session


@pytest.fixture
def session_factory(transactional_db):
    return make_session


@pytest.fixture
def live_session(session_factory):
    return session_factory()
