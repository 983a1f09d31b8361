"""/api/alerts: the SPEC's fields, who sees what, filters, cursor pages, one alert with
its timeline and deliveries, ack and resolve (one and many) with roles and the log."""

import datetime
import json

import pytest
import time_machine

from apps.audit.models import OperationLog
from apps.monitoring.alert_selectors import firing_count_for
from apps.monitoring.models import Alert, AlertEvent
from apps.notifications.models import Delivery
from apps.projects.models import Membership, Project
from tests.factories import instance_create, node_create

from .alert_rows import T0, alert_make, channel_make, rule_make

ALERT_KEYS = {
    "id",
    "project",
    "rule",
    "source",
    "trigger",
    "severity",
    "state",
    "title",
    "message",
    "target_type",
    "target_id",
    "node",
    "instance",
    "baseline",
    "count",
    "first_at",
    "last_at",
    "acknowledged_by",
    "acknowledged_at",
    "resolved_at",
    "resolved_by",
}
NOW = T0 + datetime.timedelta(hours=1)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def beta(users):
    beta = Project.objects.create(code="beta", name="Beta")
    Membership.objects.create(project=beta, user=users["stranger"], role="operator")
    return beta


def post(client, url, body=None):
    if body is None:
        return client.generic("POST", url, b"")
    return client.post(url, json.dumps(body), content_type="application/json")


def fields_of(response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


def ids(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [item["id"] for item in response.json()["items"]]


def test_items_have_the_specs_fields(api_as, project, users):
    node = node_create(project, "report", owner=users["alice"])
    instance = instance_create(node, T0, state="failed", finished_at=T0)
    rule = rule_make(project)
    alert = alert_make(project, rule=rule, node=node, instance=instance, count=3)
    body = api_as("vera").get("/api/alerts").json()
    assert body["next_cursor"] is None
    (item,) = body["items"]
    assert set(item) == ALERT_KEYS
    assert item == {
        "id": alert.pk,
        "project": "acme",
        "rule": rule.pk,
        "source": "monitor",
        "trigger": "failure",
        "severity": "critical",
        "state": "firing",
        "title": "acme.report failed",
        "message": "attempt 1 failed: exit code 3",
        "target_type": "instance",
        "target_id": str(instance.pk),
        "node": node.pk,
        "instance": instance.pk,
        "baseline": None,
        "count": 3,
        "first_at": "2026-11-22T09:30:00+08:00",  # the project's timezone
        "last_at": "2026-11-22T10:00:00+08:00",
        "acknowledged_by": None,
        "acknowledged_at": None,
        "resolved_at": None,
        "resolved_by": None,
    }


def test_who_sees_which_alerts(api_as, project, beta):
    ours = alert_make(project)
    theirs = alert_make(beta)
    system = alert_make(None, title="disk full")
    assert ids(api_as("vera").get("/api/alerts")) == [ours.pk]
    assert ids(api_as("stranger").get("/api/alerts")) == [theirs.pk]
    assert sorted(ids(api_as("root").get("/api/alerts"))) == sorted([ours.pk, theirs.pk, system.pk])
    assert api_as("vera").get(f"/api/alerts/{theirs.pk}").status_code == 404
    assert api_as("vera").get(f"/api/alerts/{system.pk}").status_code == 404
    body = api_as("root").get(f"/api/alerts/{system.pk}").json()
    assert body["project"] is None and body["last_at"].endswith("+00:00")


def test_firing_count_counts_only_visible_firing_alerts(users, project, beta):
    alert_make(project)
    alert_make(project, state="acknowledged")
    alert_make(project, state="resolved")
    alert_make(beta)
    alert_make(None)
    assert firing_count_for(users["vera"]) == 1
    assert firing_count_for(users["stranger"]) == 1
    assert firing_count_for(users["root"]) == 3


def test_filters(api_as, project, beta, users):
    node = node_create(project, "report", owner=users["alice"])
    other_node = node_create(project, "ingest", owner=users["alice"])
    instance = instance_create(node, T0, state="failed", finished_at=T0)
    rule = rule_make(project)
    a = alert_make(project, rule=rule, node=node, instance=instance)
    b = alert_make(project, state="acknowledged", severity="warning", node=other_node)
    c = alert_make(project, state="resolved", severity="info")
    d = alert_make(beta)
    root = api_as("root")
    assert set(ids(root.get("/api/alerts?project=acme"))) == {a.pk, b.pk, c.pk}
    assert set(ids(root.get("/api/alerts?project=beta"))) == {d.pk}
    assert set(ids(root.get("/api/alerts?state=firing"))) == {a.pk, d.pk}
    assert set(ids(root.get("/api/alerts?state=open&project=acme"))) == {a.pk, b.pk}
    assert set(ids(root.get("/api/alerts?severity=warning"))) == {b.pk}
    assert ids(root.get(f"/api/alerts?rule={rule.pk}")) == [a.pk]
    assert ids(root.get(f"/api/alerts?node={other_node.pk}")) == [b.pk]
    assert ids(root.get(f"/api/alerts?instance={instance.pk}")) == [a.pk]
    assert ids(root.get(f"/api/alerts?rule={2**70}")) == []  # names nothing
    for query, field in [
        ("state=burning", "state"),
        ("severity=meh", "severity"),
        ("rule=abc", "rule"),
        ("node=-1", "node"),
        ("instance=1.5", "instance"),
        ("node=\u00b2", "node"),
        ("limit=0", "limit"),
        ("cursor=garbage!", "cursor"),
    ]:
        response = root.get(f"/api/alerts?{query}")
        assert response.status_code == 422, query
        assert fields_of(response) == [field], query


def test_cursor_pages_walk_every_alert_once_newest_activity_first(api_as, project):
    # Ties on last_at are broken by id, newest first.
    made = [alert_make(project, minutes_before=n // 2) for n in range(7)]
    expected = [a.pk for a in sorted(made, key=lambda a: (a.last_at, a.pk), reverse=True)]
    client = api_as("vera")
    seen, cursor = [], ""
    for _ in range(10):
        body = client.get(f"/api/alerts?limit=3&cursor={cursor}").json()
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == expected
    # A page asked with the state filter uses the same order.
    firing = client.get("/api/alerts?limit=2&state=firing").json()
    assert [i["id"] for i in firing["items"]] == expected[:2]


def test_detail_has_the_timeline_and_deliveries(api_as, project):
    alert = alert_make(project)
    channel = channel_make(project)
    Delivery.objects.create(
        alert=alert,
        channel=channel,
        project=project,
        kind="webhook",
        recipient="#hook",
        state="sent",
        tries=2,
        last_error="HTTP 500",
        created_at=T0,
        sent_at=T0 + datetime.timedelta(seconds=5),
    )
    body = api_as("vera").get(f"/api/alerts/{alert.pk}").json()
    assert ALERT_KEYS < set(body)
    assert [e["kind"] for e in body["events"]] == ["fired"]
    assert body["events"][0]["at"] == "2026-11-22T09:30:00+08:00"
    (delivery,) = body["deliveries"]
    assert delivery["channel"] == channel.pk and delivery["channel_name"] == "hook"
    assert (delivery["state"], delivery["tries"], delivery["last_error"]) == ("sent", 2, "HTTP 500")
    assert delivery["sent_at"] == "2026-11-22T10:00:05+08:00"
    assert api_as("vera").get("/api/alerts/999999").status_code == 404


def test_operator_acknowledges_then_resolves_with_comments(api_as, project):
    alert = alert_make(project)
    response = post(api_as("olga"), f"/api/alerts/{alert.pk}/ack", {"comment": "looking"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["state"] == "acknowledged"
    assert body["acknowledged_by"] == "olga"
    assert body["acknowledged_at"] == "2026-11-22T11:00:00+08:00"
    assert [(e["kind"], e["user"], e["comment"]) for e in body["events"]][-1] == (
        "acknowledged",
        "olga",
        "looking",
    )
    # Acknowledged already: 409, nothing changes.
    response = post(api_as("olga"), f"/api/alerts/{alert.pk}/ack")
    assert response.status_code == 409
    assert "acknowledged" in response.json()["detail"]
    response = post(api_as("olga"), f"/api/alerts/{alert.pk}/resolve", {"comment": "fixed the DSN"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["state"], body["resolved_by"]) == ("resolved", "olga")
    assert body["events"][-1]["comment"] == "fixed the DSN"
    assert post(api_as("olga"), f"/api/alerts/{alert.pk}/resolve").status_code == 409
    records = OperationLog.objects.filter(object_type="alert", object_id=str(alert.pk))
    assert sorted(records.values_list("action", "result")) == [
        ("ack", "ok"),
        ("ack", "refused"),
        ("resolve", "ok"),
        ("resolve", "refused"),
    ]


def test_a_firing_alert_can_be_resolved_without_an_ack(api_as, project):
    alert = alert_make(project)
    response = post(api_as("alice"), f"/api/alerts/{alert.pk}/resolve")
    assert response.status_code == 200
    assert response.json()["state"] == "resolved"


@pytest.mark.parametrize("action", ["ack", "resolve"])
def test_viewers_and_developers_are_refused_and_the_refusal_is_logged(api_as, project, action):
    alert = alert_make(project)
    for name in ("vera", "dave"):
        response = post(api_as(name), f"/api/alerts/{alert.pk}/{action}", {"comment": "me?"})
        assert response.status_code == 403, name
        assert "operator" in response.json()["detail"]
    assert Alert.objects.get(pk=alert.pk).state == "firing"
    assert not AlertEvent.objects.filter(alert=alert).exclude(kind="fired").exists()
    refused = OperationLog.objects.filter(object_type="alert", result="refused", action=action)
    assert sorted(refused.values_list("username", flat=True)) == ["dave", "vera"]
    assert all(r.detail == {"state": "firing"} for r in refused)


def test_strangers_get_404(api_as, project, beta):
    alert = alert_make(project)
    for action in ("ack", "resolve"):
        assert post(api_as("stranger"), f"/api/alerts/{alert.pk}/{action}").status_code == 404
    assert Alert.objects.get(pk=alert.pk).state == "firing"


def test_bad_bodies_are_422(api_as, project):
    alert = alert_make(project)
    client = api_as("olga")
    response = post(client, f"/api/alerts/{alert.pk}/ack", {"comment": "x", "why": "y"})
    assert response.status_code == 422 and fields_of(response) == ["why"]
    response = post(client, f"/api/alerts/{alert.pk}/ack", {"comment": 5})
    assert response.status_code == 422 and fields_of(response) == ["comment"]
    response = post(client, f"/api/alerts/{alert.pk}/ack", {"comment": "x" * 2001})
    assert response.status_code == 422 and fields_of(response) == ["comment"]
    assert Alert.objects.get(pk=alert.pk).state == "firing"


def test_batch_answers_one_result_per_id(api_as, project, beta):
    first = alert_make(project)
    second = alert_make(project, state="acknowledged")
    done = alert_make(project, state="resolved")
    theirs = alert_make(beta)
    response = post(
        api_as("olga"),
        "/api/alerts/batch",
        {
            "ids": [first.pk, second.pk, done.pk, theirs.pk, 999999, first.pk, 2**70],
            "action": "ack",
            "comment": "night shift",
        },
    )
    assert response.status_code == 200, response.json()
    results = {r["id"]: r for r in response.json()["results"]}
    assert list(results) == [first.pk, second.pk, done.pk, theirs.pk, 999999, 2**70]
    assert results[first.pk] == {
        "id": first.pk,
        "ok": True,
        "state": "acknowledged",
        "message": "ack: now acknowledged",
    }
    assert results[second.pk]["ok"] is False and results[second.pk]["state"] == "acknowledged"
    assert results[done.pk]["ok"] is False and results[done.pk]["state"] == "resolved"
    # Another project's alert is as unknown as one that does not exist.
    assert results[theirs.pk] == {
        "id": theirs.pk,
        "ok": False,
        "state": None,
        "message": f"alert {theirs.pk} not found",
    }
    assert results[999999]["message"] == "alert 999999 not found"
    assert results[2**70]["message"] == f"alert {2**70} not found"
    assert Alert.objects.get(pk=theirs.pk).state == "firing"
    event = AlertEvent.objects.get(alert=first, kind="acknowledged")
    assert (event.user.username, event.comment) == ("olga", "night shift")

    response = post(
        api_as("olga"), "/api/alerts/batch", {"ids": [first.pk, second.pk], "action": "resolve"}
    )
    assert [r["state"] for r in response.json()["results"]] == ["resolved", "resolved"]
    assert all(r["ok"] for r in response.json()["results"])


def test_batch_refusals_for_viewers_are_per_id_and_logged(api_as, project):
    alert = alert_make(project)
    response = post(api_as("vera"), "/api/alerts/batch", {"ids": [alert.pk], "action": "resolve"})
    assert response.status_code == 200
    (result,) = response.json()["results"]
    assert (result["ok"], result["state"]) == (False, "firing")
    assert "operator" in result["message"]
    assert OperationLog.objects.get(object_type="alert").result == "refused"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"ids": [1], "action": "delete"}, "action"),
        ({"ids": "1", "action": "ack"}, "ids"),
        ({"ids": ["x"], "action": "ack"}, "ids.0"),
        ({"ids": list(range(1, 1002)), "action": "ack"}, "ids"),
        ({"action": "ack"}, "ids"),
        ({"ids": [1], "action": "ack", "force": True}, "force"),
    ],
)
def test_batch_bad_input_is_422(api_as, project, body, field):
    alert = alert_make(project)
    response = post(api_as("olga"), "/api/alerts/batch", body)
    assert response.status_code == 422, response.json()
    assert field in fields_of(response)
    assert Alert.objects.get(pk=alert.pk).state == "firing"
