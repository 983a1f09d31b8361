"""The instance operations in the JSON API: answers, refusals and bad input."""

import datetime

import pytest

from apps.audit.models import OperationLog
from apps.configuration.models import ResourceGroup
from apps.instances.models import Instance, InstanceDependency
from apps.projects.models import Project
from tests.factories import instance_create, node_create

SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)


@pytest.fixture
def owner(users):
    return users["alice"]


def make(project, owner, state, name="job", upstream=(), **fields) -> Instance:
    node = node_create(project, name, owner=owner)
    if state in ("succeeded", "failed", "stopped", "skipped"):
        fields.setdefault("finished_at", SCHEDULED)
    return instance_create(node, SCHEDULED, upstream=upstream, state=state, **fields)


def post(client, url: str, body: dict | None = None):
    return client.post(url, body, content_type="application/json")


def state_of(instance) -> str:
    return Instance.objects.get(pk=instance.pk).state


@pytest.mark.parametrize(
    "path, state, expected",
    [
        ("rerun", "failed", "pending"),
        ("set-success", "failed", "succeeded"),
        ("stop", "running", "stopped"),
        ("pause", "pending", "pending"),
        ("run-now", "pending", "pending"),
    ],
)
def test_operation_answers_the_instance_detail(api_as, project, owner, path, state, expected):
    instance = make(project, owner, state)
    # No body at all: what a `curl -X POST` sends.
    response = api_as("olga").generic("POST", f"/api/instances/{instance.pk}/{path}", b"")
    assert response.status_code == 200, response.json()
    body = response.json()
    detail = api_as("olga").get(f"/api/instances/{instance.pk}").json()
    assert body == detail
    assert body["state"] == expected and body["id"] == instance.pk
    assert {"attempts", "upstream", "downstream"} <= set(body)
    record = OperationLog.objects.get(object_id=str(instance.pk))
    assert (record.source, record.result) == ("api", "ok")


def test_resume_answers_the_unpaused_instance(api_as, project, owner):
    instance = make(project, owner, "pending", paused=True)
    body = post(api_as("olga"), f"/api/instances/{instance.pk}/resume").json()
    assert body["paused"] is False


def test_rerun_takes_downstream(api_as, project, owner):
    root = make(project, owner, "failed", name="root")
    child = make(project, owner, "succeeded", name="child", upstream=[root])
    response = api_as("olga").post(
        f"/api/instances/{root.pk}/rerun", {"downstream": True}, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["downstream"] == [child.pk]
    assert state_of(child) == "pending"


def test_rerun_refuses_a_downstream_that_is_not_a_boolean(api_as, project, owner):
    instance = make(project, owner, "failed")
    response = api_as("olga").post(
        f"/api/instances/{instance.pk}/rerun",
        {"downstream": "maybe"},
        content_type="application/json",
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "downstream"
    assert state_of(instance) == "failed"


def test_refused_state_answers_409_with_the_reason(api_as, project, owner):
    instance = make(project, owner, "running")
    response = post(api_as("olga"), f"/api/instances/{instance.pk}/rerun")
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"instance {instance.pk} is running: rerun needs a finished instance",
        "errors": [],
    }
    assert OperationLog.objects.get(object_id=str(instance.pk)).result == "refused"


def test_roles_and_visibility(api_as, project, owner):
    instance = make(project, owner, "failed")
    url = f"/api/instances/{instance.pk}/set-success"
    assert post(api_as("vera"), url).status_code == 403
    assert post(api_as("dave"), url).status_code == 403
    assert post(api_as("stranger"), url).status_code == 404
    assert post(api_as("olga"), "/api/instances/999999/stop").status_code == 404
    assert state_of(instance) == "failed"


def test_delete_upstream_removes_that_dependency(api_as, project, owner):
    parent = make(project, owner, "failed", name="parent")
    child = make(project, owner, "pending", name="child", upstream=[parent])
    response = api_as("olga").delete(f"/api/instances/{child.pk}/upstream/{parent.pk}")
    assert response.status_code == 200
    body = response.json()
    assert body["upstream"] == [] and body["removed_upstream"] == [parent.pk]
    assert InstanceDependency.objects.get(downstream=child).removed
    again = api_as("olga").delete(f"/api/instances/{child.pk}/upstream/{parent.pk}")
    assert again.status_code == 409
    unknown = api_as("olga").delete(f"/api/instances/{child.pk}/upstream/{child.pk}")
    assert unknown.status_code == 404


def test_patch_changes_the_resource_group(api_as, project, owner):
    ResourceGroup.objects.create(name="etl")
    instance = make(project, owner, "pending")
    client = api_as("olga")
    response = client.patch(
        f"/api/instances/{instance.pk}", {"resource_group": "etl"}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["resource_group"] == "etl"

    for body, field in [
        ({"resource_group": "nope"}, "resource_group"),
        ({}, "resource_group"),
        ({"resource_group": "etl", "priority": 5}, "priority"),
    ]:
        response = client.patch(
            f"/api/instances/{instance.pk}", body, content_type="application/json"
        )
        assert response.status_code == 422, body
        assert field in [e["field"] for e in response.json()["errors"]], response.json()

    Instance.objects.filter(pk=instance.pk).update(state="running")
    response = client.patch(
        f"/api/instances/{instance.pk}",
        {"resource_group": "default"},
        content_type="application/json",
    )
    assert response.status_code == 409
    assert "before it starts" in response.json()["detail"]


def test_batch_answers_per_item_results(api_as, project, owner):
    failed = make(project, owner, "failed", name="f")
    running = make(project, owner, "running", name="r")
    other = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    hidden = make(other, owner, "failed", name="h")
    response = api_as("olga").post(
        "/api/instances/batch",
        {"ids": [failed.pk, running.pk, hidden.pk], "action": "rerun"},
        content_type="application/json",
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["id"], r["ok"], r["state"]) for r in results] == [
        (failed.pk, True, "pending"),
        (running.pk, False, "running"),
        (hidden.pk, False, None),
    ]
    assert all(isinstance(r["message"], str) and r["message"] for r in results)
    assert state_of(hidden) == "failed"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"ids": [1], "action": "explode"}, "action"),
        ({"ids": "all", "action": "stop"}, "ids"),
        ({"action": "stop"}, "ids"),
        ({"ids": [1]}, "action"),
    ],
)
def test_batch_refuses_bad_input_naming_the_field(api_as, project, body, field):
    response = api_as("olga").post("/api/instances/batch", body, content_type="application/json")
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]


def test_batch_of_a_viewer_refuses_every_item(api_as, project, owner):
    instance = make(project, owner, "running")
    response = api_as("vera").post(
        "/api/instances/batch",
        {"ids": [instance.pk], "action": "stop"},
        content_type="application/json",
    )
    [item] = response.json()["results"]
    assert (item["ok"], item["state"]) == (False, "running")
    assert "operator" in item["message"]
