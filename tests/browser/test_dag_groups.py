"""A daily node with 24 hourly parents stays readable: its graph draws the parents as one
box, a click on the box opens it into the 24 runs, and Regroup closes it again."""

import pytest
from playwright.sync_api import expect

from tests.pages.builders import hourly_day

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BOXES = "document.querySelector('.dag').dag.cy.nodes().length"


def click_box(page, box_id: str) -> None:
    """A real mouse click on a box of the canvas, where cytoscape drew it."""
    where = page.evaluate(
        """(id) => {
            const dag = document.querySelector('.dag').dag;
            const node = dag.cy.getElementById(id);
            dag.cy.center(node);
            const p = node.renderedPosition();
            const r = dag.canvas.getBoundingClientRect();
            return { x: r.left + p.x, y: r.top + p.y };
        }""",
        box_id,
    )
    page.mouse.click(where["x"], where["y"])


def test_a_click_opens_the_hourly_group_and_regroup_closes_it(
    page, login, users, project, live_server, screenshots
):
    day = hourly_day(project, users["alice"])
    report = day["report"]
    login("olga", f"/instances/{report.id}/dag/?up=1&down=1")
    graph = page.locator(".dag")
    expect(graph).to_have_attribute("data-dag-state", "ready")
    assert page.evaluate(BOXES) == 2
    expect(graph.locator("[data-dag-status]")).to_contain_text("25 instances (24 in 1 box)")
    group = page.evaluate("document.querySelector('.dag').dag.cy.nodes('.group')[0].data()")
    assert group["text"] == "hourly_load ×24\n2 failed · 22 succeeded"
    expect(graph.locator("[data-dag-regroup]")).to_be_hidden()
    page.screenshot(path=str(screenshots / "dag-hourly-grouped.png"))

    click_box(page, group["id"])
    expect(graph.locator("[data-dag-status]")).to_contain_text("25 instances")
    page.wait_for_function(f"{BOXES} === 25")
    expect(graph.locator("[data-dag-status]")).not_to_contain_text("in 1 box")
    assert page.evaluate("document.querySelector('.dag').dag.cy.nodes('.member').length") == 24
    assert "expand=" in page.url  # the full-screen page keeps it in its address
    expect(graph.locator("[data-dag-regroup]")).to_be_visible()
    page.click("[data-dag-fit]")
    page.screenshot(path=str(screenshots / "dag-hourly-expanded.png"))

    # Reloaded, the page still shows the group open; Regroup draws one box again.
    page.reload()
    expect(graph).to_have_attribute("data-dag-state", "ready")
    page.wait_for_function(f"{BOXES} === 25")
    page.click("[data-dag-regroup]")
    page.wait_for_function(f"{BOXES} === 2")
    expect(graph.locator("[data-dag-regroup]")).to_be_hidden()

    # The list view opens a group too, and its runs link their pages.
    page.click(".dag-list summary")
    page.click(f"[data-dag-expand='{group['id']}']")
    page.wait_for_function(f"{BOXES} === 25")
    first = day["runs"][0]
    expect(graph.locator(f"[data-dag-list] li[data-id='{first.id}'] a")).to_have_attribute(
        "href", f"/instances/{first.id}/"
    )
