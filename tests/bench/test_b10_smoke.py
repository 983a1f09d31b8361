"""B10 (the resource dashboard over 90 days of attempts) runs at scale "tiny" against
the test database, so the benchmark code cannot rot."""

import pytest

from bench import b10_resources


@pytest.mark.django_db(transaction=True)
def test_b10_resource_dashboard_against_its_raw_sql():
    (row,) = b10_resources.run("tiny")
    assert row["id"] == "B10" and row["unit"] == "ms"
    assert row["value"] > 0 and row["baseline"] > 0 and isinstance(row["met"], bool)
    assert row["note"].startswith("2,000 attempts, 20 nodes")
    # A second run reuses the data it finds.
    (again,) = b10_resources.run("tiny")
    assert again["note"] == row["note"]
