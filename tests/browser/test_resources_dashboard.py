"""The resource dashboard in a real browser: its charts draw from the page's numbers,
and Apply suggestion republishes a node after asking."""

import pytest
from playwright.sync_api import expect

from apps.nodes.models import Node
from tests.monitoring.test_resources import usage  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DASHBOARD = "/resources/?start=2026-11-20&end=2026-11-20&project=acme"


def test_charts_draw_and_apply_suggestion_republishes(
    page,
    login,
    usage,  # noqa: F811
    live_server,
    screenshots,
):
    login("dave", DASHBOARD)
    for chart in ("node-cpu-chart", "node-memory-chart", "group-chart"):
        expect(page.locator(f"#{chart}[data-chart-ready=true]")).to_be_attached()
    drawn = page.evaluate(
        """() => {
            const cpu = Chart.getChart(document.getElementById("node-cpu-chart"));
            const groups = Chart.getChart(document.getElementById("group-chart"));
            return {
                nodes: cpu.data.labels,
                allocated: cpu.data.datasets[0].data,
                groups: groups.data.labels,
            };
        }"""
    )
    assert set(drawn["nodes"]) == {
        "acme.lavish",
        "acme.tight",
        "acme.killed",
        "acme.fine",
        "acme.young",
    }
    assert drawn["allocated"][drawn["nodes"].index("acme.lavish")] == 2
    assert drawn["groups"] == ["default", "etl"]
    expect(page.locator("#resource-flags [data-flag=under_provisioned] strong")).to_have_text("2")
    page.screenshot(path=str(screenshots / "resources.png"), full_page=True)

    lavish = usage["lavish"]
    row = page.locator(f"tr[data-node='{lavish.pk}']")
    expect(row).to_contain_text("0.75 cores / 512 MB")
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("[data-action=apply_suggestion]").click()
    expect(page.locator(".messages")).to_contain_text("lavish republished as version 2")
    spec = Node.objects.get(pk=lavish.pk).current_version.spec
    assert (spec["cpu"], spec["memory_mb"]) == (0.75, 512)


def test_a_project_admin_sets_the_projects_runtime_settings(page, login, project, screenshots):
    login("alice", "/configuration/runtime/acme/")
    row = page.locator("tr[data-setting=retries]")
    expect(row.locator("[data-effective]")).to_have_text("0")
    expect(row.locator("[data-runtime_level]")).to_have_text("Global")
    page.fill("#rt-retries", "-1")
    page.click("[data-action=save]")
    expect(page.locator("tr[data-setting=retries] .field-error")).to_contain_text("from 0 to 100")
    page.fill("#rt-retries", "3")
    page.select_option("#rt-rerun_policy", "failed_only")
    page.click("[data-action=save]")
    expect(page.locator(".messages")).to_contain_text("Runtime configuration of acme saved")
    row = page.locator("tr[data-setting=retries]")
    expect(row.locator("[data-effective]")).to_have_text("3")
    expect(row.locator("[data-runtime_level]")).to_have_text("Project")
    expect(page.locator("#runtime-history")).to_contain_text("retries")
    page.screenshot(path=str(screenshots / "runtime-config.png"), full_page=True)
