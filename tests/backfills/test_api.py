"""/api/backfills and /api/instances?backfill=<id>."""

import datetime

import pytest
import time_machine

from apps.audit.models import OperationLog
from apps.backfills.models import Backfill
from apps.instances.models import Instance
from apps.projects.models import Project
from tests.factories import node_create

NOW = datetime.datetime(2026, 11, 21, 10, 0, tzinfo=datetime.UTC)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def graph(project, users):
    alice = users["alice"]
    a = node_create(project, "a", owner=alice)
    b = node_create(project, "b", owner=alice, upstream=[a])
    c = node_create(project, "c", owner=alice, upstream=[b], cron="0 * * * *")
    return a, b, c


def body(a, **fields):
    values = {"nodes": [a.pk], "start": "2026-11-01", "end": "2026-11-03"}
    values.update(fields)
    return values


def post(client, data):
    return client.post("/api/backfills", data, content_type="application/json")


def test_dry_run_answers_the_plan_and_creates_nothing(api_as, graph):
    a, b, c = graph
    answer = post(api_as("olga"), body(a, downstream="all", dry_run=True, descending=True))
    assert answer.status_code == 200, answer.content
    plan = answer.json()
    assert plan["dates"] == [
        {"biz_date": "2026-11-03", "instances": 26},
        {"biz_date": "2026-11-02", "instances": 26},
        {"biz_date": "2026-11-01", "instances": 26},
    ]
    assert plan["total"] == 78
    assert [n["name"] for n in plan["nodes"]] == ["a", "b", "c"]
    assert plan["edges"] == [
        {"upstream": a.pk, "downstream": b.pk},
        {"upstream": b.pk, "downstream": c.pk},
    ]
    assert not Backfill.objects.exists() and not Instance.objects.exists()
    assert not OperationLog.objects.filter(action="backfill_create").exists()


def test_create_detail_list_and_instances_filter(api_as, graph, users):
    a, b, c = graph
    olga = api_as("olga")
    answer = post(olga, body(a, downstream=[c.pk], order="parallel", parallelism=2))
    assert answer.status_code == 201, answer.content
    run = answer.json()
    assert run["state"] == "running"
    assert run["nodes"] == [a.pk] and run["node_ids"] == [a.pk, c.pk]
    assert run["downstream"] == "subset" and run["parallelism"] == 2
    assert run["total"] == 3 * 25 and run["counts"]["pending"] == 75
    assert run["created_by"] == "olga"
    assert run["created_at"] == "2026-11-21T18:00:00+08:00"
    assert [d["biz_date"] for d in run["dates"]] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert run["dates"][0]["counts"]["pending"] == 25

    detail = api_as("vera").get(f"/api/backfills/{run['id']}").json()
    assert detail["id"] == run["id"] and detail["window_start"] == 0

    post(olga, body(a, end="2026-11-01"))
    first = olga.get("/api/backfills?limit=1").json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = olga.get(f"/api/backfills?limit=1&cursor={first['next_cursor']}").json()
    assert [second["items"][0]["id"], first["items"][0]["id"]] == sorted(
        Backfill.objects.values_list("id", flat=True)
    )
    assert second["next_cursor"] is None

    listed = olga.get(f"/api/instances?backfill={run['id']}&limit=500").json()["items"]
    assert len(listed) == 75 and {i["kind"] for i in listed} == {"backfill"}
    entry = OperationLog.objects.get(action="backfill_create", object_id=str(run["id"]))
    assert entry.username == "olga" and entry.source == "api"
    assert entry.detail["instances"] == 75


def test_errors_name_their_fields(api_as, graph, project, users):
    a, b, c = graph
    olga = api_as("olga")
    cases = [
        (body(a, start="2026-11-05"), "end"),
        (body(a, end="2028-01-01"), "end"),
        (body(a, start="yesterday"), "start"),
        (body(a, order="sideways"), "order"),
        (body(a, order="parallel", parallelism=0), "parallelism"),
        (body(a, downstream=[a.pk, 999999]), "downstream"),
        (body(a, downstream="some"), "downstream"),
        (body(a, nodes=[]), "nodes"),
        (body(a, nodes=[999999]), "nodes"),
        (body(a, colour="red"), "colour"),
    ]
    for data, field in cases:
        answer = post(olga, data)
        assert answer.status_code == 422, (data, answer.content)
        assert field in {e["field"] for e in answer.json()["errors"]}, (data, answer.json())
    assert not Backfill.objects.exists()


def test_roles_and_visibility(api_as, graph, users):
    a, _, _ = graph
    assert post(api_as("vera"), body(a)).status_code == 403
    assert post(api_as("stranger"), body(a)).status_code == 422  # an unknown node
    run = post(api_as("olga"), body(a)).json()
    assert api_as("stranger").get(f"/api/backfills/{run['id']}").status_code == 404
    assert api_as("stranger").get("/api/backfills").json()["items"] == []
    assert api_as("vera").post(f"/api/backfills/{run['id']}/stop").status_code == 403
    refused = OperationLog.objects.filter(action="backfill_stop", result="refused")
    assert refused.count() == 1


def test_cross_project_downstream_only_when_visible(api_as, graph, users):
    a, _, _ = graph
    other = Project.objects.create(code="other", name="Other", timezone="UTC")
    far = node_create(other, "far", owner=users["alice"], upstream=[a])
    plan = post(api_as("olga"), body(a, downstream="all", dry_run=True)).json()
    assert far.pk not in [n["id"] for n in plan["nodes"]]
    plan = post(api_as("root"), body(a, downstream="all", dry_run=True)).json()
    assert far.pk in [n["id"] for n in plan["nodes"]]


def test_stop_and_rerun_failed_endpoints(api_as, graph):
    a, _, _ = graph
    olga = api_as("olga")
    run = post(olga, body(a)).json()
    assert olga.post(f"/api/backfills/{run['id']}/rerun-failed").status_code == 409
    Instance.objects.filter(backfill_id=run["id"], backfill_seq=0).update(state="failed")
    rerun = olga.post(f"/api/backfills/{run['id']}/rerun-failed")
    assert rerun.status_code == 200, rerun.content
    assert rerun.json()["counts"]["failed"] == 0

    stopped = olga.post(f"/api/backfills/{run['id']}/stop")
    assert stopped.status_code == 200
    assert stopped.json()["state"] == "stopped"
    assert stopped.json()["counts"]["pending"] == 0
    assert stopped.json()["counts"]["stopped"] == 3
    assert olga.post(f"/api/backfills/{run['id']}/stop").status_code == 409
    actions = set(OperationLog.objects.values_list("action", "result"))
    assert {("backfill_rerun_failed", "ok"), ("backfill_stop", "ok")} <= actions


def test_instances_backfill_filter_refuses_nonsense(api_as, graph):
    answer = api_as("olga").get("/api/instances?backfill=maybe")
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "backfill"
