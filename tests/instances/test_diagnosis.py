import datetime

import pytest

from apps.configuration.models import ResourceGroup
from apps.instances.diagnosis import diagnose
from apps.instances.models import Instance, InstanceDependency
from apps.nodes.models import Node
from apps.projects.models import Project
from tests.factories import instance_create, node_create

# 02:00 on 2026-11-22 in Asia/Shanghai (the `project` fixture's timezone).
T0 = datetime.datetime(2026, 11, 21, 18, 0, tzinfo=datetime.UTC)
NOW = T0 + datetime.timedelta(hours=1)


@pytest.fixture
def owner(users):
    return users["alice"]


def make(project, owner, name, *, upstream=(), at=T0, node_fields=None, **fields) -> Instance:
    node = node_create(project, name, owner=owner, **(node_fields or {}))
    return instance_create(node, at, upstream=upstream, **fields)


def kinds(result) -> list[str]:
    return [b.kind for b in result.blockers]


def blocker(result, kind):
    [found] = [b for b in result.blockers if b.kind == kind]
    return found


@pytest.mark.parametrize(
    "state, summary",
    [
        ("succeeded", "finished: succeeded"),
        # Written in the zone active for the page (the server's here), zone named.
        ("running", "running since 2026-11-21 18:00:00 UTC"),
        ("queued", "queued"),
        ("failed", "finished: failed"),
    ],
)
def test_started_or_finished_instances_have_no_blockers(project, owner, state, summary):
    instance = make(project, owner, "a", state=state, started_at=T0, finished_at=T0, paused=True)
    result = diagnose(instance, now=NOW)
    assert result.blockers == [] and not result.ready
    assert result.summary.startswith(summary)


def test_a_realtime_instance_is_not_dispatched(project, owner):
    instance = make(project, owner, "stream", kind="realtime", state="stopped")
    result = diagnose(instance, now=NOW)
    assert result.blockers == []
    assert result.summary == "realtime, stopped: start or stop it from its node"


def test_a_ready_instance_says_the_next_pass_starts_it(project, owner):
    done = make(project, owner, "up", state="succeeded")
    skipped = make(project, owner, "weekly", state="skipped", dry_run=True)
    instance = make(project, owner, "a", upstream=[done, skipped])
    result = diagnose(instance, now=NOW)
    assert result.ready and result.blockers == []
    assert result.summary == "ready: the next dispatcher pass starts it"


def test_every_unmet_condition_in_spec_order(project, owner):
    ResourceGroup.objects.create(name="tiny", max_concurrency=1)
    make(project, owner, "holder", state="running", node_fields={"resource_group": "tiny"})
    failed = make(project, owner, "up", state="failed")
    instance = make(
        project,
        owner,
        "a",
        upstream=[failed],
        paused=True,
        at=NOW + datetime.timedelta(hours=2),
        node_fields={"resource_group": "tiny"},
    )
    Node.objects.filter(pk=instance.node_id).update(paused=True)
    instance.node.refresh_from_db()
    result = diagnose(instance, now=NOW)
    assert kinds(result) == [
        "frozen",
        "frozen",
        "waiting_upstream",
        "waiting_time",
        "waiting_resources",
    ]
    assert [b.detail["paused"] for b in result.blockers[:2]] == ["instance", "node"]
    assert result.blockers[0].actions == [
        {"action": "resume", "target": instance.pk, "object": "instance"}
    ]
    assert result.blockers[1].actions == [
        {"action": "resume", "target": instance.node_id, "object": "node"}
    ]
    assert result.summary.startswith("waiting: the instance is paused; its node 'a' is paused")


def test_root_cause_through_three_levels(project, owner, django_assert_max_num_queries):
    root = make(project, owner, "extract", state="failed")
    level1 = make(project, owner, "stage", upstream=[root])
    level2 = make(project, owner, "dims", upstream=[level1])
    level3 = make(project, owner, "facts", upstream=[level2])
    instance = make(project, owner, "report", upstream=[level3])
    result = diagnose(instance, now=NOW)
    waiting = blocker(result, "waiting_upstream")
    assert [u["id"] for u in waiting.detail["upstream"]] == [level3.pk]
    [cause] = waiting.detail["root_causes"]
    assert (cause["id"], cause["node_name"], cause["cause"]) == (root.pk, "extract", "failed")
    assert cause["via"] == [level3.pk, level2.pk, level1.pk, root.pk]
    assert waiting.detail["in_progress"] == []
    assert "root cause: extract failed" in waiting.message
    assert waiting.actions == [
        {"action": "rerun", "target": root.pk, "object": "instance"},
        {"action": "set_success", "target": root.pk, "object": "instance"},
        {
            "action": "remove_dependency",
            "target": instance.pk,
            "object": "instance",
            "upstream": level3.pk,
        },
        {"action": "run_now", "target": instance.pk, "object": "instance"},
    ]


def test_root_cause_walk_is_one_query_per_level_not_per_instance(
    project, owner, django_assert_max_num_queries
):
    def wide(prefix: str, width: int) -> Instance:
        roots = [make(project, owner, f"{prefix}r{n}", state="stopped") for n in range(width)]
        middles = [make(project, owner, f"{prefix}m{n}", upstream=[r]) for n, r in enumerate(roots)]
        return make(project, owner, f"{prefix}x", upstream=middles)

    narrow, broad = wide("n", 1), wide("b", 12)
    with django_assert_max_num_queries(20) as narrow_queries:
        diagnose(narrow, now=NOW)
    assert len(narrow_queries.captured_queries) >= 3  # edges, one level up, the group
    with django_assert_max_num_queries(len(narrow_queries.captured_queries)):
        result = diagnose(broad, now=NOW)
    causes = blocker(result, "waiting_upstream").detail["root_causes"]
    assert len(causes) == 12 and {c["cause"] for c in causes} == {"stopped"}


def test_removed_edges_do_not_block_and_are_not_walked(project, owner):
    failed = make(project, owner, "old_feed", state="failed")
    paused = make(project, owner, "extract", paused=True)
    # Higher up, a removed edge to a failed instance: not a root cause.
    middle = make(project, owner, "stage", upstream=[paused, failed])
    InstanceDependency.objects.filter(downstream=middle, upstream=failed).update(removed=True)
    instance = make(project, owner, "report", upstream=[middle, failed])
    InstanceDependency.objects.filter(downstream=instance, upstream=failed).update(removed=True)
    result = diagnose(instance, now=NOW)
    waiting = blocker(result, "waiting_upstream")
    assert [u["id"] for u in waiting.detail["upstream"]] == [middle.pk]
    assert [(c["id"], c["cause"]) for c in waiting.detail["root_causes"]] == [(paused.pk, "paused")]
    assert {"action": "resume", "target": paused.pk, "object": "instance"} in waiting.actions
    assert not any(a["action"] == "rerun" for a in waiting.actions)
    [note] = result.notes
    assert note.kind == "dependency_removed" and note.detail["upstream"]["id"] == failed.pk


def test_only_removed_edges_left_means_not_waiting(project, owner):
    failed = make(project, owner, "feed", state="failed")
    instance = make(project, owner, "report", upstream=[failed])
    InstanceDependency.objects.filter(downstream=instance).update(removed=True)
    result = diagnose(instance, now=NOW)
    assert result.ready
    assert [n.kind for n in result.notes] == ["dependency_removed"]


def test_paused_node_of_an_ancestor_is_a_root_cause(project, owner):
    top = make(project, owner, "top")
    Node.objects.filter(pk=top.node_id).update(paused=True)
    instance = make(project, owner, "report", upstream=[top])
    waiting = blocker(diagnose(instance, now=NOW), "waiting_upstream")
    assert [(c["id"], c["cause"]) for c in waiting.detail["root_causes"]] == [
        (top.pk, "node_paused")
    ]
    assert {"action": "resume", "target": top.node_id, "object": "node"} in waiting.actions


def test_ancestors_that_merely_run_or_wait_are_in_progress_not_root_causes(project, owner):
    running = make(project, owner, "extract", state="running")
    later = make(
        project, owner, "late", at=NOW + datetime.timedelta(hours=3), wait_reason="waiting_time"
    )
    instance = make(project, owner, "report", upstream=[running, later])
    waiting = blocker(diagnose(instance, now=NOW), "waiting_upstream")
    assert waiting.detail["root_causes"] == []
    assert {(p["id"], p["cause"]) for p in waiting.detail["in_progress"]} == {
        (running.pk, "running"),
        (later.pk, "waiting_time"),
    }
    assert [a["action"] for a in waiting.actions] == [
        "remove_dependency",
        "remove_dependency",
        "run_now",
    ]


def test_upstream_node_without_instance_that_day_is_noted_not_blocking(project, owner):
    newcomer = node_create(project, "new_source", owner=owner)
    node = node_create(project, "report", owner=owner, upstream=[newcomer])
    instance = instance_create(node, T0)
    result = diagnose(instance, now=NOW)
    assert result.ready
    [note] = result.notes
    assert note.kind == "upstream_without_instance"
    assert note.detail["node_name"] == "new_source"
    assert "2026-11-21" in note.message


def test_waiting_time_for_the_schedule_and_for_a_retry(project, owner):
    later = make(project, owner, "later", at=NOW + datetime.timedelta(minutes=30))
    result = diagnose(later, now=NOW)
    wait = blocker(result, "waiting_time")
    assert wait.detail == {
        "until": "2026-11-22T03:30:00+08:00",
        "seconds": 1800,
        "retry": False,
        "attempts_so_far": 0,
    }
    assert wait.actions == [{"action": "run_now", "target": later.pk, "object": "instance"}]
    retrying = make(
        project,
        owner,
        "flaky",
        attempt_count=1,
        next_attempt_at=NOW + datetime.timedelta(seconds=60),
    )
    wait = blocker(diagnose(retrying, now=NOW), "waiting_time")
    assert wait.detail["retry"] is True and wait.detail["seconds"] == 60
    assert "its next attempt" in wait.message
    assert diagnose(retrying, now=NOW + datetime.timedelta(seconds=61)).ready


def test_resource_group_full_reports_holders_and_queue_position(project, owner, users):
    ResourceGroup.objects.create(name="etl", max_concurrency=2)
    in_group = {"resource_group": "etl"}
    holders = [
        make(project, owner, "h1", state="running", node_fields=in_group),
        make(project, owner, "h2", state="queued", node_fields=in_group),
    ]
    make(project, owner, "elsewhere", state="running")  # another group: not a holder
    # Ahead: higher priority; same priority and earlier; same priority, same time, lower id.
    make(
        project,
        owner,
        "urgent",
        priority=5,
        at=T0 + datetime.timedelta(minutes=20),
        node_fields=in_group,
    )
    make(project, owner, "earlier", at=T0 - datetime.timedelta(minutes=5), node_fields=in_group)
    make(project, owner, "twin", node_fields=in_group)
    instance = make(project, owner, "me", node_fields=in_group)
    # Not ahead: lower priority, later, not due, blocked, paused, a dry run, another group.
    make(
        project,
        owner,
        "low",
        priority=1,
        at=T0 - datetime.timedelta(minutes=30),
        node_fields=in_group,
    )
    make(project, owner, "after", at=T0 + datetime.timedelta(minutes=1), node_fields=in_group)
    make(
        project,
        owner,
        "future",
        priority=5,
        at=NOW + datetime.timedelta(hours=1),
        node_fields=in_group,
    )
    failed = make(project, owner, "broken", state="failed")
    make(project, owner, "blocked", priority=5, upstream=[failed], node_fields=in_group)
    make(project, owner, "frozen", priority=5, paused=True, node_fields=in_group)
    make(project, owner, "dry", priority=5, dry_run=True, node_fields=in_group)
    make(project, owner, "other_group", priority=5)

    result = diagnose(instance, now=NOW)
    assert kinds(result) == ["waiting_resources"]
    full = result.blockers[0]
    assert full.detail["resource_group"] == "etl"
    assert (full.detail["max_concurrency"], full.detail["in_use"]) == (2, 2)
    assert {h["id"] for h in full.detail["holders"]} == {h.pk for h in holders}
    assert (full.detail["ahead"], full.detail["position"]) == (3, 4)
    assert "3 instance(s) ahead of it" in full.message
    assert full.actions == [
        {"action": "change_resource_group", "target": instance.pk, "object": "instance"}
    ]

    Instance.objects.filter(pk=holders[0].pk).update(state="succeeded")
    assert diagnose(instance, now=NOW).ready


def test_resource_group_cpu_capacity(project, owner):
    ResourceGroup.objects.create(name="gpu", max_concurrency=10, cpu_capacity=2)
    make(project, owner, "big", state="running", node_fields={"resource_group": "gpu", "cpu": 1.5})
    instance = make(project, owner, "me", node_fields={"resource_group": "gpu", "cpu": 1})
    full = blocker(diagnose(instance, now=NOW), "waiting_resources")
    assert (full.detail["cpu_in_use"], full.detail["cpu_needed"], full.detail["cpu_capacity"]) == (
        1.5,
        1.0,
        2.0,
    )
    assert "CPU 1.5 of 2 in use, needs 1" in full.message
    small = make(project, owner, "small", node_fields={"resource_group": "gpu", "cpu": 0.5})
    assert diagnose(small, now=NOW).ready


def test_a_dry_run_waits_only_for_its_upstream(project, owner):
    ResourceGroup.objects.create(name="tiny", max_concurrency=0)
    up = make(project, owner, "up")
    dry = make(
        project,
        owner,
        "weekly",
        upstream=[up],
        dry_run=True,
        at=NOW + datetime.timedelta(hours=5),
        node_fields={"resource_group": "tiny"},
    )
    result = diagnose(dry, now=NOW)
    assert kinds(result) == ["waiting_upstream"]
    assert "dry_run" in [n.kind for n in result.notes]


def test_a_viewer_does_not_learn_other_projects_names(project, owner, users):
    other = Project.objects.create(code="other", name="Other")
    root = instance_create(
        node_create(other, "hidden_root", owner=users["stranger"]), T0, state="failed"
    )
    theirs = instance_create(
        node_create(other, "hidden_mid", owner=users["stranger"]), T0, upstream=[root]
    )
    instance = make(project, owner, "report", upstream=[theirs])
    seen = diagnose(instance, now=NOW, viewer=users["vera"]).as_dict()
    assert "hidden_" not in str(seen)
    cause = seen["blockers"][0]["detail"]["root_causes"][0]
    assert (cause["id"], cause["state"], cause["hidden"], cause["node_name"]) == (
        root.pk,
        "failed",
        True,
        None,
    )
    everything = diagnose(instance, now=NOW, viewer=users["root"]).as_dict()
    assert everything["blockers"][0]["detail"]["root_causes"][0]["node_name"] == "hidden_root"
