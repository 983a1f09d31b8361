"""A node's usual duration: the median of its last 10 successful runs (the newest
instances first), read in one query for many nodes, and kept between passes."""

import datetime

import pytest

from apps.instances.models import Attempt
from apps.monitoring.durations import MedianCache, node_medians, recent_durations
from tests.baselines.builders import at, history
from tests.factories import instance_create, node_create


@pytest.mark.django_db
def test_the_median_of_the_last_ten_successful_runs(project, users):
    owner = users["alice"]
    busy = node_create(project, "busy", owner=owner)
    # Newest first: 12 runs; the two oldest (1000 minutes) are beyond the last ten.
    history(busy, [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 1000, 1000])
    one = node_create(project, "one", owner=owner)
    history(one, [7])
    never = node_create(project, "never", owner=owner)
    # A failed attempt is not a successful run.
    failed = instance_create(never, at(2), state="failed", started_at=at(2), finished_at=at(3))
    Attempt.objects.create(
        instance=failed, number=1, state="failed", started_at=at(2), finished_at=at(3)
    )
    durations = recent_durations([busy.pk, one.pk, never.pk])
    assert sorted(durations[busy.pk]) == [m * 60.0 for m in range(10, 101, 10)]
    assert set(durations) == {busy.pk, one.pk}
    assert node_medians([busy.pk, one.pk, never.pk]) == {busy.pk: 55 * 60.0, one.pk: 420.0}
    # slower_than_usual asks for at least 3 runs.
    assert node_medians([busy.pk, one.pk], at_least=3) == {busy.pk: 55 * 60.0}


@pytest.mark.django_db
def test_the_cache_reads_again_when_old_or_forgotten(project, users, django_assert_num_queries):
    node = node_create(project, "n", owner=users["alice"])
    history(node, [10])
    cache = MedianCache(datetime.timedelta(minutes=15))
    t0 = at(9)
    assert cache.get([node.pk], now=t0) == {node.pk: 600.0}
    history(node, [30, 30], hh=4)  # two more runs: the median moves to 30 minutes
    with django_assert_num_queries(0):
        assert cache.get([node.pk], now=t0 + datetime.timedelta(minutes=10)) == {node.pk: 600.0}
    assert cache.get([node.pk], now=t0 + datetime.timedelta(minutes=16)) == {node.pk: 1800.0}
    cache.forget([node.pk])
    assert len(cache) == 0
    assert cache.get([node.pk], now=t0) == {node.pk: 1800.0}
