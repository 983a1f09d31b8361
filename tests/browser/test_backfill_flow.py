"""Backfill from a node's page in a real browser: choose the dates, preview the plan,
start it, and watch the run's progress bar fill up to all succeeded without a reload,
while real workers (worker.drain in a thread) run its instances."""

import re

import pytest
from playwright.sync_api import expect

from apps.backfills.models import Backfill
from apps.instances.models import Instance
from tests.browser.test_operations_flow import Drain
from tests.factories import node_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_backfill_from_a_node_page_and_watch_it_finish(
    page, login, users, project, live_server, screenshots
):
    alice = users["alice"]
    extract = node_create(
        project, "extract", owner=alice, type="shell", content="echo extract ${bizdate}"
    )
    load = node_create(project, "load", owner=alice, type="virtual", upstream=[extract])

    login("olga", f"/nodes/{extract.id}/")
    page.click("#node-actions [data-action=backfill]")
    page.wait_for_url(f"**/backfills/new/?node={extract.id}")
    expect(page.locator(f"#bf-nodes option[value='{extract.id}']")).to_be_attached()
    assert page.eval_on_selector(
        f"#bf-nodes option[value='{extract.id}']", "option => option.selected"
    )
    page.fill("#bf-start", "2026-11-01")
    page.fill("#bf-end", "2026-11-03")
    page.check("input[name=downstream][value=all]")
    # The downstream chooser was loaded for the preselected node.
    expect(page.locator(f"input[name=downstream_nodes][value='{load.id}']")).to_be_attached()

    page.click("[data-action=preview]")
    preview = page.locator("#backfill-preview")
    expect(preview.locator("[data-plan-total]")).to_have_text("6")
    expect(preview.locator("[data-plan-date]")).to_have_count(3)
    expect(preview.locator(".dag[data-dag-state='ready']")).to_be_visible()
    page.screenshot(path=str(screenshots / "backfill-preview.png"), full_page=True)
    assert not Backfill.objects.exists()

    page.click("[data-action=start]")
    page.wait_for_url(re.compile(r".*/backfills/\d+/$"))
    backfill = Backfill.objects.get()
    assert Instance.objects.filter(backfill=backfill).count() == 6
    expect(page.locator("#backfill-grid tbody tr")).to_have_count(3)
    page.screenshot(path=str(screenshots / "backfill-started.png"), full_page=True)

    page.evaluate("window.notReloaded = true")
    drain = Drain(timeout=5)
    live = page.locator("#backfill-live")
    expect(live).to_have_attribute("data-backfill-state", "succeeded", timeout=45_000)
    expect(live.locator("[data-percent]")).to_have_text("100%")
    expect(
        live.locator("#backfill-summary .progress-seg[data-state='succeeded']")
    ).to_have_attribute("data-count", "6")
    expect(live.locator(".grid-cell[data-state='succeeded']")).to_have_count(6)
    expect(live.locator(".live-dot")).to_have_count(0)
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=str(screenshots / "backfill-succeeded.png"), full_page=True)
    drain.join()

    # Serial: every instance of a date finished before the next date's first started.
    by_date = {}
    for instance in Instance.objects.filter(backfill=backfill):
        by_date.setdefault(instance.biz_date, []).append(instance)
    days = sorted(by_date)
    for earlier, later in zip(days, days[1:], strict=False):
        assert max(i.finished_at for i in by_date[earlier]) <= min(
            i.started_at for i in by_date[later]
        )

    # The list shows the run finished, with its full bar.
    page.goto(f"{live_server.url}/backfills/")
    row = page.locator(f"tr[data-backfill='{backfill.id}']")
    expect(row.locator("[data-state='succeeded']").first).to_be_visible()
    expect(row).to_contain_text("6/6")
    page.screenshot(path=str(screenshots / "backfill-list.png"), full_page=True)


def test_run_a_one_time_task_from_the_list_and_watch_it(
    page, login, users, project, live_server, screenshots
):
    manual = node_create(
        project,
        "fix_orders",
        owner=users["alice"],
        schedule_type="one_time",
        type="shell",
        content="echo fixing ${region} for ${bizdate}",
        params={"region": "eu"},
    )
    login("olga", "/nodes/one-time/")
    page.click(f"tr[data-node='{manual.id}'] [data-action=run]")
    expect(page.locator("#one-time-run-title")).to_have_text("Run fix_orders")
    page.fill("#run-param-region", "us")
    page.fill("#run-biz-date", "2026-11-01")
    page.screenshot(path=str(screenshots / "one-time-list.png"), full_page=True)
    page.click("#run-form button[type=submit]")
    page.wait_for_url(re.compile(r".*/instances/\d+/$"))
    instance = Instance.objects.get(node=manual)
    expect(page.locator("#instance-live .live-dot")).to_be_visible()

    page.evaluate("window.notReloaded = true")
    drain = Drain(timeout=5)
    expect(page.locator("#instance-live .status-line")).to_contain_text("Succeeded", timeout=45_000)
    expect(page.locator("#log-text")).to_contain_text("fixing us for 20261101")
    assert page.evaluate("window.notReloaded") is True
    drain.join()
    assert Instance.objects.get(pk=instance.pk).kind == "one_time"
