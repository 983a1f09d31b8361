"""The admin for rules, on-call schedules and alerts: every page opens; a rule or schedule
saved there is checked as the API checks it; alerts are read-only there."""

import pytest
from django.test import Client

from apps.monitoring.models import MonitorRule, OnCallSchedule

from .alert_rows import alert_make, rule_make


@pytest.fixture
def admin_client(users) -> Client:
    client = Client()
    client.force_login(users["root"])
    return client


def test_every_admin_page_opens(admin_client, project):
    rule = rule_make(project)
    schedule = OnCallSchedule.objects.create(name="ops", users=["olga"], start_date="2026-11-01")
    alert = alert_make(project, rule=rule)
    event = alert.events.get()
    for url in [
        "/admin/monitoring/monitorrule/",
        "/admin/monitoring/monitorrule/add/",
        f"/admin/monitoring/monitorrule/{rule.pk}/change/",
        "/admin/monitoring/oncallschedule/",
        "/admin/monitoring/oncallschedule/add/",
        f"/admin/monitoring/oncallschedule/{schedule.pk}/change/",
        "/admin/monitoring/alert/",
        "/admin/monitoring/alert/?state=firing",
        f"/admin/monitoring/alert/{alert.pk}/change/",
        "/admin/monitoring/alertevent/",
        f"/admin/monitoring/alertevent/{event.pk}/change/",
    ]:
        response = admin_client.get(url)
        assert response.status_code == 200, url
    page = admin_client.get(f"/admin/monitoring/alert/{alert.pk}/change/").content.decode()
    assert "acme.report failed" in page and "Fired" in page


def _rule_form(project, **changes) -> dict:
    form = {
        "project": project.pk,
        "name": "from admin",
        "scope": '{"kind": "project"}',
        "triggers": '[{"type": "failure"}]',
        "severity": "",
        "recipients": "{}",
        "dedup_minutes": "30",
        "mute_windows": "[]",
        "escalate_after_minutes": "",
        "escalate_to": "{}",
        "enabled": "on",
    }
    form.update(changes)
    return form


def test_a_rule_saved_in_the_admin_is_checked(admin_client, project):
    response = admin_client.post(
        "/admin/monitoring/monitorrule/add/",
        _rule_form(
            project,
            triggers='[{"type": "exploded"}]',
            mute_windows='[{"start": "25:00", "end": "01:00"}]',
        ),
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "triggers.0.type: unknown trigger" in page
    assert "mute_windows.0.start: &#x27;25:00&#x27; is not a time HH:MM" in page
    assert not MonitorRule.objects.exists()
    response = admin_client.post("/admin/monitoring/monitorrule/add/", _rule_form(project))
    assert response.status_code == 302
    assert MonitorRule.objects.get().triggers == [{"type": "failure"}]


def test_a_schedule_saved_in_the_admin_is_checked(admin_client):
    form = {
        "name": "ops",
        "users": '["olga", "ghost"]',
        "period": "daily",
        "handover": "09:00",
        "start_date": "2026-11-01",
        "timezone": "Mars/Base",
    }
    response = admin_client.post("/admin/monitoring/oncallschedule/add/", form)
    assert response.status_code == 200
    page = response.content.decode()
    assert "no user &#x27;ghost&#x27;" in page and "unknown timezone" in page
    assert not OnCallSchedule.objects.exists()
    form.update(users='["olga"]', timezone="Asia/Shanghai")
    assert admin_client.post("/admin/monitoring/oncallschedule/add/", form).status_code == 302
    assert OnCallSchedule.objects.get().users == ["olga"]


def test_alerts_cannot_be_added_or_changed_in_the_admin(admin_client, project):
    alert = alert_make(project)
    assert admin_client.get("/admin/monitoring/alert/add/").status_code == 403
    response = admin_client.post(
        f"/admin/monitoring/alert/{alert.pk}/change/", {"state": "resolved", "title": "x"}
    )
    assert response.status_code == 403
    alert.refresh_from_db()
    assert alert.state == "firing"
