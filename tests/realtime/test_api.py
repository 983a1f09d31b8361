"""POST /api/nodes/{id}/realtime/start · /stop · /resources and GET /realtime."""

import pytest

from apps.instances.models import Instance

from .conftest import realtime_spec

pytestmark = pytest.mark.django_db


def test_start_stop_and_resources_through_the_api(publish_realtime, api_as):
    (node,) = publish_realtime(realtime_spec(cpu=1))
    olga = api_as("olga")
    base = f"/api/nodes/{node.pk}/realtime"

    answer = olga.get(base).json()
    assert (answer["state"], answer["version"], answer["cpu"]) == ("stopped", 1, None)

    answer = olga.post(f"{base}/start")
    assert answer.status_code == 200 and answer.json()["state"] == "starting"
    again = olga.post(f"{base}/start")
    assert again.status_code == 409 and "only a stopped or failed one" in again.json()["detail"]

    answer = olga.post(
        f"{base}/resources", {"cpu": 2, "memory_mb": 512}, content_type="application/json"
    )
    assert answer.status_code == 200
    assert (answer.json()["cpu"], answer.json()["memory_mb"]) == (2.0, 512)

    bad = olga.post(f"{base}/resources", {"memory_mb": -5}, content_type="application/json")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "memory_mb"
    wrong_type = olga.post(f"{base}/resources", {"cpu": "lots"}, content_type="application/json")
    assert wrong_type.status_code == 422

    assert olga.post(f"{base}/stop").json()["state"] == "stopped"
    assert Instance.objects.get(node=node).state == "stopped"


def test_roles_and_visibility_in_the_api(publish_realtime, api_as):
    (node,) = publish_realtime(realtime_spec())
    base = f"/api/nodes/{node.pk}/realtime"
    assert api_as("vera").get(base).status_code == 200
    assert api_as("vera").post(f"{base}/start").status_code == 403
    assert api_as("stranger").post(f"{base}/start").status_code == 404
    assert Instance.objects.get(node=node).state == "stopped"


def test_a_batch_node_has_no_realtime_controls(publish_realtime, api_as):
    (node,) = publish_realtime(
        {"name": "daily", "type": "virtual", "schedule": {"type": "recurring", "cron": "0 2 * * *"}}
    )
    answer = api_as("olga").post(f"/api/nodes/{node.pk}/realtime/start")
    assert answer.status_code == 409 and "not a realtime node" in answer.json()["detail"]
