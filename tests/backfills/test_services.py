"""Backfill planning, creation, the dispatcher's window, stop and the sharing rule."""

import datetime

import pytest
import time_machine

from apps.backfills import services
from apps.backfills.models import Backfill
from apps.configuration.models import ResourceGroup
from apps.core.errors import PermissionDenied, ValidationFailed
from apps.instances import dispatcher, states
from apps.instances.models import Instance, InstanceDependency
from tests.factories import instance_create, node_create

NOW = datetime.datetime(2026, 11, 21, 10, 0, tzinfo=datetime.UTC)
D1 = datetime.date(2026, 11, 1)
D3 = datetime.date(2026, 11, 3)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def collect():
    handed = []

    def enqueue(group, ids):
        handed.extend(ids)

    enqueue.handed = handed
    return enqueue


def create(user, nodes, **kwargs):
    kwargs.setdefault("start", D1)
    kwargs.setdefault("end", D3)
    return services.backfill_create(by=user, source="api", nodes=nodes, **kwargs)


def pairs(backfill):
    """(downstream, upstream) as (node name, biz date) pairs."""
    edges = InstanceDependency.objects.filter(downstream__backfill=backfill).select_related(
        "downstream__node", "upstream__node"
    )
    return {
        (
            (e.downstream.node.name, e.downstream.biz_date),
            (e.upstream.node.name, e.upstream.biz_date),
        )
        for e in edges
    }


def test_one_instance_per_cron_time_of_biz_date_plus_one(project, users):
    alice = users["alice"]
    hourly = node_create(project, "hourly", owner=alice, cron="0 * * * *")
    daily = node_create(project, "daily", owner=alice, cron="30 2 * * *", priority=4)
    weekly = node_create(project, "weekly", owner=alice, cron="0 3 * * 1")  # Mondays

    backfill = create(users["olga"], [hourly.pk, daily.pk, weekly.pk])

    instances = Instance.objects.filter(backfill=backfill)
    assert backfill.total == instances.count() == 3 * (24 + 1 + 1)
    for day in (D1, D3):
        assert instances.filter(node=hourly, biz_date=day).count() == 24
    one = instances.get(node=daily, biz_date=D1)
    # biz date + 1 at the cron time, in the project's timezone
    assert one.scheduled_at == datetime.datetime(2026, 11, 2, 2, 30, tzinfo=project.tz)
    assert one.kind == "backfill" and one.version_id == daily.current_version_id
    assert one.priority == 3  # one below the node's
    assert one.backfill_seq == 0
    # 2026-11-02 is a Monday: the weekly node fires for biz date 11-01 only.
    weekly_runs = dict(instances.filter(node=weekly).values_list("biz_date", "dry_run"))
    assert weekly_runs == {D1: False, datetime.date(2026, 11, 2): True, D3: True}


def test_dependencies_among_selected_nodes_of_the_same_date(project, users):
    alice = users["alice"]
    a = node_create(project, "a", owner=alice)
    node_create(project, "b", owner=alice, upstream=[a], self_dependent=True)
    backfill = create(users["olga"], [a.pk], downstream="all", end=datetime.date(2026, 11, 2))
    d2 = datetime.date(2026, 11, 2)
    assert pairs(backfill) == {
        (("b", D1), ("a", D1)),
        (("b", d2), ("a", d2)),
        (("b", d2), ("b", D1)),  # self-dependent along the run
    }


def test_self_dependency_follows_the_run_order_when_descending(project, users):
    a = node_create(project, "a", owner=users["alice"], self_dependent=True)
    backfill = create(users["olga"], [a.pk], descending=True)
    seqs = dict(Instance.objects.filter(backfill=backfill).values_list("biz_date", "backfill_seq"))
    assert seqs == {D3: 0, datetime.date(2026, 11, 2): 1, D1: 2}
    d2 = datetime.date(2026, 11, 2)
    assert pairs(backfill) == {(("a", d2), ("a", D3)), (("a", D1), ("a", d2))}


def test_sub_daily_alignment_reuses_the_generation_rules(project, users):
    alice = users["alice"]
    up = node_create(project, "up", owner=alice, cron="0 */6 * * *")
    child = node_create(project, "child", owner=alice, cron="0 */12 * * *", upstream=[up])
    backfill = create(users["olga"], [up.pk], downstream="all", end=D1)
    child_instances = Instance.objects.filter(backfill=backfill, node=child).order_by(
        "scheduled_at"
    )
    counts = [i.upstream_edges.count() for i in child_instances]
    assert counts == [1, 2]  # 00:00 <- 00:00; 12:00 <- 06:00, 12:00


def test_downstream_none_all_and_subset(project, users):
    alice = users["alice"]
    a = node_create(project, "a", owner=alice)
    b = node_create(project, "b", owner=alice, upstream=[a])
    c = node_create(project, "c", owner=alice, upstream=[b])
    d = node_create(project, "d", owner=alice, upstream=[a])
    node_create(project, "manual", owner=alice, schedule_type="one_time", upstream=[a])
    other = node_create(project, "other", owner=alice)

    def planned(downstream):
        plan = services.backfill_plan(nodes=[a], downstream=downstream, start=D1, end=D1)
        return sorted(n.name for n in plan.nodes), plan.edges

    assert planned("none") == (["a"], [])
    assert planned("all")[0] == ["a", "b", "c", "d"]  # not the one-time node
    names, edges = planned([c.pk, d.pk])
    assert names == ["a", "c", "d"]
    assert edges == [(a.pk, d.pk)]  # c's upstream b is not selected
    with pytest.raises(ValidationFailed) as refused:
        planned([c.pk, other.pk])
    assert refused.value.errors == [
        {"field": "downstream", "message": f"{other.pk} is not a downstream node of the root nodes"}
    ]


def test_every_error_names_its_field(project, users):
    alice = users["alice"]
    manual = node_create(project, "manual", owner=alice, schedule_type="one_time")
    with pytest.raises(ValidationFailed) as refused:
        services.backfill_plan(
            nodes=[manual.pk, 999999],
            downstream="some",
            start=D3,
            end=D1,
            order="random",
            parallelism=0,
        )
    fields = {e["field"] for e in refused.value.errors}
    assert fields == {"nodes"}  # unknown nodes are answered first
    a = node_create(project, "a", owner=alice)
    with pytest.raises(ValidationFailed) as refused:
        services.backfill_plan(
            nodes=[manual.pk, a.pk], downstream="some", start=D3, end=D1, order="random"
        )
    fields = [e["field"] for e in refused.value.errors]
    assert fields == ["nodes", "end", "order", "downstream"]
    for kwargs, field in [
        (dict(start=D1, end=D1 + datetime.timedelta(days=400)), "end"),
        (dict(start="2026-13-01", end=D1), "start"),
        (dict(start=D1, end=D1, order="parallel", parallelism=0), "parallelism"),
        (dict(start=D1, end=D1, order="serial", parallelism=3), "parallelism"),
    ]:
        with pytest.raises(ValidationFailed) as refused:
            services.backfill_plan(nodes=[a], downstream="none", **kwargs)
        assert [e["field"] for e in refused.value.errors] == [field]


def test_roles_operator_for_prod_developer_for_dev(project, users):
    alice = users["alice"]
    prod = node_create(project, "p", owner=alice)
    dev = node_create(project, "d", owner=alice, env="dev")
    with pytest.raises(PermissionDenied):
        create(users["dave"], [prod.pk])
    assert create(users["dave"], [dev.pk]).total == 3
    assert not Backfill.objects.filter(created_by=users["dave"], root_node_ids=[prod.pk]).exists()


def test_creation_is_one_bulk_write(project, users, django_assert_max_num_queries):
    alice = users["alice"]
    nodes = [node_create(project, "n0", owner=alice)]
    for i in range(1, 30):
        nodes.append(node_create(project, f"n{i}", owner=alice, upstream=[nodes[i // 2]]))
    ids = [n.pk for n in nodes]
    # A query per batch of rows (SQLite batches are small), never one per row.
    with django_assert_max_num_queries(60):
        backfill = create(
            users["olga"],
            ids,
            start=D1,
            end=D1 + datetime.timedelta(days=29),
            order="parallel",
            parallelism=5,
        )
    assert Instance.objects.filter(backfill=backfill).count() == 900
    assert InstanceDependency.objects.filter(downstream__backfill=backfill).count() == 29 * 30


def test_serial_window_starts_date_after_date(project, users):
    a = node_create(project, "a", owner=users["alice"])
    b = node_create(project, "b", owner=users["alice"])
    backfill = create(users["olga"], [a.pk, b.pk])
    by_seq = {
        seq: set(
            Instance.objects.filter(backfill=backfill, backfill_seq=seq).values_list(
                "pk", flat=True
            )
        )
        for seq in range(3)
    }
    enqueue = collect()
    dispatcher.tick(enqueue=enqueue)
    assert set(Instance.objects.filter(state="queued").values_list("pk", flat=True)) == by_seq[0]
    later = Instance.objects.filter(pk__in=by_seq[1])
    assert set(later.values_list("wait_reason", flat=True)) == {"waiting_upstream"}

    first, second = sorted(by_seq[0])
    Instance.objects.filter(pk=first).update(state="succeeded")
    dispatcher.tick(enqueue=enqueue)
    assert not Instance.objects.filter(pk__in=by_seq[1]).exclude(state="pending").exists()
    Instance.objects.filter(pk=second).update(state="failed")  # finished, too
    assert sorted(services.backfill_refresh(backfill_id=backfill.pk)) == sorted(by_seq[1])
    dispatcher.tick(enqueue=enqueue)
    assert set(Instance.objects.filter(state="queued").values_list("pk", flat=True)) == by_seq[1]


def test_parallel_window_holds_n_dates(project, users):
    a = node_create(project, "a", owner=users["alice"])
    backfill = create(
        users["olga"], [a.pk], end=D1 + datetime.timedelta(days=5), order="parallel", parallelism=2
    )
    dispatcher.tick(enqueue=collect())
    queued = Instance.objects.filter(backfill=backfill, state="queued")
    assert sorted(queued.values_list("backfill_seq", flat=True)) == [0, 1]


def test_ignore_schedule_time_starts_future_dates_at_once(project, users):
    a = node_create(project, "a", owner=users["alice"])
    future = datetime.date(2026, 11, 25)
    waits = create(users["olga"], [a.pk], start=future, end=future)
    hurries = create(users["olga"], [a.pk], start=future, end=future, ignore_schedule_time=True)
    dispatcher.tick(enqueue=collect())
    assert Instance.objects.get(backfill=waits).wait_reason == "waiting_time"
    hurried = Instance.objects.get(backfill=hurries)
    assert hurried.state == "queued"
    # The scheduled time stays truthful.
    assert hurried.scheduled_at == datetime.datetime(2026, 11, 26, 2, 0, tzinfo=project.tz)


def test_recurring_work_is_not_starved_by_a_large_backfill(project, users):
    """A group of 2 slots, 20 eligible backfill instances, and 2 recurring instances of
    the same node priority arriving later: the recurring ones take the next free slots."""
    ResourceGroup.objects.create(name="shared", max_concurrency=2)
    alice = users["alice"]
    node = node_create(project, "heavy", owner=alice, resource_group="shared", priority=3)
    daily = node_create(project, "daily", owner=alice, resource_group="shared", priority=3)
    backfill = create(
        users["olga"],
        [node.pk],
        end=D1 + datetime.timedelta(days=19),
        order="parallel",
        parallelism=20,
    )
    dispatcher.tick(enqueue=collect())
    running = list(Instance.objects.filter(backfill=backfill, state="queued"))
    assert len(running) == 2
    recurring = [instance_create(daily, NOW - datetime.timedelta(minutes=m)) for m in (1, 2)]
    Instance.objects.filter(pk=running[0].pk).update(state="succeeded")
    # Equal node priority: the recurring ones first, the earlier one first.
    assert dispatcher.tick(enqueue=collect()).queued == [recurring[1].pk]
    Instance.objects.filter(pk=running[1].pk).update(state="succeeded")
    assert dispatcher.tick(enqueue=collect()).queued == [recurring[0].pk]
    assert Instance.objects.filter(backfill=backfill, state="pending").count() == 18


def test_stop_leaves_nothing_pending_and_stops_the_running(project, users):
    a = node_create(project, "a", owner=users["alice"])
    backfill = create(users["olga"], [a.pk], order="parallel", parallelism=2)
    dispatcher.tick(enqueue=collect())
    queued = Instance.objects.filter(backfill=backfill, state="queued").order_by("pk")
    running = states.attempt_start(instance_id=queued[0].pk, now=NOW)
    assert running is not None

    stopped = services.backfill_stop(backfill=backfill, by=users["olga"], source="api")

    assert stopped.state == "stopped" and stopped.finished_at == NOW
    assert set(Instance.objects.filter(backfill=backfill).values_list("state", flat=True)) == {
        "stopped"
    }
    # The next pass starts nothing of it.
    assert dispatcher.tick(enqueue=collect()).queued == []
    with pytest.raises(Exception) as again:
        services.backfill_stop(backfill=backfill, by=users["olga"], source="api")
    assert again.value.status_code == 409


def test_run_state_follows_its_instances(project, users):
    a = node_create(project, "a", owner=users["alice"])
    b = node_create(project, "b", owner=users["alice"], upstream=[a])
    backfill = create(users["olga"], [a.pk], downstream="all", end=D1)
    ia = Instance.objects.get(backfill=backfill, node=a)
    Instance.objects.filter(pk=ia.pk).update(state="failed")
    services.backfill_refresh(backfill_id=backfill.pk)
    backfill.refresh_from_db()
    assert backfill.state == "failed"  # b waits on a failure: nothing else can run

    services.backfill_rerun_failed(backfill=backfill, by=users["olga"], source="api")
    backfill.refresh_from_db()
    assert backfill.state == "running" and backfill.finished_at is None
    assert Instance.objects.get(pk=ia.pk).state == "pending"
    Instance.objects.filter(backfill=backfill).update(state="succeeded")
    services.backfill_refresh(backfill_id=backfill.pk)
    backfill.refresh_from_db()
    assert backfill.state == "succeeded" and backfill.window_start == 1
    assert Instance.objects.filter(backfill=backfill, node=b).exists()


def test_diagnosis_explains_the_backfill_window_and_a_stopped_run(project, users):
    from apps.instances.diagnosis import diagnose

    a = node_create(project, "a", owner=users["alice"])
    backfill = create(users["olga"], [a.pk])  # serial, three dates
    third = Instance.objects.get(backfill=backfill, backfill_seq=2)

    result = diagnose(third)
    assert not result.ready
    (blocker,) = [b for b in result.blockers if "backfill" in b.message]
    assert blocker.detail["dates_ahead"] == 2
    assert f"backfill run #{backfill.pk}" in blocker.message
    assert (blocker.actions[0]["action"], blocker.actions[0]["target"]) == ("run_now", third.pk)

    services.backfill_stop(backfill=backfill, by=users["olga"], source="api")
    first = Instance.objects.get(backfill=backfill, backfill_seq=0)
    assert first.state == "stopped"
    # An instance of a stopped run that an operator makes pending again is told why it
    # does not start.
    Instance.objects.filter(pk=first.pk).update(state="pending", finished_at=None)
    messages = [b.message for b in diagnose(Instance.objects.get(pk=first.pk)).blockers]
    assert any("was stopped" in m for m in messages)
