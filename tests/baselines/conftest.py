import pytest

from apps.baselines.cycles import caches_clear


@pytest.fixture(autouse=True)
def baseline_caches():
    """Each test starts with nothing kept between passes (ids repeat across tests)."""
    caches_clear()
    yield
    caches_clear()
