"""A node group in a real browser: from the node list to the groups, open one, pause it
(confirming), see its nodes paused, resume it, and open Backfill this group."""

import pytest
from playwright.sync_api import expect

from apps.audit.models import OperationLog
from apps.nodes.models import Node
from apps.nodes.services import nodes_publish
from tests.nodes.helpers import spec

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_pause_and_resume_a_group_from_its_page(page, login, users, project, screenshots):
    nodes_publish(
        project=project,
        env="prod",
        user=users["alice"],
        specs=[
            spec("extract", group="sales_daily"),
            spec("load", group="sales_daily", upstream=["extract"]),
            spec("report", group="sales_daily", upstream=["load"]),
            spec("cleanup", group="housekeeping"),
        ],
    )
    login("olga", "/nodes/")
    page.click("[data-link=groups]")
    page.wait_for_url("**/nodes/groups/")
    row = page.locator("tr[data-group=sales_daily]")
    expect(row.locator("[data-count=nodes]")).to_have_text("3")
    row.locator("a", has_text="sales_daily").click()
    page.wait_for_url("**/nodes/groups/acme/sales_daily/")
    expect(page.locator("#group-nodes tbody tr")).to_have_count(3)
    expect(page.locator("[data-action=group-resume]")).to_be_disabled()

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-action=group-pause]")
    expect(page.locator(".message-success")).to_have_text("Group sales_daily: 3 nodes paused.")
    expect(page.locator("#group-counts [data-count=paused]")).to_have_text("3")
    expect(page.locator("#group-nodes .flag", has_text="paused")).to_have_count(3)
    expect(page.locator("[data-action=group-pause]")).to_be_disabled()
    page.screenshot(path=str(screenshots / "group-paused.png"), full_page=True)
    assert set(Node.objects.filter(paused=True).values_list("name", flat=True)) == {
        "extract",
        "load",
        "report",
    }

    page.click("[data-action=group-resume]")
    expect(page.locator(".message-success")).to_have_text("Group sales_daily: 3 nodes resumed.")
    expect(page.locator("#group-counts [data-count=paused]")).to_have_text("0")
    expect(page.locator("#group-nodes .flag", has_text="paused")).to_have_count(0)
    assert not Node.objects.filter(paused=True).exists()
    assert list(
        OperationLog.objects.filter(object_type="node_group")
        .order_by("id")
        .values_list("action", "source", "username")
    ) == [("group_pause", "ui", "olga"), ("group_resume", "ui", "olga")]

    # A cancelled confirmation pauses nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("[data-action=group-pause]")
    page.wait_for_timeout(500)
    expect(page.locator("#group-counts [data-count=paused]")).to_have_text("0")
    assert not Node.objects.filter(paused=True).exists()

    page.click("[data-action=group-backfill]")
    page.wait_for_url("**/backfills/new/?node=*")
    selected = page.eval_on_selector_all(
        "#bf-nodes option:checked", "options => options.map(o => o.textContent.trim())"
    )
    assert sorted(selected) == ["extract", "load", "report"]
