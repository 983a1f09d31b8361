"""A day's timeline: the biz date's instances as bars (queue, then run) in lanes per
resource group or per node, zoomed by a time range, live while the day runs."""

import datetime
import re

import pytest
import time_machine

from apps.instances.models import Instance
from apps.projects.models import Project
from tests.factories import instance_create, node_create

NOW = datetime.datetime(2026, 11, 22, 4, 0, tzinfo=datetime.UTC)
BIZ = "2026-11-21"
SCHEDULED = datetime.datetime(2026, 11, 21, 18, 0, tzinfo=datetime.UTC)  # 02:00 Shanghai


def at(hour: int, minute: int = 0) -> datetime.datetime:
    return datetime.datetime(2026, 11, 22, hour, minute, tzinfo=datetime.UTC)


@pytest.fixture
def day(project, users):
    alice = users["alice"]
    ingest = node_create(project, "ingest", owner=alice, resource_group="etl")
    report = node_create(project, "report", owner=alice, upstream=[ingest], resource_group="bi")
    waiting = node_create(project, "waiting", owner=alice, upstream=[report])
    made = {
        "ingest": instance_create(
            ingest,
            SCHEDULED,
            state="succeeded",
            queued_at=at(0),
            started_at=at(0, 10),
            finished_at=at(1),
        ),
        "report": instance_create(
            report, SCHEDULED, state="running", queued_at=at(1, 5), started_at=at(2)
        ),
        "waiting": instance_create(waiting, SCHEDULED, state="pending"),
    }
    # Another biz date is not on this day's timeline.
    instance_create(
        ingest,
        SCHEDULED - datetime.timedelta(days=1),
        state="succeeded",
        queued_at=at(0) - datetime.timedelta(days=1),
        started_at=at(0) - datetime.timedelta(days=1),
        finished_at=at(1) - datetime.timedelta(days=1),
    )
    return made


def bars(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-instance="(\d+)" data-state="(\w+)"', html))


def lanes(html: str) -> list[str]:
    return re.findall(r'<g data-lane="([^"]+)">', html)


@time_machine.travel(NOW, tick=False)
def test_timeline_shows_queue_and_run_per_resource_group(client, users, day):
    client.force_login(users["vera"])
    response = client.get(f"/instances/timeline/?biz_date={BIZ}")
    assert response.status_code == 200
    html = response.content.decode()
    assert lanes(html) == ["bi", "etl"]
    assert bars(html) == {str(day["ingest"].id): "succeeded", str(day["report"].id): "running"}
    assert str(day["waiting"].id) not in bars(html)  # never queued: nothing to draw
    # The window runs from the first queue (00:00) to now (04:00, the running one).
    text = re.sub(r"<[^>]+>", "", html)
    assert "2026-11-22 00:00 UTC → 2026-11-22 04:00 UTC" in text
    assert re.findall(r'text-anchor="(\w+)">[^<]+</text>', html) == ["middle"] * 6 + ["end"]
    # ingest: queued 00:00-00:10 then ran 00:10-01:00; 840 units over 4 h.
    ingest = html.split(f'data-instance="{day["ingest"].id}"')[1].split("</a>")[0]
    assert '<rect class="queue" x="160.0" y="' in ingest and 'width="35.0"' in ingest
    assert '<rect class="run seg-green" x="195.0"' in ingest and 'width="175.0"' in ingest
    # report runs until now: its bar reaches the right edge.
    report = html.split(f'data-instance="{day["report"].id}"')[1].split("</a>")[0]
    assert 'class="run seg-blue" x="580.0"' in report and 'width="420.0"' in report
    # Live while something runs: the panel polls every 10 s.
    assert 'hx-trigger="every 10s"' in html and 'data-live="true"' in html


@time_machine.travel(NOW, tick=False)
def test_timeline_per_node_and_zoomed(client, users, day):
    client.force_login(users["vera"])
    html = client.get(f"/instances/timeline/?biz_date={BIZ}&group_by=node").content.decode()
    assert lanes(html) == ["ingest", "report"]
    zoom_in = re.search(r'href="([^"]+)" data-zoom="in"', html).group(1).replace("&amp;", "&")
    assert "from=2026-11-22T01%3A00%3A00" in zoom_in and "to=2026-11-22T03%3A00%3A00" in zoom_in
    # 02:30 to 04:00: only report is in the window, clipped at its left edge.
    html = client.get(
        f"/instances/timeline/?biz_date={BIZ}&group_by=node&from=2026-11-22T02:30&to=2026-11-22T04:00"
    ).content.decode()
    assert bars(html) == {str(day["report"].id): "running"}
    assert 'class="run seg-blue" x="160.0"' in html and 'width="840.0"' in html


@time_machine.travel(NOW, tick=False)
def test_timeline_poll_stops_with_286_when_nothing_runs(client, users, day):
    client.force_login(users["vera"])
    url = f"/instances/timeline/?biz_date={BIZ}"
    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 200
    Instance.objects.filter(pk=day["report"].pk).update(state="succeeded", finished_at=at(3))
    response = client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 286
    html = response.content.decode()
    assert 'data-live="false"' in html and "hx-trigger" not in html


@time_machine.travel(NOW, tick=False)
def test_timeline_refuses_bad_input_and_shows_only_visible(client, users, day):
    client.force_login(users["vera"])
    response = client.get("/instances/timeline/?biz_date=21-11-2026&group_by=owner&from=soon")
    assert response.status_code == 422
    html = response.content.decode()
    for field in ("biz_date", "group_by", "from"):
        assert f"<strong>{field}</strong>" in html
    response = client.get(
        f"/instances/timeline/?biz_date={BIZ}&from=2026-11-22T03:00&to=2026-11-22T01:00"
    )
    assert response.status_code == 422 and "must be after from" in response.content.decode()
    other = Project.objects.create(code="other", name="Other", timezone="UTC")
    secret = node_create(other, "secret", owner=users["root"])
    hidden = instance_create(
        secret, SCHEDULED, state="succeeded", queued_at=at(0), started_at=at(0), finished_at=at(1)
    )
    html = client.get(f"/instances/timeline/?biz_date={BIZ}").content.decode()
    assert str(hidden.id) not in bars(html)
    client.force_login(users["stranger"])
    html = client.get(f"/instances/timeline/?biz_date={BIZ}").content.decode()
    assert bars(html) == {} and "has been queued or started" in html
    # The page defaults to yesterday's biz date.
    client.force_login(users["vera"])
    html = client.get("/instances/timeline/").content.decode()
    assert "Timeline of biz date 2026-11-21" in html


@time_machine.travel(NOW, tick=False)
def test_instance_list_links_the_days_timeline(client, users, day):
    client.force_login(users["vera"])
    html = client.get(f"/instances/?biz_date={BIZ}").content.decode()
    assert f'href="/instances/timeline/?biz_date={BIZ}" id="timeline-link"' in html


@time_machine.travel(NOW, tick=False)
def test_a_window_of_minutes_tells_its_ticks_apart_by_the_second(client, users, day):
    client.force_login(users["vera"])
    html = client.get(
        f"/instances/timeline/?biz_date={BIZ}&from=2026-11-22T02:30&to=2026-11-22T02:33"
    ).content.decode()
    ticks = re.findall(r'<text class="axis"[^>]*>([^<]+)</text>', html)
    assert ticks[:2] == ["11-22 02:30:00", "11-22 02:30:30"] and len(set(ticks)) == 7
    text = re.sub(r"<[^>]+>", "", html)
    assert "2026-11-22 02:30:00 UTC → 2026-11-22 02:33:00 UTC" in text
    # A window of hours keeps its ticks to the minute.
    html = client.get(f"/instances/timeline/?biz_date={BIZ}").content.decode()
    assert re.findall(r'<text class="axis"[^>]*>([^<]+)</text>', html)[0] == "11-22 00:00"
