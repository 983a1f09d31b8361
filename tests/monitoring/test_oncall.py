"""On-call schedules: who is on call at a moment (daily and weekly rotations, around the
handover, before the start, across a DST change) and /api/on-call."""

import datetime
import json
import zoneinfo

import pytest
import time_machine

from apps.audit.models import OperationLog
from apps.monitoring import oncall
from apps.monitoring.models import MonitorRule, OnCallSchedule
from apps.projects.models import Membership, Project

from .alert_rows import rule_make

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def at(tz, *parts) -> datetime.datetime:
    return datetime.datetime(*parts, tzinfo=tz)


def schedule(**fields) -> OnCallSchedule:
    fields.setdefault("name", "ops")
    fields.setdefault("timezone", "Asia/Shanghai")
    return OnCallSchedule(**fields)


# --- the rotation ------------------------------------------------------------------------


def test_daily_rotation_hands_over_at_the_handover_time():
    daily = schedule(
        users=["ann", "bob", "cid"],
        period="daily",
        handover=datetime.time(9, 0),
        start_date=datetime.date(2026, 11, 1),
    )
    cases = [
        (at(SHANGHAI, 2026, 11, 1, 9, 0), "ann"),
        (at(SHANGHAI, 2026, 11, 1, 23, 59), "ann"),
        (at(SHANGHAI, 2026, 11, 2, 8, 59, 59), "ann"),  # the night before the handover
        (at(SHANGHAI, 2026, 11, 2, 9, 0), "bob"),
        (at(SHANGHAI, 2026, 11, 3, 9, 0), "cid"),
        (at(SHANGHAI, 2026, 11, 4, 9, 0), "ann"),  # round again
        # The same moment in another timezone: 01:00 UTC is 09:00 in Shanghai.
        (datetime.datetime(2026, 11, 2, 0, 59, tzinfo=datetime.UTC), "ann"),
        (datetime.datetime(2026, 11, 2, 1, 0, tzinfo=datetime.UTC), "bob"),
    ]
    for moment, expected in cases:
        assert oncall.on_call_at(daily, moment) == expected, moment
    assert oncall.next_handover(daily, at(SHANGHAI, 2026, 11, 2, 8, 0)) == (
        at(SHANGHAI, 2026, 11, 2, 9, 0),
        "bob",
    )
    assert oncall.next_handover(daily, at(SHANGHAI, 2026, 11, 3, 9, 0)) == (
        at(SHANGHAI, 2026, 11, 4, 9, 0),
        "ann",
    )


def test_weekly_rotation_counts_weeks_from_the_start_date():
    weekly = schedule(
        users=["ann", "bob"],
        period="weekly",
        handover=datetime.time(10, 0),
        start_date=datetime.date(2026, 11, 2),
    )
    cases = [
        (at(SHANGHAI, 2026, 11, 2, 10, 0), "ann"),
        (at(SHANGHAI, 2026, 11, 8, 23, 0), "ann"),
        (at(SHANGHAI, 2026, 11, 9, 9, 59), "ann"),
        (at(SHANGHAI, 2026, 11, 9, 10, 0), "bob"),
        (at(SHANGHAI, 2026, 11, 16, 9, 59), "bob"),
        (at(SHANGHAI, 2026, 11, 16, 10, 0), "ann"),
    ]
    for moment, expected in cases:
        assert oncall.on_call_at(weekly, moment) == expected, moment
    assert oncall.next_handover(weekly, at(SHANGHAI, 2026, 11, 9, 9, 59)) == (
        at(SHANGHAI, 2026, 11, 9, 10, 0),
        "bob",
    )
    assert oncall.next_handover(weekly, at(SHANGHAI, 2026, 11, 12, 0, 0)) == (
        at(SHANGHAI, 2026, 11, 16, 10, 0),
        "ann",
    )


def test_nobody_is_on_call_before_the_start_and_the_first_takes_over_then():
    rotation = schedule(
        users=["ann", "bob"],
        period="daily",
        handover=datetime.time(9, 0),
        start_date=datetime.date(2026, 11, 1),
    )
    assert oncall.on_call_at(rotation, at(SHANGHAI, 2026, 10, 20, 12, 0)) is None
    assert oncall.on_call_at(rotation, at(SHANGHAI, 2026, 11, 1, 8, 59)) is None
    assert oncall.next_handover(rotation, at(SHANGHAI, 2026, 11, 1, 8, 59)) == (
        at(SHANGHAI, 2026, 11, 1, 9, 0),
        "ann",
    )
    nobody = schedule(
        users=[], period="daily", handover=datetime.time(9, 0), start_date=datetime.date(2026, 1, 1)
    )
    assert oncall.on_call_at(nobody, at(SHANGHAI, 2026, 11, 1, 12, 0)) is None
    assert oncall.next_handover(nobody, at(SHANGHAI, 2026, 11, 1, 12, 0)) is None


def test_handover_stays_at_local_time_across_a_dst_change():
    # Berlin moves its clocks forward on 2026-03-29: 09:00 local is 08:00 UTC before,
    # 07:00 UTC after.
    berlin = schedule(
        users=["ann", "bob"],
        period="daily",
        handover=datetime.time(9, 0),
        start_date=datetime.date(2026, 3, 28),
        timezone="Europe/Berlin",
    )
    assert (
        oncall.on_call_at(berlin, datetime.datetime(2026, 3, 29, 6, 59, tzinfo=datetime.UTC))
        == "ann"
    )
    assert (
        oncall.on_call_at(berlin, datetime.datetime(2026, 3, 29, 7, 0, tzinfo=datetime.UTC))
        == "bob"
    )
    assert oncall.next_handover(berlin, at(BERLIN, 2026, 3, 28, 12, 0))[0] == datetime.datetime(
        2026, 3, 29, 7, 0, tzinfo=datetime.UTC
    )


# --- /api/on-call --------------------------------------------------------------------------


@pytest.fixture
def beta(users):
    beta = Project.objects.create(code="beta", name="Beta")
    Membership.objects.create(project=beta, user=users["stranger"], role="admin")
    return beta


def post(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def patch(client, url, body):
    return client.patch(url, json.dumps(body), content_type="application/json")


def fields_of(response) -> list[str]:
    return [error["field"] for error in response.json()["errors"]]


GOOD = {
    "name": "acme ops",
    "project": "acme",
    "users": ["olga", "alice"],
    "period": "daily",
    "handover": "09:00",
    "start_date": "2026-11-01",
}


def test_create_answers_who_is_on_call_now_and_next(api_as, project):
    with time_machine.travel(at(SHANGHAI, 2026, 11, 2, 8, 0), tick=False):
        response = post(api_as("alice"), "/api/on-call", GOOD)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body == {
        "id": body["id"],
        "name": "acme ops",
        "project": "acme",
        "users": ["olga", "alice"],
        "period": "daily",
        "handover": "09:00",
        "start_date": "2026-11-01",
        "timezone": "Asia/Shanghai",  # the project's, when not given
        "current": "olga",
        "next": {"at": "2026-11-02T09:00:00+08:00", "user": "alice"},
    }
    with time_machine.travel(at(SHANGHAI, 2026, 11, 2, 9, 0), tick=False):
        body = api_as("vera").get(f"/api/on-call/{body['id']}").json()
    assert body["current"] == "alice"
    assert body["next"] == {"at": "2026-11-03T09:00:00+08:00", "user": "olga"}
    record = OperationLog.objects.get(action="on_call.create")
    assert (record.object_id, record.result) == (str(body["id"]), "ok")
    assert record.detail["handover"] == "09:00"


def test_before_the_start_nobody_is_current(api_as, project):
    with time_machine.travel(at(SHANGHAI, 2026, 10, 1, 12, 0), tick=False):
        body = post(api_as("alice"), "/api/on-call", GOOD).json()
    assert body["current"] is None
    assert body["next"] == {"at": "2026-11-01T09:00:00+08:00", "user": "olga"}


def test_global_schedules_are_for_superusers_and_readable_by_all(api_as, project, beta):
    body = {**GOOD, "project": None, "name": "everyone"}
    response = post(api_as("alice"), "/api/on-call", body)
    assert response.status_code == 403
    assert OperationLog.objects.get(action="on_call.create").result == "refused"
    response = post(api_as("root"), "/api/on-call", body)
    assert response.status_code == 201, response.json()
    made = response.json()
    assert made["project"] is None and made["timezone"] == "UTC"
    # Anyone signed in reads it (any project's rules may name it); only superusers change it.
    assert api_as("stranger").get(f"/api/on-call/{made['id']}").status_code == 200
    assert (
        patch(api_as("alice"), f"/api/on-call/{made['id']}", {"period": "weekly"}).status_code
        == 403
    )
    assert api_as("alice").delete(f"/api/on-call/{made['id']}").status_code == 403
    assert OnCallSchedule.objects.get().period == "daily"


def test_project_schedules_roles(api_as, project, beta):
    ours = post(api_as("alice"), "/api/on-call", GOOD).json()
    for name in ("olga", "vera"):
        assert post(api_as(name), "/api/on-call", {**GOOD, "name": "x"}).status_code == 403
        assert (
            patch(api_as(name), f"/api/on-call/{ours['id']}", {"users": ["olga"]}).status_code
            == 403
        )
    stranger = api_as("stranger")
    assert stranger.get(f"/api/on-call/{ours['id']}").status_code == 404
    assert stranger.delete(f"/api/on-call/{ours['id']}").status_code == 404
    assert [s["name"] for s in stranger.get("/api/on-call").json()["items"]] == []
    assert post(stranger, "/api/on-call", {**GOOD, "name": "x"}).status_code == 404
    assert [s["name"] for s in api_as("vera").get("/api/on-call?project=acme").json()["items"]] == [
        "acme ops"
    ]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"users": ["olga", "ghost"]}, "users"),
        ({"users": []}, "users"),
        ({"users": "olga"}, "users"),
        ({"period": "monthly"}, "period"),
        ({"handover": "25:00"}, "handover"),
        ({"handover": "9am"}, "handover"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"start_date": "2026-13-01"}, "start_date"),
        ({"name": ""}, "name"),
        ({"project": "nope"}, None),  # a project one cannot see: 404
        ({"shift": "night"}, "shift"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_creates_nothing(api_as, project, change, field):
    response = post(api_as("alice"), "/api/on-call", {**GOOD, **change})
    if field is None:
        assert response.status_code == 404
    else:
        assert response.status_code == 422, response.json()
        assert field in fields_of(response)
    assert not OnCallSchedule.objects.exists()


def test_a_name_is_unique_across_all_schedules(api_as, project):
    OnCallSchedule.objects.create(name="acme ops", users=["root"], start_date="2026-01-01")
    response = post(api_as("alice"), "/api/on-call", GOOD)
    assert response.status_code == 422 and fields_of(response) == ["name"]


def test_patch_merges_and_checks_and_cannot_move_a_schedule(api_as, project, beta):
    made = post(api_as("alice"), "/api/on-call", GOOD).json()
    url = f"/api/on-call/{made['id']}"
    response = patch(api_as("alice"), url, {"period": "weekly", "handover": "10:30"})
    assert response.status_code == 200, response.json()
    assert (response.json()["period"], response.json()["handover"]) == ("weekly", "10:30")
    assert response.json()["users"] == ["olga", "alice"]
    for change, field in [
        ({"project": "beta"}, "project"),
        ({"project": None}, "project"),
        ({"handover": "7"}, "handover"),
        ({"users": None}, "users"),
    ]:
        response = patch(api_as("alice"), url, change)
        assert response.status_code == 422, (change, response.json())
        assert field in fields_of(response)
    stored = OnCallSchedule.objects.get()
    assert (stored.project, stored.handover) == (project, datetime.time(10, 30))


def test_a_rename_is_carried_into_the_rules_that_name_it(api_as, project):
    made = post(api_as("alice"), "/api/on-call", GOOD).json()
    rule = rule_make(
        project,
        recipients={"owner": True, "users": [], "groups": [], "on_call": "acme ops"},
        escalate_after_minutes=10,
        escalate_to={"owner": False, "users": [], "groups": [], "on_call": "acme ops"},
    )
    other = rule_make(project, name="other", recipients={"on_call": None})
    response = patch(api_as("alice"), f"/api/on-call/{made['id']}", {"name": "acme primary"})
    assert response.status_code == 200, response.json()
    rule.refresh_from_db()
    assert rule.recipients["on_call"] == "acme primary"
    assert rule.escalate_to["on_call"] == "acme primary"
    other.refresh_from_db()
    assert other.recipients == {"on_call": None}
    record = OperationLog.objects.get(action="on_call.update")
    assert record.detail["rules_renamed_in"] == [rule.pk]


def test_delete_is_refused_while_a_rule_names_the_schedule(api_as, project):
    made = post(api_as("alice"), "/api/on-call", GOOD).json()
    rule = rule_make(project, recipients={"on_call": "acme ops"})
    response = api_as("alice").delete(f"/api/on-call/{made['id']}")
    assert response.status_code == 409
    assert "acme/failures" in response.json()["detail"]
    assert OnCallSchedule.objects.exists()
    MonitorRule.objects.filter(pk=rule.pk).update(recipients={})
    assert api_as("alice").delete(f"/api/on-call/{made['id']}").status_code == 204
    assert not OnCallSchedule.objects.exists()
    assert OperationLog.objects.filter(action="on_call.delete", result="ok").count() == 1
