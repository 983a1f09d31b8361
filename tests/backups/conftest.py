import pytest

from tests.resources.conftest import storage_dir  # noqa: F401 (autouse: a storage per test)


@pytest.fixture
def backups_dir(storage_dir):  # noqa: F811
    """Where the archives land in this test's storage."""
    return storage_dir / "backups"


def stored_archives(backups_dir) -> list:
    return sorted(p.name for p in backups_dir.glob("*")) if backups_dir.exists() else []
