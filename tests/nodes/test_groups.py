"""Node groups: the `group` a node is published with (the pipeline file's name through
the CLI), the group list and detail, and pausing or resuming a whole group through the
API and the CLI, with the roles and the operation log."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.audit.models import OperationLog
from apps.instances.models import Instance
from apps.nodes.models import Node
from apps.nodes.operations import node_offline, node_pause
from apps.nodes.specs import spec_hash
from tests.factories import instance_create, node_create

from .helpers import fields_of, publish, publish_errors, spec


def opscenter(*args) -> str:
    out = StringIO()
    call_command("opscenter", *args, stdout=out)
    return out.getvalue()


def post(client, url: str, body: dict | None = None):
    return client.post(url, body, content_type="application/json")


@pytest.fixture
def sales(project, users):
    """Group "sales" of acme: extract -> load -> report, and "misc" with one node."""
    publish(
        project,
        users["alice"],
        spec("extract", group="sales"),
        spec("load", group="sales", upstream=["extract"]),
        spec("report", group="sales", upstream=["load"]),
        spec("cleanup", group="misc"),
    )
    return {n.name: n for n in Node.objects.filter(project=project)}


# --- publishing with a group --------------------------------------------------------------


def test_publish_stores_the_group_in_the_spec_and_on_the_node(project, users):
    publish(project, users["alice"], spec("a", group=" sales_daily "), spec("b"))
    a, b = Node.objects.get(name="a"), Node.objects.get(name="b")
    assert (a.group, a.current_version.spec["group"]) == ("sales_daily", "sales_daily")
    # Without a group the spec has no group key: specs published before groups existed
    # keep their hash.
    assert (b.group, "group" in b.current_version.spec) == ("", False)


def test_a_node_published_before_groups_is_unchanged_when_republished(project, users):
    old = node_create(project, "legacy", owner=users["alice"])  # a spec without the key
    assert "group" not in old.current_version.spec
    republished = {
        key: value
        for key, value in old.current_version.spec.items()
        if key not in ("name", "upstream")
    }
    result = publish(project, users["alice"], {"name": "legacy", **republished})
    assert result.unchanged == ["legacy"]
    assert old.current_version.spec_hash == spec_hash(old.current_version.spec)


def test_moving_a_node_to_another_group_is_a_new_version(project, users):
    publish(project, users["alice"], spec("a", group="one"))
    result = publish(project, users["alice"], spec("a", group="two"))
    assert result.updated == ["a"]
    node = Node.objects.get(name="a")
    assert (node.group, node.version) == ("two", 2)
    # Through the API the group is whatever the spec says: none, when it names none.
    publish(project, users["alice"], spec("a"))
    node.refresh_from_db()
    assert (node.group, node.version) == ("", 3)
    assert publish(project, users["alice"], spec("a", group="")).unchanged == ["a"]


@pytest.mark.parametrize(
    "value, message",
    [
        (7, "must be a group name (a string), not a number"),
        (["sales"], "must be a group name (a string), not a list"),
        ("sales daily", "is not a group name"),
        ("../etc", "is not a group name"),
        ("x" * 101, "at most 100"),
    ],
)
def test_a_bad_group_is_refused_naming_the_field(project, users, value, message):
    errors = publish_errors(project, users["alice"], spec("a", group=value), spec("b"))
    assert fields_of(errors) == {("a", "group")}
    assert message in errors[0]["message"]
    assert not Node.objects.exists()


def test_the_api_refuses_a_bad_group_with_422(api_as, project):
    response = post(
        api_as("alice"),
        "/api/projects/acme/publish",
        {"nodes": [spec("a", group="no spaces please")]},
    )
    assert response.status_code == 422
    assert [(e["node"], e["field"]) for e in response.json()["errors"]] == [("a", "group")]
    assert not Node.objects.exists()


def test_api_publish_group_and_the_node_list_filter(api_as, project):
    client = api_as("alice")
    response = post(
        client,
        "/api/projects/acme/publish",
        {"nodes": [spec("a", group="sales"), spec("b", group="sales"), spec("c")]},
    )
    assert response.status_code == 200, response.json()
    items = client.get("/api/nodes?group=sales").json()["items"]
    assert [(i["name"], i["group"]) for i in items] == [("a", "sales"), ("b", "sales")]
    assert client.get("/api/nodes?group=nothing").json()["items"] == []
    detail = client.get(f"/api/nodes/{items[0]['id']}").json()
    assert detail["group"] == "sales" and detail["spec"]["group"] == "sales"


# --- the CLI: the file's name is the group ------------------------------------------------


def test_cli_publish_puts_a_file_in_the_group_of_its_name(project, users, tmp_path):
    path = tmp_path / "sales_daily.yaml"
    path.write_text(
        "- {name: extract, type: virtual, schedule: '0 2 * * *'}\n"
        "- {name: load, type: virtual, schedule: '0 3 * * *', upstream: [extract]}\n"
        "- {name: audit, type: virtual, schedule: '0 4 * * *', group: checks}\n"
        "- {name: loose, type: virtual, schedule: '0 4 * * *', group: ''}\n"
    )
    out = opscenter("publish", str(path), "--project", "acme")
    assert "created 4" in out
    assert dict(Node.objects.values_list("name", "group")) == {
        "extract": "sales_daily",
        "load": "sales_daily",
        "audit": "checks",  # the spec says otherwise
        "loose": "",  # ... even when it says none
    }
    # Published again from the same file: nothing changed.
    assert "unchanged 4" in opscenter("publish", str(path), "--project", "acme")


def test_cli_publish_group_option(project, users, tmp_path):
    path = tmp_path / "nodes.json"
    path.write_text(json.dumps([spec("a"), spec("b", group="own")]))
    opscenter("publish", str(path), "--project", "acme", "--group", "night")
    assert dict(Node.objects.values_list("name", "group")) == {"a": "night", "b": "own"}
    opscenter("publish", str(path), "--project", "acme", "--group", "")
    assert dict(Node.objects.values_list("name", "group")) == {"a": "", "b": "own"}
    with pytest.raises(CommandError, match="--group: 'bad name' is not a group name"):
        opscenter("publish", str(path), "--project", "acme", "--group", "bad name")


def test_cli_publish_a_file_whose_name_is_no_group_name(project, users, tmp_path):
    path = tmp_path / "sales daily (copy).yaml"
    path.write_text("- {name: a, type: virtual, schedule: '0 2 * * *'}\n")
    with pytest.raises(CommandError, match="its name cannot be the group of its nodes"):
        opscenter("publish", str(path), "--project", "acme")
    assert not Node.objects.exists()
    # Every spec naming its group, the file's name does not matter.
    path.write_text("- {name: a, type: virtual, schedule: '0 2 * * *', group: ok}\n")
    opscenter("publish", str(path), "--project", "acme")
    assert Node.objects.get(name="a").group == "ok"


# --- reading groups ----------------------------------------------------------------------


def test_group_list_counts_and_visibility(api_as, sales, users):
    node_pause(node=sales["load"], by=users["olga"], source="api")
    node_offline(node=sales["cleanup"], by=users["olga"], source="api")
    body = api_as("vera").get("/api/node-groups").json()
    assert body == {
        "items": [
            {"project": "acme", "name": "misc", "nodes": 1, "paused": 0, "offline": 1},
            {"project": "acme", "name": "sales", "nodes": 3, "paused": 1, "offline": 0},
        ],
        "next_cursor": None,
    }
    assert api_as("vera").get("/api/node-groups?project=beta").json()["items"] == []
    assert api_as("stranger").get("/api/node-groups").json()["items"] == []


def test_group_list_pages_by_cursor(api_as, sales):
    client = api_as("vera")
    first = client.get("/api/node-groups?limit=1").json()
    assert [g["name"] for g in first["items"]] == ["misc"] and first["next_cursor"]
    second = client.get(f"/api/node-groups?limit=1&cursor={first['next_cursor']}").json()
    assert [g["name"] for g in second["items"]] == ["sales"]
    assert second["next_cursor"] is None
    bad = client.get("/api/node-groups?cursor=nonsense")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"
    assert client.get("/api/node-groups?limit=0").status_code == 422


def test_group_detail(api_as, sales):
    body = api_as("vera").get("/api/node-groups/acme/sales").json()
    assert body == {
        "project": "acme",
        "name": "sales",
        "nodes": 3,
        "paused": 0,
        "offline": 0,
        "node_ids": [sales["extract"].id, sales["load"].id, sales["report"].id],
    }
    assert api_as("vera").get("/api/node-groups/acme/nothing").status_code == 404
    assert api_as("stranger").get("/api/node-groups/acme/sales").status_code == 404


# --- pausing and resuming a group --------------------------------------------------------


def test_api_pause_and_resume_a_group(api_as, sales, users):
    node_pause(node=sales["load"], by=users["olga"], source="api")
    OperationLog.objects.all().delete()
    client = api_as("olga")
    response = post(client, "/api/node-groups/acme/sales/pause")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "project": "acme",
        "group": "sales",
        "results": [
            {"id": sales["extract"].id, "ok": True, "state": "paused", "message": "paused"},
            {"id": sales["load"].id, "ok": True, "state": "paused", "message": "already paused"},
            {"id": sales["report"].id, "ok": True, "state": "paused", "message": "paused"},
        ],
    }
    paused = dict(Node.objects.values_list("name", "paused"))
    assert paused == {"extract": True, "load": True, "report": True, "cleanup": False}
    # One group operation, and one node operation on each node it paused.
    group_row = OperationLog.objects.get(object_type="node_group")
    assert (group_row.action, group_row.object_id, group_row.source, group_row.username) == (
        "group_pause",
        "acme/sales",
        "api",
        "olga",
    )
    assert group_row.detail == {
        "group": "sales",
        "env": "",
        "changed": ["acme.extract", "acme.report"],
        "unchanged": ["acme.load"],
        "refused": [],
    }
    node_rows = OperationLog.objects.filter(object_type="node").order_by("object_id")
    assert [(r.action, r.object_id, r.detail) for r in node_rows] == [
        ("node_pause", str(sales["extract"].id), {"paused": True, "group": "sales"}),
        ("node_pause", str(sales["report"].id), {"paused": True, "group": "sales"}),
    ]

    again = post(client, "/api/node-groups/acme/sales/pause")
    assert again.status_code == 409
    assert again.json()["detail"] == (
        "node group sales of acme: every online node is already paused"
    )

    response = post(client, "/api/node-groups/acme/sales/resume", {"env": "prod"})
    assert response.status_code == 200
    assert [r["message"] for r in response.json()["results"]] == ["resumed"] * 3
    assert not Node.objects.filter(paused=True).exists()
    assert post(client, "/api/node-groups/acme/sales/resume").status_code == 409


def test_resuming_a_group_releases_its_frozen_instances(
    api_as, sales, django_capture_on_commit_callbacks
):
    import datetime

    at = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)
    client = api_as("olga")
    post(client, "/api/node-groups/acme/sales/pause")
    waiting = instance_create(Node.objects.get(name="extract"), at)
    with django_capture_on_commit_callbacks(execute=True):
        post(client, "/api/node-groups/acme/sales/resume")
    assert Instance.objects.get(pk=waiting.pk).wait_reason != "frozen"


def test_a_group_operation_leaves_offline_nodes_alone(api_as, sales, users):
    node_offline(node=sales["report"], by=users["olga"], source="api")
    results = post(api_as("olga"), "/api/node-groups/acme/sales/pause").json()["results"]
    assert [r["id"] for r in results] == [sales["extract"].id, sales["load"].id]
    assert not Node.objects.get(name="report").paused


def test_roles_for_a_group_operation(api_as, sales):
    refused = post(api_as("vera"), "/api/node-groups/acme/sales/pause")
    assert refused.status_code == 403
    assert post(api_as("dave"), "/api/node-groups/acme/sales/pause").status_code == 403
    assert post(api_as("stranger"), "/api/node-groups/acme/sales/pause").status_code == 404
    assert post(api_as("olga"), "/api/node-groups/acme/nothing/pause").status_code == 404
    assert not Node.objects.filter(paused=True).exists()
    record = OperationLog.objects.filter(object_type="node_group").first()
    assert (record.username, record.action, record.result) == ("dave", "group_pause", "refused")
    assert not OperationLog.objects.filter(object_type="node").exists()


def test_a_group_operation_refuses_bad_input(api_as, sales):
    client = api_as("olga")
    bad_env = post(client, "/api/node-groups/acme/sales/pause", {"env": "staging"})
    assert bad_env.status_code == 422
    assert bad_env.json()["errors"] == [{"field": "env", "message": "one of dev, prod"}]
    unknown = post(client, "/api/node-groups/acme/sales/pause", {"envs": "prod"})
    assert unknown.status_code == 422
    assert not Node.objects.filter(paused=True).exists()


def test_a_dev_group_is_operated_by_developers(api_as, project, users):
    project.env_mode = "dev_prod"
    project.save()
    publish(project, users["dave"], spec("try", group="lab"), env="dev")
    publish(project, users["olga"], spec("try", group="lab"), env="prod")
    client = api_as("dave")
    # The group has a prod node too: a developer may not pause it as a whole ...
    assert post(client, "/api/node-groups/acme/lab/pause").status_code == 403
    # ... but may pause its dev nodes.
    response = post(client, "/api/node-groups/acme/lab/pause", {"env": "dev"})
    assert response.status_code == 200
    assert dict(Node.objects.values_list("env", "paused")) == {"dev": True, "prod": False}


# --- the CLI -------------------------------------------------------------------------------


def test_cli_group_pause_resume_and_list(sales, users):
    out = opscenter("group", "pause", "sales", "--project", "acme", "--as", "olga")
    assert "extract: paused" in out and "report: paused" in out
    assert "group sales of acme: 3 paused, 0 left as they were, 0 refused" in out
    assert Node.objects.filter(paused=True).count() == 3
    assert OperationLog.objects.get(object_type="node_group").source == "cli"

    listed = opscenter("group", "list", "--project", "acme", "--as", "vera")
    assert "acme/sales: 3 nodes, 3 paused, 0 offline" in listed
    assert "acme/misc: 1 nodes, 0 paused, 0 offline" in listed and "2 groups" in listed

    with pytest.raises(CommandError, match="every online node is already paused"):
        opscenter("group", "pause", "sales", "--project", "acme")
    out = opscenter("group", "resume", "sales", "--project", "acme")
    assert "group sales of acme: 3 resumed" in out
    assert not Node.objects.filter(paused=True).exists()


def test_cli_group_refusals(sales, users):
    with pytest.raises(CommandError, match="operator"):
        opscenter("group", "pause", "sales", "--project", "acme", "--as", "vera")
    with pytest.raises(CommandError, match="project 'acme' not found"):
        opscenter("group", "pause", "sales", "--project", "acme", "--as", "stranger")
    with pytest.raises(CommandError, match="no node group 'nothing'"):
        opscenter("group", "pause", "nothing", "--project", "acme")
    with pytest.raises(CommandError, match="name the GROUP and its --project"):
        opscenter("group", "resume", "sales")
    assert not Node.objects.filter(paused=True).exists()
