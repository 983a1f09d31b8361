"""/api/baselines: create, read, change, delete; roles; every bad input answers 422 naming
its field and changes nothing; a cycle's status (the exact fields of SPEC 12) and the
history of past cycles; the baseline monitoring scope; the instance list's filter."""

import json

import pytest
import time_machine

from apps.audit.models import OperationLog
from apps.baselines import cycles
from apps.baselines.models import Baseline, BaselineCycle
from apps.monitoring.models import MonitorRule
from apps.notifications.models import Channel
from apps.projects.models import Membership, Project
from tests.factories import instance_create, node_create

from .builders import BIZ_DATE, at, baseline_make, diamond, run, start

BASELINE_KEYS = {
    "id",
    "project",
    "name",
    "cycle",
    "committed_time",
    "margin_minutes",
    "priority",
    "key_nodes",
    "recipients",
    "channels",
    "enabled",
    "created_at",
    "updated_at",
}
STATUS_KEYS = {
    "baseline",
    "biz_date",
    "hour",
    "committed_at",
    "warning_at",
    "predicted_finish",
    "estimated",
    "status",
    "blocked_by",
    "critical_path",
    "key_instances",
}
STEP_KEYS = {"instance", "node", "node_name", "state", "start", "finish", "expected_seconds"}


def post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def patch(client, url, body):
    return client.patch(url, json.dumps(body), content_type="application/json")


def fields_of(response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


@pytest.fixture
def beta(users):
    """Another project; alice is not a member of it."""
    beta = Project.objects.create(code="beta", name="Beta")
    Membership.objects.create(project=beta, user=users["stranger"], role="admin")
    return beta


@pytest.fixture
def report(project, users):
    return node_create(project, "report", owner=users["alice"])


def body_of(report, **changes) -> dict:
    body = {
        "project": "acme",
        "name": "morning report",
        "cycle": "daily",
        "committed_time": "09:30",
        "margin_minutes": 45,
        "priority": 7,
        "key_nodes": [report.pk],
        "recipients": {"owner": True, "users": ["olga"]},
    }
    body.update(changes)
    return body


@pytest.mark.django_db
def test_an_admin_creates_a_baseline_answered_whole_and_logged(api_as, project, report):
    channel = Channel.objects.create(project=project, name="hook", kind="webhook", config={})
    response = post(api_as("alice"), "/api/baselines", body_of(report, channels=[channel.pk]))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == BASELINE_KEYS
    assert body["project"] == "acme" and body["key_nodes"] == [report.pk]
    assert (body["cycle"], body["committed_time"], body["margin_minutes"], body["priority"]) == (
        "daily",
        "09:30",
        45,
        7,
    )
    assert body["recipients"] == {"owner": True, "users": ["olga"], "groups": [], "on_call": None}
    assert body["channels"] == [channel.pk] and body["enabled"] is True
    assert body["created_at"].endswith("+08:00")
    log = OperationLog.objects.get(action="baseline.create")
    assert (log.username, log.result, log.object_id) == ("alice", "ok", str(body["id"]))
    # Defaults for what is left out.
    minimal = {"project": "acme", "name": "m", "committed_time": "07:00", "key_nodes": [report.pk]}
    made = post(api_as("alice"), "/api/baselines", minimal).json()
    assert (made["cycle"], made["margin_minutes"], made["priority"]) == ("daily", 30, 5)


@pytest.mark.django_db
def test_members_read_others_are_refused_and_strangers_see_nothing(api_as, project, report, beta):
    baseline = baseline_make(project, [report])
    for name in ("vera", "dave", "olga", "alice", "root"):
        response = api_as(name).get(f"/api/baselines/{baseline.pk}")
        assert response.status_code == 200, name
    assert [b["id"] for b in api_as("vera").get("/api/baselines").json()["items"]] == [baseline.pk]
    assert api_as("stranger").get(f"/api/baselines/{baseline.pk}").status_code == 404
    assert api_as("stranger").get("/api/baselines").json()["items"] == []
    assert api_as("stranger").get("/api/baselines?project=acme").status_code == 404
    for name in ("vera", "dave", "olga"):
        response = post(api_as(name), "/api/baselines", body_of(report, name=f"by {name}"))
        assert response.status_code == 403, name
        assert (
            patch(api_as(name), f"/api/baselines/{baseline.pk}", {"priority": 1}).status_code == 403
        )
        assert api_as(name).delete(f"/api/baselines/{baseline.pk}").status_code == 403
    assert Baseline.objects.count() == 1 and Baseline.objects.get().priority == 8
    assert OperationLog.objects.filter(action="baseline.create", result="refused").count() == 3


@pytest.mark.django_db
def test_patch_merges_then_checks_the_whole_baseline_and_delete_removes_it(
    api_as, project, report, users
):
    baseline = baseline_make(project, [report])
    response = patch(api_as("alice"), f"/api/baselines/{baseline.pk}", {"cycle": "hourly"})
    # Hourly takes a minute MM: the stored 10:00 no longer fits.
    assert response.status_code == 422 and fields_of(response) == ["committed_time"]
    response = patch(
        api_as("alice"),
        f"/api/baselines/{baseline.pk}",
        {"cycle": "hourly", "committed_time": "45", "margin_minutes": 15, "project": "acme"},
    )
    assert response.status_code == 200, response.json()
    assert (response.json()["cycle"], response.json()["committed_time"]) == ("hourly", "45")
    response = patch(api_as("alice"), f"/api/baselines/{baseline.pk}", {"project": "beta"})
    assert response.status_code == 422 and fields_of(response) == ["project"]
    assert api_as("alice").delete(f"/api/baselines/{baseline.pk}").status_code == 204
    assert not Baseline.objects.exists()
    assert api_as("alice").get(f"/api/baselines/{baseline.pk}").status_code == 404


BAD_INPUT = [
    ({"key_nodes": "OTHER"}, "key_nodes"),
    ({"key_nodes": []}, "key_nodes"),
    ({"key_nodes": [0]}, "key_nodes"),
    ({"key_nodes": [2**63]}, "key_nodes"),
    ({"committed_time": "24:61"}, "committed_time"),
    ({"committed_time": "9:30"}, "committed_time"),
    ({"cycle": "hourly", "committed_time": "09:30"}, "committed_time"),
    ({"cycle": "hourly", "committed_time": "60"}, "committed_time"),
    ({"cycle": "weekly"}, "cycle"),
    ({"margin_minutes": 1440}, "margin_minutes"),
    ({"cycle": "hourly", "committed_time": "30", "margin_minutes": 60}, "margin_minutes"),
    ({"margin_minutes": -1}, "margin_minutes"),
    ({"priority": 9}, "priority"),
    ({"priority": 0}, "priority"),
    ({"recipients": {"users": ["nobody"]}}, "recipients.users"),
    ({"recipients": {"pager": True}}, "recipients"),
    ({"channels": [999999]}, "channels"),
    ({"name": ""}, "name"),
    ({"name": "x" * 101}, "name"),
    ({"colour": "red"}, "colour"),
    ({"priority": "high"}, "priority"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("change,field", BAD_INPUT, ids=[f for _, f in BAD_INPUT])
def test_bad_input_is_422_naming_the_field_and_changes_nothing(
    api_as, project, report, beta, users, change, field
):
    other = node_create(beta, "theirs", owner=users["stranger"])
    if change.get("key_nodes") == "OTHER":
        change = {"key_nodes": [other.pk]}
    existing = baseline_make(project, [report], name="kept", committed_time="08:00")
    response = post(api_as("alice"), "/api/baselines", body_of(report, **change))
    assert response.status_code == 422, response.json()
    assert field in fields_of(response), response.json()
    assert response.json()["detail"]
    assert Baseline.objects.count() == 1
    # The same through PATCH leaves the stored baseline as it was.
    change = {k: v for k, v in change.items() if k not in ("project",)}
    response = patch(api_as("alice"), f"/api/baselines/{existing.pk}", change)
    assert response.status_code == 422 and field in fields_of(response)
    kept = Baseline.objects.get()
    assert (kept.name, kept.committed_time, kept.priority, kept.margin_minutes) == (
        "kept",
        "08:00",
        8,
        30,
    )
    assert list(kept.key_nodes.values_list("pk", flat=True)) == [report.pk]


@pytest.mark.django_db
def test_a_key_node_of_another_project_names_the_node(api_as, project, report, beta, users):
    other = node_create(beta, "theirs", owner=users["stranger"])
    response = post(
        api_as("alice"), "/api/baselines", body_of(report, key_nodes=[report.pk, other.pk])
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "key_nodes", "message": f"no node {other.pk} in project acme"}
    ]
    dev = node_create(project, "draft", owner=users["alice"], env="dev")
    response = post(api_as("alice"), "/api/baselines", body_of(report, key_nodes=[dev.pk]))
    assert response.status_code == 422 and "dev node" in response.json()["errors"][0]["message"]


@pytest.mark.django_db
def test_status_answers_the_spec_fields_in_the_project_timezone(api_as, project, users):
    d = diamond(project, users["alice"])
    start(d["instances"]["a"], at(8, 55))
    baseline = baseline_make(project, [d["nodes"]["d"]], committed_time="10:00")
    with time_machine.travel(at(9), tick=False):
        response = api_as("vera").get(f"/api/baselines/{baseline.pk}/status")
        explicit = api_as("vera").get(
            f"/api/baselines/{baseline.pk}/status?biz_date={BIZ_DATE.isoformat()}"
        )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert explicit.json() == body
    assert set(body) == STATUS_KEYS
    assert body["baseline"] == baseline.pk and body["biz_date"] == "2026-11-19"
    assert body["hour"] is None
    assert body["committed_at"] == "2026-11-20T10:00:00+08:00"
    assert body["warning_at"] == "2026-11-20T09:30:00+08:00"
    assert body["predicted_finish"] == "2026-11-20T09:43:30+08:00"
    assert (body["estimated"], body["status"], body["blocked_by"]) == (True, "warning", [])
    assert body["key_instances"] == [d["instances"]["d"].pk]
    path = body["critical_path"]
    assert [set(step) for step in path] == [STEP_KEYS] * 3
    assert [step["node_name"] for step in path] == ["a", "c", "d"]
    assert path[0] == {
        "instance": d["instances"]["a"].pk,
        "node": d["nodes"]["a"].pk,
        "node_name": "a",
        "state": "running",
        "start": "2026-11-20T08:55:00+08:00",
        "finish": "2026-11-20T09:06:00+08:00",
        "expected_seconds": 660.0,
    }


@pytest.mark.django_db
def test_status_of_a_blocked_cycle_and_bad_cycle_parameters(api_as, project, users):
    d = diamond(project, users["alice"])
    run(d["instances"]["a"], at(2), at(2, 10))
    start(d["instances"]["c"], at(2, 10))
    from .builders import finish

    finish(d["instances"]["c"], at(2, 20), outcome="failed")
    baseline = baseline_make(project, [d["nodes"]["d"]])
    client = api_as("vera")
    with time_machine.travel(at(9), tick=False):
        body = client.get(f"/api/baselines/{baseline.pk}/status").json()
        assert (body["status"], body["predicted_finish"]) == ("broken", None)
        assert body["blocked_by"] == [
            {
                "instance": d["instances"]["c"].pk,
                "node": d["nodes"]["c"].pk,
                "node_name": "c",
                "state": "failed",
                "paused": False,
            }
        ]
        for query, field in [
            ("biz_date=yesterday", "biz_date"),
            ("hour=3", "hour"),
            ("biz_date=2020-01-01", "biz_date"),
        ]:
            response = client.get(f"/api/baselines/{baseline.pk}/status?{query}")
            assert response.status_code in (404, 422), query
            assert fields_of(response) == [field], query
        assert client.get("/api/baselines/999999/status").status_code == 404


@pytest.mark.django_db
def test_hourly_status_takes_the_hour_and_history_lists_past_cycles(api_as, project, users):
    node = node_create(project, "hourly_load", owner=users["alice"], cron="0 * * * *")
    instances = {h: instance_create(node, at(h)) for h in range(0, 4)}
    for h in range(0, 3):
        run(instances[h], at(h), at(h, 50 if h == 1 else 10))
    baseline = baseline_make(project, [node], cycle="hourly", committed_time="30", margin_minutes=5)
    cycles.baselines_check(now=at(3, 5))
    client = api_as("vera")
    with time_machine.travel(at(3, 5), tick=False):
        current = client.get(f"/api/baselines/{baseline.pk}/status").json()
        first = client.get(f"/api/baselines/{baseline.pk}/status?hour=1").json()
        bad = client.get(f"/api/baselines/{baseline.pk}/status?hour=24")
    assert (current["hour"], current["status"]) == (3, "safe")
    assert current["committed_at"] == "2026-11-20T03:30:00+08:00"
    assert (first["hour"], first["status"]) == (1, "finished_late")
    assert first["predicted_finish"] == "2026-11-20T01:50:00+08:00"
    assert bad.status_code == 422 and fields_of(bad) == ["hour"]
    history = client.get(f"/api/baselines/{baseline.pk}/history").json()
    rows = [(r["hour"], r["status"], r["finished_at"]) for r in history["items"]]
    assert rows == [
        (3, "safe", None),
        (2, "finished_on_time", "2026-11-20T02:10:00+08:00"),
        (1, "finished_late", "2026-11-20T01:50:00+08:00"),
        (0, "finished_on_time", "2026-11-20T00:10:00+08:00"),
    ]
    assert {r["biz_date"] for r in history["items"]} == {"2026-11-19"}
    page = client.get(f"/api/baselines/{baseline.pk}/history?limit=2").json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = client.get(
        f"/api/baselines/{baseline.pk}/history?limit=2&cursor={page['next_cursor']}"
    ).json()
    assert [r["hour"] for r in rest["items"]] == [1, 0]
    assert BaselineCycle.objects.count() == 4


@pytest.mark.django_db
def test_a_monitoring_rule_may_watch_a_baseline_key_nodes_and_ancestors(api_as, project, users):
    d = diamond(project, users["alice"])
    baseline = baseline_make(project, [d["nodes"]["c"]])
    body = {
        "project": "acme",
        "name": "baseline failures",
        "scope": {"kind": "baseline", "baseline": baseline.pk},
        "triggers": [{"type": "failure"}],
    }
    response = post(api_as("alice"), "/api/monitor-rules", body)
    assert response.status_code == 201, response.json()
    from apps.monitoring.rules import rule_node_ids

    rule = MonitorRule.objects.get()
    assert rule_node_ids(rule) == {d["nodes"]["a"].pk, d["nodes"]["c"].pk}
    response = post(
        api_as("alice"),
        "/api/monitor-rules",
        {**body, "name": "bad", "scope": {"kind": "baseline", "baseline": 999}},
    )
    assert response.status_code == 422 and fields_of(response) == ["scope.baseline"]


@pytest.mark.django_db
def test_the_instance_api_filters_the_instances_on_todays_paths(api_as, project, users):
    d = diamond(project, users["alice"])
    stray = instance_create(node_create(project, "stray", owner=users["alice"]), at(2))
    one = baseline_make(project, [d["nodes"]["b"]], name="b only")
    baseline_make(project, [d["nodes"]["d"]], name="all")
    cycles.baselines_check(now=at(9))
    client = api_as("vera")
    with time_machine.travel(at(9), tick=False):
        every = {i["id"] for i in client.get("/api/instances?baseline=any").json()["items"]}
        mine = {i["id"] for i in client.get(f"/api/instances?baseline={one.pk}").json()["items"]}
        bad = client.get("/api/instances?baseline=some")
    i = d["instances"]
    assert every == {i["a"].pk, i["b"].pk, i["c"].pk, i["d"].pk}
    assert stray.pk not in every
    assert mine == {i["a"].pk, i["b"].pk}
    assert bad.status_code == 422 and fields_of(bad) == ["baseline"]
