"""Monitoring rule and on-call schedule pages: lists, the forms that explain each trigger
and post to the services (their 422 errors next to the fields), enable/disable, delete,
and who may do what."""

import datetime
import re

import pytest
import time_machine
from django.contrib.auth.models import Group

from apps.audit.models import OperationLog
from apps.monitoring.models import MonitorRule, OnCallSchedule
from apps.projects.models import Membership, Project
from tests.factories import node_create
from tests.pages.alert_builders import (
    NOW,
    alert_create,
    channel_create,
    failed_instance,
    rule_create,
)

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def as_user(client, users):
    def login(name: str):
        client.force_login(users[name])
        return client

    return login


@pytest.fixture
def setup(project, users):
    """acme's nodes report and ingest, a project channel and a global one, a group, an
    on-call schedule; beta with a node and a channel of its own."""
    alice = users["alice"]
    made = {
        "report": node_create(project, "report", owner=alice),
        "ingest": node_create(project, "ingest", owner=users["dave"]),
        "hook": channel_create(project, "ops-hook"),
        "global": channel_create(None, "everyone-mail", kind="email", config={"to": ["a@x.io"]}),
        "group": Group.objects.create(name="dba"),
        "schedule": OnCallSchedule.objects.create(
            project=project,
            name="acme-ops",
            users=["olga", "dave"],
            start_date=datetime.date(2026, 11, 2),
            timezone="Asia/Shanghai",
        ),
    }
    beta = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    Membership.objects.create(project=beta, user=users["stranger"], role="admin")
    made["beta"] = beta
    made["beta_node"] = node_create(beta, "beta_load", owner=users["stranger"])
    made["beta_hook"] = channel_create(beta, "beta-hook")
    return made


def rule_post(setup, **changes) -> dict:
    """A whole rule as the form posts it."""
    data = {
        "rule_project": "acme",
        "name": "report watch",
        "enabled": "on",
        "scope_kind": "nodes",
        "scope_nodes": [str(setup["report"].id)],
        "triggers": ["failure", "running_longer", "unfinished_by"],
        "running_longer_minutes": "90",
        "unfinished_by_time": "08:30",
        "not_started_by_time": "",
        "slower_than_usual_factor": "",
        "severity": "warning",
        "recipients_owner": "on",
        "recipients_users": ["olga"],
        "recipients_groups": ["dba"],
        "recipients_on_call": "acme-ops",
        "channels": [str(setup["hook"].id), str(setup["global"].id)],
        "dedup_minutes": "15",
        "mute_start": ["22:00", ""],
        "mute_end": ["06:00", ""],
        "escalate_after_minutes": "20",
        "escalate_to_users": ["alice"],
        "escalate_to_on_call": "",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def errors_next_to(html: str, field: str) -> str:
    """The text of the form field block marked data-field="field"."""
    start = html.index(f'data-field="{field}"')
    return html[start : start + 4000]


# --- the list --------------------------------------------------------------------------


def test_rule_list_says_what_each_rule_watches(as_user, setup, project, users):
    rule = rule_create(
        project,
        "report watch",
        scope={"kind": "nodes", "nodes": [setup["report"].id]},
        triggers=[{"type": "failure"}, {"type": "running_longer", "minutes": 90}],
        recipients={"owner": True, "users": ["olga"], "groups": ["dba"], "on_call": "acme-ops"},
        mute_windows=[{"start": "22:00", "end": "06:00"}],
        escalate_after_minutes=20,
        escalate_to={"users": ["alice"]},
    )
    rule.channels.set([setup["hook"]])
    rule_create(project, "all nodes", enabled=False)
    alert_create(rule, failed_instance(project, users["alice"], "report"))
    response = as_user("alice").get("/alerts/rules/")
    assert response.status_code == 200
    html = response.content.decode()
    row = html[html.index(f'<tr data-rule="{rule.id}"') :].split("</tr>")[0]
    assert f'href="/alerts/rules/{rule.id}/">report watch</a>' in row
    assert "<td>report</td>" in row
    assert "an attempt fails" in row and "running &gt; 90 min" in row
    assert "owner, olga, group dba, on call: acme-ops" in row
    assert "ops-hook" in row and "22:00–06:00" in row and "after 20 min to alice" in row
    assert f'href="/alerts/?rule={rule.id}&amp;state=open" data-open-alerts="1"' in row
    # Admins may switch it off in place.
    assert 'role="switch" aria-checked="true"' in row
    assert 'data-enabled="false"' in html and 'class="is-disabled"' in html
    assert 'data-action="new-rule"' in html


def test_rule_list_is_read_only_for_operators(as_user, setup, project):
    rule_create(project)
    html = as_user("olga").get("/alerts/rules/").content.decode()
    assert 'role="switch"' not in html and 'data-action="new-rule"' not in html
    assert '<span class="tag">on</span>' in html


def test_rule_list_hides_other_projects(as_user, setup, project):
    rule_create(setup["beta"], "beta rule")
    rule_create(project, "acme rule")
    html = as_user("alice").get("/alerts/rules/").content.decode()
    assert "acme rule" in html and "beta rule" not in html


# --- the form --------------------------------------------------------------------------


def test_new_rule_form_explains_each_trigger_and_offers_the_projects_things(as_user, setup):
    response = as_user("alice").get("/alerts/rules/new/")
    assert response.status_code == 200
    html = response.content.decode()
    # Every trigger with what it fires on and its parameter.
    for trigger, words in [
        ("failure", "also when a retry will follow"),
        ("retries_exhausted", "no retry left"),
        ("success", "born resolved"),
        ("running_longer", "running for longer than this many minutes"),
        ("unfinished_by", "not finished at this time"),
        ("not_started_by", "has not started at this time"),
        ("slower_than_usual", "median of the node&#x27;s last 10"),
    ]:
        block = html[html.index(f'data-trigger="{trigger}"') :].split("</li>")[0]
        assert words in block, trigger
    assert 'name="running_longer_minutes"' in html and 'name="unfinished_by_time"' in html
    assert 'name="slower_than_usual_factor"' in html
    # The project's nodes, members, groups, schedules, its channels and the global ones.
    assert f'<option value="{setup["report"].id}">report</option>' in html
    assert f'value="{setup["beta_node"].id}"' not in html
    assert '<option value="olga">olga</option>' in html and "stranger" not in html
    assert '<option value="dba">dba</option>' in html
    assert '<option value="acme-ops">acme-ops</option>' in html
    assert "ops-hook · Webhook" in html and "everyone-mail · Email (global)" in html
    assert "beta-hook" not in html
    assert '<option value="acme" selected>' in html


def test_create_a_rule_from_the_form(as_user, setup, project, users):
    response = as_user("alice").post("/alerts/rules/new/", rule_post(setup))
    assert response.status_code == 302 and response["Location"] == "/alerts/rules/"
    rule = MonitorRule.objects.get(name="report watch")
    assert rule.project == project
    assert rule.scope == {"kind": "nodes", "nodes": [setup["report"].id]}
    assert rule.triggers == [
        {"type": "failure"},
        {"type": "running_longer", "minutes": 90},
        {"type": "unfinished_by", "time": "08:30"},
    ]
    assert rule.severity == "warning"
    assert rule.recipients == {
        "owner": True,
        "users": ["olga"],
        "groups": ["dba"],
        "on_call": "acme-ops",
    }
    assert sorted(c.pk for c in rule.channels.all()) == sorted(
        [setup["hook"].id, setup["global"].id]
    )
    assert rule.dedup_minutes == 15
    assert rule.mute_windows == [{"start": "22:00", "end": "06:00"}]
    assert rule.escalate_after_minutes == 20
    assert rule.escalate_to == {"owner": False, "users": ["alice"], "groups": [], "on_call": None}
    assert rule.enabled is True
    assert OperationLog.objects.filter(
        action="monitor_rule.create", source="ui", result="ok"
    ).exists()
    html = as_user("alice").get("/alerts/rules/").content.decode()
    assert "Rule report watch created in acme." in html


def test_create_from_htmx_redirects_the_page(as_user, setup):
    response = as_user("alice").post("/alerts/rules/new/", rule_post(setup, name="by htmx"), **HTMX)
    assert response.status_code == 200 and response["HX-Redirect"] == "/alerts/rules/"
    assert MonitorRule.objects.filter(name="by htmx").exists()


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"scope_nodes": ["BETA"]}, "scope_nodes", "in project acme"),
        ({"triggers": ["failure", "explode"]}, "triggers", "unknown trigger &#x27;explode&#x27;"),
        ({"triggers": []}, "triggers", "a non-empty list of triggers"),
        ({"running_longer_minutes": "soon"}, "triggers", "a whole number of minutes, at least 1"),
        ({"unfinished_by_time": "25:00"}, "triggers", "a time HH:MM"),
        (
            {"mute_start": ["25:00", ""]},
            "mute_windows",
            "window 1, start: &#x27;25:00&#x27; is not a time",
        ),
        ({"recipients_users": ["nobody"]}, "recipients_users", "no user &#x27;nobody&#x27;"),
        ({"dedup_minutes": "x"}, "dedup_minutes", "a whole number of minutes, 0 or more"),
        ({"name": ""}, "name", "a name is required"),
        ({"channels": ["BETA_HOOK"]}, "channels", "belongs to another project"),
        ({"escalate_to_users": None}, "escalate_after_minutes", "whom to escalate to"),
        (
            {"scope_kind": "owner", "scope_owner": "ghost"},
            "scope_owner",
            "no user &#x27;ghost&#x27;",
        ),
    ],
)
def test_bad_input_is_shown_next_to_its_field_and_changes_nothing(
    as_user, setup, changes, field, message
):
    for key, value in list(changes.items()):
        if value == ["BETA"]:
            changes[key] = [str(setup["beta_node"].id)]
        elif value == ["BETA_HOOK"]:
            changes[key] = [str(setup["beta_hook"].id)]
    response = as_user("alice").post("/alerts/rules/new/", rule_post(setup, **changes))
    assert response.status_code == 422
    html = response.content.decode()
    assert 'class="alert alert-error"' in html  # the summary on top
    if field == "escalate_after_minutes":
        block = html[html.index('<h3 class="form-subhead">Escalate to') :]
    else:
        block = errors_next_to(html, field)
    assert message in block, block[:1500]
    assert '<span class="field-error">' in block
    assert not MonitorRule.objects.exists()
    # What was typed is kept.
    assert 'value="report watch"' in html or field == "name"


def test_a_bad_trigger_parameter_is_shown_on_its_trigger(as_user, setup):
    html = (
        as_user("alice")
        .post("/alerts/rules/new/", rule_post(setup, running_longer_minutes="0"))
        .content.decode()
    )
    block = html[html.index('data-trigger="running_longer"') :].split("</li>")[0]
    assert "has-error" in html[html.index('data-trigger="running_longer"') - 40 :][:80]
    assert "a whole number of minutes, at least 1" in block and 'value="0"' in block


def test_changing_the_project_reloads_the_form_for_it(as_user, setup, users, project):
    Membership.objects.create(project=setup["beta"], user=users["alice"], role="admin")
    response = as_user("alice").get("/alerts/rules/new/?rule_project=beta", **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert f'<option value="{setup["beta_node"].id}">beta_load</option>' in html
    assert "beta-hook" in html and "ops-hook" not in html


def test_only_admins_create_rules(as_user, setup):
    html = as_user("olga").get("/alerts/rules/new/").content.decode()
    assert "needs the admin role" in html and 'data-action="save"' not in html
    response = as_user("olga").post("/alerts/rules/new/", rule_post(setup))
    assert response.status_code == 403
    assert "this needs the admin role in project &#x27;acme&#x27;" in response.content.decode()
    assert not MonitorRule.objects.exists()
    response = as_user("vera").post("/alerts/rules/new/", rule_post(setup, rule_project="beta"))
    assert (
        response.status_code == 422
        and "choose a project you administer" in response.content.decode()
    )


def test_edit_shows_the_rule_and_saves_changes(as_user, setup, project):
    rule = rule_create(
        project,
        "report watch",
        scope={"kind": "nodes", "nodes": [setup["report"].id]},
        triggers=[{"type": "not_started_by", "time": "03:00"}],
        mute_windows=[{"start": "22:00", "end": "06:00"}],
    )
    client = as_user("alice")
    html = client.get(f"/alerts/rules/{rule.id}/").content.decode()
    assert 'value="report watch"' in html
    assert f'<option value="{setup["report"].id}" selected>report</option>' in html
    block = html[html.index('data-trigger="not_started_by"') :].split("</li>")[0]
    assert "checked" in block and 'value="03:00"' in block
    assert 'name="mute_start" value="22:00"' in html
    assert 'data-action="delete"' in html
    response = client.post(
        f"/alerts/rules/{rule.id}/",
        rule_post(
            setup, name="report late", triggers=["not_started_by"], not_started_by_time="04:15"
        ),
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.name == "report late" and rule.triggers == [
        {"type": "not_started_by", "time": "04:15"}
    ]
    assert OperationLog.objects.filter(action="monitor_rule.update", result="ok").exists()


def test_edit_errors_come_back_with_422(as_user, setup, project):
    rule = rule_create(project, "keep me")
    response = as_user("alice").post(
        f"/alerts/rules/{rule.id}/", rule_post(setup, name="keep me", dedup_minutes="-1")
    )
    assert response.status_code == 422
    assert "a whole number of minutes, 0 or more" in errors_next_to(
        response.content.decode(), "dedup_minutes"
    )
    rule.refresh_from_db()
    assert rule.dedup_minutes == 30


def test_viewers_read_a_rule_but_cannot_change_it(as_user, setup, project):
    rule = rule_create(project, "read me")
    client = as_user("vera")
    html = client.get(f"/alerts/rules/{rule.id}/").content.decode()
    assert "You may read this rule" in html and "<fieldset disabled" in html
    assert 'data-action="save"' not in html and 'data-action="delete"' not in html
    response = client.post(f"/alerts/rules/{rule.id}/", rule_post(setup, name="changed"))
    assert response.status_code == 403
    rule.refresh_from_db()
    assert rule.name == "read me"
    assert as_user("stranger").get(f"/alerts/rules/{rule.id}/").status_code == 404


def test_toggle_in_place(as_user, setup, project):
    rule = rule_create(project, "switch me")
    client = as_user("alice")
    response = client.post(f"/alerts/rules/{rule.id}/toggle/", {"enabled": "off"}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith(f'<tr data-rule="{rule.id}" data-enabled="false"')
    rule.refresh_from_db()
    assert rule.enabled is False
    response = client.post(f"/alerts/rules/{rule.id}/toggle/", {"enabled": "on"})
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.enabled is True


def test_toggle_by_an_operator_is_refused(as_user, setup, project):
    rule = rule_create(project, "switch me")
    client = as_user("olga")
    response = client.post(f"/alerts/rules/{rule.id}/toggle/", {"enabled": "off"})
    assert response.status_code == 302
    html = client.get("/alerts/rules/").content.decode()
    assert "Rule switch me not changed: this needs the admin role" in html
    rule.refresh_from_db()
    assert rule.enabled is True


def test_delete_a_rule_keeps_its_alerts(as_user, setup, project, users):
    rule = rule_create(project, "gone")
    alert = alert_create(rule, failed_instance(project, users["alice"], "report"))
    client = as_user("alice")
    response = client.post(f"/alerts/rules/{rule.id}/delete/")
    assert response.status_code == 302 and response["Location"] == "/alerts/rules/"
    assert not MonitorRule.objects.filter(pk=rule.pk).exists()
    alert.refresh_from_db()
    assert alert.rule is None
    assert "Rule gone deleted" in client.get("/alerts/rules/").content.decode()
    assert "— (deleted)" in client.get(f"/alerts/{alert.id}/").content.decode()


# --- on-call schedules -------------------------------------------------------------------


def test_on_call_list_says_who_is_on_call_now_and_next(as_user, setup, project):
    # Weekly from Monday 2026-11-02 09:00 Shanghai: olga, dave, olga, ... On Sunday
    # 2026-11-22 10:00 it is the third week (olga); dave takes over on 11-23 09:00.
    OnCallSchedule.objects.create(
        name="night", users=["vera"], period="daily", start_date=datetime.date(2026, 12, 1)
    )
    response = as_user("olga").get("/alerts/on-call/")
    assert response.status_code == 200
    html = response.content.decode()
    row = html[html.index(f'<tr data-schedule="{setup["schedule"].id}"') :].split("</tr>")[0]
    assert 'data-on-call-now="olga"' in row and 'data-on-call-next="dave"' in row
    # The handover in the viewer's zone (the server's, UTC here), the rotation's own zone
    # beside the handover time of day.
    assert "2026-11-23 01:00 UTC" in row and "Asia/Shanghai" in row and "Weekly" in row
    assert '<span class="rotation-user is-on-call">olga</span>' in row
    night = html[html.index('data-schedule="') :]
    assert "nobody yet (starts 2026-12-01)" in night and "global" in night


def test_create_an_on_call_schedule(as_user, setup, project):
    client = as_user("alice")
    html = client.get("/alerts/on-call/new/").content.decode()
    assert 'name="users"' in html and "rotation order" in html
    assert '<option value="acme"' in html and "Global" not in html  # not a superuser
    response = client.post(
        "/alerts/on-call/new/",
        {
            "name": "dba rota",
            "project": "acme",
            "users": "olga, dave\nalice",
            "period": "daily",
            "handover": "08:00",
            "start_date": "2026-11-20",
            "timezone": "Asia/Shanghai",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/alerts/on-call/"
    schedule = OnCallSchedule.objects.get(name="dba rota")
    assert schedule.project == project and schedule.users == ["olga", "dave", "alice"]
    assert schedule.period == "daily" and schedule.handover == datetime.time(8, 0)
    # 2026-11-22 10:00: the third day from 11-20 08:00 is alice's; olga takes over next.
    html = client.get(f"/alerts/on-call/{schedule.id}/").content.decode()
    assert 'data-on-call-now="alice"' in html and "next: <strong>olga</strong>" in html


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"users": "olga, ghost"}, "users", "no user &#x27;ghost&#x27;"),
        ({"users": ""}, "users", "a non-empty list of usernames"),
        ({"handover": "25:00"}, "handover", "is not a time HH:MM"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown timezone"),
        ({"start_date": "soon"}, "start_date", "a date YYYY-MM-DD"),
        ({"name": "acme-ops"}, "name", "exists"),
        ({"project": "nowhere"}, "project", "no project &#x27;nowhere&#x27;"),
    ],
)
def test_on_call_bad_input_is_named(as_user, setup, changes, field, message):
    data = {
        "name": "new rota",
        "project": "acme",
        "users": "olga",
        "period": "weekly",
        "handover": "09:00",
        "start_date": "2026-11-20",
        "timezone": "UTC",
        **changes,
    }
    response = as_user("alice").post("/alerts/on-call/new/", data)
    assert response.status_code == 422
    assert message in errors_next_to(response.content.decode(), field)
    assert OnCallSchedule.objects.count() == 1


def test_edit_and_delete_an_on_call_schedule(as_user, setup, project):
    schedule = setup["schedule"]
    client = as_user("alice")
    html = client.get(f"/alerts/on-call/{schedule.id}/").content.decode()
    assert "olga, dave" in html and 'data-action="delete"' in html
    response = client.post(
        f"/alerts/on-call/{schedule.id}/",
        {
            "name": "acme-ops",
            "users": "dave, olga",
            "period": "weekly",
            "handover": "09:00",
            "start_date": "2026-11-02",
            "timezone": "Asia/Shanghai",
        },
    )
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert schedule.users == ["dave", "olga"]
    # Named by a rule: refused, with the reason.
    rule_create(project, "uses it", recipients={"on_call": "acme-ops"})
    response = client.post(f"/alerts/on-call/{schedule.id}/delete/")
    assert response.status_code == 302
    html = client.get(f"/alerts/on-call/{schedule.id}/").content.decode()
    assert "not deleted" in html and "named by monitor rules acme/uses it" in html
    MonitorRule.objects.all().delete()
    client.post(f"/alerts/on-call/{schedule.id}/delete/")
    assert not OnCallSchedule.objects.filter(pk=schedule.pk).exists()


def test_only_admins_change_schedules(as_user, setup):
    schedule = setup["schedule"]
    client = as_user("olga")
    html = client.get(f"/alerts/on-call/{schedule.id}/").content.decode()
    assert "You may read this schedule" in html and 'data-action="save"' not in html
    response = client.post(
        f"/alerts/on-call/{schedule.id}/",
        {
            "name": "mine",
            "users": "olga",
            "period": "daily",
            "handover": "09:00",
            "start_date": "2026-11-02",
            "timezone": "UTC",
        },
    )
    assert response.status_code == 403
    schedule.refresh_from_db()
    assert schedule.name == "acme-ops"
    assert re.search(r"this needs the admin role", response.content.decode())


def test_new_rule_in_a_project_one_does_not_administer_says_so(as_user, setup):
    client = as_user("olga")
    html = client.get("/alerts/rules/new/?project=acme").content.decode()
    assert "Creating the rules of acme needs its admin role." in html
    assert "<fieldset disabled" in html and 'data-action="save"' not in html
