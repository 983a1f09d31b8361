"""A node's run history (grid of its last cycles, duration trend with median and
timeout) and the pipeline grid of nodes × biz dates, over a known history."""

import datetime
import json
import re

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.instances.models import Instance
from apps.projects.models import Project
from tests.factories import instance_create, node_create

# 10:00 on 2026-11-22 in Asia/Shanghai: biz date 2026-11-21 is "yesterday".
NOW = datetime.datetime(2026, 11, 22, 2, 0, tzinfo=datetime.UTC)
STATES = ["succeeded", "failed", "succeeded", "running"]


def _day(n: int) -> datetime.datetime:
    """The 02:00 (Shanghai) cycle whose biz date is n days before 2026-11-21."""
    return datetime.datetime(2026, 11, 21, 18, 0, tzinfo=datetime.UTC) - datetime.timedelta(days=n)


@pytest.fixture
def history(project, users):
    """ingest -> report -> publish, 40 daily cycles of ingest; the last four of each node
    in known states and durations (60 s, 120 s, 180 s, running)."""
    alice = users["alice"]
    ingest = node_create(project, "ingest", owner=alice, timeout_seconds=600)
    report = node_create(project, "report", owner=alice, upstream=[ingest])
    publish = node_create(project, "publish", owner=alice, upstream=[report])
    made = {}
    for n in range(40, -1, -1):
        scheduled = _day(n)
        idx = 3 - n if n <= 3 else None
        state = STATES[idx] if idx is not None else "succeeded"
        started = scheduled + datetime.timedelta(minutes=1)
        seconds = 60 * (idx + 1) if idx is not None else 30
        fields = dict(
            state=state,
            queued_at=scheduled,
            started_at=started,
            finished_at=None
            if state == "running"
            else started + datetime.timedelta(seconds=seconds),
        )
        made[("ingest", n)] = instance_create(ingest, scheduled, **fields)
        if n <= 3:
            made[("report", n)] = instance_create(report, scheduled, **fields)
    return {"ingest": ingest, "report": report, "publish": publish, "made": made}


@time_machine.travel(NOW, tick=False)
def test_node_page_shows_last_cycles_with_duration_bars_and_trend(client, users, history):
    client.force_login(users["vera"])
    ingest = history["ingest"]
    html = client.get(f"/nodes/{ingest.id}/").content.decode()
    cells = re.findall(
        r'class="history-cell" href="/instances/(\d+)/" data-instance="\d+" data-state="(\w+)"',
        html,
    )
    assert len(cells) == 30
    made = history["made"]
    # Oldest first, the newest (running) last; each links its instance.
    assert [int(i) for i, _ in cells[-4:]] == [made[("ingest", n)].id for n in (3, 2, 1, 0)]
    assert [s for _, s in cells[-4:]] == STATES
    # Bars are as tall as the duration against the longest shown (180 s; running 4 h).
    data = json.loads(re.search(r'id="history-data"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert data["durations"][-4:-1] == [60.0, 120.0, 180.0]
    assert data["durations"][-1] == pytest.approx((NOW - _day(0)).total_seconds() - 60)
    assert data["timeout"] == 600
    # Median of the finished runs shown: 26 of 30 s, then 60, 120, 180 -> 30 s.
    assert data["median"] == 30.0
    assert len(data["labels"]) == 30
    assert "data-timeout>10m 00s" in html
    assert "vendor/chartjs/chart.umd.min.js" in html and "cdn" not in html.lower()


@time_machine.travel(NOW, tick=False)
def test_node_page_toggles_ninety_cycles(client, users, history):
    client.force_login(users["vera"])
    html = client.get(f"/nodes/{history['ingest'].id}/?cycles=90").content.decode()
    assert html.count('class="history-cell"') == 41  # all it has
    assert '<strong data-cycles="90">' in html
    # A wrong value falls back to 30 rather than failing the page.
    html = client.get(f"/nodes/{history['ingest'].id}/?cycles=7").content.decode()
    assert html.count('class="history-cell"') == 30


@time_machine.travel(NOW, tick=False)
def test_node_without_runs_says_so(client, users, history):
    client.force_login(users["vera"])
    html = client.get(f"/nodes/{history['publish'].id}/").content.decode()
    assert "No runs yet." in html


@time_machine.travel(NOW, tick=False)
def test_pipeline_grid_shows_node_and_downstream_by_date_in_one_query(client, users, history):
    client.force_login(users["vera"])
    ingest = history["ingest"]
    url = f"/nodes/{ingest.id}/history/"
    client.get(url)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    rows = re.findall(r'<tr data-node="(\d+)">', html)
    assert rows == [str(history[n].id) for n in ("ingest", "report", "publish")]
    dates = re.findall(r'<th scope="col" class="node-head mono" data-date="([\d-]+)"', html)
    assert len(dates) == 30 and dates[-1] == "2026-11-21" and dates[0] == "2026-10-23"
    made = history["made"]
    report_row = html.split(f'<tr data-node="{history["report"].id}">')[1].split("</tr>")[0]
    assert re.findall(r'data-instance="(\d+)" data-state="(\w+)"', report_row) == [
        (str(made[("report", n)].id), s) for n, s in zip((3, 2, 1, 0), STATES, strict=True)
    ]
    assert report_row.count("grid-empty") == 26
    # One query reads every cell: the count does not grow with nodes × dates.
    cell_queries = [q for q in queries.captured_queries if "instances_instance" in q["sql"]]
    assert len(cell_queries) == 1


@time_machine.travel(NOW, tick=False)
def test_pipeline_grid_of_chosen_nodes_and_ninety_days(client, users, history):
    client.force_login(users["vera"])
    ingest, publish = history["ingest"], history["publish"]
    html = client.get(f"/nodes/{ingest.id}/history/?nodes={publish.id}&days=90").content.decode()
    assert re.findall(r'<tr data-node="(\d+)">', html) == [str(ingest.id), str(publish.id)]
    assert html.count('class="node-head mono"') == 90


@time_machine.travel(NOW, tick=False)
def test_pipeline_grid_refuses_bad_input_and_hides_other_projects(client, users, history):
    client.force_login(users["vera"])
    ingest = history["ingest"]
    response = client.get(f"/nodes/{ingest.id}/history/?days=12&nodes=x")
    assert response.status_code == 422
    html = response.content.decode()
    assert "<strong>days</strong>" in html and "<strong>nodes</strong>" in html
    other = Project.objects.create(code="other", name="Other", timezone="UTC")
    hidden = node_create(other, "secret", owner=users["root"], upstream=[ingest])
    html = client.get(f"/nodes/{ingest.id}/history/").content.decode()
    assert f'data-node="{hidden.id}"' not in html and "1 node you may not see" in html
    client.force_login(users["stranger"])
    assert client.get(f"/nodes/{ingest.id}/history/").status_code == 404
    assert Instance.objects.count() == 45
