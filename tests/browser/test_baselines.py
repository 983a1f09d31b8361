"""A baseline at risk in a real browser: the list shows it first, its page draws the
Gantt chart of the critical path (real and predicted bars, the warning, committed and now
lines) and the path's steps."""

import datetime

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.baselines import cycles
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
