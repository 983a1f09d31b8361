"""Backfills run for real (`drain`): order across dates proven by attempt times."""

import datetime
import threading
import time
from collections import defaultdict

import pytest
from django.db import connection

from apps.backfills import services
from apps.backfills.models import Backfill
from apps.core import clock
from apps.instances import worker
from apps.instances.models import Attempt, Instance
from tests.factories import node_create

pytestmark = pytest.mark.django_db(transaction=True)


def first_day():
    # Dates in the past, so every instance is due at once.
    return clock.now().date() - datetime.timedelta(days=40)


def date_intervals(backfill):
    """biz date -> (first attempt start, last attempt finish)."""
    spans = defaultdict(list)
    for biz_date, started, finished in Attempt.objects.filter(
        instance__backfill=backfill
    ).values_list("instance__biz_date", "started_at", "finished_at"):
        spans[biz_date].append((started, finished))
    return {
        day: (min(s for s, _ in pairs), max(f for _, f in pairs)) for day, pairs in spans.items()
    }


def create(users, nodes, days, **kwargs):
    start = first_day()
    return services.backfill_create(
        by=users["olga"],
        source="api",
        nodes=[n.pk for n in nodes],
        start=start,
        end=start + datetime.timedelta(days=days - 1),
        **kwargs,
    )


@pytest.mark.parametrize("descending", [False, True])
def test_serial_runs_date_after_date(project, users, descending):
    a = node_create(project, "a", owner=users["alice"], type="shell", content="sleep 0.05")
    node_create(project, "b", owner=users["alice"], type="shell", content="true", upstream=[a])
    c = node_create(project, "c", owner=users["alice"], type="shell", content="sleep 0.05")
    backfill = create(users, [a, c], 3, downstream="all", descending=descending)

    worker.drain(timeout=30)

    spans = date_intervals(backfill)
    run_order = sorted(spans, reverse=descending)
    assert len(run_order) == 3
    for earlier, later in zip(run_order, run_order[1:], strict=False):
        assert spans[earlier][1] <= spans[later][0], f"{later} started before {earlier} finished"
    backfill.refresh_from_db()
    assert backfill.state == "succeeded" and backfill.window_start == 3
    assert Instance.objects.filter(backfill=backfill, state="succeeded").count() == 9


def max_dates_at_once(backfill) -> int:
    events = []
    for biz_date, started, finished in Attempt.objects.filter(
        instance__backfill=backfill
    ).values_list("instance__biz_date", "started_at", "finished_at"):
        events += [(started, 1, biz_date), (finished, -1, biz_date)]
    running: dict = defaultdict(int)
    peak = 0
    for _, delta, biz_date in sorted(events, key=lambda e: (e[0], e[1])):
        running[biz_date] += delta
        peak = max(peak, sum(1 for n in running.values() if n > 0))
    return peak


def test_parallel_never_runs_more_dates_than_asked(project, users):
    nodes = [
        node_create(project, name, owner=users["alice"], type="shell", content="sleep 0.2")
        for name in ("x", "y")
    ]
    backfill = create(users, nodes, 5, order="parallel", parallelism=2)

    worker.drain(timeout=30, max_workers=6)

    assert max_dates_at_once(backfill) == 2
    backfill.refresh_from_db()
    assert backfill.state == "succeeded"


def test_stopping_a_backfill_kills_its_running_instances(project, users):
    node = node_create(project, "long", owner=users["alice"], type="shell", content="sleep 60")
    backfill = create(users, [node], 3)
    done = threading.Event()

    def run():
        try:
            worker.drain(timeout=30)
        finally:
            connection.close()
            done.set()

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 15
    while not Attempt.objects.filter(instance__backfill=backfill, pid__isnull=False).exists():
        assert time.monotonic() < deadline, "the attempt never started"
        time.sleep(0.1)

    services.backfill_stop(backfill=backfill, by=users["olga"], source="api")

    assert done.wait(20), "drain did not end after the stop"
    thread.join()
    assert Backfill.objects.get(pk=backfill.pk).state == "stopped"
    states = Instance.objects.filter(backfill=backfill).values_list("state", flat=True)
    assert sorted(states) == ["stopped"] * 3
    assert list(
        Attempt.objects.filter(instance__backfill=backfill).values_list("state", flat=True)
    ) == ["stopped"]


def test_failed_run_reruns_its_failed_instances(project, users, tmp_path):
    marker = tmp_path / "failed-once"
    flaky = node_create(
        project,
        "flaky",
        owner=users["alice"],
        type="shell",
        content=f"test -f {marker} || {{ touch {marker}; exit 1; }}",
    )
    after = node_create(project, "after", owner=users["alice"], upstream=[flaky])
    backfill = create(users, [flaky], 2, downstream="all")

    worker.drain(timeout=20)
    backfill.refresh_from_db()
    assert backfill.state == "failed"
    # Serial: the first date's failure holds the second date back.
    assert Instance.objects.filter(backfill=backfill, backfill_seq=1, state="pending").count() == 2

    services.backfill_rerun_failed(backfill=backfill, by=users["olga"], source="api")
    worker.drain(timeout=20)

    backfill.refresh_from_db()
    assert backfill.state == "succeeded"
    assert Instance.objects.filter(backfill=backfill, node=after, state="succeeded").count() == 2
