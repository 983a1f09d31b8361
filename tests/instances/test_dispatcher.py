import datetime
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.configuration.models import ResourceGroup
from apps.instances import dispatcher
from apps.instances.models import Attempt, Instance
from tests.factories import instance_create, node_create

NOW = datetime.datetime(2026, 11, 21, 10, 0, tzinfo=datetime.UTC)


def collect():
    """An enqueue that records what the dispatcher handed over, per group."""
    handed = []

    def enqueue(group, ids):
        handed.append((group, list(ids)))

    enqueue.handed = handed
    return enqueue


@pytest.fixture
def owner(users):
    return users["alice"]


def states_of(*instances):
    return [Instance.objects.get(pk=i.pk).state for i in instances]


def test_only_instances_whose_upstream_is_done_start(
    project, owner, django_capture_on_commit_callbacks
):
    a = node_create(project, "a", owner=owner)
    b = node_create(project, "b", owner=owner, upstream=[a])
    ia = instance_create(a, NOW - datetime.timedelta(hours=1))
    ib = instance_create(b, NOW - datetime.timedelta(hours=1), upstream=[ia])
    enqueue = collect()

    with django_capture_on_commit_callbacks(execute=True):
        result = dispatcher.tick(now=NOW, enqueue=enqueue)

    assert result.queued == [ia.pk]
    assert enqueue.handed == [("default", [ia.pk])]
    assert states_of(ia, ib) == ["queued", "pending"]
    assert Instance.objects.get(pk=ib.pk).wait_reason == "waiting_upstream"

    Instance.objects.filter(pk=ia.pk).update(state="succeeded")
    assert dispatcher.tick(now=NOW, enqueue=collect()).queued == [ib.pk]


def test_skipped_upstream_counts_as_done_and_removed_edges_do_not_block(project, owner):
    a = node_create(project, "a", owner=owner)
    b = node_create(project, "b", owner=owner)
    c = node_create(project, "c", owner=owner, upstream=[a, b])
    ia = instance_create(a, NOW, state="skipped")
    ib = instance_create(b, NOW, state="failed")
    ic = instance_create(c, NOW, upstream=[ia, ib])
    assert dispatcher.tick(now=NOW, enqueue=collect()).queued == []

    ic.upstream_edges.filter(upstream=ib).update(removed=True)
    assert dispatcher.tick(now=NOW, enqueue=collect()).queued == [ic.pk]


def test_scheduled_time_and_next_attempt_time_are_waited_for(project, owner):
    a = node_create(project, "a", owner=owner)
    later = instance_create(a, NOW + datetime.timedelta(minutes=5))
    retry = instance_create(
        a, NOW - datetime.timedelta(hours=1), next_attempt_at=NOW + datetime.timedelta(seconds=30)
    )
    assert dispatcher.tick(now=NOW, enqueue=collect()).queued == []
    assert {i.wait_reason for i in Instance.objects.filter(pk__in=[later.pk, retry.pk])} == {
        "waiting_time"
    }
    assert dispatcher.next_wake() == NOW + datetime.timedelta(seconds=30)

    queued = dispatcher.tick(now=NOW + datetime.timedelta(minutes=5), enqueue=collect()).queued
    assert sorted(queued) == sorted([later.pk, retry.pk])


def test_paused_instance_or_node_is_frozen(project, owner):
    a = node_create(project, "a", owner=owner)
    b = node_create(project, "b", owner=owner)
    paused_instance = instance_create(a, NOW, paused=True)
    of_paused_node = instance_create(b, NOW)
    b.paused = True
    b.save()

    assert dispatcher.tick(now=NOW, enqueue=collect()).queued == []
    assert {i.wait_reason for i in Instance.objects.all()} == {"frozen"}

    b.paused = False
    b.save()
    assert dispatcher.tick(now=NOW, enqueue=collect()).queued == [of_paused_node.pk]
    assert states_of(paused_instance) == ["pending"]


def test_priority_then_scheduled_time_and_group_limit(project, owner):
    ResourceGroup.objects.create(name="small", max_concurrency=2)
    low = node_create(project, "low", owner=owner, resource_group="small", priority=1)
    high = node_create(project, "high", owner=owner, resource_group="small", priority=5)
    Node = type(low)
    Node.objects.filter(pk=low.pk).update(priority=1)
    Node.objects.filter(pk=high.pk).update(priority=5)
    early_low = instance_create(low, NOW - datetime.timedelta(hours=3), priority=1)
    late_low = instance_create(low, NOW - datetime.timedelta(hours=2), priority=1)
    late_high = instance_create(high, NOW - datetime.timedelta(hours=1), priority=5)

    first = dispatcher.tick(now=NOW, enqueue=collect()).queued
    assert first == [late_high.pk, early_low.pk]
    assert Instance.objects.get(pk=late_low.pk).wait_reason == "waiting_resources"

    # The group is full: nothing more starts until a slot frees.
    assert dispatcher.tick(now=NOW, enqueue=collect()).queued == []
    Instance.objects.filter(pk=late_high.pk).update(state="running")
    assert dispatcher.tick(now=NOW, enqueue=collect()).queued == []
    Instance.objects.filter(pk=late_high.pk).update(state="succeeded")
    assert dispatcher.tick(now=NOW, enqueue=collect()).queued == [late_low.pk]


def test_a_pass_claims_once_per_group_however_many_instances_wait(project, owner):
    for group in ("g1", "g2"):
        node = node_create(project, f"n-{group}", owner=owner, resource_group=group)
        for minutes in range(1, 6):
            instance_create(node, NOW - datetime.timedelta(minutes=minutes))

    with CaptureQueriesContext(connection) as queries:
        result = dispatcher.tick(now=NOW, enqueue=collect())

    assert len(result.queued) == 10
    group_reads = [
        q for q in queries.captured_queries if 'FROM "configuration_resourcegroup"' in q["sql"]
    ]
    assert len(group_reads) == 2


def test_cpu_capacity_limits_starts(project, owner):
    ResourceGroup.objects.create(name="cpu", max_concurrency=10, cpu_capacity=3)
    big = node_create(project, "big", owner=owner, resource_group="cpu", cpu=2)
    ids = [instance_create(big, NOW - datetime.timedelta(minutes=m)).pk for m in (3, 2, 1)]
    assert dispatcher.tick(now=NOW, enqueue=collect()).queued == [ids[0]]


def test_dry_run_is_skipped_once_upstream_is_done_and_unblocks_children(project, owner):
    daily = node_create(project, "daily", owner=owner)
    weekly = node_create(project, "weekly", owner=owner, cron="0 2 * * 1", upstream=[daily])
    child = node_create(project, "child", owner=owner, upstream=[weekly])
    i_daily = instance_create(daily, NOW)
    i_weekly = instance_create(weekly, NOW, upstream=[i_daily], dry_run=True)
    i_child = instance_create(child, NOW, upstream=[i_weekly])

    dispatcher.tick(now=NOW, enqueue=collect())
    assert states_of(i_weekly, i_child) == ["pending", "pending"]

    Instance.objects.filter(pk=i_daily.pk).update(state="succeeded")
    result = dispatcher.tick(now=NOW, enqueue=collect())
    assert result.skipped == 1
    assert result.queued == [i_child.pk]
    assert states_of(i_weekly) == ["skipped"]


def test_only_ids_limits_the_pass(project, owner):
    a = node_create(project, "a", owner=owner)
    one = instance_create(a, NOW - datetime.timedelta(hours=2))
    other = instance_create(a, NOW - datetime.timedelta(hours=1))
    assert dispatcher.tick(now=NOW, only_ids=[other.pk], enqueue=collect()).queued == [other.pk]
    assert states_of(one) == ["pending"]


def test_reaper_fails_lost_attempt_and_retries(project, owner, settings):
    settings.OPSCENTER_HEARTBEAT_TIMEOUT = 30
    a = node_create(project, "a", owner=owner, retries=1, retry_interval_seconds=10)
    instance = instance_create(
        a, NOW - datetime.timedelta(hours=1), state="running", attempt_count=1
    )
    attempt = Attempt.objects.create(
        instance=instance,
        number=1,
        started_at=NOW - datetime.timedelta(minutes=5),
        heartbeat_at=NOW - datetime.timedelta(seconds=31),
        worker="gone:1",
    )
    fresh = instance_create(a, NOW - datetime.timedelta(hours=2), state="running", attempt_count=1)
    Attempt.objects.create(
        instance=fresh, number=1, started_at=NOW, heartbeat_at=NOW - datetime.timedelta(seconds=5)
    )

    result = dispatcher.tick(now=NOW, enqueue=collect())

    assert result.reaped == 1
    attempt.refresh_from_db()
    instance.refresh_from_db()
    assert attempt.state == "failed" and "lost" in attempt.reason
    assert instance.state == "pending"
    assert instance.next_attempt_at == NOW + datetime.timedelta(seconds=10)
    assert states_of(fresh) == ["running"]
    # Out of retries, the next loss fails it.
    Instance.objects.filter(pk=instance.pk).update(state="running")
    Attempt.objects.create(
        instance=instance,
        number=2,
        started_at=NOW,
        heartbeat_at=NOW - datetime.timedelta(minutes=1),
    )
    assert dispatcher.tick(now=NOW, enqueue=collect()).reaped == 1
    assert states_of(instance) == ["failed"]


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_racing_start_each_instance_exactly_once(project, owner):
    ResourceGroup.objects.update_or_create(name="default", defaults={"max_concurrency": 1000})
    a = node_create(project, "a", owner=owner)
    base = timezone.now() - datetime.timedelta(days=1)
    Instance.objects.bulk_create(
        [
            Instance(
                project=project,
                node=a,
                version=a.current_version,
                kind="recurring",
                biz_date=base.date(),
                scheduled_at=base + datetime.timedelta(seconds=i),
                resource_group=a.resource_group,
            )
            for i in range(200)
        ]
    )
    handed: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(2)

    def enqueue(group, ids):
        with lock:
            handed.extend(ids)

    def race():
        try:
            barrier.wait()
            for _ in range(5):
                dispatcher.tick(enqueue=enqueue)
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(handed) == 200
    assert len(set(handed)) == 200
    assert Instance.objects.filter(state="queued").count() == 200


@pytest.mark.django_db(transaction=True)
def test_racing_dispatchers_never_exceed_a_group_limit(project, owner):
    ResourceGroup.objects.create(name="narrow", max_concurrency=7)
    a = node_create(project, "a", owner=owner, resource_group="narrow")
    base = timezone.now() - datetime.timedelta(days=1)
    for i in range(50):
        instance_create(a, base + datetime.timedelta(seconds=i))
    barrier = threading.Barrier(3)

    def race():
        try:
            barrier.wait()
            dispatcher.tick(enqueue=lambda g, ids: None)
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Instance.objects.filter(state="queued").count() == 7


def test_run_now_ignores_upstream_and_time_but_not_pause_or_resources(project, owner):
    ResourceGroup.objects.create(name="one", max_concurrency=1)
    a = node_create(project, "a", owner=owner)
    b = node_create(project, "b", owner=owner, upstream=[a], resource_group="one")
    ia = instance_create(a, NOW + datetime.timedelta(hours=5))
    ib = instance_create(b, NOW + datetime.timedelta(hours=5), upstream=[ia], run_now=True)
    paused = instance_create(
        b, NOW + datetime.timedelta(hours=6), upstream=[ia], run_now=True, paused=True
    )

    assert dispatcher.tick(now=NOW, enqueue=collect()).queued == [ib.pk]
    assert Instance.objects.get(pk=paused.pk).wait_reason == "frozen"
    # The group is full now: a second run-now instance waits for resources.
    Instance.objects.filter(pk=paused.pk).update(paused=False)
    assert dispatcher.tick(now=NOW, enqueue=collect()).queued == []
    assert Instance.objects.get(pk=paused.pk).wait_reason == "waiting_resources"


def test_a_pass_explains_what_is_due_and_sweeps_the_rest_a_chunk_at_a_time(
    project, owner, monkeypatch
):
    monkeypatch.setattr(dispatcher, "SWEEP_CHUNK", 2)
    monkeypatch.setattr(dispatcher, "_sweep_after", 0)
    node = node_create(project, "a", owner=owner)
    due = instance_create(node, NOW - datetime.timedelta(hours=1))
    later = [instance_create(node, NOW + datetime.timedelta(hours=h)) for h in (1, 2, 3, 4, 5)]
    Instance.objects.update(wait_reason="")

    def explained():
        return sorted(i.pk for i in later if Instance.objects.get(pk=i.pk).wait_reason)

    result = dispatcher.tick(now=NOW, enqueue=collect())
    # The due instance started; of the others, the sweep's first chunk got its reason.
    assert result.queued == [due.pk]
    assert len(explained()) == 2
    dispatcher.tick(now=NOW, enqueue=collect())
    assert len(explained()) == 4
    dispatcher.tick(now=NOW, enqueue=collect())
    assert explained() == sorted(i.pk for i in later)
    assert {Instance.objects.get(pk=i.pk).wait_reason for i in later} == {"waiting_time"}
    # Round again from the start.
    assert dispatcher._sweep_after == 0


def test_a_sweeping_pass_explains_every_pending_instance(project, owner, monkeypatch):
    monkeypatch.setattr(dispatcher, "SWEEP_CHUNK", 1)
    node = node_create(project, "a", owner=owner)
    later = [instance_create(node, NOW + datetime.timedelta(hours=h)) for h in (1, 2, 3)]
    Instance.objects.update(wait_reason="")
    dispatcher.tick(now=NOW, enqueue=collect(), sweep=True)
    assert set(
        Instance.objects.filter(pk__in=[i.pk for i in later]).values_list("wait_reason", flat=True)
    ) == {"waiting_time"}


def test_a_backlog_beyond_the_hot_limit_is_still_worked_on_whole(project, owner, monkeypatch):
    monkeypatch.setattr(dispatcher, "HOT_MAX", 1)
    node = node_create(project, "a", owner=owner)
    ids = [instance_create(node, NOW - datetime.timedelta(minutes=m)).pk for m in (3, 2, 1)]
    run_now = instance_create(node, NOW + datetime.timedelta(days=1), run_now=True)
    assert sorted(dispatcher.tick(now=NOW, enqueue=collect()).queued) == sorted([*ids, run_now.pk])
