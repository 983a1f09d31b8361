"""/api/resource-groups and /api/throttle-rules (SPEC 9, 12): list with live usage,
create, read, change (merged, then checked whole), delete; roles; every bad input
answers 4xx naming the field and changes nothing; every write is in the operation log."""

import datetime
import json

import pytest

from apps.audit.models import OperationLog
from apps.configuration.models import ResourceGroup, ThrottleRule
from apps.projects.models import Datasource, Membership, Project
from tests.factories import instance_create, node_create

NOW = datetime.datetime(2026, 11, 21, 10, 0, tzinfo=datetime.UTC)

GROUP_KEYS = {
    "id",
    "name",
    "description",
    "max_concurrency",
    "cpu_capacity",
    "memory_capacity_mb",
    "in_use",
    "queued",
    "running",
    "cpu_in_use",
    "memory_in_use_mb",
    "waiting",
    "nodes",
}
RULE_KEYS = {
    "id",
    "name",
    "scope_kind",
    "scope_value",
    "max_concurrency",
    "window_start",
    "window_end",
    "enabled",
    "project",
    "timezone",
    "in_force",
    "in_use",
    "throttled",
}


def post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def patch(client, url, body):
    return client.patch(url, json.dumps(body), content_type="application/json")


def fields_of(response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


@pytest.fixture
def beta(users):
    """Another project, alice not a member of it."""
    beta = Project.objects.create(code="beta", name="Beta")
    Membership.objects.create(project=beta, user=users["stranger"], role="admin")
    return beta


# --- resource groups -------------------------------------------------------------------


def test_a_superuser_creates_reads_changes_and_deletes_a_group(api_as, users):
    root = api_as("root")
    made = post(
        root,
        "/api/resource-groups",
        {"name": "etl", "description": "nightly", "max_concurrency": 4, "cpu_capacity": 8},
    )
    assert made.status_code == 201, made.content
    body = made.json()
    assert set(body) == GROUP_KEYS
    assert (body["name"], body["max_concurrency"], body["cpu_capacity"]) == ("etl", 4, 8.0)
    assert body["memory_capacity_mb"] is None and body["in_use"] == 0

    assert api_as("vera").get("/api/resource-groups/etl").json()["description"] == "nightly"
    listed = root.get("/api/resource-groups?limit=1")
    assert [g["name"] for g in listed.json()["items"]] == ["default"]
    following = root.get(f"/api/resource-groups?limit=1&cursor={listed.json()['next_cursor']}")
    assert [g["name"] for g in following.json()["items"]] == ["etl"]

    changed = patch(root, "/api/resource-groups/etl", {"max_concurrency": 6, "cpu_capacity": None})
    assert changed.status_code == 200, changed.content
    assert (changed.json()["max_concurrency"], changed.json()["cpu_capacity"]) == (6, None)

    assert root.delete("/api/resource-groups/etl").status_code == 204
    assert not ResourceGroup.objects.filter(name="etl").exists()
    actions = list(
        OperationLog.objects.filter(object_type="resource_group")
        .order_by("id")
        .values_list("action", "object_id", "result")
    )
    assert actions == [
        ("resource_group.create", "etl", "ok"),
        ("resource_group.update", "etl", "ok"),
        ("resource_group.delete", "etl", "ok"),
    ]
    update = OperationLog.objects.get(action="resource_group.update")
    assert update.detail == {"changed": {"max_concurrency": 6, "cpu_capacity": None}}


def test_a_group_answers_its_live_usage(api_as, project, users):
    ResourceGroup.objects.create(name="etl", max_concurrency=3, memory_capacity_mb=4096)
    node = node_create(project, "n", owner=users["alice"], resource_group="etl", memory_mb=1024)
    instance_create(node, NOW, state="running")
    instance_create(node, NOW + datetime.timedelta(hours=1), state="queued")
    instance_create(node, NOW + datetime.timedelta(hours=2), wait_reason="waiting_resources")
    body = api_as("vera").get("/api/resource-groups/etl").json()
    assert (body["in_use"], body["running"], body["queued"], body["waiting"]) == (2, 1, 1, 1)
    assert (body["memory_in_use_mb"], body["nodes"]) == (2048.0, 1)


def test_only_a_superuser_changes_groups_and_refusals_are_logged(api_as, project):
    alice = api_as("alice")  # a project admin, not a superuser
    refused = post(alice, "/api/resource-groups", {"name": "mine"})
    assert refused.status_code == 403
    assert "superuser" in refused.json()["detail"]
    assert patch(alice, "/api/resource-groups/default", {"max_concurrency": 1}).status_code == 403
    assert alice.delete("/api/resource-groups/default").status_code == 403
    assert not ResourceGroup.objects.filter(name="mine").exists()
    assert ResourceGroup.objects.get(name="default").max_concurrency != 1
    assert OperationLog.objects.filter(username="alice", result="refused").count() == 3


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "etl", "max_concurrency": 0}, "max_concurrency"),
        ({"name": "etl", "max_concurrency": -3}, "max_concurrency"),
        ({"name": "etl", "max_concurrency": "many"}, "max_concurrency"),
        ({"name": "etl", "cpu_capacity": 0}, "cpu_capacity"),
        ({"name": "etl", "memory_capacity_mb": 0}, "memory_capacity_mb"),
        ({"name": "has space"}, "name"),
        ({"name": ""}, "name"),
        ({"name": "default"}, "name"),
        ({"name": "new"}, "name"),
        ({"name": "etl", "colour": "red"}, "colour"),
    ],
)
def test_bad_group_input_answers_422_naming_the_field_and_changes_nothing(api_as, body, field):
    before = ResourceGroup.objects.count()
    response = post(api_as("root"), "/api/resource-groups", body)
    assert response.status_code == 422, response.content
    assert field in fields_of(response)
    assert ResourceGroup.objects.count() == before


def test_a_group_cannot_be_renamed_or_set_to_zero(api_as):
    root = api_as("root")
    ResourceGroup.objects.create(name="etl", max_concurrency=4)
    renamed = patch(root, "/api/resource-groups/etl", {"name": "elt"})
    assert renamed.status_code == 422 and fields_of(renamed) == ["name"]
    zero = patch(root, "/api/resource-groups/etl", {"max_concurrency": 0, "description": "x"})
    assert zero.status_code == 422 and fields_of(zero) == ["max_concurrency"]
    group = ResourceGroup.objects.get(name="etl")
    assert (group.max_concurrency, group.description) == (4, "")
    assert root.get("/api/resource-groups/nope").status_code == 404


def test_deleting_a_group_in_use_answers_409_naming_the_nodes_count(api_as, project, users):
    root = api_as("root")
    ResourceGroup.objects.create(name="etl", max_concurrency=4)
    for name in ("a", "b", "c"):
        node_create(project, name, owner=users["alice"], resource_group="etl")
    response = root.delete("/api/resource-groups/etl")
    assert response.status_code == 409
    assert "3 node(s) use it" in response.json()["detail"]
    assert ResourceGroup.objects.filter(name="etl").exists()
    record = OperationLog.objects.get(action="resource_group.delete")
    assert record.result == "refused" and "3 node(s)" in record.message

    default = root.delete("/api/resource-groups/default")
    assert default.status_code == 409 and "default" in default.json()["detail"]


def test_deleting_a_group_a_rule_names_is_refused(api_as):
    root = api_as("root")
    ResourceGroup.objects.create(name="etl", max_concurrency=4)
    made = post(
        root,
        "/api/throttle-rules",
        {
            "name": "etl-cap",
            "scope_kind": "resource_group",
            "scope_value": "etl",
            "max_concurrency": 2,
        },
    )
    assert made.status_code == 201
    response = root.delete("/api/resource-groups/etl")
    assert response.status_code == 409 and "'etl-cap'" in response.json()["detail"]


# --- throttling rules ------------------------------------------------------------------


def test_a_project_admin_creates_a_rule_for_the_project_and_members_read_it(api_as, project):
    alice = api_as("alice")
    made = post(
        alice,
        "/api/throttle-rules",
        {
            "name": "acme-night",
            "scope_kind": "project",
            "scope_value": "acme",
            "max_concurrency": 2,
            "window_start": "22:00",
            "window_end": "06:00",
        },
    )
    assert made.status_code == 201, made.content
    body = made.json()
    assert set(body) == RULE_KEYS
    assert body | {"id": 0} == {
        "id": 0,
        "name": "acme-night",
        "scope_kind": "project",
        "scope_value": "acme",
        "max_concurrency": 2,
        "window_start": "22:00",
        "window_end": "06:00",
        "enabled": True,
        "project": "acme",
        "timezone": "Asia/Shanghai",
        "in_force": body["in_force"],
        "in_use": 0,
        "throttled": 0,
    }
    rule = ThrottleRule.objects.get()
    assert rule.project == project and rule.window_start == datetime.time(22, 0)
    record = OperationLog.objects.get(action="throttle_rule.create")
    assert (record.project, record.object_id, record.result) == (project, str(rule.pk), "ok")

    vera = api_as("vera")
    assert vera.get(f"/api/throttle-rules/{rule.pk}").json()["name"] == "acme-night"
    assert [r["id"] for r in vera.get("/api/throttle-rules").json()["items"]] == [rule.pk]
    assert api_as("stranger").get(f"/api/throttle-rules/{rule.pk}").status_code == 404
    assert api_as("stranger").get("/api/throttle-rules").json()["items"] == []
    # A viewer may not change it; its admin may.
    assert patch(vera, f"/api/throttle-rules/{rule.pk}", {"enabled": False}).status_code == 403
    changed = patch(alice, f"/api/throttle-rules/{rule.pk}", {"enabled": False})
    assert changed.status_code == 200 and changed.json()["enabled"] is False
    assert changed.json()["in_force"] is False
    assert alice.delete(f"/api/throttle-rules/{rule.pk}").status_code == 204
    assert not ThrottleRule.objects.exists()


def test_global_rules_are_a_superusers_and_everyone_reads_them(api_as, project):
    body = {
        "name": "shells",
        "scope_kind": "node_type",
        "scope_value": "shell",
        "max_concurrency": 3,
    }
    refused = post(api_as("alice"), "/api/throttle-rules", body)
    assert refused.status_code == 403 and "superuser" in refused.json()["detail"]
    assert not ThrottleRule.objects.exists()
    made = post(api_as("root"), "/api/throttle-rules", body)
    assert made.status_code == 201
    assert made.json()["project"] is None and made.json()["timezone"] == "UTC"
    rule_id = made.json()["id"]
    assert api_as("stranger").get(f"/api/throttle-rules/{rule_id}").status_code == 200
    assert (
        patch(api_as("alice"), f"/api/throttle-rules/{rule_id}", {"max_concurrency": 9}).status_code
        == 403
    )
    assert api_as("alice").delete(f"/api/throttle-rules/{rule_id}").status_code == 403


def test_every_scope_kind_resolves_its_value(api_as, project):
    Datasource.objects.create(project=project, name="warehouse", kind="sqlite", path="/tmp/w")
    ResourceGroup.objects.create(name="etl", max_concurrency=4)
    root = api_as("root")
    for n, (kind, value) in enumerate(
        [
            ("resource_group", "etl"),
            ("project", "acme"),
            ("node_type", "python"),
            ("datasource", "acme.warehouse"),
        ]
    ):
        made = post(
            root,
            "/api/throttle-rules",
            {"name": f"r{n}", "scope_kind": kind, "scope_value": value, "max_concurrency": 1},
        )
        assert made.status_code == 201, made.content
        assert (made.json()["scope_kind"], made.json()["scope_value"]) == (kind, value)
    datasource_rule = ThrottleRule.objects.get(scope_kind="datasource")
    assert datasource_rule.datasource.name == "warehouse" and datasource_rule.project == project


@pytest.mark.parametrize(
    "change, field",
    [
        ({"scope_kind": "resource_group", "scope_value": "nope"}, "scope_value"),
        ({"scope_kind": "project", "scope_value": "nope"}, "scope_value"),
        ({"scope_kind": "node_type", "scope_value": "perl"}, "scope_value"),
        ({"scope_kind": "datasource", "scope_value": "acme.nope"}, "scope_value"),
        ({"scope_kind": "datasource", "scope_value": "acme"}, "scope_value"),
        ({"scope_kind": "planet", "scope_value": "acme"}, "scope_kind"),
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": -1}, "max_concurrency"),
        ({"window_start": "7:60", "window_end": "08:00"}, "window_start"),
        ({"window_start": "07:00", "window_end": "24:00"}, "window_end"),
        ({"window_start": "07:00"}, "window_end"),
        ({"window_end": "07:00"}, "window_start"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"burst": 3}, "burst"),
    ],
)
def test_bad_rule_input_answers_422_naming_the_field_and_changes_nothing(
    api_as, project, change, field
):
    body = {"name": "r", "scope_kind": "project", "scope_value": "acme", "max_concurrency": 1}
    response = post(api_as("root"), "/api/throttle-rules", {**body, **change})
    assert response.status_code == 422, response.content
    assert field in fields_of(response)
    assert not ThrottleRule.objects.exists()


def test_a_bad_change_to_a_rule_changes_nothing(api_as, project):
    root = api_as("root")
    made = post(
        root,
        "/api/throttle-rules",
        {"name": "r", "scope_kind": "project", "scope_value": "acme", "max_concurrency": 2},
    )
    rule_id = made.json()["id"]
    response = patch(
        root, f"/api/throttle-rules/{rule_id}", {"max_concurrency": 0, "window_start": "7:60"}
    )
    assert response.status_code == 422
    assert set(fields_of(response)) == {"max_concurrency", "window_start", "window_end"}
    rule = ThrottleRule.objects.get()
    assert (rule.max_concurrency, rule.window_start) == (2, None)
    taken = post(
        root,
        "/api/throttle-rules",
        {"name": "r", "scope_kind": "project", "scope_value": "acme", "max_concurrency": 2},
    )
    assert taken.status_code == 422 and fields_of(taken) == ["name"]


def test_an_admin_cannot_write_rules_for_another_project(api_as, project, beta):
    alice = api_as("alice")
    theirs = post(
        alice,
        "/api/throttle-rules",
        {"name": "r", "scope_kind": "project", "scope_value": "beta", "max_concurrency": 1},
    )
    # A project one is not a member of answers like one that does not exist.
    assert theirs.status_code == 422 and fields_of(theirs) == ["scope_value"]
    assert "beta" in theirs.json()["errors"][0]["message"]
    olga = post(
        api_as("olga"),  # an operator of acme: not its admin
        "/api/throttle-rules",
        {"name": "r", "scope_kind": "project", "scope_value": "acme", "max_concurrency": 1},
    )
    assert olga.status_code == 403
    mine = post(
        alice,
        "/api/throttle-rules",
        {"name": "r", "scope_kind": "project", "scope_value": "acme", "max_concurrency": 1},
    )
    # Moving one's rule to another project needs that project's admin role too.
    moved = patch(alice, f"/api/throttle-rules/{mine.json()['id']}", {"scope_value": "beta"})
    assert moved.status_code == 422
    assert ThrottleRule.objects.get().project == project
    assert not ThrottleRule.objects.filter(project=beta).exists()


def test_the_rule_list_answers_live_usage_and_filters(api_as, project, users):
    node = node_create(project, "n", owner=users["alice"], type="shell")
    instance_create(node, NOW, state="running")
    instance_create(node, NOW + datetime.timedelta(hours=1), wait_reason="throttled")
    root = api_as("root")
    post(
        root,
        "/api/throttle-rules",
        {"name": "shells", "scope_kind": "node_type", "scope_value": "shell", "max_concurrency": 1},
    )
    post(
        root,
        "/api/throttle-rules",
        {"name": "acme", "scope_kind": "project", "scope_value": "acme", "max_concurrency": 5},
    )
    items = root.get("/api/throttle-rules").json()["items"]
    assert [(r["name"], r["in_use"], r["throttled"]) for r in items] == [
        ("shells", 1, 1),
        ("acme", 1, 1),
    ]
    only_acme = root.get("/api/throttle-rules?project=acme").json()["items"]
    assert [r["name"] for r in only_acme] == ["acme"]
    by_kind = root.get("/api/throttle-rules?scope_kind=node_type").json()["items"]
    assert [r["name"] for r in by_kind] == ["shells"]
