import pytest
from django.test import Client

from apps.baselines.cycles import caches_clear


@pytest.fixture(autouse=True)
def baseline_caches():
    """Each test starts with nothing kept between passes (ids repeat across tests)."""
    caches_clear()
    yield
    caches_clear()


@pytest.fixture
def as_user(client, users):
    """as_user("vera") -> the test client, logged in as vera."""

    def login(name: str) -> Client:
        client.force_login(users[name])
        return client

    return login
