"""The node operations in the JSON API: answers, refusals and bad input."""

import datetime

import pytest

from apps.audit.models import OperationLog
from apps.instances.models import Instance
from apps.nodes.models import Node
from tests.factories import instance_create, node_create

SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)


@pytest.fixture
def owner(users):
    return users["alice"]


def post(client, url: str, body: dict | None = None):
    return client.post(url, body, content_type="application/json")


def test_pause_and_resume_answer_the_node_detail(api_as, project, owner):
    node = node_create(project, "load", owner=owner)
    client = api_as("olga")
    body = post(client, f"/api/nodes/{node.pk}/pause").json()
    assert body == client.get(f"/api/nodes/{node.pk}").json()
    assert body["paused"] is True
    again = post(client, f"/api/nodes/{node.pk}/pause")
    assert again.status_code == 409
    assert again.json() == {"detail": "node acme.load is already paused", "errors": []}
    assert post(client, f"/api/nodes/{node.pk}/resume").json()["paused"] is False
    assert list(OperationLog.objects.order_by("id").values_list("action", "result")) == [
        ("node_pause", "ok"),
        ("node_pause", "refused"),
        ("node_resume", "ok"),
    ]


def test_roles_and_visibility(api_as, project, owner):
    node = node_create(project, "load", owner=owner)
    assert post(api_as("vera"), f"/api/nodes/{node.pk}/pause").status_code == 403
    assert post(api_as("dave"), f"/api/nodes/{node.pk}/offline").status_code == 403
    assert post(api_as("stranger"), f"/api/nodes/{node.pk}/pause").status_code == 404
    assert post(api_as("olga"), "/api/nodes/999999/pause").status_code == 404
    assert not Node.objects.get(pk=node.pk).paused


def test_offline_answers_409_naming_the_dependents(api_as, project, owner):
    source = node_create(project, "source", owner=owner)
    node_create(project, "report", owner=owner, upstream=[source])
    response = post(api_as("olga"), f"/api/nodes/{source.pk}/offline")
    assert response.status_code == 409
    assert "acme.report" in response.json()["detail"]
    assert response.json()["errors"] == [
        {"node": "acme.report", "message": "depends on it and is online"}
    ]


def test_offline_answers_the_offline_node(api_as, project, owner):
    node = node_create(project, "source", owner=owner)
    pending = instance_create(node, SCHEDULED)
    response = post(api_as("olga"), f"/api/nodes/{node.pk}/offline")
    assert response.status_code == 200 and response.json()["status"] == "offline"
    assert Instance.objects.get(pk=pending.pk).state == "skipped"


def test_run_answers_the_new_instance(api_as, project, owner):
    node = node_create(project, "manual", owner=owner, schedule_type="one_time")
    client = api_as("olga")
    response = post(
        client,
        f"/api/nodes/{node.pk}/run",
        {"biz_date": "2026-05-06", "params": {"limit": 10}},
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body == client.get(f"/api/instances/{body['id']}").json()
    assert (body["kind"], body["biz_date"], body["node"]) == ("one_time", "2026-05-06", node.pk)
    assert Instance.objects.get(pk=body["id"]).params == {"limit": "10"}
    # Without a body: the default biz date.
    empty = client.generic("POST", f"/api/nodes/{node.pk}/run", b"")
    assert empty.status_code == 201


@pytest.mark.parametrize(
    "body, field",
    [
        ({"biz_date": "tomorrow"}, "biz_date"),
        ({"params": ["a"]}, "params"),
        ({"params": {"a-b": 1}}, "params.a-b"),
    ],
)
def test_run_refuses_bad_input_naming_the_field(api_as, project, owner, body, field):
    node = node_create(project, "manual", owner=owner, schedule_type="one_time")
    response = post(api_as("olga"), f"/api/nodes/{node.pk}/run", body)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]], response.json()
    assert not Instance.objects.exists()


def test_run_of_a_recurring_prod_node_answers_409(api_as, project, owner):
    node = node_create(project, "daily", owner=owner)
    response = post(api_as("olga"), f"/api/nodes/{node.pk}/run")
    assert response.status_code == 409
    assert "use backfill" in response.json()["detail"]


def test_owner_answers_per_node_results(api_as, project, owner, users):
    a = node_create(project, "a", owner=owner)
    response = post(
        api_as("olga"), "/api/nodes/owner", {"node_ids": [a.pk, 999999], "owner": "dave"}
    )
    assert response.status_code == 200
    assert response.json()["results"] == [
        {"id": a.pk, "ok": True, "state": "online", "message": "owner is now dave"},
        {"id": 999999, "ok": False, "state": None, "message": "node 999999 not found"},
    ]
    assert Node.objects.get(pk=a.pk).owner == users["dave"]
    unknown = post(api_as("olga"), "/api/nodes/owner", {"node_ids": [a.pk], "owner": "nobody"})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "owner"
    missing = post(api_as("olga"), "/api/nodes/owner", {"owner": "dave"})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "node_ids"


def test_batch_answers_per_node_results(api_as, project, owner):
    a = node_create(project, "a", owner=owner)
    b = node_create(project, "b", owner=owner)
    Node.objects.filter(pk=b.pk).update(paused=True)
    response = post(api_as("olga"), "/api/nodes/batch", {"ids": [a.pk, b.pk], "action": "resume"})
    assert response.status_code == 200
    assert [(r["id"], r["ok"], r["state"]) for r in response.json()["results"]] == [
        (a.pk, False, "online"),
        (b.pk, True, "online"),
    ]
    bad = post(api_as("olga"), "/api/nodes/batch", {"ids": [a.pk], "action": "offline"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "action"
