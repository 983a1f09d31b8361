"""/api/monitor-rules: create, read, change (merged, then checked whole), delete; roles;
every bad input answers 422 naming the field and changes nothing."""

import json

import pytest
from django.contrib.auth.models import Group

from apps.audit.models import OperationLog
from apps.monitoring.models import MonitorRule, OnCallSchedule
from apps.projects.models import Membership, Project
from tests.factories import node_create

from .alert_rows import channel_make, rule_make

RULE_KEYS = {
    "id",
    "project",
    "name",
    "scope",
    "triggers",
    "severity",
    "recipients",
    "channels",
    "dedup_minutes",
    "mute_windows",
    "escalate_after_minutes",
    "escalate_to",
    "enabled",
    "created_at",
    "updated_at",
}


@pytest.fixture
def beta(users):
    """Another project, alice not a member; its own node and channel."""
    beta = Project.objects.create(code="beta", name="Beta")
    Membership.objects.create(project=beta, user=users["stranger"], role="admin")
    return beta


@pytest.fixture
def report(project, users):
    return node_create(project, "report", owner=users["alice"])


def post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def patch(client, url, body):
    return client.patch(url, json.dumps(body), content_type="application/json")


def fields_of(response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


def full_rule(report, channel) -> dict:
    return {
        "project": "acme",
        "name": "report failures",
        "scope": {"kind": "nodes", "nodes": [report.pk]},
        "triggers": [
            {"type": "failure"},
            {"type": "running_longer", "minutes": 90},
            {"type": "unfinished_by", "time": "08:30"},
        ],
        "severity": "warning",
        "recipients": {"owner": True, "users": ["olga"], "groups": [], "on_call": None},
        "channels": [channel.pk],
        "dedup_minutes": 15,
        "mute_windows": [{"start": "22:00", "end": "06:00"}],
        "escalate_after_minutes": 20,
        "escalate_to": {"users": ["alice"]},
        "enabled": True,
    }


def test_admin_creates_a_rule_answered_whole_and_logged(api_as, project, report):
    channel = channel_make(project)
    response = post(api_as("alice"), "/api/monitor-rules", full_rule(report, channel))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == RULE_KEYS
    assert body["project"] == "acme"
    assert body["channels"] == [channel.pk]
    assert body["scope"] == {"kind": "nodes", "nodes": [report.pk]}
    # Recipients are answered in their full shape.
    assert body["escalate_to"] == {
        "owner": False,
        "users": ["alice"],
        "groups": [],
        "on_call": None,
    }
    assert body["created_at"].endswith("+08:00")  # the project's timezone
    rule = MonitorRule.objects.get(pk=body["id"])
    assert list(rule.channels.all()) == [channel]
    record = OperationLog.objects.get(action="monitor_rule.create")
    assert (record.object_id, record.result, record.source) == (str(rule.pk), "ok", "api")
    assert record.username == "alice" and record.project == project


def test_omitted_fields_take_their_defaults(api_as, project):
    response = post(
        api_as("alice"),
        "/api/monitor-rules",
        {
            "project": "acme",
            "name": "all",
            "scope": {"kind": "project"},
            "triggers": [{"type": "failure"}],
        },
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["dedup_minutes"] == 30
    assert body["severity"] == "" and body["enabled"] is True
    assert body["channels"] == [] and body["mute_windows"] == []
    assert body["escalate_after_minutes"] is None and body["escalate_to"] == {}


def test_global_channels_may_be_used(api_as, project):
    everyone = channel_make(None, name="ops-room")
    response = post(
        api_as("alice"),
        "/api/monitor-rules",
        {
            "project": "acme",
            "name": "all",
            "scope": {"kind": "project"},
            "triggers": [{"type": "failure"}],
            "channels": [everyone.pk],
        },
    )
    assert response.status_code == 201, response.json()
    assert response.json()["channels"] == [everyone.pk]


def test_members_read_strangers_see_nothing(api_as, project, beta):
    rule = rule_make(project)
    rule_make(beta, name="beta's")
    for name in ("vera", "dave", "olga", "alice", "root"):
        listed = api_as(name).get("/api/monitor-rules?project=acme")
        assert [r["id"] for r in listed.json()["items"]] == [rule.pk], name
        assert api_as(name).get(f"/api/monitor-rules/{rule.pk}").json()["name"] == "failures"
    assert len(api_as("root").get("/api/monitor-rules").json()["items"]) == 2
    stranger = api_as("stranger")
    assert [r["name"] for r in stranger.get("/api/monitor-rules").json()["items"]] == ["beta's"]
    assert stranger.get(f"/api/monitor-rules/{rule.pk}").status_code == 404
    assert stranger.get("/api/monitor-rules?project=acme").status_code == 404
    assert patch(stranger, f"/api/monitor-rules/{rule.pk}", {"enabled": False}).status_code == 404
    assert stranger.delete(f"/api/monitor-rules/{rule.pk}").status_code == 404


def test_rule_list_pages_with_a_cursor(api_as, project):
    made = [rule_make(project, name=f"rule {n}").pk for n in range(5)]
    client = api_as("vera")
    first = client.get("/api/monitor-rules?limit=2").json()
    second = client.get(f"/api/monitor-rules?limit=2&cursor={first['next_cursor']}").json()
    third = client.get(f"/api/monitor-rules?limit=2&cursor={second['next_cursor']}").json()
    ids = [r["id"] for page in (first, second, third) for r in page["items"]]
    assert ids == made and third["next_cursor"] is None


@pytest.mark.parametrize("name", ["olga", "dave", "vera"])
def test_only_admins_change_rules_and_a_refusal_is_logged(api_as, project, name):
    rule = rule_make(project)
    body = {
        "project": "acme",
        "name": "x",
        "scope": {"kind": "project"},
        "triggers": [{"type": "failure"}],
    }
    assert post(api_as(name), "/api/monitor-rules", body).status_code == 403
    assert (
        patch(api_as(name), f"/api/monitor-rules/{rule.pk}", {"enabled": False}).status_code == 403
    )
    assert api_as(name).delete(f"/api/monitor-rules/{rule.pk}").status_code == 403
    assert list(MonitorRule.objects.values_list("name", "enabled")) == [("failures", True)]
    refused = OperationLog.objects.filter(result="refused", username=name)
    assert sorted(refused.values_list("action", flat=True)) == [
        "monitor_rule.create",
        "monitor_rule.delete",
        "monitor_rule.update",
    ]
    assert all("admin role" in r.message for r in refused)


def test_patch_merges_then_checks_the_whole_rule(api_as, project, report):
    channel = channel_make(project)
    created = post(api_as("alice"), "/api/monitor-rules", full_rule(report, channel)).json()
    url = f"/api/monitor-rules/{created['id']}"
    response = patch(api_as("alice"), url, {"enabled": False, "dedup_minutes": 5})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["enabled"], body["dedup_minutes"]) == (False, 5)
    unchanged = {
        k: v for k, v in created.items() if k not in ("enabled", "dedup_minutes", "updated_at")
    }
    assert {k: body[k] for k in unchanged} == unchanged
    record = OperationLog.objects.get(action="monitor_rule.update")
    assert record.detail == {"changed": {"enabled": False, "dedup_minutes": 5}}
    # Escalation turned off with null; its own project may be sent unchanged.
    response = patch(api_as("alice"), url, {"escalate_after_minutes": None, "project": "acme"})
    assert response.status_code == 200, response.json()
    assert response.json()["escalate_after_minutes"] is None
    # A change that makes the whole rule wrong is refused and changes nothing.
    response = patch(
        api_as("alice"), url, {"triggers": [{"type": "running_longer"}], "enabled": True}
    )
    assert response.status_code == 422
    assert fields_of(response) == ["triggers.0.minutes"]
    rule = MonitorRule.objects.get(pk=created["id"])
    assert rule.enabled is False and len(rule.triggers) == 3


@pytest.mark.parametrize(
    "change, field",
    [
        ({"project": "beta"}, "project"),
        ({"name": None}, "name"),
        ({"name": "  "}, "name"),
        ({"enabled": None}, "enabled"),
        ({"scope": {"kind": "everything"}}, "scope.kind"),
        ({"severity": "urgent"}, "severity"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_patch_refuses_bad_fields(api_as, project, beta, change, field):
    rule = rule_make(project)
    response = patch(api_as("alice"), f"/api/monitor-rules/{rule.pk}", change)
    assert response.status_code == 422, response.json()
    assert field in fields_of(response)
    rule.refresh_from_db()
    assert (rule.name, rule.enabled, rule.scope, rule.severity) == (
        "failures",
        True,
        {"kind": "project"},
        "",
    )


def test_delete_removes_the_rule_and_logs_it(api_as, project):
    rule = rule_make(project)
    assert api_as("alice").delete(f"/api/monitor-rules/{rule.pk}").status_code == 204
    assert not MonitorRule.objects.exists()
    assert api_as("alice").get(f"/api/monitor-rules/{rule.pk}").status_code == 404
    record = OperationLog.objects.get(action="monitor_rule.delete")
    assert (record.object_id, record.detail) == (str(rule.pk), {"name": "failures"})


def _bad_inputs(other_node, other_channel):
    """(what to change in a good rule, the field the answer must name)."""
    return [
        ({"scope": {"kind": "nodes", "nodes": [other_node.pk]}}, "scope.nodes"),
        ({"scope": {"kind": "nodes", "nodes": []}}, "scope.nodes"),
        ({"scope": {"kind": "owner", "owner": "nobody"}}, "scope.owner"),
        ({"scope": {"kind": "galaxy"}}, "scope.kind"),
        ({"triggers": [{"type": "exploded"}]}, "triggers.0.type"),
        ({"triggers": []}, "triggers"),
        ({"triggers": [{"type": "running_longer"}]}, "triggers.0.minutes"),
        ({"triggers": [{"type": "unfinished_by", "time": "24:00"}]}, "triggers.0.time"),
        ({"triggers": [{"type": "slower_than_usual", "factor": 1}]}, "triggers.0.factor"),
        ({"triggers": [{"type": "failure"}, {"type": "failure"}]}, "triggers.1.type"),
        ({"triggers": [{"type": "failure", "minute": 5}]}, "triggers.0.minute"),
        ({"triggers": [{"type": "failure", "minutes": 5}]}, "triggers.0.minutes"),
        ({"mute_windows": [{"start": "25:00", "end": "06:00"}]}, "mute_windows.0.start"),
        ({"mute_windows": [{"start": "22:00"}]}, "mute_windows.0.end"),
        ({"mute_windows": [{"start": "22:00", "end": "06:00", "days": 1}]}, "mute_windows.0.days"),
        ({"recipients": {"users": ["ghost"]}}, "recipients.users"),
        ({"recipients": {"groups": ["nobody-group"]}}, "recipients.groups"),
        ({"recipients": {"on_call": "no-such-rotation"}}, "recipients.on_call"),
        ({"recipients": {"owner": True, "team": "x"}}, "recipients"),
        ({"channels": [999999]}, "channels"),
        ({"channels": [other_channel.pk]}, "channels"),
        ({"channels": ["hook"]}, "channels.0"),
        ({"severity": "urgent"}, "severity"),
        ({"dedup_minutes": -1}, "dedup_minutes"),
        ({"escalate_after_minutes": 10}, "escalate_to"),
        (
            {"escalate_after_minutes": 0, "escalate_to": {"users": ["olga"]}},
            "escalate_after_minutes",
        ),
        ({"escalate_after_minutes": 10, "escalate_to": {"users": ["ghost"]}}, "escalate_to.users"),
        ({"enabled": "sometimes"}, "enabled"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"priority": 3}, "priority"),
        # Numbers beyond what a column or a clock holds name nothing, never a 500.
        ({"channels": [2**70]}, "channels"),
        ({"scope": {"kind": "nodes", "nodes": [2**70]}}, "scope.nodes"),
        ({"scope": {"kind": "nodes", "nodes": [True]}}, "scope.nodes"),
        ({"dedup_minutes": 10**20}, "dedup_minutes"),
        (
            {"escalate_after_minutes": 10**9, "escalate_to": {"users": ["olga"]}},
            "escalate_after_minutes",
        ),
        ({"triggers": [{"type": "running_longer", "minutes": 10**9}]}, "triggers.0.minutes"),
        ({"triggers": [{"type": "slower_than_usual", "factor": 1e300}]}, "triggers.0.factor"),
    ]


def test_every_bad_input_is_422_naming_its_field_and_creates_nothing(api_as, project, beta, users):
    other_node = node_create(beta, "theirs", owner=users["stranger"])
    other_channel = channel_make(beta, name="their-hook")
    good = {
        "project": "acme",
        "name": "ok",
        "scope": {"kind": "project"},
        "triggers": [{"type": "failure"}],
    }
    client = api_as("alice")
    for change, field in _bad_inputs(other_node, other_channel):
        response = post(client, "/api/monitor-rules", {**good, **change})
        assert response.status_code == 422, (change, response.json())
        assert field in fields_of(response), (change, response.json())
        assert response.json()["detail"]
    assert not MonitorRule.objects.exists()
    assert post(client, "/api/monitor-rules", good).status_code == 201


def test_a_name_is_unique_within_its_project(api_as, project, beta):
    rule_make(project, name="dup")
    rule_make(beta, name="dup")  # another project's rule of that name is no matter
    body = {
        "project": "acme",
        "name": "dup",
        "scope": {"kind": "project"},
        "triggers": [{"type": "failure"}],
    }
    response = post(api_as("alice"), "/api/monitor-rules", body)
    assert response.status_code == 422 and fields_of(response) == ["name"]
    other = rule_make(project, name="other")
    response = patch(api_as("alice"), f"/api/monitor-rules/{other.pk}", {"name": "dup"})
    assert response.status_code == 422 and fields_of(response) == ["name"]


def test_recipients_name_real_groups_and_the_projects_own_or_global_schedules(
    api_as, project, beta, users
):
    Group.objects.create(name="dba")
    OnCallSchedule.objects.create(name="global", users=["olga"], start_date="2026-11-01")
    OnCallSchedule.objects.create(
        name="theirs", project=beta, users=["stranger"], start_date="2026-11-01"
    )
    OnCallSchedule.objects.create(
        name="ours", project=project, users=["olga"], start_date="2026-11-01"
    )
    good = {"project": "acme", "scope": {"kind": "project"}, "triggers": [{"type": "failure"}]}
    client = api_as("alice")
    for n, on_call in enumerate(["global", "ours"]):
        response = post(
            client,
            "/api/monitor-rules",
            {**good, "name": f"r{n}", "recipients": {"groups": ["dba"], "on_call": on_call}},
        )
        assert response.status_code == 201, response.json()
    response = post(
        client, "/api/monitor-rules", {**good, "name": "r9", "recipients": {"on_call": "theirs"}}
    )
    assert response.status_code == 422 and fields_of(response) == ["recipients.on_call"]
    response = post(
        client,
        "/api/monitor-rules",
        {**good, "name": "r9", "escalate_after_minutes": 5, "escalate_to": {"on_call": "theirs"}},
    )
    assert response.status_code == 422 and fields_of(response) == ["escalate_to.on_call"]


def test_a_refused_create_is_in_the_operation_log(api_as, project):
    body = {
        "project": "acme",
        "name": "x",
        "scope": {"kind": "project"},
        "triggers": [{"type": "nope"}],
    }
    assert post(api_as("alice"), "/api/monitor-rules", body).status_code == 422
    record = OperationLog.objects.get(action="monitor_rule.create")
    assert (record.result, record.object_id) == ("refused", "")
    assert "triggers.0.type" in record.message


def test_a_rule_in_a_project_one_cannot_see_is_404(api_as, project, beta):
    body = {
        "project": "beta",
        "name": "x",
        "scope": {"kind": "project"},
        "triggers": [{"type": "failure"}],
    }
    response = post(api_as("alice"), "/api/monitor-rules", body)
    assert response.status_code == 404
    assert not MonitorRule.objects.exists()
