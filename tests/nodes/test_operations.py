"""Operations on nodes: pause/resume, run, offline, change owner, batches."""

import datetime

import pytest
import time_machine

from apps.audit.models import OperationLog
from apps.core import clock
from apps.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.instances import dispatcher, worker
from apps.instances import operations as instance_ops
from apps.instances.generation import generate
from apps.instances.models import Attempt, Instance
from apps.instances.selectors import attempt_log
from apps.nodes import operations as ops
from apps.nodes.models import Node
from apps.projects.models import Membership, Project
from tests.factories import instance_create, node_create

SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)
# Generated instances of this day are due long ago; their versions were published before.
PAST_RUN_DATE = datetime.date(2026, 11, 20)
EARLY = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)


@pytest.fixture
def owner(users):
    return users["alice"]


@pytest.fixture
def handed(monkeypatch):
    handed: list[int] = []
    monkeypatch.setattr(dispatcher, "enqueue_on_cluster", lambda group, ids: handed.extend(ids))
    return handed


def fresh(obj):
    return type(obj).objects.get(pk=obj.pk)


def last_log(node) -> OperationLog:
    return OperationLog.objects.filter(object_type="node", object_id=str(node.pk)).first()


# --- pause, resume -----------------------------------------------------------------------


def test_pause_holds_pending_instances_and_resume_starts_them(
    project, owner, users, handed, django_capture_on_commit_callbacks
):
    node = node_create(project, "load", owner=owner)
    instance = instance_create(node, SCHEDULED)

    paused = ops.node_pause(node=node, by=users["olga"], source="ui")

    assert paused.paused and fresh(instance).wait_reason == "frozen"
    dispatcher.tick(enqueue=lambda group, ids: handed.extend(ids))
    assert fresh(instance).state == "pending" and handed == []
    record = last_log(node)
    assert (record.action, record.result, record.source) == ("node_pause", "ok", "ui")
    with pytest.raises(Conflict, match="already paused"):
        ops.node_pause(node=node, by=users["olga"], source="ui")
    assert last_log(node).result == "refused"

    with django_capture_on_commit_callbacks(execute=True):
        resumed = ops.node_resume(node=node, by=users["olga"], source="ui")

    assert not resumed.paused
    assert fresh(instance).state == "queued" and handed == [instance.pk]
    assert last_log(node).action == "node_resume"
    with pytest.raises(Conflict, match="not paused"):
        ops.node_resume(node=node, by=users["olga"], source="ui")


def generate_day(project, run_date: datetime.date) -> list[Instance]:
    generate(run_date=run_date, cutoff=clock.now(), projects=[project])
    return list(Instance.objects.filter(project=project, kind="recurring"))


@pytest.mark.django_db(transaction=True)
def test_resume_releases_instances_generated_while_the_node_was_paused(project, owner, users):
    """pause node -> generate -> resume node -> drain: the instance runs."""
    node = node_create(project, "load", owner=owner, published_at=EARLY)
    ops.node_pause(node=node, by=users["olga"], source="ui")
    (instance,) = generate_day(project, PAST_RUN_DATE)
    dispatcher.tick(enqueue=lambda group, ids: None, sweep=True)
    assert fresh(instance).wait_reason == "frozen"

    ops.node_resume(node=node, by=users["olga"], source="ui")
    worker.drain(timeout=10)

    instance = fresh(instance)
    assert (instance.state, instance.paused) == ("succeeded", False)


@pytest.mark.django_db(transaction=True)
def test_a_node_published_paused_then_resumed_generates_instances_that_run(project, owner, users):
    node = node_create(project, "load", owner=owner, published_at=EARLY, paused=True)
    assert fresh(node).paused
    ops.node_resume(node=node, by=users["olga"], source="ui")
    # Its version still says `paused: true`; the node's own state is what holds.
    (instance,) = generate_day(project, PAST_RUN_DATE)
    worker.drain(timeout=10)
    instance = fresh(instance)
    assert (instance.state, instance.paused) == ("succeeded", False)


def test_resuming_the_node_keeps_an_instances_own_pause(project, owner, users):
    node = node_create(project, "load", owner=owner, published_at=EARLY)
    own, other = generate_day(project, PAST_RUN_DATE) + [
        instance_create(node, SCHEDULED - datetime.timedelta(days=1))
    ]
    instance_ops.instance_pause(instance=own, by=users["olga"], source="ui")
    ops.node_pause(node=node, by=users["olga"], source="ui")
    ops.node_resume(node=node, by=users["olga"], source="ui")
    assert fresh(own).paused and fresh(own).wait_reason == "frozen"
    assert not fresh(other).paused and fresh(other).wait_reason != "frozen"


def test_node_operations_need_operator_in_prod_and_developer_in_dev(project, owner, users):
    node = node_create(project, "load", owner=owner)
    for name in ("vera", "dave"):
        with pytest.raises(PermissionDenied):
            ops.node_pause(node=node, by=users[name], source="api")
        assert (last_log(node).username, last_log(node).result) == (name, "refused")
    with pytest.raises(NotFound):
        ops.node_pause(node=node, by=users["stranger"], source="api")
    assert not fresh(node).paused

    project.env_mode = "dev_prod"
    project.save()
    dev = node_create(project, "load", owner=owner, env="dev")
    with pytest.raises(PermissionDenied):
        ops.node_pause(node=dev, by=users["vera"], source="api")
    assert ops.node_pause(node=dev, by=users["dave"], source="api").paused


# --- run ---------------------------------------------------------------------------------


def test_run_refuses_a_recurring_prod_node(project, owner, users):
    node = node_create(project, "daily", owner=owner)
    with pytest.raises(Conflict) as refused:
        ops.node_run(node=node, by=users["olga"], source="api")
    assert refused.value.detail == (
        "Run is for one-time nodes and dev nodes; use backfill for a recurring node"
    )
    assert not Instance.objects.exists()
    record = last_log(node)
    assert (record.action, record.result, record.message) == (
        "run",
        "refused",
        refused.value.detail,
    )


def test_run_of_a_one_time_node_makes_a_one_time_instance_now(project, owner, users, handed):
    node = node_create(project, "manual", owner=owner, schedule_type="one_time", params={"n": "1"})
    # 01:00 on 2026-11-22 in Asia/Shanghai is still 2026-11-21 in UTC.
    moment = datetime.datetime(2026, 11, 21, 17, 0, tzinfo=datetime.UTC)
    with time_machine.travel(moment, tick=False):
        instance = ops.node_run(node=node, by=users["olga"], source="api", params={"n": 5})
    assert (instance.kind, instance.state, instance.node_id) == ("one_time", "pending", node.pk)
    assert instance.biz_date == datetime.date(2026, 11, 21)  # yesterday in the project tz
    assert instance.scheduled_at == moment
    assert instance.version_id == node.current_version_id
    assert instance.params == {"n": "5"}
    assert instance.created_by == users["olga"]
    assert last_log(node).detail == {
        "instance": instance.pk,
        "biz_date": "2026-11-21",
        "params": {"n": "5"},
    }


def test_run_of_any_dev_node_is_allowed_to_a_developer(project, owner, users):
    project.env_mode = "dev_prod"
    project.save()
    node = node_create(project, "daily", owner=owner, env="dev")
    instance = ops.node_run(
        node=node, by=users["dave"], source="ui", biz_date=datetime.date(2026, 1, 2)
    )
    assert (instance.env, instance.kind, instance.biz_date) == (
        "dev",
        "one_time",
        datetime.date(2026, 1, 2),
    )
    with pytest.raises(PermissionDenied):
        ops.node_run(node=node, by=users["vera"], source="ui")


@pytest.mark.parametrize(
    "params, field",
    [
        ("x", "params"),
        ({"1bad": "v"}, "params.1bad"),
        ({"bizdate": "v"}, "params.bizdate"),
        ({"n": [1]}, "params.n"),
    ],
)
def test_run_refuses_bad_params_naming_them(project, owner, users, params, field):
    node = node_create(project, "manual", owner=owner, schedule_type="one_time")
    with pytest.raises(ValidationFailed) as refused:
        ops.node_run(node=node, by=users["olga"], source="api", params=params)
    assert field in [e["field"] for e in refused.value.errors]
    assert not Instance.objects.exists()


def test_run_refuses_an_offline_or_paused_node(project, owner, users):
    node = node_create(project, "manual", owner=owner, schedule_type="one_time")
    Node.objects.filter(pk=node.pk).update(paused=True)
    with pytest.raises(Conflict, match="paused"):
        ops.node_run(node=fresh(node), by=users["olga"], source="api")
    Node.objects.filter(pk=node.pk).update(paused=False, status="offline")
    with pytest.raises(Conflict, match="offline"):
        ops.node_run(node=fresh(node), by=users["olga"], source="api")


@pytest.mark.django_db(transaction=True)
def test_run_executes_with_the_given_params_substituted(project, owner, users, handed):
    node = node_create(
        project,
        "manual",
        owner=owner,
        type="shell",
        schedule_type="one_time",
        params={"greeting": "hello", "who": "world"},
        content='echo "${greeting} ${who} ${bizdate}"',
    )
    instance = ops.node_run(
        node=node,
        by=users["olga"],
        source="api",
        biz_date=datetime.date(2026, 3, 4),
        params={"who": "operators"},
    )

    worker.drain(timeout=10)

    assert fresh(instance).state == "succeeded"
    attempt = Attempt.objects.get(instance=instance)
    assert "hello operators 20260304" in attempt_log(attempt=attempt)[0]


# --- offline -----------------------------------------------------------------------------


def test_offline_is_refused_while_online_nodes_depend_on_it(project, owner, users):
    source_node = node_create(project, "source", owner=owner)
    node_create(project, "report", owner=owner, upstream=[source_node])
    beta = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    Membership.objects.create(project=beta, user=users["olga"], role="viewer")
    node_create(beta, "mirror", owner=owner, upstream=[source_node])
    gamma = Project.objects.create(code="gamma", name="Gamma", timezone="UTC")
    node_create(gamma, "secret", owner=owner, upstream=[source_node])

    with pytest.raises(Conflict) as refused:
        ops.node_offline(node=source_node, by=users["olga"], source="api")

    assert refused.value.detail == (
        "node acme.source cannot go offline: online nodes depend on it: acme.report, "
        "beta.mirror, 1 in projects you cannot see"
    )
    assert [e["node"] for e in refused.value.errors] == ["acme.report", "beta.mirror"]
    assert fresh(source_node).status == "online"
    assert last_log(source_node).result == "refused"


def test_offline_skips_pending_instances_and_leaves_running_ones(project, owner, users):
    node = node_create(project, "source", owner=owner)
    retired = node_create(project, "old_report", owner=owner, upstream=[node])
    Node.objects.filter(pk=retired.pk).update(status="offline")
    pending = instance_create(node, SCHEDULED)
    running = instance_create(node, SCHEDULED + datetime.timedelta(hours=1), state="running")

    result = ops.node_offline(node=node, by=users["olga"], source="api")

    assert result.status == "offline"
    assert fresh(pending).state == "skipped" and fresh(pending).finished_at is not None
    assert fresh(running).state == "running"
    assert last_log(node).detail == {"status": "offline", "skipped_instances": 1}
    with pytest.raises(Conflict, match="already offline"):
        ops.node_offline(node=node, by=users["olga"], source="api")


# --- owner and batches -------------------------------------------------------------------


def test_change_owner_answers_each_node(project, owner, users):
    mine = node_create(project, "mine", owner=owner)
    beta = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    Membership.objects.create(project=beta, user=users["olga"], role="operator")
    foreign = node_create(beta, "foreign", owner=owner)  # dave is no member of beta
    gamma = Project.objects.create(code="gamma", name="Gamma", timezone="UTC")
    hidden = node_create(gamma, "hidden", owner=owner)

    results = ops.nodes_change_owner(
        node_ids=[mine.pk, foreign.pk, hidden.pk], owner="dave", by=users["olga"], source="ui"
    )

    assert [(r.id, r.ok, r.state) for r in results] == [
        (mine.pk, True, "online"),
        (foreign.pk, False, "online"),
        (hidden.pk, False, None),
    ]
    assert results[1].message == "'dave' is not a member of project 'beta'"
    assert fresh(mine).owner == users["dave"]
    assert fresh(foreign).owner == owner and fresh(hidden).owner == owner
    assert last_log(mine).detail == {"from": "alice", "to": "dave"}
    assert (last_log(foreign).action, last_log(foreign).result) == ("change_owner", "refused")


def test_change_owner_to_an_unknown_user_names_the_field(project, owner, users):
    node = node_create(project, "mine", owner=owner)
    with pytest.raises(ValidationFailed) as refused:
        ops.nodes_change_owner(node_ids=[node.pk], owner="nobody", by=users["olga"], source="ui")
    assert refused.value.errors[0]["field"] == "owner"


def test_nodes_batch_pauses_each_node_on_its_own(project, owner, users):
    a = node_create(project, "a", owner=owner)
    b = node_create(project, "b", owner=owner)
    Node.objects.filter(pk=b.pk).update(paused=True)

    results = ops.nodes_batch(ids=[a.pk, b.pk], action="pause", by=users["olga"], source="ui")

    assert [(r.id, r.ok, r.state) for r in results] == [
        (a.pk, True, "paused"),
        (b.pk, False, "paused"),
    ]
    assert "already paused" in results[1].message
    with pytest.raises(ValidationFailed) as refused:
        ops.nodes_batch(ids=[a.pk], action="offline", by=users["olga"], source="ui")
    assert refused.value.errors[0]["field"] == "action"
