import datetime

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.nodes.models import Node
from tests.factories import instance_create, node_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def history(users, project):
    """A week of runs ending today in Asia/Shanghai, one of them still running."""
    alice = users["alice"]
    now = timezone.now().replace(microsecond=0)
    today_biz = now.astimezone(project.tz).date() - datetime.timedelta(days=1)
    ingest = node_create(project, "ingest_orders", owner=alice, type="shell")
    report = node_create(project, "daily_report", owner=alice, type="python", upstream=[ingest])
    for back in range(7):
        biz_date = today_biz - datetime.timedelta(days=back)
        start = now - datetime.timedelta(days=back, hours=2)
        instance_create(
            ingest,
            start,
            biz_date=biz_date,
            state="succeeded",
            started_at=start,
            finished_at=start + datetime.timedelta(seconds=60 + 10 * back),
        )
        instance_create(
            report,
            start + datetime.timedelta(minutes=30),
            biz_date=biz_date,
            state="failed" if back % 3 == 0 else "succeeded",
            started_at=start,
            finished_at=start + datetime.timedelta(seconds=200 - 10 * back),
        )
    flaky = node_create(project, "load_events", owner=alice, type="shell")
    instance_create(
        flaky,
        now - datetime.timedelta(minutes=40),
        biz_date=today_biz,
        state="running",
        started_at=now - datetime.timedelta(minutes=39),
    )
    child = node_create(project, "events_rollup", owner=alice, upstream=[flaky])
    instance_create(
        child,
        now - datetime.timedelta(minutes=20),
        biz_date=today_biz,
        state="pending",
        wait_reason="waiting_upstream",
    )
    return {"ingest": ingest, "report": report}


def chart_summary(page) -> dict:
    return page.evaluate(
        """() => {
            const chart = Chart.getChart(document.getElementById("trend-chart"));
            return {
                labels: chart.data.labels.length,
                succeeded: chart.data.datasets[0].data.reduce((a, b) => a + b, 0),
                failed: chart.data.datasets[1].data.reduce((a, b) => a + b, 0),
                colors: chart.data.datasets.map((d) => d.backgroundColor),
                datasets: chart.data.datasets.map((d) => d.label),
            };
        }"""
    )


def test_overview_draws_the_trend_chart(page, login, history, live_server, screenshots):
    login("olga", "/overview/")
    expect(page.locator("#trend-chart[data-chart-ready=true]")).to_be_attached()
    summary = chart_summary(page)
    assert summary["labels"] == 7
    assert (summary["succeeded"], summary["failed"]) == (7 + 4, 3)
    # The colours are the badges' colours: green successes, red failures.
    assert summary["colors"][0].startswith("rgba(23, 106, 51")
    assert summary["colors"][1].startswith("rgba(166, 27, 17")
    assert summary["datasets"][-1] == "Failed attempts"
    expect(page.locator("#today .count")).to_have_text("4")
    expect(page.locator("#longest-running")).to_contain_text("load_events")
    expect(page.locator("#waiting-longest")).to_contain_text("events_rollup")
    expect(page.locator("#failure-ranking")).to_contain_text("daily_report")
    page.screenshot(path=str(screenshots / "overview.png"), full_page=True)

    # The period switch swaps the chart for 30 days without reloading the page.
    page.evaluate("window.notReloaded = true")
    page.click("nav.segmented >> text=30 days")
    expect(page.locator("nav.segmented a.active")).to_have_text("30 days")
    expect(page.locator("#trend-chart[data-chart-ready=true]")).to_be_attached()
    page.wait_for_function(
        "Chart.getChart(document.getElementById('trend-chart')).data.labels.length === 30"
    )
    assert page.evaluate("window.notReloaded") is True
    assert page.url.endswith("/overview/?days=30")

    # A number leads to the instances it counts.
    page.click("#today [data-state-total=failed]")
    page.wait_for_url("**/instances/?biz_date=*&state=failed")
    expect(page.locator("tr[data-instance]")).to_have_count(1)


def test_node_detail_graph_diff_and_run(
    page, login, history, users, project, live_server, screenshots
):
    report = history["report"]
    node_create(
        project,
        "daily_report",
        owner=users["alice"],
        type="python",
        upstream=[history["ingest"]],
        content="print('report v2')",
        priority=4,
    )
    login("olga", f"/nodes/{report.id}/")
    expect(page.locator("h1")).to_contain_text("daily_report")
    expect(page.locator("pre.diff[data-diff=content]")).to_contain_text("+print('report v2')")
    # The shared graph component draws the node and its upstream.
    expect(page.locator("[data-dag-list] li")).to_have_count(2)
    page.screenshot(path=str(screenshots / "node-detail.png"), full_page=True)

    # Compare other versions: only the versions panel changes.
    page.select_option("#diff-a", "2")
    page.select_option("#diff-b", "1")
    page.click("text=Show the difference")
    expect(page.locator("pre.diff[data-diff=content]")).to_contain_text("-print('report v2')")
    assert page.url.endswith("?a=2&b=1")


def test_run_a_one_time_node_from_its_page(page, login, users, project, live_server):
    manual = node_create(
        project,
        "fix_orders",
        owner=users["alice"],
        schedule_type="one_time",
        type="shell",
        content="echo ${region}",
        params={"region": "eu"},
    )
    login("olga", f"/nodes/{manual.id}/")
    page.click("summary[data-action=run]")
    page.fill("#run-param-region", "us")
    page.fill("#run-biz-date", "2026-11-01")
    page.click("text=Run now")
    page.wait_for_url("**/instances/*/")
    expect(page.locator("h1")).to_contain_text("fix_orders")
    expect(page.locator("h1")).to_contain_text("2026-11-01")
    assert Node.objects.get(pk=manual.pk).instances.get().params == {"region": "us"}


def test_batch_pause_from_the_node_list(page, login, history, live_server, screenshots):
    login("olga", "/nodes/")
    page.evaluate("window.notReloaded = true")
    for node in ("ingest", "report"):
        page.check(f"input[name=ids][value='{history[node].id}']")
    page.click("button[name=action][value=pause]")
    expect(page.locator("#batch-confirm")).to_contain_text("Pause 2 nodes?")
    assert not Node.objects.filter(paused=True).exists()
    page.screenshot(path=str(screenshots / "node-batch-confirm.png"), full_page=True)
    page.click("#batch-confirm button[type=submit]")
    expect(page.locator("#batch-results")).to_contain_text("Pause: 2 of 2 done")
    # The list re-reads itself: both rows now show the paused flag.
    expect(page.locator("#node-table .flag", has_text="paused")).to_have_count(2)
    expect(page.locator("#node-table")).to_have_count(1)
    expect(page.locator("#batch-results")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=str(screenshots / "node-batch-results.png"), full_page=True)
