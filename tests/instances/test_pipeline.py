"""Real pipelines run end to end in-process (`drain`): real processes, real SQL."""

import datetime
import sqlite3
import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from apps.instances import worker
from apps.instances.models import Attempt, Instance
from apps.instances.selectors import attempt_log
from apps.projects.models import Datasource
from tests.factories import instance_create, node_create

pytestmark = pytest.mark.django_db(transaction=True)

# Scheduled in the past, so they are due now; biz date is the day before.
SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)
BIZDATE = "20261119"  # Asia/Shanghai: 2026-11-20 10:00 local, biz date 2026-11-19


def log_of(instance, number=None):
    attempts = Attempt.objects.filter(instance=instance).order_by("number")
    attempt = attempts.get(number=number) if number else attempts.last()
    return attempt_log(attempt=attempt)[0]


def test_diamond_of_shell_python_and_sql_runs_in_dependency_order(project, users, tmp_path):
    owner = users["alice"]
    warehouse = tmp_path / "warehouse.sqlite3"
    Datasource.objects.create(project=project, name="wh", kind="sqlite", path=str(warehouse))
    out = tmp_path / "out"
    out.mkdir()
    start = node_create(
        project,
        "start",
        owner=owner,
        type="shell",
        content=f"echo start ${{bizdate}} > {out}/start.txt\necho started",
    )
    left = node_create(
        project,
        "left",
        owner=owner,
        type="python",
        upstream=[start],
        content=(
            "import pathlib\n"
            f"p = pathlib.Path({str(out)!r})\n"
            "assert (p / 'start.txt').read_text().strip() == 'start ${bizdate}'\n"
            "(p / 'left.txt').write_text('${bizdate:%Y-%m-%d}')\n"
            "print('left done')\n"
        ),
    )
    right = node_create(
        project,
        "right",
        owner=owner,
        type="sql",
        upstream=[start],
        datasource="wh",
        content=(
            "CREATE TABLE IF NOT EXISTS facts (biz_date TEXT, n INTEGER);\n"
            "INSERT INTO facts VALUES ('${bizdate}', 42);\n"
            "SELECT count(*) FROM facts;"
        ),
    )
    end = node_create(
        project,
        "end",
        owner=owner,
        type="shell",
        upstream=[left, right],
        content=f'test "$(cat {out}/left.txt)" = 2026-11-19\necho end ${{bizdate}} ok',
    )
    i_start = instance_create(start, SCHEDULED)
    i_left = instance_create(left, SCHEDULED, upstream=[i_start])
    i_right = instance_create(right, SCHEDULED, upstream=[i_start])
    i_end = instance_create(end, SCHEDULED, upstream=[i_left, i_right])

    result = worker.drain(timeout=30)

    instances = {i.node.name: i for i in Instance.objects.select_related("node")}
    assert {name: i.state for name, i in instances.items()} == {
        "start": "succeeded",
        "left": "succeeded",
        "right": "succeeded",
        "end": "succeeded",
    }
    assert result.executed == 4
    # Dependency order, proven by the attempts' own times.
    assert instances["left"].started_at >= instances["start"].finished_at
    assert instances["right"].started_at >= instances["start"].finished_at
    assert instances["end"].started_at >= max(
        instances["left"].finished_at, instances["right"].finished_at
    )
    assert f"end {BIZDATE} ok" in log_of(i_end)
    assert "left done" in log_of(i_left)
    rows = sqlite3.connect(warehouse).execute("SELECT biz_date, n FROM facts").fetchall()
    assert rows == [(BIZDATE, 42)]
    attempt = Attempt.objects.get(instance=i_end)
    assert attempt.exit_code == 0 and attempt.cpu_seconds is not None
    assert attempt.peak_memory_mb is not None  # sampled; a very short script may show 0


def test_failure_retries_after_its_interval_and_succeeds(project, users, tmp_path):
    marker = tmp_path / "tried"
    flaky = node_create(
        project,
        "flaky",
        owner=users["alice"],
        type="shell",
        retries=2,
        retry_interval_seconds=2,
        content=f"if [ ! -e {marker} ]; then touch {marker}; echo first try fails; exit 3; fi\necho second try",
    )
    instance = instance_create(flaky, SCHEDULED)

    worker.drain(timeout=20)

    instance.refresh_from_db()
    assert instance.state == "succeeded"
    first, second = Attempt.objects.filter(instance=instance).order_by("number")
    assert (first.state, first.exit_code) == ("failed", 3)
    assert second.state == "succeeded"
    # The retry waited for its interval.
    assert (second.started_at - first.finished_at).total_seconds() >= 2
    assert "first try fails" in log_of(instance, 1)
    assert "second try" in log_of(instance, 2)


def test_failure_without_retries_fails_and_blocks_downstream(project, users):
    bad = node_create(project, "bad", owner=users["alice"], type="shell", content="exit 1")
    child = node_create(project, "child", owner=users["alice"], upstream=[bad])
    i_bad = instance_create(bad, SCHEDULED)
    i_child = instance_create(child, SCHEDULED, upstream=[i_bad])

    worker.drain(timeout=10)

    assert Instance.objects.get(pk=i_bad.pk).state == "failed"
    i_child.refresh_from_db()
    assert (i_child.state, i_child.wait_reason) == ("pending", "waiting_upstream")


def test_unknown_parameter_fails_the_attempt_with_a_clear_log_line(project, users):
    node = node_create(
        project,
        "typo",
        owner=users["alice"],
        type="shell",
        retries=3,
        content="echo ${bizdat} ${var.nope}",
    )
    instance = instance_create(node, SCHEDULED)

    worker.drain(timeout=10)

    instance.refresh_from_db()
    assert instance.state == "failed"
    assert instance.attempt_count == 1  # another attempt could not fix it
    text = log_of(instance)
    assert "${bizdat}" in text and "${var.nope}" in text
    assert "unknown parameter" in text.lower()


def test_timeout_fails_the_attempt(project, users):
    node = node_create(
        project,
        "slow",
        owner=users["alice"],
        type="shell",
        timeout_seconds=1,
        content="sleep 30",
    )
    instance = instance_create(node, SCHEDULED)

    worker.drain(timeout=20)

    instance.refresh_from_db()
    attempt = Attempt.objects.get(instance=instance)
    assert instance.state == "failed"
    assert "timed out" in attempt.reason


def test_stop_kills_a_running_attempt(project, users, settings):
    node = node_create(project, "long", owner=users["alice"], type="shell", content="sleep 60")
    instance = instance_create(node, SCHEDULED)
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
    while not Attempt.objects.filter(instance=instance, pid__isnull=False).exists():
        assert time.monotonic() < deadline, "the attempt never started"
        time.sleep(0.1)
    from apps.instances import states

    assert states.instance_stop_running(instance_id=instance.pk, now=timezone.now())
    assert done.wait(20), "drain did not end after the stop"
    thread.join()
    attempt = Attempt.objects.get(instance=instance)
    assert attempt.state == "stopped"
    assert Instance.objects.get(pk=instance.pk).state == "stopped"


def max_overlap(intervals):
    events = sorted(
        [(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
        key=lambda e: (e[0], e[1]),
    )
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def test_real_runs_never_exceed_the_group_limit_and_start_by_priority(project, users):
    from apps.configuration.models import ResourceGroup

    ResourceGroup.objects.create(name="pair", max_concurrency=2)
    owner = users["alice"]
    low = node_create(
        project,
        "low",
        owner=owner,
        type="shell",
        content="sleep 0.4",
        resource_group="pair",
        priority=1,
    )
    high = node_create(
        project,
        "high",
        owner=owner,
        type="shell",
        content="sleep 0.4",
        resource_group="pair",
        priority=5,
    )
    lows = [
        instance_create(low, SCHEDULED + datetime.timedelta(minutes=m), priority=1)
        for m in range(4)
    ]
    highs = [
        instance_create(high, SCHEDULED + datetime.timedelta(minutes=10 + m), priority=5)
        for m in range(2)
    ]

    worker.drain(timeout=30, max_workers=6)

    attempts = list(Attempt.objects.select_related("instance").order_by("started_at"))
    assert len(attempts) == 6 and all(a.state == "succeeded" for a in attempts)
    assert max_overlap([(a.started_at, a.finished_at) for a in attempts]) <= 2
    # The two high-priority instances went first, though scheduled later.
    assert {a.instance_id for a in attempts[:2]} == {i.pk for i in highs}
    assert {a.instance_id for a in attempts[2:]} == {i.pk for i in lows}
