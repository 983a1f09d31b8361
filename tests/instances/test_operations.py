"""Operations on instances: allowed and refused states, effects, roles, the operation log."""

import datetime
import io
import threading
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from apps.audit.models import OperationLog
from apps.configuration.models import ResourceGroup
from apps.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.instances import dispatcher, worker
from apps.instances import operations as ops
from apps.instances.models import Attempt, Instance, InstanceDependency
from apps.projects.models import Membership, Project
from tests.factories import instance_create, node_create

# In the past, so every instance is due; 10:00 in Asia/Shanghai, biz date 2026-11-19.
SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)
STATES = ["pending", "queued", "running", "succeeded", "failed", "stopped", "skipped"]


@pytest.fixture
def owner(users):
    return users["alice"]


@pytest.fixture
def handed(monkeypatch):
    """Replaces the hand-off to the worker clusters; lists the ids handed over."""
    handed: list[int] = []
    monkeypatch.setattr(dispatcher, "enqueue_on_cluster", lambda group, ids: handed.extend(ids))
    return handed


def fresh(instance) -> Instance:
    return Instance.objects.get(pk=instance.pk)


def last_log(instance) -> OperationLog:
    return OperationLog.objects.filter(object_type="instance", object_id=str(instance.pk)).first()


def make(project, owner, state, name="job", **fields) -> Instance:
    node = node_create(project, name, owner=owner)
    if state in ("succeeded", "failed", "stopped", "skipped"):
        fields.setdefault("finished_at", SCHEDULED + datetime.timedelta(minutes=5))
    if state in ("running", "succeeded", "failed", "stopped"):
        fields.setdefault("started_at", SCHEDULED)
        fields.setdefault("attempt_count", 1)
    return instance_create(node, SCHEDULED, state=state, **fields)


# --- every operation over every state ----------------------------------------------------


def _rerun(instance, by):
    return ops.instance_rerun(instance=instance, by=by, source="api")


def _change_group(instance, by):
    ResourceGroup.objects.get_or_create(name="etl")
    return ops.instance_change_resource_group(
        instance=instance, by=by, source="api", resource_group="etl"
    )


def _remove_dependency(instance, by):
    upstream = InstanceDependency.objects.get(downstream=instance).upstream_id
    return ops.instance_remove_dependency(
        instance=instance, upstream_id=upstream, by=by, source="api"
    )


def _check_rerun(before, after):
    assert after.state == "pending"
    assert (after.started_at, after.finished_at, after.next_attempt_at) == (None, None, None)
    assert (after.forced, after.retries_used) == (False, 0)
    assert after.attempt_count == before.attempt_count  # attempts are kept


def _check_set_success(before, after):
    assert (after.state, after.forced) == ("succeeded", True)
    assert after.finished_at is not None


def _check_stop(before, after):
    assert after.state == "stopped" and after.finished_at is not None


def _check_pause(before, after):
    assert after.paused and after.state == before.state


def _check_resume(before, after):
    assert not after.paused and after.state == before.state


def _check_group(before, after):
    assert after.resource_group.name == "etl"


def _check_removed(before, after):
    assert InstanceDependency.objects.get(downstream=after).removed


def _check_run_now(before, after):
    assert after.run_now and after.state == "pending"


OPERATIONS = {
    # action: (call, states it is allowed in, extra fields of the instance, check)
    "rerun": (_rerun, {"succeeded", "failed", "stopped", "skipped"}, {}, _check_rerun),
    "set_success": (
        lambda i, by: ops.instance_set_success(instance=i, by=by, source="api"),
        {"pending", "failed", "stopped"},
        {},
        _check_set_success,
    ),
    "stop": (
        lambda i, by: ops.instance_stop(instance=i, by=by, source="api"),
        {"pending", "queued", "running"},
        {},
        _check_stop,
    ),
    "pause": (
        lambda i, by: ops.instance_pause(instance=i, by=by, source="api"),
        {"pending", "queued", "running"},
        {},
        _check_pause,
    ),
    "resume": (
        lambda i, by: ops.instance_resume(instance=i, by=by, source="api"),
        {"pending", "queued", "running"},
        {"paused": True},
        _check_resume,
    ),
    "change_resource_group": (_change_group, {"pending"}, {}, _check_group),
    "remove_dependency": (_remove_dependency, {"pending"}, {"with_upstream": True}, _check_removed),
    "run_now": (
        lambda i, by: ops.instance_run_now(instance=i, by=by, source="api"),
        {"pending"},
        {},
        _check_run_now,
    ),
}


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", list(OPERATIONS))
def test_each_operation_is_allowed_exactly_in_its_states(project, users, owner, action, state):
    call, allowed, extra, check = OPERATIONS[action]
    extra = dict(extra)
    upstream = []
    if extra.pop("with_upstream", False):
        upstream = [make(project, owner, "failed", name="parent")]
    node = node_create(project, "job", owner=owner)
    instance = instance_create(
        node,
        SCHEDULED,
        upstream=upstream,
        state=state,
        attempt_count=1 if state not in ("pending", "queued", "skipped") else 0,
        started_at=SCHEDULED if state not in ("pending", "queued", "skipped") else None,
        finished_at=SCHEDULED if state in ("succeeded", "failed", "stopped", "skipped") else None,
        **extra,
    )
    before = fresh(instance)

    if state in allowed:
        result = call(instance, users["olga"])
        after = fresh(instance)
        check(before, after)
        assert result.pk == instance.pk and result.state == after.state
        record = last_log(instance)
        assert (record.action, record.result, record.username) == (action, "ok", "olga")
        assert (record.source, record.project_id) == ("api", project.pk)
    else:
        with pytest.raises(Conflict) as refused:
            call(instance, users["olga"])
        after = fresh(instance)
        assert (after.state, after.paused, after.run_now) == (
            before.state,
            before.paused,
            before.run_now,
        )
        assert f"instance {instance.pk}" in refused.value.detail
        # The refusal is recorded although the operation's transaction rolled back.
        record = last_log(instance)
        assert (record.action, record.result) == (action, "refused")
        assert record.message == refused.value.detail
        assert record.detail["state"] == state


def test_refusal_names_the_state_and_what_is_needed(project, owner, users):
    instance = make(project, owner, "running")
    with pytest.raises(Conflict) as refused:
        ops.instance_rerun(instance=instance, by=users["olga"], source="ui")
    assert refused.value.detail == (
        f"instance {instance.pk} is running: rerun needs a finished instance"
    )


def test_pause_and_resume_refuse_the_state_they_would_set(project, owner, users):
    instance = make(project, owner, "pending")
    with pytest.raises(Conflict, match="is not paused"):
        ops.instance_resume(instance=instance, by=users["olga"], source="api")
    ops.instance_pause(instance=instance, by=users["olga"], source="api")
    assert fresh(instance).wait_reason == "frozen"
    with pytest.raises(Conflict, match="already paused"):
        ops.instance_pause(instance=instance, by=users["olga"], source="api")
    assert list(
        OperationLog.objects.filter(object_id=str(instance.pk)).values_list("action", "result")
    ) == [("pause", "refused"), ("pause", "ok"), ("resume", "refused")]


# --- roles -------------------------------------------------------------------------------


def test_viewer_and_developer_are_refused_on_prod_and_the_refusal_is_logged(project, owner, users):
    instance = make(project, owner, "failed")
    for name in ("vera", "dave"):
        with pytest.raises(PermissionDenied, match="operator"):
            ops.instance_rerun(instance=instance, by=users[name], source="api")
        record = last_log(instance)
        assert (record.username, record.result) == (name, "refused")
    with pytest.raises(NotFound):
        ops.instance_rerun(instance=instance, by=users["stranger"], source="api")
    assert fresh(instance).state == "failed"
    ops.instance_rerun(instance=instance, by=users["alice"], source="api")  # admin
    assert fresh(instance).state == "pending"


def test_developer_may_operate_dev_instances_but_a_viewer_may_not(project, owner, users):
    project.env_mode = "dev_prod"
    project.save()
    node = node_create(project, "job", owner=owner, env="dev")
    instance = instance_create(node, SCHEDULED, state="failed", env="dev")
    with pytest.raises(PermissionDenied):
        ops.instance_set_success(instance=instance, by=users["vera"], source="api")
    ops.instance_set_success(instance=instance, by=users["dave"], source="ui")
    assert fresh(instance).state == "succeeded"
    record = last_log(instance)
    assert (record.username, record.source, record.result) == ("dave", "ui", "ok")


# --- rerun --------------------------------------------------------------------------------


def test_rerun_with_downstream_resets_three_levels_of_finished_descendants(
    project, owner, users, handed, django_capture_on_commit_callbacks
):
    #  root(failed) -> a(succeeded) -> b(succeeded, dry run skipped) -> c(failed)
    #               -> r(running)   -> d(succeeded)
    #  a -> p(pending);  other(succeeded) is unrelated
    nodes = {}
    for name in ["root", "a", "b", "c", "r", "d", "p", "other"]:
        nodes[name] = node_create(project, name, owner=owner)

    def inst(name, state, upstream=(), **fields):
        finished = state in ("succeeded", "failed", "skipped")
        return instance_create(
            nodes[name],
            SCHEDULED,
            upstream=upstream,
            state=state,
            attempt_count=1 if state != "skipped" and state != "pending" else 0,
            finished_at=SCHEDULED if finished else None,
            started_at=SCHEDULED if state in ("succeeded", "failed", "running") else None,
            **fields,
        )

    root = inst("root", "failed")
    a = inst("a", "succeeded", [root], forced=True)
    b = inst("b", "skipped", [a], dry_run=True)
    c = inst("c", "failed", [b], retries_used=2)
    r = inst("r", "running", [root])
    d = inst("d", "succeeded", [r])
    p = inst("p", "pending", [a])
    other = inst("other", "succeeded")
    # An operator once removed c's dependency on b; rerun together, c waits for b again.
    InstanceDependency.objects.filter(downstream=c, upstream=b).update(removed=True)

    with django_capture_on_commit_callbacks(execute=True):
        ops.instance_rerun(instance=root, by=users["olga"], source="api", downstream=True)

    made = {"root": root, "a": a, "b": b, "c": c, "r": r, "d": d, "p": p, "other": other}
    assert {name: fresh(i).state for name, i in made.items()} == {
        "root": "queued",  # nothing above it: the dispatcher started it at once
        "a": "pending",
        "b": "pending",
        "c": "pending",
        "r": "running",
        "d": "pending",  # finished, below the running one: reset, waits for it
        "p": "pending",
        "other": "succeeded",
    }
    assert handed == [root.pk]
    assert fresh(a).forced is False and fresh(c).retries_used == 0
    assert fresh(a).wait_reason == "waiting_upstream" and fresh(c).wait_reason == "waiting_upstream"
    assert not InstanceDependency.objects.get(downstream=c, upstream=b).removed
    record = last_log(root)
    assert record.detail["reset_downstream"] == sorted([a.pk, b.pk, c.pk, d.pk])
    assert record.detail["downstream"] is True and record.detail["from_state"] == "failed"


def test_rerun_with_downstream_walks_through_unfinished_instances(project, owner, users):
    root = make(project, owner, "succeeded", name="root")
    middle = instance_create(
        node_create(project, "middle", owner=owner), SCHEDULED, upstream=[root], state="running"
    )
    leaf = instance_create(
        node_create(project, "leaf", owner=owner),
        SCHEDULED,
        upstream=[middle],
        state="succeeded",
        finished_at=SCHEDULED,
    )
    ops.instance_rerun(instance=root, by=users["olga"], source="api", downstream=True)
    assert (fresh(middle).state, fresh(leaf).state) == ("running", "pending")


def test_rerun_without_downstream_leaves_children_alone(project, owner, users):
    root = make(project, owner, "failed", name="root")
    child = instance_create(
        node_create(project, "child", owner=owner),
        SCHEDULED,
        upstream=[root],
        state="succeeded",
        finished_at=SCHEDULED,
    )
    ops.instance_rerun(instance=root, by=users["olga"], source="api")
    assert (fresh(root).state, fresh(child).state) == ("pending", "succeeded")
    assert last_log(root).detail["reset_downstream"] == []


def test_rerun_with_downstream_needs_the_role_in_every_project_it_touches(project, owner, users):
    other = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    Membership.objects.create(project=other, user=users["olga"], role="viewer")
    root = make(project, owner, "failed", name="root")
    child = instance_create(
        node_create(other, "child", owner=owner, upstream=[root.node]),
        SCHEDULED,
        upstream=[root],
        state="succeeded",
        finished_at=SCHEDULED,
    )
    with pytest.raises(PermissionDenied, match="beta"):
        ops.instance_rerun(instance=root, by=users["olga"], source="api", downstream=True)
    assert (fresh(root).state, fresh(child).state) == ("failed", "succeeded")
    assert last_log(root).result == "refused"


def test_rerun_waits_for_a_stopped_attempt_to_end(project, owner, users):
    instance = make(project, owner, "stopped")
    Attempt.objects.create(instance=instance, number=1, state="running", started_at=SCHEDULED)
    with pytest.raises(Conflict, match="still ending"):
        ops.instance_rerun(instance=instance, by=users["olga"], source="api")
    assert fresh(instance).state == "stopped"


# --- set success, run now, dependencies, resource group ---------------------------------


def test_set_success_lets_a_waiting_child_start(
    project, owner, users, handed, django_capture_on_commit_callbacks
):
    parent = make(project, owner, "failed", name="parent")
    child = instance_create(
        node_create(project, "child", owner=owner, upstream=[parent.node]),
        SCHEDULED,
        upstream=[parent],
        wait_reason="waiting_upstream",
    )
    with django_capture_on_commit_callbacks(execute=True):
        ops.instance_set_success(instance=parent, by=users["olga"], source="api")
    assert fresh(parent).state == "succeeded" and fresh(parent).forced
    assert fresh(child).state == "queued"
    assert handed == [child.pk]


def test_run_now_ignores_upstream_and_time_but_not_a_paused_node(
    project, owner, users, handed, django_capture_on_commit_callbacks
):
    parent = make(project, owner, "failed", name="parent")
    later = instance_create(
        node_create(project, "later", owner=owner),
        datetime.datetime(2099, 1, 1, tzinfo=datetime.UTC),
        upstream=[parent],
    )
    with django_capture_on_commit_callbacks(execute=True):
        ops.instance_run_now(instance=later, by=users["olga"], source="api")
    assert fresh(later).state == "queued" and handed == [later.pk]

    held = instance_create(node_create(project, "held", owner=owner), SCHEDULED, upstream=[parent])
    held.node.paused = True
    held.node.save()
    with pytest.raises(Conflict, match="node held is paused"):
        ops.instance_run_now(instance=held, by=users["olga"], source="api")
    paused = instance_create(node_create(project, "frozen", owner=owner), SCHEDULED, paused=True)
    with pytest.raises(Conflict, match="resume it first"):
        ops.instance_run_now(instance=paused, by=users["olga"], source="api")


def test_remove_dependency_unblocks_and_is_recorded_with_the_upstream(
    project, owner, users, handed, django_capture_on_commit_callbacks
):
    failed = make(project, owner, "failed", name="failed")
    done = make(project, owner, "succeeded", name="done")
    child = instance_create(
        node_create(project, "child", owner=owner), SCHEDULED, upstream=[failed, done]
    )
    with pytest.raises(NotFound, match="not an upstream"):
        ops.instance_remove_dependency(
            instance=child, upstream_id=child.pk + 100, by=users["olga"], source="api"
        )
    with django_capture_on_commit_callbacks(execute=True):
        ops.instance_remove_dependency(
            instance=child, upstream_id=failed.pk, by=users["olga"], source="api"
        )
    assert fresh(child).state == "queued" and handed == [child.pk]
    record = last_log(child)
    assert record.action == "remove_dependency"
    assert record.detail == {"upstream": failed.pk, "upstream_state": "failed"}
    assert InstanceDependency.objects.get(downstream=child, upstream=failed).removed
    assert not InstanceDependency.objects.get(downstream=child, upstream=done).removed
    Instance.objects.filter(pk=child.pk).update(state="pending")
    with pytest.raises(Conflict, match="already removed"):
        ops.instance_remove_dependency(
            instance=child, upstream_id=failed.pk, by=users["olga"], source="api"
        )


def test_change_resource_group_names_the_field_of_an_unknown_group(project, owner, users):
    instance = make(project, owner, "pending")
    with pytest.raises(ValidationFailed) as refused:
        ops.instance_change_resource_group(
            instance=instance, by=users["olga"], source="api", resource_group="nope"
        )
    assert refused.value.errors[0]["field"] == "resource_group"
    assert last_log(instance).result == "refused"
    ResourceGroup.objects.create(name="etl")
    changed = ops.instance_change_resource_group(
        instance=instance, by=users["olga"], source="api", resource_group="etl"
    )
    assert changed.resource_group.name == "etl"
    assert fresh(instance).node.resource_group.name == "default"  # the node keeps its own
    assert last_log(instance).detail == {"from": "default", "to": "etl"}


# --- batch --------------------------------------------------------------------------------


def test_batch_answers_each_item_and_one_refusal_does_not_stop_the_others(project, owner, users):
    failed = make(project, owner, "failed", name="f")
    running = make(project, owner, "running", name="r")
    stopped = make(project, owner, "stopped", name="s")
    other = Project.objects.create(code="hidden", name="Hidden", timezone="UTC")
    hidden = make(other, owner, "failed", name="h")

    results = ops.instances_batch(
        ids=[failed.pk, running.pk, stopped.pk, hidden.pk, failed.pk],
        action="set_success",
        by=users["olga"],
        source="ui",
    )

    assert [(r.id, r.ok, r.state) for r in results] == [
        (failed.pk, True, "succeeded"),
        (running.pk, False, "running"),
        (stopped.pk, True, "succeeded"),
        (hidden.pk, False, None),
    ]
    assert "set success needs" in results[1].message
    assert results[3].message == f"instance {hidden.pk} not found"
    logs = OperationLog.objects.filter(action="set_success").order_by("id")
    assert [(log.object_id, log.result) for log in logs] == [
        (str(failed.pk), "ok"),
        (str(running.pk), "refused"),
        (str(stopped.pk), "ok"),
    ]
    assert fresh(hidden).state == "failed"


def test_batch_refuses_an_unknown_action_naming_the_field(project, users):
    with pytest.raises(ValidationFailed) as refused:
        ops.instances_batch(ids=[1], action="explode", by=users["olga"], source="api")
    assert refused.value.errors[0]["field"] == "action"
    with pytest.raises(ValidationFailed) as refused:
        ops.instances_batch(ids=["x"], action="stop", by=users["olga"], source="api")
    assert refused.value.errors[0]["field"] == "ids"


# --- with real processes ------------------------------------------------------------------


def _drain_in_thread(timeout: float) -> threading.Event:
    done = threading.Event()

    def run():
        try:
            worker.drain(timeout=timeout)
        finally:
            connection.close()
            done.set()

    threading.Thread(target=run, daemon=True).start()
    return done


@pytest.mark.django_db(transaction=True)
def test_stop_kills_the_process_of_a_running_instance(project, users, tmp_path):
    marker = tmp_path / "still-alive"
    node = node_create(
        project,
        "long",
        owner=users["alice"],
        type="shell",
        content=f"sleep 60\ntouch {marker}",
    )
    instance = instance_create(node, SCHEDULED)
    done = _drain_in_thread(timeout=30)
    deadline = time.monotonic() + 15
    while not Attempt.objects.filter(instance=instance, pid__isnull=False).exists():
        assert time.monotonic() < deadline, "the attempt never started"
        time.sleep(0.1)
    assert fresh(instance).state == "running"

    ops.instance_stop(instance=fresh(instance), by=users["olga"], source="api")

    assert done.wait(20), "the attempt did not end after the stop"
    attempt = Attempt.objects.get(instance=instance)
    assert attempt.state == "stopped" and "stopped" in attempt.reason
    assert fresh(instance).state == "stopped"
    assert not marker.exists()
    assert last_log(instance).detail == {"from_state": "running"}


@pytest.mark.django_db(transaction=True)
def test_rerun_with_downstream_runs_the_repaired_pipeline_again(project, users, tmp_path, handed):
    switch = tmp_path / "fixed"
    parent = node_create(
        project,
        "parent",
        owner=users["alice"],
        type="shell",
        content=f"test -e {switch} || exit 4",
    )
    child = node_create(project, "child", owner=users["alice"], type="shell", upstream=[parent])
    i_parent = instance_create(parent, SCHEDULED)
    i_child = instance_create(child, SCHEDULED, upstream=[i_parent])
    worker.drain(timeout=10)
    assert (fresh(i_parent).state, fresh(i_child).state) == ("failed", "pending")

    switch.touch()
    ops.instance_rerun(instance=fresh(i_parent), by=users["olga"], source="api", downstream=True)
    worker.drain(timeout=10)

    assert (fresh(i_parent).state, fresh(i_child).state) == ("succeeded", "succeeded")
    numbers = list(
        Attempt.objects.filter(instance=i_parent).order_by("number").values_list("number", "state")
    )
    assert numbers == [(1, "failed"), (2, "succeeded")]


def test_realtime_instances_are_refused(project, owner, users):
    instance = make(project, owner, "stopped", kind="realtime")
    with pytest.raises(Conflict, match="realtime"):
        ops.instance_rerun(instance=instance, by=users["olga"], source="api")
    assert fresh(instance).state == "stopped"
    assert last_log(instance).result == "refused"


# --- the CLI -------------------------------------------------------------------------------


def test_cli_operates_each_instance_as_the_named_user(project, owner, users):
    failed = make(project, owner, "failed", name="f")
    running = make(project, owner, "running", name="r")
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 of 2 refused"):
        call_command(
            "opscenter",
            "instance",
            "set-success",
            str(failed.pk),
            str(running.pk),
            "--as",
            "olga",
            stdout=out,
        )
    assert f"instance {failed.pk}: set-success: now succeeded" in out.getvalue()
    assert f"instance {running.pk}: refused: instance {running.pk} is running" in out.getvalue()
    record = last_log(failed)
    assert (record.source, record.username) == ("cli", "olga")

    with pytest.raises(CommandError, match="1 of 1 refused"):
        call_command("opscenter", "instance", "stop", str(running.pk), "--as", "vera", stdout=out)
    assert fresh(running).state == "running"
    with pytest.raises(CommandError, match="--downstream"):
        call_command("opscenter", "instance", "stop", str(running.pk), "--downstream")
    with pytest.raises(CommandError, match="unknown user"):
        call_command("opscenter", "instance", "stop", str(running.pk), "--as", "ghost")


def test_cli_rerun_with_downstream(project, owner, users):
    root = make(project, owner, "failed", name="root")
    child = make(project, owner, "succeeded", name="child", upstream=[root])
    call_command(
        "opscenter", "instance", "rerun", str(root.pk), "--downstream", stdout=io.StringIO()
    )
    assert (fresh(root).state, fresh(child).state) == ("pending", "pending")
    assert last_log(root).username == "root"  # the first superuser by default
