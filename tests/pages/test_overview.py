import json
import re

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import instance_create, node_create
from tests.monitoring.builders import NOW, T0, other_project, overview_data

HTMX = {"HTTP_HX_REQUEST": "true"}
POLL_LIVE = {**HTMX, "HTTP_HX_TRIGGER": "overview-live"}


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def olga(client, users):
    client.force_login(users["olga"])
    return client


@pytest.fixture
def data(project, users):
    return overview_data(project, users)


def cell(html: str, kind: str, state: str) -> str:
    """The content of today's table cell for `kind` and `state`."""
    row = re.search(rf'<tr data-kind="{kind}">(.*?)</tr>', html, re.S).group(1)
    return re.search(rf'<td class="num" data-state="{state}">(.*?)</td>', row, re.S).group(1)


def test_root_redirects_to_the_overview(olga):
    response = olga.get("/")
    assert response.status_code == 302 and response["Location"] == "/overview/"


def test_overview_full_page(frozen, olga, data):
    response = olga.get("/overview/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and 'href="/overview/" class="active"' in html
    # Today is labelled as the business day it is.
    assert 'biz date <strong class="mono">2026-11-21</strong>' in html
    assert "scheduled on 2026-11-22 (Asia/Shanghai)" in html
    assert 'data-total="6"' in html
    # Every number links to the instance list showing exactly those instances.
    assert cell(html, "recurring", "pending") == (
        '<a href="/instances/?biz_date=2026-11-21&amp;kind=recurring&amp;state=pending">2</a>'
    )
    assert cell(html, "one_time", "succeeded").endswith(">1</a>")
    assert cell(html, "backfill", "failed") == '<span class="zero">0</span>'
    assert (
        'href="/instances/?biz_date=2026-11-21&amp;state=failed" data-state-total="failed"' in html
    )
    assert 'data-wait-count="waiting_upstream"' in html
    # The chart's data and the libraries that draw it.
    assert '<canvas id="trend-chart" data-chart-source="trend-data"' in html
    assert '<script id="trend-data" type="application/json">' in html
    assert "vendor/chartjs/chart.umd.min.js" in html and "js/overview.js" in html
    # Failure ranking, longest running, waiting longest, each linked.
    ranking = html[html.index('id="failure-ranking"') :]
    assert f'<a href="/nodes/{data["report"].id}/">report</a>' in ranking
    assert (
        f'href="/instances/?node={data["report"].id}&amp;state=failed" data-failures="3"' in ranking
    )
    running = html[html.index('id="longest-running"') : html.index('id="waiting-longest"')]
    assert f"/instances/{data['flaky'].id}/" in running and "7h 55m" in running
    waiting = html[html.index('id="waiting-longest"') : html.index('id="overview-period"')]
    assert f"/instances/{data['child'].id}/" in waiting
    assert 'data-wait="waiting_upstream"' in waiting and "8h 00m" in waiting
    # Something runs: the live part refreshes itself.
    assert (
        'id="overview-live" class="overview-live" hx-get="/overview/" hx-trigger="every 15s"'
        in html
    )


def test_overview_chart_data_is_embedded(frozen, olga, data):
    html = olga.get("/overview/?days=30").content.decode()
    raw = re.search(r'<script id="trend-data" type="application/json">(.*?)</script>', html).group(
        1
    )
    chart = json.loads(raw)
    assert len(chart["labels"]) == 30 and chart["labels"][-1] == "2026-11-21"
    assert chart["succeeded"][-1] == 2 and chart["failed"][-1] == 1
    assert chart["avg_duration_seconds"][-1] == 70.0
    assert chart["failed"][-11] == 1  # D-10
    assert chart["colors"] == {"succeeded": "green", "failed": "red", "duration": "blue"}
    assert 'aria-current="true">30 days</a>' in html


def test_overview_htmx_request_renders_the_period_part(frozen, olga, data):
    response = olga.get("/overview/?days=30", **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and 'id="overview-live"' not in html
    assert html.lstrip().startswith('<div id="overview-period">') or 'id="overview-period"' in html
    assert 'id="trend-chart"' in html and 'id="failure-ranking"' in html
    assert "HX-Request" in response["Vary"]


def test_overview_live_poll_stops_when_nothing_runs(frozen, olga, data):
    response = olga.get("/overview/", **POLL_LIVE)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="overview-live"' in html and 'id="trend-chart"' not in html
    data["flaky"].__class__.objects.filter(pk=data["flaky"].pk).update(state="succeeded")
    response = olga.get("/overview/", **POLL_LIVE)
    assert response.status_code == 286
    assert "hx-trigger" not in response.content.decode().split(">", 1)[0]


def test_overview_bad_period_names_the_field(frozen, olga, data):
    response = olga.get("/overview/?days=9")
    assert response.status_code == 422
    assert "<strong>days</strong>: one of 7, 30" in response.content.decode()


def test_overview_shows_only_visible_projects(frozen, client, users, data):
    other_project(users)
    client.force_login(users["olga"])
    html = client.get("/overview/").content.decode()
    assert "beta_load" not in html
    client.force_login(users["alice"])
    html = client.get("/overview/").content.decode()
    assert "beta_load" in html and 'data-total="7"' in html
    # Chosen project: only its numbers.
    html = client.get("/overview/?project=beta").content.decode()
    assert 'data-total="1"' in html and "report" not in html


def test_overview_with_nothing_says_so(frozen, client, users):
    client.force_login(users["stranger"])
    html = client.get("/overview/").content.decode()
    assert "Nothing is running." in html and "No failed instances in this period." in html
    # Nothing on the overview polls (the top bar's alert badge always does).
    assert 'hx-trigger="every' not in html[html.index("<main") :]


def test_overview_query_count_does_not_grow_with_the_data(frozen, olga, data, users, project):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert olga.get("/overview/").status_code == 200
        return len(queries)

    before = count()
    for n in range(6):
        node = node_create(project, f"more_{n}", owner=users["alice"])
        instance_create(node, T0, state="running", started_at=T0)
        instance_create(node, T0, state="pending", wait_reason="waiting_resources", kind="backfill")
        instance_create(node, T0, state="failed", finished_at=T0, kind="one_time")
    assert count() == before
