"""In a real browser: the top bar's search completes node names as one types and jumps
to the node; a node's page draws its duration trend from the page's numbers."""

import datetime

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.factories import instance_create, node_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_search_completes_a_node_name_and_jumps_to_it(page, login, live_server, project, users):
    alice = users["alice"]
    node_create(project, "ingest_orders", owner=alice)
    report = node_create(project, "orders_report", owner=alice, timeout_seconds=600)
    now = timezone.now()
    for n in range(5, 0, -1):
        started = now - datetime.timedelta(days=n)
        instance_create(
            report,
            started,
            state="succeeded",
            queued_at=started,
            started_at=started,
            finished_at=started + datetime.timedelta(seconds=30 * n),
        )
    login("vera")
    page.fill("#global-search", "orders_r")
    suggestion = page.locator("#search-suggestions a[data-node]")
    expect(suggestion).to_have_count(1)
    expect(suggestion).to_contain_text("orders_report")
    suggestion.click()
    page.wait_for_url(f"{live_server.url}/nodes/{report.id}/")
    expect(page.locator("#node-history .history-cell")).to_have_count(5)
    # Chart.js drew the trend (served locally) with the durations, median and timeout.
    page.wait_for_function("() => window.Chart && Chart.getChart('history-chart')")
    labels = page.evaluate("() => Chart.getChart('history-chart').data.datasets.map(d => d.label)")
    assert labels == ["Duration (s)", "Median", "Timeout"]
    # Enter on an id-like query goes to the search page, which says what it did not find.
    page.fill("#global-search", "999999")
    page.press("#global-search", "Enter")
    page.wait_for_url(f"{live_server.url}/search/?q=999999")
    expect(page.locator("[data-message]")).to_contain_text("No instance 999999")
