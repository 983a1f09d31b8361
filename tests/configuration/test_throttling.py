"""Throttling rules in the dispatcher, the wait reasons and diagnosis (SPEC 4, 9): every
scope kind, windows crossing midnight, enable/disable, priority order, and the capacity
gates' locking with several dispatchers at once."""

import ast
import datetime
import threading
import time
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from apps.configuration.models import ResourceGroup, ThrottleRule
from apps.instances import admission, dispatcher
from apps.instances.diagnosis import diagnose
from apps.instances.models import Instance
from apps.projects.models import Datasource, Project
from tests.factories import instance_create, node_create

NOW = datetime.datetime(2026, 11, 21, 10, 0, tzinfo=datetime.UTC)  # 18:00 in Shanghai


@pytest.fixture
def owner(users):
    return users["alice"]


def collect():
    handed = []

    def enqueue(group, ids):
        handed.append((group, list(ids)))

    enqueue.handed = handed
    return enqueue


def tick(now=NOW, **kwargs):
    return dispatcher.tick(now=now, enqueue=collect(), **kwargs)


def rule(name="limit", *, kind="project", value="acme", most=1, **fields) -> ThrottleRule:
    """A rule as the services make it (scope resolved to its objects)."""
    made = ThrottleRule(
        name=name, scope_kind=kind, scope_value=value, max_concurrency=most, **fields
    )
    if kind == "project":
        made.project = Project.objects.get(code=value)
    elif kind == "resource_group":
        made.resource_group = ResourceGroup.objects.get(name=value)
    elif kind == "datasource":
        code, name_ = value.split(".")
        made.datasource = Datasource.objects.get(project__code=code, name=name_)
        made.project = made.datasource.project
    made.save()
    return made


def due(node, *minutes_ago, **fields):
    return [
        instance_create(node, NOW - datetime.timedelta(minutes=m), **fields) for m in minutes_ago
    ]


def state(instance) -> tuple[str, str]:
    row = Instance.objects.get(pk=instance.pk)
    return row.state, row.wait_reason


def test_the_gates_are_registered_by_the_features(db):
    names = [gate.name for gate in admission.gates()]
    assert {"backfill_window", "resource_group", "throttle"} <= set(names)
    # Groups lock before rules in every claim.
    assert names.index("resource_group") < names.index("throttle")
    # The engine imports none of the features that plug into it.
    for module in ("dispatcher", "diagnosis", "admission"):
        tree = ast.parse(Path(f"apps/instances/{module}.py").read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        for name in imported:
            assert not name.startswith("apps.backfills"), (module, name)
            assert name not in (
                "apps.configuration.models",
                "apps.configuration.gates",
                "apps.configuration.throttling",
            ), (module, name)


def test_a_project_rule_lets_one_start_and_the_rest_wait_throttled(project, owner):
    node = node_create(project, "load", owner=owner)
    first, second, third = due(node, 3, 2, 1)
    rule(most=1)

    result = tick()

    assert result.queued == [first.pk]
    assert state(second) == ("pending", "throttled")
    assert state(third) == ("pending", "throttled")
    # Full: nothing more starts until the slot frees, whatever the pass.
    assert tick().queued == []
    Instance.objects.filter(pk=first.pk).update(state="running")
    assert tick().queued == []
    Instance.objects.filter(pk=first.pk).update(state="succeeded")
    assert tick().queued == [second.pk]
    assert state(third) == ("pending", "throttled")


def test_throttled_instances_start_in_priority_order_then_scheduled_time(project, owner):
    low = node_create(project, "low", owner=owner, priority=1)
    high = node_create(project, "high", owner=owner, priority=5)
    # Different groups: the rule's queue spans them, and priority still decides.
    other = node_create(project, "other", owner=owner, priority=3, resource_group="etl")
    early_low = instance_create(low, NOW - datetime.timedelta(hours=3), priority=1)
    late_high = instance_create(high, NOW - datetime.timedelta(minutes=1), priority=5)
    early_mid = instance_create(other, NOW - datetime.timedelta(hours=2), priority=3)
    late_mid = instance_create(other, NOW - datetime.timedelta(hours=1), priority=3)
    rule(most=1)

    order = []
    for _ in range(4):
        queued = tick().queued
        assert len(queued) <= 1
        order.extend(queued)
        Instance.objects.filter(pk__in=queued).update(state="succeeded")
    assert order == [late_high.pk, early_mid.pk, late_mid.pk, early_low.pk]


def test_a_rule_of_two_over_a_group_of_ten(project, owner):
    ResourceGroup.objects.create(name="wide", max_concurrency=10)
    node = node_create(project, "n", owner=owner, resource_group="wide")
    instances = due(node, 6, 5, 4, 3, 2, 1)
    rule(kind="resource_group", value="wide", most=2)

    assert tick().queued == [instances[0].pk, instances[1].pk]
    assert {state(i) for i in instances[2:]} == {("pending", "throttled")}


def test_each_scope_kind_counts_only_its_own(project, owner, users):
    Datasource.objects.create(project=project, name="warehouse", kind="sqlite", path="/tmp/w")
    Datasource.objects.create(project=project, name="other", kind="sqlite", path="/tmp/o")
    ResourceGroup.objects.create(name="etl", max_concurrency=50)
    other_project = Project.objects.create(code="beta", name="Beta")

    shell = node_create(project, "sh", owner=owner, type="shell")
    py = node_create(project, "py", owner=owner, type="python")
    sql_w = node_create(project, "sql_w", owner=owner, type="sql", datasource="warehouse")
    sql_o = node_create(project, "sql_o", owner=owner, type="sql", datasource="other")
    in_etl = node_create(project, "etl_job", owner=owner, resource_group="etl")
    beta = node_create(other_project, "beta_job", owner=users["stranger"])

    cases = [
        ("node_type", "shell", shell, [py, sql_w, in_etl, beta]),
        ("datasource", "acme.warehouse", sql_w, [sql_o, shell, beta]),
        ("resource_group", "etl", in_etl, [shell, beta]),
        ("project", "beta", beta, [shell, sql_w, in_etl]),
    ]
    for kind, value, covered, not_covered in cases:
        Instance.objects.all().delete()
        ThrottleRule.objects.all().delete()
        rule(f"{kind}-rule", kind=kind, value=value, most=1)
        under = due(covered, 3, 2)
        free = [due(n, 3, 2) for n in not_covered]
        queued = set(tick().queued)
        assert under[0].pk in queued and under[1].pk not in queued, kind
        assert state(under[1]) == ("pending", "throttled"), kind
        for pair in free:
            assert {i.pk for i in pair} <= queued, (kind, pair[0].node.name)


def test_a_rule_outside_its_window_does_not_apply(project, owner):
    node = node_create(project, "n", owner=owner)
    instances = due(node, 3, 2, 1)
    # 22:00-06:00 in the project's timezone (Asia/Shanghai): NOW is 18:00 there.
    rule(most=1, window_start=datetime.time(22, 0), window_end=datetime.time(6, 0))

    assert len(tick().queued) == 3

    Instance.objects.update(state="pending", wait_reason="")
    at_night = datetime.datetime(2026, 11, 21, 17, 30, tzinfo=datetime.UTC)  # 01:30 local
    assert tick(now=at_night).queued == [instances[0].pk]
    assert state(instances[1]) == ("pending", "throttled")


def test_a_window_crossing_midnight_applies_on_both_sides_of_it(project, owner):
    from apps.configuration import throttling

    made = rule(most=1, window_start=datetime.time(22, 0), window_end=datetime.time(6, 0))
    made.project.refresh_from_db()

    def at(hh, mm):
        local = datetime.datetime(2026, 11, 21, hh, mm, tzinfo=project.tz)
        return throttling.in_force(made, local)

    assert [at(21, 59), at(22, 0), at(23, 30), at(0, 0), at(5, 59), at(6, 0), at(12, 0)] == [
        False,
        True,
        True,
        True,
        True,
        False,
        False,
    ]
    # A global rule's window is in TIME_ZONE (UTC here).
    ResourceGroup.objects.get_or_create(name="default")
    glob = rule(
        "g",
        kind="node_type",
        value="shell",
        window_start=datetime.time(9, 0),
        window_end=datetime.time(10, 0),
    )
    assert throttling.in_force(glob, datetime.datetime(2026, 1, 1, 9, 30, tzinfo=datetime.UTC))
    assert not throttling.in_force(glob, datetime.datetime(2026, 1, 1, 10, 0, tzinfo=datetime.UTC))


def test_a_disabled_rule_does_not_apply(project, owner):
    node = node_create(project, "n", owner=owner)
    due(node, 3, 2, 1)
    made = rule(most=1, enabled=False)
    assert len(tick().queued) == 3
    assert made.pk


def test_every_rule_that_applies_must_have_a_free_slot(project, owner):
    shell = node_create(project, "sh", owner=owner, type="shell")
    rule("project-wide", most=3)
    rule("shell-only", kind="node_type", value="shell", most=1)
    py = node_create(project, "py", owner=owner, type="python")
    shells = due(shell, 5, 4)
    pys = due(py, 3, 2, 1)
    queued = tick().queued
    # The project allows 3: one shell (its type's limit), then two python.
    assert queued == [shells[0].pk, pys[0].pk, pys[1].pk]
    assert state(shells[1]) == ("pending", "throttled")
    assert state(pys[2]) == ("pending", "throttled")


def test_run_now_does_not_bypass_a_rule(project, owner):
    node = node_create(project, "n", owner=owner)
    due(node, 2)
    later = instance_create(node, NOW + datetime.timedelta(hours=4), run_now=True)
    rule(most=1)
    assert len(tick().queued) == 1
    assert state(later) == ("pending", "throttled")


def test_wait_reasons_keep_spec_order_and_throttled_comes_before_a_full_group(project, owner):
    ResourceGroup.objects.create(name="one", max_concurrency=1)
    node = node_create(project, "n", owner=owner, resource_group="one")
    holder = instance_create(node, NOW - datetime.timedelta(hours=1), state="running")
    waiting = due(node, 5)[0]
    frozen = due(node, 4, paused=True)[0]
    upstream_failed = instance_create(node_create(project, "up", owner=owner), NOW, state="failed")
    blocked = instance_create(node, NOW - datetime.timedelta(minutes=3), upstream=[upstream_failed])
    later = instance_create(node, NOW + datetime.timedelta(hours=2))

    tick()
    assert state(waiting) == ("pending", "waiting_resources")
    rule(most=1)  # the running holder fills it
    tick()
    assert state(waiting) == ("pending", "throttled")
    assert state(frozen) == ("pending", "frozen")
    assert state(blocked) == ("pending", "waiting_upstream")
    assert state(later) == ("pending", "waiting_time")
    # Diagnosis lists both, in that order.
    kinds = [b.kind for b in diagnose(Instance.objects.get(pk=waiting.pk), now=NOW).blockers]
    assert kinds == ["throttled", "waiting_resources"]
    assert holder.pk


def test_diagnosis_names_the_rule_its_holders_and_the_position_in_its_queue(project, owner, users):
    other = Project.objects.create(code="beta", name="Beta")
    hidden = instance_create(
        node_create(other, "secret_job", owner=users["stranger"], type="shell"),
        NOW - datetime.timedelta(hours=2),
        state="running",
    )
    shell = node_create(project, "sh", owner=owner, type="shell")
    holder = instance_create(shell, NOW - datetime.timedelta(hours=1), state="queued")
    ahead_high = instance_create(shell, NOW, priority=5)
    ahead_earlier = instance_create(shell, NOW - datetime.timedelta(minutes=30))
    me = instance_create(shell, NOW - datetime.timedelta(minutes=10))
    behind = instance_create(shell, NOW - datetime.timedelta(minutes=5))
    made = rule(
        "shell-pool",
        kind="node_type",
        value="shell",
        most=2,
        window_start=datetime.time(0, 0),
        window_end=datetime.time(23, 59),
    )

    result = diagnose(Instance.objects.get(pk=me.pk), now=NOW, viewer=users["vera"])

    [blocker] = result.blockers
    assert blocker.kind == "throttled"
    assert blocker.detail["rule"] == {
        "id": made.pk,
        "name": "shell-pool",
        "scope_kind": "node_type",
        "scope_value": "shell",
        "max_concurrency": 2,
        "window_start": "00:00",
        "window_end": "23:59",
        "enabled": True,
    }
    assert (blocker.detail["in_use"], blocker.detail["max_concurrency"]) == (2, 2)
    holders = {h["id"]: h for h in blocker.detail["holders"]}
    assert set(holders) == {hidden.pk, holder.pk}
    assert holders[hidden.pk]["hidden"] and holders[hidden.pk]["node_name"] is None
    assert holders[holder.pk]["node_name"] == "sh"
    assert (blocker.detail["ahead"], blocker.detail["position"]) == (2, 3)
    assert "throttling rule 'shell-pool' (node type shell, max 2, 00:00–23:59" in blocker.message
    assert "position 3 in its queue (2 ahead)" in blocker.message
    assert "secret_job" not in str(result.as_dict())
    assert {ahead_high.pk, ahead_earlier.pk, behind.pk}

    Instance.objects.filter(pk=holder.pk).update(state="succeeded")
    assert diagnose(Instance.objects.get(pk=me.pk), now=NOW).blockers == []


def test_a_rule_that_fills_mid_claim_skips_the_rest_of_its_scope_only(project, owner):
    ResourceGroup.objects.create(name="mixed", max_concurrency=4)
    shell = node_create(project, "sh", owner=owner, type="shell", resource_group="mixed")
    py = node_create(project, "py", owner=owner, type="python", resource_group="mixed")
    shells = due(shell, 10, 9, 8, 7, 6, 5)
    pys = due(py, 4, 3)
    rule(kind="node_type", value="shell", most=2)
    assert tick().queued == [shells[0].pk, shells[1].pk, pys[0].pk, pys[1].pk]


def test_a_due_instance_under_a_rule_the_pass_did_not_lock_waits_for_the_next_pass(
    project, owner, monkeypatch
):
    """A claim only admits candidates under rules it locked; one that became due under
    another rule between the pass's look and its claim is left for the next pass."""
    from apps.configuration.gates import ThrottleGate

    node = node_create(project, "n", owner=owner)
    first = due(node, 2)[0]
    rule(most=5)
    original = ThrottleGate.prepare

    def sees_nothing_due(self, *, due, now):
        prepared = original(self, due=due, now=now)
        prepared.covering = []
        return prepared

    monkeypatch.setattr(ThrottleGate, "prepare", sees_nothing_due)
    assert tick().queued == []
    monkeypatch.setattr(ThrottleGate, "prepare", original)
    assert tick().queued == [first.pk]


def test_a_rule_names_the_group_not_renamed_objects(project, owner):
    from apps.configuration.gates import scope_value

    Datasource.objects.create(project=project, name="warehouse", kind="sqlite", path="/tmp/w")
    made = rule(kind="datasource", value="acme.warehouse")
    Datasource.objects.filter(name="warehouse").update(name="lake")
    made.refresh_from_db()
    assert scope_value(made) == "acme.lake"
    node = node_create(project, "q", owner=owner, type="sql", datasource="lake")
    first, second = due(node, 2, 1)
    assert tick().queued == [first.pk]
    assert state(second) == ("pending", "throttled")


def test_the_claim_reads_are_bounded_with_rules_in_force(
    project, owner, django_assert_max_num_queries
):
    """Rules add a fixed number of reads to a pass, not one per instance or rule."""
    ResourceGroup.objects.create(name="g2", max_concurrency=100)
    a = node_create(project, "a", owner=owner)
    b = node_create(project, "b", owner=owner, resource_group="g2", type="shell")
    for n in range(30):
        instance_create(a, NOW - datetime.timedelta(minutes=n + 1))
        instance_create(b, NOW - datetime.timedelta(minutes=n + 1))
    ResourceGroup.objects.filter(name="default").update(max_concurrency=100)
    for n in range(8):
        rule(f"p{n}", most=1000)
        rule(f"t{n}", kind="node_type", value="shell", most=1000)
    with django_assert_max_num_queries(60):
        assert len(tick().queued) == 60


# --- several dispatchers at once -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_over_200_instances_never_exceed_a_rule_of_5(project, owner):
    """Two dispatchers in threads start 200 instances under a project rule of 5 while a
    third thread finishes what was started; a fourth samples the slots in use: never
    more than 5, and every instance runs once."""
    ResourceGroup.objects.update_or_create(name="default", defaults={"max_concurrency": 1000})
    ResourceGroup.objects.create(name="second", max_concurrency=1000)
    a = node_create(project, "a", owner=owner)
    b = node_create(project, "b", owner=owner, resource_group="second")
    base = timezone.now() - datetime.timedelta(days=1)
    Instance.objects.bulk_create(
        [
            Instance(
                project=project,
                node=node,
                version=node.current_version,
                kind="recurring",
                biz_date=base.date(),
                scheduled_at=base + datetime.timedelta(seconds=i),
                resource_group=node.resource_group,
            )
            for i in range(100)
            for node in (a, b)
        ]
    )
    rule(most=5)
    handed: list[int] = []
    samples: list[int] = []
    lock = threading.Lock()
    done = threading.Event()
    errors: list[BaseException] = []

    def enqueue(group, ids):
        with lock:
            handed.extend(ids)

    def dispatch():
        try:
            while not done.is_set():
                dispatcher.tick(enqueue=enqueue)
        except BaseException as exc:
            errors.append(exc)
            done.set()
        finally:
            connection.close()

    def finish():
        try:
            while not done.is_set():
                active = list(
                    Instance.objects.filter(state="queued").values_list("id", flat=True)[:3]
                )
                Instance.objects.filter(pk__in=active, state="queued").update(
                    state="succeeded", finished_at=timezone.now()
                )
                if Instance.objects.filter(state="succeeded").count() == 200:
                    done.set()
                time.sleep(0.002)
        except BaseException as exc:
            errors.append(exc)
            done.set()
        finally:
            connection.close()

    def sample():
        try:
            while not done.is_set():
                samples.append(Instance.objects.filter(state__in=["queued", "running"]).count())
        finally:
            connection.close()

    threads = [threading.Thread(target=f) for f in (dispatch, dispatch, finish, sample)]
    for thread in threads:
        thread.start()
    done.wait(timeout=120)
    done.set()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert Instance.objects.filter(state="succeeded").count() == 200
    assert sorted(handed) == sorted(Instance.objects.values_list("id", flat=True))
    assert len(samples) > 50
    assert max(samples) <= 5


@pytest.mark.django_db(transaction=True)
def test_racing_dispatchers_fill_a_rule_exactly(project, owner):
    ResourceGroup.objects.update_or_create(name="default", defaults={"max_concurrency": 1000})
    ResourceGroup.objects.create(name="g2", max_concurrency=1000)
    ResourceGroup.objects.create(name="g3", max_concurrency=1000)
    nodes = [
        node_create(project, f"n{g}", owner=owner, resource_group=g)
        for g in ("default", "g2", "g3")
    ]
    base = timezone.now() - datetime.timedelta(days=1)
    for node in nodes:
        for i in range(20):
            instance_create(node, base + datetime.timedelta(seconds=i))
    rule(most=7)
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
