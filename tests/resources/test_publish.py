"""NodeSpec `resources`: checked at publish, the versions current then pinned."""

import io

import pytest

from apps.core.errors import Conflict
from apps.nodes.models import Node, NodeVersion
from apps.nodes.specs import NodeSpec
from apps.resources.models import ResourcePin
from apps.resources.selectors import pinned_resources, resource_pins
from apps.resources.services import resource_delete, resource_upload
from tests.nodes.helpers import publish, publish_errors, spec
from tests.nodes.test_services import snapshot


def upload(project, user, name, content: bytes):
    return resource_upload(project=project, name=name, fileobj=io.BytesIO(content), user=user)


def job(name="load", **fields):
    return spec(
        name, **{"type": "shell", "content": "cat ref.csv", "resources": ["ref.csv"], **fields}
    )


def test_publish_pins_the_latest_versions(project, users):
    dave = users["dave"]
    upload(project, dave, "ref.csv", b"one\n")
    v2 = upload(project, dave, "ref.csv", b"two\n")
    other = upload(project, dave, "tool.py", b"print(1)\n")
    publish(project, dave, job(resources=["tool.py", "ref.csv"]))
    version = Node.objects.get(name="load").current_version
    assert version.spec["resources"] == ["tool.py", "ref.csv"]
    assert NodeSpec.from_spec(version.spec).resources == ("tool.py", "ref.csv")
    assert pinned_resources(version) == [v2, other]
    assert [(p.name, p.number) for p in resource_pins(version)] == [("ref.csv", 2), ("tool.py", 1)]


def test_a_newer_upload_changes_no_node_version_until_republished(project, users):
    dave = users["dave"]
    v1 = upload(project, dave, "ref.csv", b"one\n")
    publish(project, dave, job())
    first = Node.objects.get(name="load").current_version
    v2 = upload(project, dave, "ref.csv", b"two\n")
    assert pinned_resources(first) == [v1]

    # The same spec, published again, now pins the newer file: a new node version.
    result = publish(project, dave, job())
    assert result.updated == ["load"]
    second = Node.objects.get(name="load").current_version
    assert second.number == 2 and pinned_resources(second) == [v2]
    assert pinned_resources(NodeVersion.objects.get(pk=first.pk)) == [v1]
    # Nothing new since: unchanged.
    assert publish(project, dave, job()).unchanged == ["load"]
    # The same file uploaded again is no new version, so still unchanged.
    upload(project, dave, "ref.csv", b"two\n")
    assert publish(project, dave, job()).unchanged == ["load"]


def test_nodes_without_resources_keep_their_hash(project, users):
    publish(project, users["dave"], spec("plain"))
    before = Node.objects.get(name="plain").current_version.spec_hash
    upload(project, users["dave"], "ref.csv", b"x")
    assert publish(project, users["dave"], spec("plain")).unchanged == ["plain"]
    assert Node.objects.get(name="plain").current_version.spec_hash == before
    assert not ResourcePin.objects.exists()


def test_an_unknown_resource_is_named_with_every_other_error(project, users):
    dave = users["dave"]
    upload(project, dave, "ref.csv", b"x")
    publish(project, dave, spec("keep"))
    before = snapshot()
    errors = publish_errors(
        project,
        dave,
        job("a", resources=["ref.csv", "missing.csv"]),
        spec("b", schedule={"cron": "not a cron"}),
        job("c", resources=["ref.csv", "ref.csv"]),
        job("f", resources=["../etc"]),
        spec("d", resources="ref.csv"),
        spec("e", resources={"x": 1}),
    )
    found = {(e["node"], e["field"]): e["message"] for e in errors}
    assert "unknown resource 'missing.csv'" in found[("a", "resources[1]")]
    assert ("b", "schedule.cron") in found
    assert "listed twice" in found[("c", "resources[1]")]
    assert "unknown resource '../etc'" in found[("f", "resources[0]")]
    assert ("d", "resources") not in found  # one name alone is a list of one
    assert "must be a list" in found[("e", "resources")]
    assert snapshot() == before
    assert not ResourcePin.objects.exists()


def test_another_projects_resource_is_unknown(project, users):
    from apps.projects.models import Membership, Project

    other = Project.objects.create(code="other", name="Other")
    Membership.objects.create(project=other, user=users["dave"], role="developer")
    upload(other, users["dave"], "ref.csv", b"x")
    errors = publish_errors(project, users["dave"], job())
    assert [(e["node"], e["field"]) for e in errors] == [("load", "resources[0]")]


def test_delete_is_refused_while_the_published_node_uses_it(project, users):
    upload(project, users["dave"], "ref.csv", b"x")
    publish(project, users["dave"], job())
    resource = project.resources.get(name="ref.csv")
    with pytest.raises(Conflict) as caught:
        resource_delete(resource=resource, user=users["alice"])
    assert caught.value.errors == [{"field": "name", "message": "used by acme.load"}]
    # Published without it, the resource may go.
    publish(project, users["dave"], spec("load", type="shell", content="echo"))
    resource_delete(resource=resource, user=users["alice"])
    assert not project.resources.exists()


def test_node_versions_show_their_pinned_resources(project, users, api_as, client):
    dave = users["dave"]
    upload(project, dave, "ref.csv", b"one")
    publish(project, dave, job())
    upload(project, dave, "ref.csv", b"two")
    publish(project, dave, job())
    node = Node.objects.get(name="load")
    versions = api_as("vera").get(f"/api/nodes/{node.pk}/versions").json()["items"]
    assert [(v["number"], v["resources"]) for v in versions] == [
        (2, [{"name": "ref.csv", "version": 2}]),
        (1, [{"name": "ref.csv", "version": 1}]),
    ]
    client.force_login(users["vera"])
    html = client.get(f"/nodes/{node.pk}/").content.decode()
    assert "ref.csv v2" in html and "ref.csv v1" in html
