"""The Alerts pages: the list (filters, pages, live table, batch acknowledge/resolve), one
alert's page (facts, timeline of events and deliveries, acknowledge/resolve by role), and
the firing badge of the top bar."""

import datetime
import json
import re

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import OperationLog
from apps.monitoring.models import Alert, AlertEvent
from apps.projects.models import Membership, Project
from tests.pages.alert_builders import (
    NOW,
    alert_create,
    channel_create,
    delivery_create,
    failed_instance,
    rule_create,
)

HTMX = {"HTTP_HX_REQUEST": "true"}
POLL = {**HTMX, "HTTP_HX_TRIGGER": "alert-table"}


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
def alerts(project, users):
    """load_orders: a firing critical failure (3 times); report: an acknowledged
    warning; ingest: a resolved failure; all of rule "failures"."""
    rule = rule_create(project)
    alice = users["alice"]
    load = failed_instance(project, alice, "load_orders")
    report = failed_instance(project, alice, "report")
    ingest = failed_instance(project, alice, "ingest")
    made = {
        "rule": rule,
        "firing": alert_create(rule, load, count=3, at=NOW - datetime.timedelta(minutes=10)),
        "acked": alert_create(
            rule,
            report,
            trigger="running_longer",
            severity="warning",
            state="acknowledged",
            acknowledged_by=users["olga"],
            acknowledged_at=NOW - datetime.timedelta(minutes=15),
            at=NOW - datetime.timedelta(minutes=20),
        ),
        "resolved": alert_create(
            rule, ingest, state="resolved", at=NOW - datetime.timedelta(hours=2)
        ),
    }
    return made


def rows(html: str) -> list[int]:
    """Alert ids of the table's rows, in order."""
    return [int(i) for i in re.findall(r'<tr data-alert="(\d+)"', html)]


def other_project_alert(users) -> Alert:
    beta = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    Membership.objects.create(project=beta, user=users["alice"], role="admin")
    rule = rule_create(beta, "beta failures")
    return alert_create(rule, failed_instance(beta, users["alice"], "beta_load"))


# --- the list --------------------------------------------------------------------------


def test_list_shows_alerts_most_recent_first_with_their_facts(as_user, alerts):
    response = as_user("olga").get("/alerts/")
    assert response.status_code == 200
    html = response.content.decode()
    firing, acked, resolved = alerts["firing"], alerts["acked"], alerts["resolved"]
    assert rows(html) == [firing.id, acked.id, resolved.id]
    row = html[html.index(f'<tr data-alert="{firing.id}"') :].split("</tr>")[0]
    assert 'data-alert="firing"' in row and 'data-severity="critical"' in row
    assert f'href="/alerts/{firing.id}/"' in row and "acme.load_orders failed" in row
    assert f'href="/instances/{firing.instance_id}/"' in row
    assert f'href="/nodes/{firing.node_id}/"' in row
    assert "An attempt fails" in row and '<td class="num">3</td>' in row
    # A list of every project's alerts is in the server's zone (UTC here); with the
    # project chosen, in the project's (Asia/Shanghai: 01:50 UTC is 09:50).
    assert "11-22 01:50:00" in row and 'title="2026-11-22 01:50:00 UTC"' in row
    chosen = as_user("olga").get("/alerts/?project=acme").content.decode()
    assert "11-22 09:50:00" in chosen and "CST (Asia/Shanghai)" in chosen
    acked_row = html[html.index(f'<tr data-alert="{acked.id}"') :].split("</tr>")[0]
    assert "olga" in acked_row and 'data-alert="acknowledged"' in acked_row
    resolved_row = html[html.index(f'<tr data-alert="{resolved.id}"') :].split("</tr>")[0]
    assert "itself" in resolved_row
    # Open alerts have a checkbox for the batch; a resolved one has nothing left to do.
    assert f'value="{firing.id}" form="alert-batch-form"' in html
    assert f'value="{acked.id}" form="alert-batch-form"' in html
    assert f'value="{resolved.id}" form="alert-batch-form"' not in html
    # The section's tabs, the filters and the batch bar.
    assert 'href="/alerts/rules/"' in html and 'href="/alerts/on-call/"' in html
    assert 'id="alert-filters"' in html and 'id="alert-batch-form"' in html
    assert "js/batch.js" in html


def test_list_is_live_while_an_alert_is_open(as_user, alerts):
    html = as_user("olga").get("/alerts/").content.decode()
    table = re.search(r'<div id="alert-table"[^>]*>', html).group(0)
    assert 'hx-trigger="every 5s, opscenter:alerts-changed from:body"' in table
    assert 'hx-get="/alerts/"' in table
    # The poll answers the table only, and keeps polling while something is open.
    response = as_user("olga").get("/alerts/", **POLL)
    assert response.status_code == 200
    assert "<html" not in response.content.decode()
    assert "HX-Request" in response["Vary"]


def test_poll_stops_with_286_once_nothing_shown_is_open(as_user, alerts):
    client = as_user("olga")
    Alert.objects.filter(state__in=["firing", "acknowledged"]).update(state="resolved")
    response = client.get("/alerts/?state=resolved", **POLL)
    assert response.status_code == 286
    table = re.search(r'<div id="alert-table"[^>]*>', response.content.decode()).group(0)
    # No more polling, but a new firing alert (the badge's event) still brings it back.
    assert "every 5s" not in table
    assert 'hx-trigger="opscenter:alerts-changed from:body"' in table
    assert 'hx-get="/alerts/?state=resolved"' in table


def test_filters_by_state_severity_and_node(as_user, alerts):
    client = as_user("olga")
    firing, acked, resolved = alerts["firing"], alerts["acked"], alerts["resolved"]
    assert rows(client.get("/alerts/?state=open").content.decode()) == [firing.id, acked.id]
    assert rows(client.get("/alerts/?state=resolved").content.decode()) == [resolved.id]
    assert rows(client.get("/alerts/?severity=warning").content.decode()) == [acked.id]
    html = client.get(f"/alerts/?node={firing.node_id}").content.decode()
    assert rows(html) == [firing.id]
    # The filter form shows what is chosen; the node choices come with a project.
    html = client.get(f"/alerts/?project=acme&node={firing.node_id}&state=open").content.decode()
    assert '<option value="open" selected>' in html
    assert f'<option value="{firing.node_id}" selected>load_orders</option>' in html
    assert f'<option value="{acked.node_id}">report</option>' in html


def test_filter_change_answers_the_table_and_a_shareable_address(as_user, alerts):
    response = as_user("olga").get("/alerts/?state=open&severity=", **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith("{") is False and 'id="alert-filters"' not in html
    assert rows(html) == [alerts["firing"].id, alerts["acked"].id]
    assert response["HX-Push-Url"] == "/alerts/?state=open"


@pytest.mark.parametrize(
    "query, field",
    [
        ("state=burning", "state"),
        ("severity=loud", "severity"),
        ("node=x", "node"),
        ("cursor=zzz", "cursor"),
        ("limit=0", "limit"),
    ],
)
def test_a_bad_filter_names_the_field(as_user, alerts, query, field):
    response = as_user("olga").get(f"/alerts/?{query}")
    assert response.status_code == 422
    html = response.content.decode()
    assert f"<strong>{field}</strong>:" in html and rows(html) == []


def test_keyset_pages(as_user, alerts):
    client = as_user("olga")
    html = client.get("/alerts/?limit=2").content.decode()
    assert rows(html) == [alerts["firing"].id, alerts["acked"].id]
    cursor = re.search(r'href="/alerts/\?limit=2&amp;cursor=([^"]+)"', html).group(1)
    assert "Next page" in html
    second = client.get(f"/alerts/?limit=2&cursor={cursor}").content.decode()
    assert rows(second) == [alerts["resolved"].id]
    assert "First page" in second and "Next page" not in second


def test_list_shows_only_visible_projects_and_follows_the_switcher(as_user, alerts, users):
    beta_alert = other_project_alert(users)
    html = as_user("olga").get("/alerts/").content.decode()
    assert beta_alert.id not in rows(html)
    client = as_user("alice")
    assert beta_alert.id in rows(client.get("/alerts/").content.decode())
    html = client.get("/alerts/?project=beta").content.decode()
    assert rows(html) == [beta_alert.id]
    assert rows(as_user("stranger").get("/alerts/").content.decode()) == []


def test_viewers_get_no_batch_bar(as_user, alerts):
    html = as_user("vera").get("/alerts/").content.decode()
    assert rows(html) and 'id="alert-batch-form"' not in html and 'name="ids"' not in html


# --- batch acknowledge / resolve -------------------------------------------------------


def test_batch_acknowledge_in_place_answers_the_table(as_user, alerts, users):
    firing, acked = alerts["firing"], alerts["acked"]
    response = as_user("olga").post(
        "/alerts/batch/",
        {
            "ids": [firing.id, acked.id],
            "action": "ack",
            "comment": "on it",
            "next": "/alerts/?state=open",
        },
        **HTMX,
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="alert-table"' in html and rows(html) == [firing.id, acked.id]
    assert f"1 alert acknowledged: #{firing.id}." in html
    assert f"Alert #{acked.id} not acknowledged: alert {acked.id} is acknowledged" in html
    assert json.loads(response["HX-Trigger-After-Settle"]) == {"opscenter:alerts-acted": {}}
    firing.refresh_from_db()
    assert firing.state == "acknowledged" and firing.acknowledged_by == users["olga"]
    event = AlertEvent.objects.get(alert=firing, kind="acknowledged")
    assert event.comment == "on it" and event.user == users["olga"]
    assert OperationLog.objects.filter(
        action="ack", object_type="alert", object_id=str(firing.id), result="ok", source="ui"
    ).exists()


def test_batch_resolve_without_htmx_goes_back_to_the_list(as_user, alerts):
    firing, acked = alerts["firing"], alerts["acked"]
    response = as_user("olga").post(
        "/alerts/batch/",
        {
            "ids": [firing.id, acked.id],
            "action": "resolve",
            "comment": "fixed upstream",
            "next": "/alerts/?severity=critical",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/alerts/?severity=critical"
    assert set(
        Alert.objects.filter(pk__in=[firing.id, acked.id]).values_list("state", flat=True)
    ) == {"resolved"}
    assert AlertEvent.objects.filter(kind="resolved", comment="fixed upstream").count() == 2
    html = as_user("olga").get("/alerts/").content.decode()
    assert "2 alerts resolved" in html


def test_batch_by_a_viewer_is_refused_and_changes_nothing(as_user, alerts):
    firing = alerts["firing"]
    response = as_user("vera").post("/alerts/batch/", {"ids": [firing.id], "action": "ack"}, **HTMX)
    html = response.content.decode()
    assert f"Alert #{firing.id} not acknowledged: this needs the operator role" in html
    firing.refresh_from_db()
    assert firing.state == "firing"
    assert OperationLog.objects.filter(action="ack", result="refused").count() == 1


@pytest.mark.parametrize(
    "data, message",
    [
        ({"ids": ["x"], "action": "ack"}, "ids: &#x27;x&#x27; is not an alert id"),
        ({"action": "ack"}, "ids: choose the alerts to act on"),
        ({"ids": ["1"], "action": "explode"}, "action: one of ack, resolve"),
    ],
)
def test_batch_bad_input_is_named(as_user, alerts, data, message):
    response = as_user("olga").post("/alerts/batch/", data, **HTMX)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Alert.objects.filter(state="firing").count() == 1


def test_batch_never_acts_on_an_alert_one_cannot_see(as_user, alerts, users):
    beta_alert = other_project_alert(users)
    html = (
        as_user("olga")
        .post("/alerts/batch/", {"ids": [beta_alert.id], "action": "resolve"}, **HTMX)
        .content.decode()
    )
    assert f"alert {beta_alert.id} not found" in html
    beta_alert.refresh_from_db()
    assert beta_alert.state == "firing"


# --- one alert -------------------------------------------------------------------------


@pytest.fixture
def timeline(alerts, users, project):
    """The firing alert's story: fired, a repeat not sent (dedup), a webhook delivery
    that failed twice and one sent; the acknowledgement comes in the tests."""
    alert = alerts["firing"]
    hook = channel_create(project, "ops-hook")
    mail = channel_create(project, "ops-mail", kind="email", config={"to": ["ops@example.com"]})
    first = alert.first_at
    AlertEvent.objects.create(
        alert=alert,
        kind="repeated",
        at=first + datetime.timedelta(minutes=4),
        comment="attempt 2 failed (exit code 3)",
        detail={"sent": False},
    )
    delivery_create(
        alert,
        hook,
        at=first,
        state="failed",
        tries=3,
        last_status=500,
        last_error="HTTP 500: upstream broke",
    )
    delivery_create(alert, mail, at=first, state="sent", recipient="alice@example.com")
    return alert


def test_alert_page_has_facts_the_instance_and_a_timeline(as_user, timeline):
    alert = timeline
    response = as_user("olga").get(f"/alerts/{alert.id}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>acme.load_orders failed" in html
    assert f'href="/instances/{alert.instance_id}/" data-instance="{alert.instance_id}"' in html
    assert f'href="/alerts/rules/{alert.rule_id}/">failures</a>' in html
    assert f'href="/nodes/{alert.node_id}/">load_orders</a>' in html
    assert "3 times" in html and "An attempt fails" in html
    assert "2026-11-22 09:50:00" in html and "Asia/Shanghai" in html
    # The timeline in order: fired, its two deliveries, then the repeat.
    timeline_html = html[html.index('<ol class="timeline">') :]
    order = re.findall(
        r'<li class="tl-(event|delivery)" data-(?:event|delivery)="(\w+)"', timeline_html
    )
    kinds = [k for kind, k in order if kind == "event"]
    assert kinds == ["fired", "repeated"]
    assert timeline_html.index('data-event="fired"') < timeline_html.index(
        'data-delivery-state="failed"'
    )
    assert timeline_html.index('data-delivery-state="sent"') < timeline_html.index(
        'data-event="repeated"'
    )
    assert "not sent again (inside the dedup interval)" in timeline_html
    assert "HTTP 500: upstream broke" in timeline_html and "3 tries" in timeline_html
    assert "ops-mail" in timeline_html and "alice@example.com" in timeline_html
    # Open: live, and an operator may act.
    assert 'hx-trigger="every 5s"' in html
    assert 'data-action="ack"' in html and 'data-action="resolve"' in html


def test_operator_acknowledges_with_a_comment(as_user, timeline, users):
    alert = timeline
    client = as_user("olga")
    response = client.post(f"/alerts/{alert.id}/ack/", {"comment": "looking at the source table"})
    assert response.status_code == 302 and response["Location"] == f"/alerts/{alert.id}/"
    html = client.get(f"/alerts/{alert.id}/").content.decode()
    assert f"Alert #{alert.id} acknowledged." in html
    assert 'data-alert="acknowledged"' in html
    assert "looking at the source table" in html and 'data-event="acknowledged"' in html
    # Acknowledged: only Resolve is left.
    assert 'data-action="ack"' not in html and 'data-action="resolve"' in html
    alert.refresh_from_db()
    assert alert.state == "acknowledged" and alert.acknowledged_by == users["olga"]


def test_operator_resolves_and_the_page_stops_following(as_user, timeline, users):
    alert = timeline
    client = as_user("olga")
    client.post(f"/alerts/{alert.id}/resolve/", {"comment": "reran by hand"})
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolved_by == users["olga"]
    html = client.get(f"/alerts/{alert.id}/").content.decode()
    assert "by olga" in html and "reran by hand" in html
    assert "nothing is left to do" in html and 'data-action="resolve"' not in html
    response = client.get(f"/alerts/{alert.id}/?shown=resolved", **HTMX)
    assert response.status_code == 286
    assert "<html" not in response.content.decode()


def test_resolving_twice_is_refused_with_a_message(as_user, alerts):
    resolved = alerts["resolved"]
    client = as_user("olga")
    client.post(f"/alerts/{resolved.id}/resolve/", {"comment": "again"})
    html = client.get(f"/alerts/{resolved.id}/").content.decode()
    assert f"Resolve refused: alert {resolved.id} is already resolved" in html


def test_viewers_see_no_buttons_and_their_post_is_refused(as_user, timeline):
    alert = timeline
    client = as_user("vera")
    html = client.get(f"/alerts/{alert.id}/").content.decode()
    assert 'data-action="ack"' not in html and 'data-action="resolve"' not in html
    assert "need the operator role in acme" in html
    response = client.post(f"/alerts/{alert.id}/ack/", {"comment": "me"})
    assert response.status_code == 302
    html = client.get(f"/alerts/{alert.id}/").content.decode()
    assert "Acknowledge refused: this needs the operator role in project &#x27;acme&#x27;" in html
    alert.refresh_from_db()
    assert alert.state == "firing"


def test_live_part_brings_the_buttons_again_when_the_state_changed(as_user, timeline, users):
    alert = timeline
    client = as_user("olga")
    response = client.get(f"/alerts/{alert.id}/?shown=firing", **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and 'id="alert-live"' in html
    assert 'id="alert-actions"' not in html
    Alert.objects.filter(pk=alert.pk).update(state="acknowledged", acknowledged_by=users["dave"])
    html = client.get(f"/alerts/{alert.id}/?shown=firing", **HTMX).content.decode()
    assert 'id="alert-actions" class="panel alert-actions" hx-swap-oob="true"' in html
    assert 'data-action="ack"' not in html


def test_an_alert_of_another_project_is_not_found(as_user, alerts, users):
    beta_alert = other_project_alert(users)
    client = as_user("olga")
    assert client.get(f"/alerts/{beta_alert.id}/").status_code == 404
    assert client.post(f"/alerts/{beta_alert.id}/ack/").status_code == 404
    assert client.get("/alerts/999999/").status_code == 404


def test_pages_need_a_login(client, alerts):
    for url in [
        "/alerts/",
        f"/alerts/{alerts['firing'].id}/",
        "/alerts/rules/",
        "/alerts/on-call/",
    ]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login")
    # The badge of a page left open after signing out goes away and stops asking.
    response = client.get("/alerts/badge/?shown=1", **HTMX)
    assert response.status_code == 286 and response.content == b""


# --- the top bar's badge ---------------------------------------------------------------


def test_top_bar_counts_the_firing_alerts_one_can_see(as_user, alerts, users):
    other_project_alert(users)
    html = as_user("olga").get("/instances/").content.decode()
    badge = re.search(r'<span id="firing-badge"[^>]*>(\d*)</span>', html)
    assert badge.group(1) == "1"
    assert 'hx-get="/alerts/badge/?shown=1"' in badge.group(0)
    assert "every 5s" in badge.group(0)
    html = as_user("alice").get("/instances/").content.decode()
    assert re.search(r'<span id="firing-badge"[^>]*>(\d*)</span>', html).group(1) == "2"
    html = as_user("stranger").get("/instances/").content.decode()
    assert 'class="nav-badge is-zero" data-firing="0"' in html


def test_badge_poll_announces_a_changed_count(as_user, alerts, users):
    client = as_user("olga")
    response = client.get("/alerts/badge/?shown=1", **HTMX)
    assert response.status_code == 200 and "HX-Trigger" not in response
    assert 'data-firing="1"' in response.content.decode()
    rule = alerts["rule"]
    alert_create(rule, failed_instance(rule.project, users["alice"], "late_one"))
    response = client.get("/alerts/badge/?shown=1", **HTMX)
    assert json.loads(response["HX-Trigger"]) == {"opscenter:alerts-changed": {}}
    assert 'data-firing="2"' in response.content.decode()


def test_badge_costs_one_query_beyond_the_session(as_user, alerts):
    client = as_user("olga")
    client.get("/alerts/badge/?shown=1", **HTMX)
    with CaptureQueriesContext(connection) as queries:
        client.get("/alerts/badge/?shown=1", **HTMX)
    alert_queries = [q["sql"] for q in queries if "monitoring_alert" in q["sql"]]
    assert len(alert_queries) == 1 and "COUNT" in alert_queries[0].upper()


def test_a_long_timeline_shows_the_newest_lines(as_user, alerts, monkeypatch):
    from apps.monitoring import alert_views

    monkeypatch.setattr(alert_views, "TIMELINE_ROWS", 3)
    alert = alerts["firing"]
    for n in range(5):
        AlertEvent.objects.create(
            alert=alert,
            kind="repeated",
            at=alert.first_at + datetime.timedelta(minutes=n + 1),
            comment=f"attempt {n + 2} failed",
        )
    html = as_user("olga").get(f"/alerts/{alert.id}/").content.decode()
    timeline = html[html.index('<ol class="timeline">') :]
    assert re.findall(r"attempt (\d) failed", timeline) == ["4", "5", "6"]
    assert "The newest 3 events and 3 deliveries are shown" in html
    assert f'href="/notifications/deliveries/?alert={alert.id}"' in html


def test_list_queries_do_not_grow_with_the_rows(as_user, alerts, users, project):
    client = as_user("olga")

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/alerts/", **POLL).status_code == 200
        return len(queries)

    before = count()
    for n in range(6):
        alert_create(alerts["rule"], failed_instance(project, users["alice"], f"more_{n}"))
    Alert.objects.filter(state="acknowledged").update(acknowledged_by=users["dave"])
    assert count() == before
