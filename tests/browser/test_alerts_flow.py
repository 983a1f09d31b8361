"""An operator's alert, in a real browser: the Alerts page is open; a real shell instance
fails and the monitor consumes its event — the firing alert appears without a reload and
the top bar counts it; the operator acknowledges it with a comment from the list; the
instance is fixed and rerun, and the page shows the alert resolved by itself."""

import datetime

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.instances import worker
from apps.instances.models import Instance
from apps.instances.operations import instance_rerun
from apps.monitoring.events import events_consume
from apps.monitoring.models import Alert, AlertEvent, MonitorRule
from tests.factories import instance_create, node_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Long enough for the badge's poll (5s) and the table's refresh behind it.
APPEAR_MS = 20_000


def run_and_monitor() -> None:
    """What a cluster does: the dispatcher and workers run what is due, then the monitor
    handles the instance events they wrote."""
    worker.drain(timeout=20)
    while events_consume(now=timezone.now()):
        pass


@pytest.fixture
def failing_node(project, users, tmp_path):
    """A shell node that fails (exit 3) until its marker file exists, watched by a rule
    for failures; one instance of it due now."""
    marker = tmp_path / "source-ready"
    node = node_create(
        project,
        "load_orders",
        owner=users["alice"],
        type="shell",
        content=f'test -f "{marker}" || {{ echo "source not ready" >&2; exit 3; }}\necho loaded',
    )
    MonitorRule.objects.create(
        project=project,
        name="load failures",
        scope={"kind": "nodes", "nodes": [node.pk]},
        triggers=[{"type": "failure"}],
        recipients={"owner": True, "users": [], "groups": [], "on_call": None},
    )
    at = timezone.now().astimezone(project.tz).replace(microsecond=0) - datetime.timedelta(
        minutes=1
    )
    instance = instance_create(node, at, state="pending")
    return {"node": node, "instance": instance, "marker": marker}


def test_alert_appears_is_acknowledged_and_resolves_after_a_rerun(
    page, login, live_server, failing_node, users, screenshots
):
    instance = failing_node["instance"]
    login("olga", "/alerts/")
    expect(page.locator("#alert-table")).to_contain_text("No alerts match these filters.")
    expect(page.locator("#firing-badge")).to_have_attribute("data-firing", "0")

    # The instance really runs and fails; the monitor turns its event into an alert.
    run_and_monitor()
    instance.refresh_from_db()
    assert instance.state == "failed"
    alert = Alert.objects.get(instance=instance)
    assert alert.state == "firing" and alert.trigger == "failure"

    # It appears on the open page, no reload: the badge counts it and the table follows.
    row = page.locator(f"#alert-table tr[data-alert='{alert.pk}']")
    expect(row).to_be_visible(timeout=APPEAR_MS)
    expect(row).to_contain_text("load_orders")
    expect(row.locator("[data-alert='firing']")).to_be_visible()
    expect(page.locator("#firing-badge")).to_have_text("1")
    expect(page.locator("#alert-table .live-dot")).to_be_visible()
    page.screenshot(path=str(screenshots / "alerts-firing.png"), full_page=True)

    # Acknowledge it from the list, with a comment.
    row.locator("input[name=ids]").check()
    expect(page.locator("[data-batch-count]")).to_have_text("1 alert selected")
    page.fill("#batch-comment", "looking at the source feed")
    page.click("#alert-batch-form button[data-action='ack']")
    expect(page.locator("#alert-table")).to_contain_text(f"1 alert acknowledged: #{alert.pk}.")
    expect(row.locator("[data-alert='acknowledged']")).to_be_visible()
    expect(row).to_contain_text("olga")
    # Nothing is firing any more: the badge says so without a reload.
    expect(page.locator("#firing-badge")).to_have_attribute("data-firing", "0")
    assert page.input_value("#batch-comment") == ""
    ack = AlertEvent.objects.get(alert=alert, kind="acknowledged")
    assert ack.user == users["olga"] and ack.comment == "looking at the source feed"

    # The source is fixed; the rerun succeeds and the alert resolves itself, shown live.
    failing_node["marker"].write_text("ok")
    instance_rerun(instance=Instance.objects.get(pk=instance.pk), by=users["olga"], source="ui")
    run_and_monitor()
    instance.refresh_from_db()
    assert instance.state == "succeeded"
    expect(row.locator("[data-alert='resolved']")).to_be_visible(timeout=APPEAR_MS)
    expect(row).to_contain_text("itself")
    # Nothing shown is open: the table stopped polling.
    expect(page.locator("#alert-table .live-dot")).to_have_count(0)
    expect(page.locator("#alert-table")).not_to_have_attribute(
        "hx-trigger", "every 5s, opscenter:alerts-changed from:body"
    )
    page.screenshot(path=str(screenshots / "alerts-resolved.png"), full_page=True)

    # Its page tells the story: fired, acknowledged by olga, resolved by itself.
    row.locator(f"a[href='/alerts/{alert.pk}/']").first.click()
    page.wait_for_url(f"{live_server.url}/alerts/{alert.pk}/")
    timeline = page.locator("ol.timeline")
    expect(timeline.locator("[data-event='fired']")).to_contain_text("exited with code 3")
    expect(timeline.locator("[data-event='acknowledged']")).to_contain_text("olga")
    expect(timeline.locator("[data-event='resolved']")).to_contain_text("succeeded")
    expect(page.locator("#alert-actions")).to_contain_text("nothing is left to do")
    expect(page.locator(f"a[data-instance='{instance.pk}']")).to_be_visible()
    page.screenshot(path=str(screenshots / "alert-detail.png"), full_page=True)


def test_filters_swap_the_table_and_the_project_filter_switches_the_project(
    page, login, live_server, project, users
):
    from tests.pages.alert_builders import alert_create, failed_instance, rule_create

    rule = rule_create(project)
    now = timezone.now()
    critical = alert_create(rule, failed_instance(project, users["alice"], "load"), at=now)
    warning = alert_create(
        rule,
        failed_instance(project, users["alice"], "report"),
        severity="warning",
        at=now - datetime.timedelta(minutes=1),
    )
    login("olga", "/alerts/")
    rows = page.locator("#alert-table tbody tr[data-alert]")
    expect(rows).to_have_count(2)
    page.evaluate("window.notReloaded = true")
    page.select_option("#f-severity", "warning")
    expect(rows).to_have_count(1)
    expect(page.locator(f"tr[data-alert='{warning.pk}']")).to_be_visible()
    page.wait_for_url("**/alerts/?severity=warning")
    assert page.evaluate("window.notReloaded") is True
    # The project filter is the switcher: a whole page for the project, nodes to filter by.
    page.select_option("#f-project", "acme")
    page.wait_for_url("**/alerts/?*project=acme*")
    expect(page.locator("#project-select")).to_have_value("acme")
    page.select_option("#f-node", str(critical.node_id))
    expect(rows).to_have_count(0)  # the severity filter still holds
    page.select_option("#f-severity", "")
    expect(page.locator(f"tr[data-alert='{critical.pk}']")).to_be_visible()
    expect(rows).to_have_count(1)


def test_rule_form_shows_errors_in_place_then_saves_and_toggles(
    page, login, live_server, project, users
):
    node_create(project, "report", owner=users["alice"])
    login("alice", "/alerts/rules/new/")
    page.fill("#rule-name", "report watch")
    page.check("input[name=triggers][value=running_longer]")
    page.fill("input[name=running_longer_minutes]", "0")
    page.click("button[data-action=save]")
    trigger = page.locator("li[data-trigger='running_longer']")
    expect(trigger.locator(".field-error")).to_have_text("a whole number of minutes, at least 1")
    expect(page.locator("#rule-name")).to_have_value("report watch")
    assert page.url == f"{live_server.url}/alerts/rules/new/"
    page.fill("input[name=running_longer_minutes]", "45")
    page.click("button[data-action=save]")
    page.wait_for_url(f"{live_server.url}/alerts/rules/")
    expect(page.locator(".messages")).to_contain_text("Rule report watch created in acme.")
    rule = MonitorRule.objects.get(name="report watch")
    assert rule.triggers == [
        {"type": "retries_exhausted"},
        {"type": "running_longer", "minutes": 45},
    ]
    row = page.locator(f"tr[data-rule='{rule.pk}']")
    expect(row).to_contain_text("running > 45 min")
    row.locator("button[data-action=toggle]").click()
    expect(row).to_have_attribute("data-enabled", "false")
    rule.refresh_from_db()
    assert rule.enabled is False
