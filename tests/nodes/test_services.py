import datetime
import sys
import types

import pytest
import time_machine

from apps.audit.models import OperationLog
from apps.core.errors import NotFound, PermissionDenied, ValidationFailed
from apps.nodes.models import Node, NodeDependency, NodeVersion
from apps.projects.models import Membership, Project
from tests.factories import node_create

from .helpers import publish, publish_errors, spec


@pytest.fixture
def dave(users):
    return users["dave"]


def snapshot():
    """Everything a publish may write, to prove a refused one wrote nothing."""
    return (
        sorted(Node.objects.values_list("id", "name", "cron", "current_version_id", "updated_at")),
        sorted(NodeVersion.objects.values_list("id", "node_id", "number", "spec_hash")),
        sorted(NodeDependency.objects.values_list("node_id", "upstream_id")),
    )


def test_new_nodes_get_version_one_and_their_graph(project, dave):
    moment = datetime.datetime(2026, 11, 21, 8, 0, tzinfo=datetime.UTC)
    with time_machine.travel(moment, tick=False):
        result = publish(
            project,
            dave,
            spec("a"),
            spec(
                "b",
                type="shell",
                content="echo b",
                upstream=["a"],
                priority=5,
                schedule={"cron": "30 * * * *"},
                self_dependent=True,
                paused=True,
                description="hourly",
            ),
            note="first",
        )
    assert (result.created, result.updated, result.unchanged) == (["a", "b"], [], [])
    a, b = Node.objects.get(name="a"), Node.objects.get(name="b")
    version = b.current_version
    assert (version.number, version.note, version.published_by) == (1, "first", dave)
    assert version.published_at == moment
    assert version.upstream_ids == [a.id]
    assert (b.type, b.schedule_type, b.cron, b.priority) == ("shell", "recurring", "30 * * * *", 5)
    assert (b.self_dependent, b.paused, b.description, b.owner) == (True, True, "hourly", dave)
    assert b.status == "online" and b.env == "prod"
    assert list(NodeDependency.objects.values_list("node_id", "upstream_id")) == [(b.id, a.id)]


def test_unchanged_spec_gets_no_new_version(project, dave, users):
    publish(project, dave, spec("a"), spec("b", upstream=["a"]))
    before = snapshot()
    # Same specs, written differently, by another developer: still the same specs.
    result = publish(
        project,
        users["alice"],
        spec("a", schedule="0  2 * * *", owner="dave"),
        spec("b", upstream=["acme.a"], priority=3),
    )
    assert (result.created, result.updated, result.unchanged) == ([], [], ["a", "b"])
    assert snapshot() == before


def test_changed_spec_gets_a_new_version_and_mirrors(project, dave):
    publish(project, dave, spec("a"), spec("b"), spec("c", upstream=["a"]))
    result = publish(project, dave, spec("c", upstream=["b"], schedule="0 5 * * *"), spec("a"))
    assert (result.created, result.updated, result.unchanged) == ([], ["c"], ["a"])
    c = Node.objects.get(name="c")
    assert c.version == 2 and c.cron == "0 5 * * *"
    assert list(c.versions.order_by("number").values_list("number", flat=True)) == [1, 2]
    assert c.versions.get(number=1).spec["schedule"]["cron"] == "0 2 * * *"  # history kept
    b = Node.objects.get(name="b")
    assert c.current_version.upstream_ids == [b.id]
    assert list(NodeDependency.objects.filter(node=c).values_list("upstream_id", flat=True)) == [
        b.id
    ]


def test_a_cycle_changes_nothing(project, dave):
    publish(project, dave, spec("a"), spec("b", upstream=["a"]))
    before = snapshot()
    with pytest.raises(ValidationFailed) as caught:
        publish(project, dave, spec("a", upstream=["c"]), spec("c", upstream=["b"]), spec("new"))
    assert "a -> c -> b -> a" in caught.value.errors[0]["message"]
    assert snapshot() == before
    assert not Node.objects.filter(name__in=["c", "new"]).exists()


def test_second_bad_node_keeps_the_first_out(project, dave):
    publish(project, dave, spec("a"))
    before = snapshot()
    errors = publish_errors(project, dave, spec("a", priority=1), spec("b", owner="nobody"))
    assert [(e["node"], e["field"]) for e in errors] == [("b", "owner")]
    assert snapshot() == before


def test_upstream_in_another_project(project, dave):
    other = Project.objects.create(code="beta", name="Beta")
    source = node_create(other, "orders", owner=dave)
    # dave cannot see beta: for him it does not exist.
    error = publish_errors(project, dave, spec("a", upstream=["beta.orders"]))[0]
    assert "unknown upstream 'beta.orders'" in error["message"]

    Membership.objects.create(project=other, user=dave, role="viewer")
    publish(project, dave, spec("a", upstream=["beta.orders"]))
    a = Node.objects.get(project=project, name="a")
    assert a.current_version.spec["upstream"] == ["beta.orders"]
    assert a.current_version.upstream_ids == [source.id]
    assert NodeDependency.objects.filter(node=a, upstream=source).exists()


def test_cross_project_upstream_of_a_dev_node_resolves_in_a_basic_projects_prod(project, dave):
    other = Project.objects.create(code="beta", name="Beta")
    Membership.objects.create(project=other, user=dave, role="viewer")
    source = node_create(other, "orders", owner=dave)
    Project.objects.filter(pk=project.pk).update(env_mode="dev_prod")
    project.refresh_from_db()
    publish(project, dave, spec("a", upstream=["beta.orders"]), env="dev")
    assert Node.objects.get(name="a", env="dev").current_version.upstream_ids == [source.id]


def test_dev_and_prod_are_separate(project, dave, users):
    Project.objects.filter(pk=project.pk).update(env_mode="dev_prod")
    project.refresh_from_db()
    publish(project, dave, spec("a"), env="dev")
    # "a" exists in dev only: prod does not see it.
    error = publish_errors(project, users["olga"], spec("b", upstream=["a"]))[0]
    assert "unknown upstream 'a'" in error["message"]
    assert publish(project, users["olga"], spec("a")).created == ["a"]
    assert Node.objects.filter(name="a").count() == 2


def test_permissions(project, users):
    with pytest.raises(PermissionDenied):
        publish(project, users["vera"], spec("a"))
    with pytest.raises(NotFound):
        publish(project, users["stranger"], spec("a"))
    assert publish(project, users["dave"], spec("a")).created == ["a"]


def test_dev_prod_projects_release_to_prod_through_operators(project, users):
    Project.objects.filter(pk=project.pk).update(env_mode="dev_prod")
    project.refresh_from_db()
    assert publish(project, users["dave"], spec("a"), env="dev").created == ["a"]
    with pytest.raises(PermissionDenied):
        publish(project, users["dave"], spec("a"), env="prod")
    assert publish(project, users["olga"], spec("a"), env="prod").created == ["a"]


def test_publishes_are_in_the_operation_log(project, dave, users):
    publish(project, dave, spec("a"), note="hello", source="cli")
    publish_errors(project, dave, spec("b", owner="nobody"))
    with pytest.raises(PermissionDenied):
        publish(project, users["vera"], spec("c"))
    ok, refused, denied = OperationLog.objects.filter(action="publish").order_by("id")
    assert (ok.result, ok.source, ok.object_type, ok.object_id, ok.user) == (
        "ok",
        "cli",
        "project",
        "acme",
        dave,
    )
    assert ok.detail["created"] == ["a"] and ok.detail["note"] == "hello" and ok.project == project
    assert refused.result == "refused" and refused.detail["errors"][0]["field"] == "owner"
    assert denied.result == "refused" and denied.username == "vera"


def test_an_operators_pause_survives_a_republish(project, dave):
    publish(project, dave, spec("a"))
    Node.objects.filter(name="a").update(paused=True)  # paused by an operator
    publish(project, dave, spec("a", priority=4))
    node = Node.objects.get(name="a")
    assert node.paused and node.priority == 4 and node.version == 2
    publish(project, dave, spec("a", priority=4, paused=True))
    publish(project, dave, spec("a", priority=4, paused=False))  # the spec says resume
    assert not Node.objects.get(name="a").paused


def test_owner_is_kept_when_not_given(project, dave, users):
    publish(project, dave, spec("a"))
    result = publish(project, users["alice"], spec("a"))
    assert result.unchanged == ["a"]
    assert Node.objects.get(name="a").owner == dave


def test_an_offline_node_published_again_comes_back(project, dave):
    publish(project, dave, spec("a"))
    Node.objects.filter(name="a").update(status="offline")
    result = publish(project, dave, spec("a"))
    assert result.updated == ["a"]
    node = Node.objects.get(name="a")
    assert node.status == "online" and node.version == 1


def test_immediate_projects_generate_the_rest_of_today(project, dave, monkeypatch):
    calls = []
    fake = types.ModuleType("apps.instances.generation")
    fake.generate_rest_of_today = lambda **kwargs: calls.append(kwargs)
    monkeypatch.setitem(sys.modules, "apps.instances.generation", fake)

    publish(project, dave, spec("a"))
    assert calls == []  # t_plus_1: nothing until the nightly generation

    Project.objects.filter(pk=project.pk).update(generation_mode="immediate")
    project.refresh_from_db()
    publish(project, dave, spec("a", priority=5), spec("b"), spec("c"))
    publish(project, dave, spec("a", priority=5))  # unchanged: nothing to generate
    ids = dict(Node.objects.values_list("name", "id"))
    assert len(calls) == 1
    assert calls[0]["project"] == project
    assert sorted(calls[0]["node_ids"]) == sorted([ids["a"], ids["b"], ids["c"]])


def test_a_large_batch_takes_a_handful_of_queries(project, dave, django_assert_max_num_queries):
    specs = [spec("n0")] + [spec(f"n{i}", upstream=[f"n{i - 1}"]) for i in range(1, 400)]
    # A fixed few, whatever the batch size; SQLite splits each bulk write into batches
    # by its limit of variables per statement, so a column more may cost a batch more.
    with django_assert_max_num_queries(34):
        result = publish(project, dave, *specs)
    assert len(result.created) == 400
    assert NodeDependency.objects.count() == 399
    n399 = Node.objects.get(name="n399")
    assert n399.current_version.upstream_ids == [Node.objects.get(name="n398").id]
    # Republishing with every spec changed is just as cheap.
    specs = [{**s, "priority": 4} for s in specs]
    with django_assert_max_num_queries(34):
        result = publish(project, dave, *specs)
    assert len(result.updated) == 400
    assert NodeVersion.objects.filter(number=2).count() == 400


def test_immediate_generation_makes_the_rest_of_todays_instances(project, dave):
    from apps.instances.models import Instance

    Project.objects.filter(pk=project.pk).update(generation_mode="immediate")
    project.refresh_from_db()
    local_now = datetime.datetime(2026, 11, 21, 10, 55, tzinfo=project.tz)
    with time_machine.travel(local_now, tick=False):
        publish(project, dave, spec("hourly", schedule="0 * * * *"))
    times = sorted(
        t.astimezone(project.tz).hour
        for t in Instance.objects.filter(node__name="hourly").values_list("scheduled_at", flat=True)
    )
    # 11:00 is due in 5 minutes: too soon to be generated at publish.
    assert times == list(range(12, 24))
