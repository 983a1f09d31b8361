"""The overview's alert panels: open alerts by severity with the newest few, and the alert
ranking of nodes over the chosen period; each a constant number of queries."""

import datetime
import re

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.monitoring.selectors import overview_get
from tests.pages.alert_builders import NOW, alert_create, failed_instance, rule_create

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def incidents(project, users):
    """report: 3 alerts in the last 7 days (one open, 4 occurrences in all) and one 12
    days ago; load: 1 open warning; ingest: 1 resolved. Plus a system alert."""
    alice = users["alice"]
    rule = rule_create(project)
    slow = rule_create(project, "slow", triggers=[{"type": "running_longer", "minutes": 30}])
    day = datetime.timedelta(days=1)
    made = {}
    for n, ago in enumerate([day * 1, day * 2, day * 12]):
        instance = failed_instance(project, alice, "report", scheduled_at=NOW - ago)
        made[f"report{n}"] = alert_create(
            rule, instance, state="resolved", at=NOW - ago, count=2 if n == 0 else 1
        )
    made["report_open"] = alert_create(
        rule, failed_instance(project, alice, "report", NOW), at=NOW - datetime.timedelta(hours=1)
    )
    made["load_open"] = alert_create(
        slow,
        failed_instance(project, alice, "load"),
        trigger="running_longer",
        severity="warning",
        state="acknowledged",
        at=NOW - datetime.timedelta(minutes=5),
    )
    made["ingest"] = alert_create(
        rule, failed_instance(project, alice, "ingest"), state="resolved", at=NOW - day * 3
    )
    return made


def test_open_alerts_and_ranking_in_the_selector(incidents, users):
    overview = overview_get(user=users["olga"], days=7)
    open_alerts = overview.open_alerts
    assert open_alerts.total == 2 and open_alerts.firing == 1 and open_alerts.acknowledged == 1
    assert open_alerts.by_severity == {"critical": 1, "warning": 1, "info": 0}
    assert [a.id for a in open_alerts.latest] == [
        incidents["load_open"].id,
        incidents["report_open"].id,
    ]
    ranking = [(r.node_name, r.alerts, r.occurrences, r.open) for r in overview.alert_ranking]
    assert ranking == [("report", 3, 4, 1), ("ingest", 1, 1, 0), ("load", 1, 1, 1)]
    # Thirty days take in the older alert of report too.
    overview = overview_get(user=users["olga"], days=30)
    assert overview.alert_ranking[0].alerts == 4


def test_nothing_visible_means_no_alerts(incidents, users):
    overview = overview_get(user=users["stranger"])
    assert overview.open_alerts.total == 0 and overview.alert_ranking == []


def test_overview_page_shows_open_alerts_linking_to_the_alerts_page(client, users, incidents):
    client.force_login(users["olga"])
    html = client.get("/overview/").content.decode()
    panel = html[html.index('id="open-alerts"') : html.index('id="longest-running"')]
    assert 'data-open-alerts="2"' in panel and "1 firing, 1 acknowledged" in panel
    assert 'href="/alerts/?state=open&amp;severity=critical" data-severity-open="critical"' in panel
    assert re.search(r'data-severity-open="warning">\s*<span class="tile-number">1</span>', panel)
    assert f'href="/alerts/{incidents["report_open"].id}/"' in panel
    assert f'href="/alerts/{incidents["load_open"].id}/"' in panel
    assert 'href="/alerts/?state=open">All open alerts' in panel


def test_overview_page_ranks_nodes_by_alerts_over_the_period(client, users, incidents):
    client.force_login(users["olga"])
    html = client.get("/overview/").content.decode()
    ranking = html[html.index('id="alert-ranking"') :]
    report = incidents["report_open"].node_id
    assert "alerts raised in the last 7 days" in ranking
    assert f'href="/alerts/?node={report}" data-alerts="3"' in ranking
    assert f'href="/alerts/?node={report}&amp;state=open" data-open="1"' in ranking
    # The period switch brings the ranking of 30 days with the period part.
    html = client.get("/overview/?days=30", **HTMX).content.decode()
    assert "alerts raised in the last 30 days" in html
    assert f'href="/alerts/?node={report}" data-alerts="4"' in html


def test_overview_without_alerts_says_so(client, users, project):
    client.force_login(users["olga"])
    html = client.get("/overview/").content.decode()
    assert "No open alerts." in html and "No alerts in this period." in html


def test_overview_alert_queries_do_not_grow_with_the_alerts(client, users, project, incidents):
    client.force_login(users["olga"])

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/overview/").status_code == 200
        return len(queries)

    before = count()
    rule = incidents["report_open"].rule
    for n in range(8):
        instance = failed_instance(project, users["alice"], f"more_{n}")
        alert_create(rule, instance, severity=["critical", "warning", "info"][n % 3])
    assert count() == before


def test_a_superuser_sees_system_alerts_among_the_open_ones(incidents, users, project):
    from apps.monitoring.models import Alert

    Alert.objects.create(
        project=None,
        source="system",
        trigger="backup_failed",
        severity="critical",
        title="Nightly backup failed",
        target_type="system",
        target_id="backup",
        dedup_key="system:backup",
        first_at=NOW,
        last_at=NOW,
    )
    assert overview_get(user=users["root"]).open_alerts.total == 3
    assert overview_get(user=users["olga"]).open_alerts.total == 2
    assert overview_get(user=users["root"], project=project).open_alerts.total == 2


def test_the_api_answers_the_same_alert_numbers(api_as, incidents):
    body = api_as("olga").get("/api/overview").json()
    assert body["open_alerts"]["total"] == 2
    assert body["open_alerts"]["by_severity"] == {"critical": 1, "warning": 1, "info": 0}
    assert (body["open_alerts"]["firing"], body["open_alerts"]["acknowledged"]) == (1, 1)
    latest = body["open_alerts"]["latest"]
    assert [a["id"] for a in latest] == [incidents["load_open"].id, incidents["report_open"].id]
    assert latest[0]["last_at"] == "2026-11-22T09:55:00+08:00"  # Asia/Shanghai
    assert latest[0]["project"] == "acme" and latest[0]["severity"] == "warning"
    assert body["alerts_since"] == "2026-11-15T02:00:00Z"
    top = body["alert_ranking"][0]
    assert (top["node_name"], top["alerts"], top["occurrences"], top["open"]) == ("report", 3, 4, 1)
    assert top["node"] == incidents["report_open"].node_id and top["project"] == "acme"
