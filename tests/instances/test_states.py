"""The state machine: every change of an instance's state goes through
apps.instances.states and leaves an InstanceEvent (the record and the outbox)."""

import ast
import datetime
from pathlib import Path

import pytest

from apps.instances import operations as ops
from apps.instances import states, worker
from apps.instances.models import Instance, InstanceEvent
from apps.nodes import operations as node_ops
from tests.factories import instance_create, node_create

SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)
NOW = datetime.datetime(2026, 11, 20, 3, 0, tzinfo=datetime.UTC)
APPS = Path(__file__).resolve().parents[2] / "apps"


def events(instance) -> list[tuple[str, str, str]]:
    return list(
        InstanceEvent.objects.filter(instance=instance)
        .order_by("id")
        .values_list("from_state", "to_state", "cause")
    )


def test_no_module_but_states_writes_an_instance_state():
    """A `.update(state=InstanceState.X)` anywhere else would bypass the events."""
    offenders = []
    for path in APPS.rglob("*.py"):
        if path.name == "states.py" and path.parent.name == "instances":
            continue
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "update"
            ):
                continue
            for keyword in node.keywords:
                value = ast.unparse(keyword.value) if keyword.value else ""
                if keyword.arg == "state" and ("InstanceState" in value or value.startswith("S.")):
                    offenders.append(f"{path.relative_to(APPS)}:{node.lineno}")
    assert offenders == []


def test_an_illegal_transition_is_refused_loudly(project, users):
    instance = instance_create(node_create(project, "a", owner=users["alice"]), SCHEDULED)
    with pytest.raises(states.IllegalTransition):
        states.move(ids=[instance.pk], from_states=["pending"], to_state="running", now=NOW)
    assert Instance.objects.get(pk=instance.pk).state == "pending"
    assert events(instance) == []


def test_move_changes_only_rows_in_a_from_state_and_records_each(project, users):
    node = node_create(project, "a", owner=users["alice"])
    pending = instance_create(node, SCHEDULED)
    queued = instance_create(node, SCHEDULED + datetime.timedelta(hours=1), state="queued")
    done = instance_create(node, SCHEDULED + datetime.timedelta(hours=2), state="succeeded")
    moved = states.instances_stop(ids=[pending.pk, queued.pk, done.pk], now=NOW, cause="test")
    assert sorted(moved) == sorted([pending.pk, queued.pk])
    assert events(pending) == [("pending", "stopped", "test")]
    assert events(queued) == [("queued", "stopped", "test")]
    assert events(done) == []
    event = InstanceEvent.objects.get(instance=pending)
    assert event.at == NOW and event.processed_at is None
    # A second stop finds nothing to move and records nothing.
    assert states.instances_stop(ids=[pending.pk], now=NOW) == []
    assert len(events(pending)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_run_with_a_retry_records_every_change_with_its_attempt(project, users, tmp_path):
    marker = tmp_path / "failed-once"
    node = node_create(
        project,
        "flaky",
        owner=users["alice"],
        type="shell",
        content=f"test -f {marker} || {{ touch {marker}; exit 3; }}",
        retries=1,
        retry_interval_seconds=0,
    )
    instance = instance_create(node, SCHEDULED)
    worker.drain(timeout=10)
    rows = list(
        InstanceEvent.objects.filter(instance=instance)
        .order_by("id")
        .values_list("from_state", "to_state", "attempt")
    )
    assert rows == [
        ("pending", "queued", None),
        ("queued", "running", 1),
        ("running", "pending", 1),
        ("pending", "queued", None),
        ("queued", "running", 2),
        ("running", "succeeded", 2),
    ]


def test_operations_record_their_changes(project, users):
    olga = users["olga"]
    upstream_node = node_create(project, "up", owner=users["alice"])
    child_node = node_create(project, "down", owner=users["alice"], upstream=[upstream_node])
    up = instance_create(upstream_node, SCHEDULED, state="failed", finished_at=NOW)
    down = instance_create(child_node, SCHEDULED, state="succeeded", upstream=[up])
    ops.instance_rerun(instance=up, by=olga, source="api", downstream=True)
    assert events(up) == [("failed", "pending", "rerun")]
    assert events(down) == [("succeeded", "pending", "rerun_downstream")]
    ops.instance_set_success(instance=up, by=olga, source="api")
    assert events(up)[-1] == ("pending", "succeeded", "set_success")
    ops.instance_stop(instance=down, by=olga, source="api")
    assert events(down)[-1] == ("pending", "stopped", "stop")


def test_taking_a_node_offline_records_its_cancelled_instances(project, users):
    node = node_create(project, "gone", owner=users["alice"])
    instance = instance_create(node, SCHEDULED + datetime.timedelta(days=3))
    node_ops.node_offline(node=node, by=users["alice"], source="api")
    assert events(instance) == [("pending", "skipped", "offline")]
