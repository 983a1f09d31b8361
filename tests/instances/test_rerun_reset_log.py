"""A rerun with downstream leaves a row in the operation log of every instance it resets,
naming the rerun instance and the operator, on the page and in the API."""

import datetime

import pytest

from apps.audit.models import OperationLog
from apps.instances import operations as ops
from apps.instances.models import Instance
from apps.projects.models import Membership, Project
from tests.factories import instance_create, node_create

SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)


def finished(node, state: str, upstream=()) -> Instance:
    return instance_create(
        node,
        SCHEDULED,
        upstream=upstream,
        state=state,
        attempt_count=1,
        started_at=SCHEDULED,
        finished_at=SCHEDULED + datetime.timedelta(minutes=3),
    )


@pytest.fixture
def chain(project, users):
    """root(failed) -> a(succeeded) -> b(failed); a -> p(pending), which is not reset."""
    alice = users["alice"]
    root_node = node_create(project, "root", owner=alice)
    a_node = node_create(project, "a", owner=alice, upstream=[root_node])
    b_node = node_create(project, "b", owner=alice, upstream=[a_node])
    p_node = node_create(project, "p", owner=alice, upstream=[a_node])
    root = finished(root_node, "failed")
    a = finished(a_node, "succeeded", [root])
    b = finished(b_node, "failed", [a])
    p = instance_create(p_node, SCHEDULED, upstream=[a], state="pending")
    return {"root": root, "a": a, "b": b, "p": p}


def log_of(instance) -> list[OperationLog]:
    return list(OperationLog.objects.filter(object_type="instance", object_id=str(instance.pk)))


def test_every_reset_instance_gets_its_own_row(chain, users):
    root = chain["root"]
    ops.instance_rerun(instance=root, by=users["olga"], source="api", downstream=True)

    for name, from_state in (("a", "succeeded"), ("b", "failed")):
        [row] = log_of(chain[name])
        assert (row.action, row.result, row.source) == ("reset_by_rerun", "ok", "api")
        assert (row.user, row.username, row.project_id) == (
            users["olga"],
            "olga",
            chain[name].project_id,
        )
        assert row.detail == {"rerun_of": root.pk, "from_state": from_state}
        assert row.message == f"reset by the rerun of instance {root.pk} by olga"
    assert log_of(chain["p"]) == []  # unfinished: not reset, nothing recorded
    [rerun] = log_of(root)
    assert rerun.action == "rerun"
    assert rerun.detail["reset_downstream"] == sorted([chain["a"].pk, chain["b"].pk])


def test_the_rows_are_written_in_bulk(chain, users, django_assert_max_num_queries):
    """The reset rows cost the same few queries for 2 instances as for 60."""
    project = chain["root"].project
    alice = users["alice"]
    parent = chain["b"]
    for index in range(60):
        node = node_create(project, f"leaf{index}", owner=alice, upstream=[parent.node])
        finished(node, "succeeded", [parent])
    root = chain["root"]
    with django_assert_max_num_queries(60):
        ops.instance_rerun(instance=root, by=users["olga"], source="ui", downstream=True)
    assert (
        OperationLog.objects.filter(action="reset_by_rerun", detail__rerun_of=root.pk).count() == 62
    )


def test_rows_belong_to_the_project_of_each_reset_instance(project, users):
    other = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    Membership.objects.create(project=other, user=users["olga"], role="operator")
    alice = users["alice"]
    root_node = node_create(project, "root", owner=alice)
    child_node = node_create(other, "child", owner=alice, upstream=[root_node])
    root = finished(root_node, "failed")
    child = finished(child_node, "succeeded", [root])
    ops.instance_rerun(instance=root, by=users["olga"], source="cli", downstream=True)
    [row] = log_of(child)
    assert (row.project_id, row.source) == (other.pk, "cli")


def test_a_refused_rerun_resets_and_records_nothing_downstream(chain, users):
    with pytest.raises(Exception, match="operator"):
        ops.instance_rerun(instance=chain["root"], by=users["vera"], source="api", downstream=True)
    assert log_of(chain["a"]) == [] and log_of(chain["b"]) == []


def test_the_api_lists_the_reset_row(chain, users, api_as):
    root = chain["root"]
    client = api_as("olga")
    response = client.post(
        f"/api/instances/{root.pk}/rerun", {"downstream": True}, content_type="application/json"
    )
    assert response.status_code == 200, response.json()
    items = client.get(f"/api/instances/{chain['b'].pk}/operations").json()["items"]
    assert [(i["action"], i["username"], i["detail"]) for i in items] == [
        ("reset_by_rerun", "olga", {"rerun_of": root.pk, "from_state": "failed"})
    ]
    assert items[0]["message"] == f"reset by the rerun of instance {root.pk} by olga"


def test_the_instance_page_links_to_the_rerun_instance(chain, users, client):
    root = chain["root"]
    ops.instance_rerun(instance=root, by=users["olga"], source="ui", downstream=True)
    client.force_login(users["vera"])
    page = client.get(f"/instances/{chain['a'].pk}/").content.decode()
    assert 'data-operation="reset_by_rerun"' in page
    assert f'<a href="/instances/{root.pk}/" data-rerun-of>instance {root.pk}</a>' in page
    panel = client.get(f"/instances/{chain['a'].pk}/operations").content.decode()
    assert f'href="/instances/{root.pk}/" data-rerun-of' in panel
