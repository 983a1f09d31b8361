"""A baseline at risk in a real browser: the list shows it first, its page draws the
Gantt chart of the critical path (real and predicted bars, the warning, committed and now
lines) and the path's steps."""

import datetime
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.audit.models import OperationLog
from apps.baselines import cycles
from apps.baselines.models import Baseline
from apps.instances.models import Attempt
from tests.baselines.builders import baseline_make, history, start
from tests.factories import instance_create, node_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def at_risk(users, project):
    """extract (running for 30 minutes, usually 40) -> publish (usually 25): the promise
    "orders ready" is due 10 minutes from now, so the cycle is at risk."""
    alice = users["alice"]
    now = timezone.now().replace(microsecond=0)
    local = now.astimezone(project.tz)
    today_biz = local.date() - datetime.timedelta(days=1)
    extract = node_create(project, "extract_orders", owner=alice, type="shell")
    publish = node_create(project, "publish_orders", owner=alice, upstream=[extract])
    history(extract, [40, 41, 39])
    history(publish, [25, 24])
    ie = instance_create(extract, now - datetime.timedelta(hours=1), biz_date=today_biz)
    ip = instance_create(
        publish, now - datetime.timedelta(hours=1), biz_date=today_biz, upstream=[ie]
    )
    start(ie, now - datetime.timedelta(minutes=30))
    assert Attempt.objects.filter(instance=ie).exists()
    committed = (local + datetime.timedelta(minutes=10)).strftime("%H:%M")
    calm = node_create(project, "calm_node", owner=alice)
    instance_create(calm, now - datetime.timedelta(hours=1), biz_date=today_biz)
    baseline_make(project, [calm], name="calm", committed_time="23:59", margin_minutes=1)
    baseline = baseline_make(
        project, [publish], name="orders ready", committed_time=committed, margin_minutes=60
    )
    cycles.baselines_check(now=now)
    return {"baseline": baseline, "extract": ie, "publish": ip}


def test_opening_a_baseline_at_risk_shows_its_gantt_and_critical_path(
    login, page, live_server, at_risk, screenshots
):
    login("vera", "/baselines/")
    rows = page.locator("table.baselines tbody tr")
    expect(rows.first).to_have_attribute("data-baseline", str(at_risk["baseline"].pk))
    status = rows.first.get_attribute("data-status")
    assert status in ("warning", "broken")
    rows.first.get_by_role("link", name="orders ready").click()
    page.wait_for_url(f"{live_server.url}/baselines/{at_risk['baseline'].pk}/")

    gantt = page.locator("#gantt svg.gantt")
    expect(gantt).to_be_visible()
    bars = gantt.locator("g.bar")
    expect(bars).to_have_count(2)
    assert bars.nth(0).get_attribute("data-instance") == str(at_risk["extract"].pk)
    assert bars.nth(1).get_attribute("data-instance") == str(at_risk["publish"].pk)
    # extract has run for 30 minutes (real) and has 10 to go (predicted).
    expect(bars.nth(0).locator("rect.bar-real")).to_have_count(1)
    expect(bars.nth(0).locator("rect.bar-predicted")).to_have_count(1)
    expect(bars.nth(1).locator("rect.bar-predicted")).to_have_count(1)
    for line in ("warning", "committed", "now"):
        expect(gantt.locator(f'g[data-line="{line}"] line')).to_have_count(1)
    # The bars are laid out in time order: publish starts where extract ends.
    first = bars.nth(0).locator("rect.bar-predicted").bounding_box()
    second = bars.nth(1).locator("rect.bar-predicted").bounding_box()
    assert abs((first["x"] + first["width"]) - second["x"]) < 2
    assert second["width"] > first["width"]  # 25 minutes against 10
    steps = page.locator("table.critical-path tbody tr")
    expect(steps).to_have_count(2)
    expect(steps.nth(0)).to_contain_text("extract_orders")
    expect(steps.nth(1)).to_contain_text("publish_orders")
    expect(page.locator("#cycle-status")).to_have_attribute("data-status", status)
    expect(page.locator("#baseline-alerts tbody tr")).to_have_count(1)
    page.screenshot(path=str(screenshots / "baseline-at-risk.png"), full_page=True)
    # A click on a bar's label opens that instance, which says what it is lent.
    bars.nth(1).locator("a").click()
    page.wait_for_url(f"{live_server.url}/instances/{at_risk['publish'].pk}/")
    expect(page.locator("#instance-baselines")).to_contain_text("orders ready")
    expect(page.locator("#instance-baselines .lent")).to_contain_text("Dispatched at priority 8")


def test_an_admin_creates_edits_and_deletes_a_baseline_through_its_pages(
    login, page, live_server, users, project, screenshots
):
    alice = users["alice"]
    extract = node_create(project, "extract_orders", owner=alice)
    publish = node_create(project, "publish_orders", owner=alice, upstream=[extract])
    node_create(project, "load_users", owner=alice)

    login("alice", "/baselines/")
    page.get_by_role("link", name="New baseline").click()
    page.wait_for_url(f"{live_server.url}/baselines/new/")
    form = page.locator("#baseline-form")
    form.get_by_label("Name").fill("orders ready")
    # The committed time asks for a minute once the cycle is hourly, and HH:MM again after.
    committed = form.get_by_label("Committed time")
    form.get_by_label("Cycle").select_option("hourly")
    expect(committed).to_have_attribute("placeholder", "MM")
    expect(form.locator("[data-committed-hint]")).to_contain_text("minute of each hour")
    form.get_by_label("Cycle").select_option("daily")
    expect(committed).to_have_attribute("placeholder", "HH:MM")
    committed.fill("06:30")
    # The filter box hides the nodes that do not match; the chosen ones stay.
    search = form.get_by_label("Filter the key nodes")
    search.fill("extract")
    expect(form.locator(f'label[data-node="{publish.pk}"]')).to_be_hidden()
    form.locator(f'input[name=key_nodes][value="{extract.pk}"]').check()
    search.fill("publish")
    expect(form.locator(f'label[data-node="{extract.pk}"]')).to_be_visible()
    form.locator(f'input[name=key_nodes][value="{publish.pk}"]').check()
    page.screenshot(path=str(screenshots / "baseline-new.png"), full_page=True)
    form.get_by_role("button", name="Create baseline").click()

    page.wait_for_url(re.compile(r"/baselines/\d+/$"))
    baseline = Baseline.objects.get(name="orders ready")
    assert page.url == f"{live_server.url}/baselines/{baseline.pk}/"
    facts = page.locator("dl.baseline-facts")
    expect(facts).to_contain_text("06:30")
    expect(facts.get_by_role("link", name="extract_orders")).to_be_visible()
    expect(facts.get_by_role("link", name="publish_orders")).to_be_visible()
    assert {n.pk for n in baseline.key_nodes.all()} == {extract.pk, publish.pk}

    page.get_by_role("link", name="Edit", exact=True).click()
    page.wait_for_url(f"{live_server.url}/baselines/{baseline.pk}/edit/")
    committed = page.locator("#baseline-form").get_by_label("Committed time")
    committed.fill("7:5")
    page.get_by_role("button", name="Save baseline").click()
    # Refused next to its field; the form stays with what was typed.
    error = page.locator('[data-field="committed_time"] .field-error')
    expect(error).to_contain_text("is not a time HH:MM")
    page.screenshot(path=str(screenshots / "baseline-edit-refused.png"), full_page=True)
    committed.fill("07:45")
    page.get_by_role("button", name="Save baseline").click()
    page.wait_for_url(f"{live_server.url}/baselines/{baseline.pk}/")
    expect(page.locator("dl.baseline-facts")).to_contain_text("07:45")
    page.screenshot(path=str(screenshots / "baseline-saved.png"))

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("form[data-confirm]").get_by_role("button", name="Delete").click()
    page.wait_for_url(f"{live_server.url}/baselines/")
    expect(page.locator("table.baselines tbody")).to_contain_text("No baselines")
    assert not Baseline.objects.exists()
    actions = OperationLog.objects.filter(object_type="baseline", source="ui", result="ok")
    assert sorted(actions.values_list("action", flat=True)) == [
        "baseline.create",
        "baseline.delete",
        "baseline.update",
    ]
