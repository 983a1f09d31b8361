"""/api/field-rules: create, read, change (merged, then checked whole), delete; roles;
every bad input answers 422 naming the field and changes nothing; a rule's results."""

import datetime
import json

import pytest

from apps.audit.models import OperationLog
from apps.notifications.models import Channel
from apps.projects.models import Datasource, Membership, Project
from apps.quality.models import FieldRule, FieldRuleResult
from tests.factories import instance_create, node_create

from .builders import rule_make
from .conftest import SCHEDULED

RULE_KEYS = {
    "id",
    "project",
    "node",
    "node_name",
    "datasource",
    "table",
    "field",
    "where",
    "metric",
    "sql",
    "operator",
    "threshold",
    "threshold_high",
    "compare",
    "severity",
    "channels",
    "enabled",
    "description",
    "expectation",
    "created_at",
    "updated_at",
}


@pytest.fixture
def load(project, users):
    return node_create(project, "load_orders", owner=users["alice"], type="shell")


@pytest.fixture
def dev_load(project, users):
    return node_create(project, "load_orders", owner=users["alice"], type="shell", env="dev")


@pytest.fixture
def wh(project, tmp_path):
    return Datasource.objects.create(
        project=project, name="wh", kind="sqlite", path=str(tmp_path / "wh.db")
    )


@pytest.fixture
def beta(users, tmp_path):
    """Another project with its own node, datasource and channel; alice is not in it."""
    beta = Project.objects.create(code="beta", name="Beta")
    Membership.objects.create(project=beta, user=users["stranger"], role="admin")
    node = node_create(beta, "beta_load", owner=users["stranger"], type="shell")
    Datasource.objects.create(project=beta, name="beta_wh", kind="sqlite", path="/tmp/b.db")
    Channel.objects.create(project=beta, name="beta-hook", kind="webhook", config={"url": "x"})
    return beta, node


def post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def patch(client, url, body):
    return client.patch(url, json.dumps(body), content_type="application/json")


def fields_of(response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


def body_for(target, **changes) -> dict:
    body = {
        "project": "acme",
        "node": target.pk,
        "datasource": "wh",
        "table": "public.orders",
        "field": "email",
        "where": "ds = '${bizdate}'",
        "metric": "null_ratio",
        "operator": "<=",
        "threshold": 0.05,
        "compare": "value",
        "severity": "warn",
        "channels": [],
        "enabled": True,
    }
    body.update(changes)
    return body


def test_create_read_list_change_and_delete(api_as, load, wh, project):
    hook = Channel.objects.create(project=project, name="dq", kind="webhook", config={"url": "x"})
    admin = api_as("alice")
    response = post(admin, "/api/field-rules", body_for(load, channels=[hook.pk]))
    assert response.status_code == 201, response.json()
    rule = response.json()
    assert set(rule) == RULE_KEYS
    assert rule["project"] == "acme" and rule["node"] == load.pk
    assert rule["node_name"] == "load_orders" and rule["datasource"] == "wh"
    assert rule["threshold_high"] is None and rule["sql"] == "" and rule["channels"] == [hook.pk]
    assert rule["description"] == "null_ratio(email) of public.orders where ds = '${bizdate}'"
    assert rule["expectation"] == "<= 0.05"
    assert rule["created_at"].endswith("+08:00")

    viewer = api_as("vera")
    assert viewer.get(f"/api/field-rules/{rule['id']}").json() == rule
    listed = viewer.get("/api/field-rules?project=acme").json()
    assert [r["id"] for r in listed["items"]] == [rule["id"]] and listed["next_cursor"] is None
    assert viewer.get(f"/api/field-rules?node={load.pk + 1000}").json()["items"] == []

    changed = patch(
        admin,
        f"/api/field-rules/{rule['id']}",
        {"operator": "between", "threshold": 0, "threshold_high": 0.1, "project": "acme"},
    )
    assert changed.status_code == 200, changed.json()
    assert changed.json()["expectation"] == "between 0 and 0.1"
    assert changed.json()["table"] == "public.orders"  # kept
    log = OperationLog.objects.filter(object_type="field_rule").order_by("id")
    assert [e.action for e in log] == ["field_rule.create", "field_rule.update"]
    assert set(log[1].detail["changed"]) == {"operator", "threshold", "threshold_high"}

    assert admin.delete(f"/api/field-rules/{rule['id']}").status_code == 204
    assert not FieldRule.objects.exists()
    assert admin.get(f"/api/field-rules/{rule['id']}").status_code == 404


def test_roles_prod_needs_admin_dev_a_developer_members_read(
    api_as, load, dev_load, wh, users, beta
):
    assert post(api_as("dave"), "/api/field-rules", body_for(load)).status_code == 403
    assert post(api_as("olga"), "/api/field-rules", body_for(load)).status_code == 403
    assert post(api_as("vera"), "/api/field-rules", body_for(dev_load)).status_code == 403
    made = post(api_as("dave"), "/api/field-rules", body_for(dev_load))
    assert made.status_code == 201
    rule_id = made.json()["id"]
    # A developer may not move a dev rule onto a prod node.
    moved = patch(api_as("dave"), f"/api/field-rules/{rule_id}", {"node": load.pk})
    assert moved.status_code == 403
    assert FieldRule.objects.get(pk=rule_id).node_id == dev_load.pk
    refused = OperationLog.objects.filter(action="field_rule.update").get()
    assert refused.result == "refused"
    # Nobody outside the project sees it, or the project.
    stranger = api_as("stranger")
    assert stranger.get(f"/api/field-rules/{rule_id}").status_code == 404
    assert stranger.get("/api/field-rules").json()["items"] == []
    assert post(stranger, "/api/field-rules", body_for(load)).status_code == 404
    assert api_as("root").get(f"/api/field-rules/{rule_id}").status_code == 200


@pytest.mark.parametrize(
    "changes,field,message",
    [
        ({"table": 'orders"; DROP TABLE orders; --'}, "table", "not a plain SQL name"),
        ({"table": "orders;"}, "table", "no quotes, spaces or semicolons"),
        ({"table": "o'rders"}, "table", "not a plain SQL name"),
        ({"table": "a.b.c"}, "table", "at most schema.table"),
        ({"field": "email) FROM users --"}, "field", "not a plain SQL name"),
        ({"field": "t.email"}, "field", "no dots"),
        ({"operator": "between", "threshold_high": None}, "threshold_high", "needs"),
        ({"operator": "between", "threshold": 5, "threshold_high": 1}, "threshold_high", "least"),
        ({"threshold_high": 3}, "threshold_high", "only for operator between"),
        ({"field": ""}, "field", "null_ratio measures one column"),
        ({"metric": "avg", "field": ""}, "field", "avg measures one column"),
        ({"metric": "row_count"}, "field", "row_count counts rows"),
        ({"metric": "count"}, "metric", "one of row_count"),
        ({"operator": "=<"}, "operator", "one of"),
        ({"compare": "vs_yesterday"}, "compare", "one of value"),
        ({"severity": "critical"}, "severity", "one of block, warn"),
        ({"datasource": "beta_wh"}, "datasource", "no datasource 'beta_wh' in project acme"),
        ({"datasource": "nope"}, "datasource", "no datasource"),
        ({"where": "1 = 1; DELETE FROM orders"}, "where", "no semicolon"),
        ({"where": "1 = 1) OR (1 = 1"}, "where", "closes nothing"),
        ({"where": "ds = '${var.nope}'"}, "where", "unknown parameter(s): ${var.nope}"),
        ({"sql": "SELECT 1"}, "sql", "only for metric custom_sql"),
        ({"metric": "custom_sql", "field": "", "where": "", "sql": ""}, "sql", "needs its query"),
        (
            {"metric": "custom_sql", "field": "", "where": "", "sql": "SELECT 1; DROP TABLE t"},
            "sql",
            "exactly one statement",
        ),
        (
            {"metric": "custom_sql", "field": "", "where": "", "sql": "DELETE FROM orders"},
            "sql",
            "a query",
        ),
        ({"metric": "custom_sql", "field": "", "sql": "SELECT 1"}, "where", "own query"),
        ({"threshold": "lots"}, "threshold", ""),
        ({"node": "load_orders"}, "node", ""),
        ({"channels": [987654]}, "channels", "no channel 987654"),
        ({"colour": "red"}, "colour", ""),
    ],
)
def test_bad_input_answers_422_naming_the_field_and_changes_nothing(
    api_as, load, wh, beta, changes, field, message
):
    response = post(api_as("alice"), "/api/field-rules", body_for(load, **changes))
    assert response.status_code == 422, response.json()
    assert field in fields_of(response)
    assert message in json.dumps(response.json())
    assert not FieldRule.objects.exists()


def test_a_node_or_channel_of_another_project_is_refused(api_as, load, wh, beta):
    _, beta_node = beta
    admin = api_as("alice")
    response = post(admin, "/api/field-rules", body_for(beta_node))
    assert response.status_code == 422 and fields_of(response) == ["node"]
    assert response.json()["errors"][0]["message"] == f"no node {beta_node.pk} in project acme"
    beta_hook = Channel.objects.get(name="beta-hook")
    response = post(admin, "/api/field-rules", body_for(load, channels=[beta_hook.pk]))
    assert response.status_code == 422 and fields_of(response) == ["channels"]
    virtual = node_create(load.project, "group", owner=load.owner)
    response = post(admin, "/api/field-rules", body_for(virtual))
    assert response.status_code == 422 and "runs nothing" in response.json()["errors"][0]["message"]
    assert not FieldRule.objects.exists()


def test_a_bad_change_changes_nothing(api_as, load, wh, beta):
    _, beta_node = beta
    rule = rule_make(load, wh, metric="null_ratio", field="email", threshold=0.1, operator="<")
    admin = api_as("alice")
    before = admin.get(f"/api/field-rules/{rule.pk}").json()
    for body, field in [
        ({"table": "orders; DROP TABLE orders"}, "table"),
        ({"operator": "between"}, "threshold_high"),
        ({"metric": "sum", "field": ""}, "field"),
        ({"node": beta_node.pk}, "node"),
        ({"datasource": "beta_wh"}, "datasource"),
        ({"project": "beta"}, "project"),
        ({"threshold": None}, "threshold"),
    ]:
        response = patch(admin, f"/api/field-rules/{rule.pk}", body)
        assert response.status_code == 422, (body, response.json())
        assert field in fields_of(response), body
    assert admin.get(f"/api/field-rules/{rule.pk}").json() == before


def test_results_newest_first_in_cursor_pages(api_as, load, wh, project):
    rule = rule_make(load, wh)
    instances = [
        instance_create(load, SCHEDULED + datetime.timedelta(days=n), state="succeeded")
        for n in range(3)
    ]
    for n, instance in enumerate(instances):
        FieldRuleResult.objects.create(
            rule=rule,
            instance=instance,
            attempt=1,
            scheduled_at=instance.scheduled_at,
            value=10 + n,
            compared=10 + n,
            expected="> 0",
            passed=n != 1,
            error="",
            checked_at=instance.scheduled_at + datetime.timedelta(hours=1),
        )
    FieldRuleResult.objects.create(
        rule=rule,
        instance=instances[2],
        attempt=2,
        scheduled_at=instances[2].scheduled_at,
        value=None,
        passed=False,
        error='relation "orders" does not exist',
        checked_at=instances[2].scheduled_at + datetime.timedelta(hours=2),
    )
    viewer = api_as("vera")
    first = viewer.get(f"/api/field-rules/{rule.pk}/results?limit=2").json()
    assert [(i["instance"], i["attempt"]) for i in first["items"]] == [
        (instances[2].pk, 2),
        (instances[2].pk, 1),
    ]
    newest = first["items"][0]
    assert set(newest) >= {"instance", "value", "passed", "error", "checked_at"}
    assert newest["value"] is None and newest["passed"] is False
    assert newest["error"] == 'relation "orders" does not exist'
    assert newest["checked_at"] == "2026-11-22T04:00:00+00:00"
    rest = viewer.get(
        f"/api/field-rules/{rule.pk}/results?limit=2&cursor={first['next_cursor']}"
    ).json()
    assert [(i["instance"], i["value"], i["passed"]) for i in rest["items"]] == [
        (instances[1].pk, 11, False),
        (instances[0].pk, 10, True),
    ]
    assert rest["next_cursor"] is None
    only = viewer.get(f"/api/field-rules/{rule.pk}/results?instance={instances[0].pk}").json()
    assert [i["value"] for i in only["items"]] == [10]
    assert viewer.get(f"/api/field-rules/{rule.pk}/results?cursor=zz").status_code == 422
    assert api_as("stranger").get(f"/api/field-rules/{rule.pk}/results").status_code == 404


def test_a_datasource_a_rule_reads_is_not_deleted_under_it(api_as, load, wh, project):
    rule = rule_make(load, wh)
    admin = api_as("alice")
    response = admin.delete("/api/projects/acme/datasources/wh")
    assert response.status_code == 409
    assert f"#{rule.pk} row_count of orders" in response.json()["detail"]
    assert Datasource.objects.filter(pk=wh.pk).exists()
    # The project itself goes with its rules and results.
    instance = instance_create(load, SCHEDULED, state="succeeded")
    FieldRuleResult.objects.create(
        rule=rule,
        instance=instance,
        attempt=1,
        scheduled_at=SCHEDULED,
        value=1,
        passed=True,
        checked_at=SCHEDULED,
    )
    assert admin.delete("/api/projects/acme").status_code == 204
    assert not FieldRule.objects.exists() and not FieldRuleResult.objects.exists()
