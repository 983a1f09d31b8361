"""B11 (backup and dry-run restore against pg_dump + tar) runs at scale "tiny" against
the test database, so the benchmark code cannot rot."""

import pytest

from bench import b11_backups
from tests.resources.conftest import storage_dir  # noqa: F401 (autouse: a storage per test)


@pytest.mark.django_db(transaction=True)
def test_b11_backup_and_dry_run_restore_against_dump_and_tar():
    rows = b11_backups.run("tiny")
    assert [row["figure"] for row in rows] == [
        "backup + dry-run restore",
        "backup alone",
        "peak memory of backup + restore",
    ]
    for row in rows:
        assert row["id"] == "B11" and row["value"] > 0 and isinstance(row["met"], bool)
    assert rows[0]["baseline"] > 0 and rows[0]["ratio"] is not None
    assert rows[0]["note"].startswith("20 nodes, 5 files of 4 KiB")
    # A second run reuses the data it finds; cleanup takes the backups away.
    b11_backups.run("tiny")
    b11_backups.cleanup()
    from apps.backups.models import Backup

    assert not Backup.objects.exists()
