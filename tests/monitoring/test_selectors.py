import datetime

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.errors import ValidationFailed
from apps.monitoring.selectors import overview_days, overview_get
from tests.factories import instance_create, node_create
from tests.monitoring.builders import NOW, T0, D, day, finished, other_project, overview_data


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def data(project, users):
    return overview_data(project, users)


def test_today_counts_by_kind_and_state(frozen, data, users, project):
    overview = overview_get(user=users["olga"], project=project)
    today = overview.today
    assert today.biz_dates == [D]
    recurring = today.counts["recurring"]
    assert recurring["succeeded"] == 1
    assert recurring["failed"] == 1
    assert recurring["running"] == 1
    assert recurring["pending"] == 2
    assert today.counts["one_time"]["succeeded"] == 1
    # The backfill ran today but for biz date D-3: not one of today's instances.
    assert today.kind_totals == {"recurring": 5, "backfill": 0, "one_time": 1, "realtime": 0}
    assert today.total == 6
    assert today.state_totals["succeeded"] == 2
    assert today.waiting["waiting_upstream"] == 1
    assert today.waiting["waiting_time"] == 1
    assert today.waiting["frozen"] == 0


def test_trend_per_biz_date_with_average_duration(frozen, data, users, project):
    overview = overview_get(user=users["olga"], project=project, days=7)
    assert (overview.start, overview.end) == (day(-6), D)
    by_date = {t.biz_date: t for t in overview.trend}
    assert list(by_date) == [day(i) for i in range(-6, 1)]
    assert (by_date[D].succeeded, by_date[D].failed) == (2, 1)
    assert by_date[D].avg_duration_seconds == pytest.approx(70.0)  # (60 + 30 + 120) / 3
    assert (by_date[day(-1)].succeeded, by_date[day(-1)].failed) == (1, 1)
    assert by_date[day(-1)].avg_duration_seconds == pytest.approx(55.0)
    assert (by_date[day(-3)].failed, by_date[day(-3)].avg_duration_seconds) == (1, 40.0)
    # Days where nothing finished are there, empty.
    assert (by_date[day(-2)].succeeded, by_date[day(-2)].failed) == (0, 0)
    assert by_date[day(-2)].avg_duration_seconds is None


def test_thirty_days_reach_further_back(frozen, data, users, project):
    overview = overview_get(user=users["olga"], project=project, days=30)
    assert len(overview.trend) == 30 and overview.start == day(-29)
    assert {t.biz_date: t.failed for t in overview.trend}[day(-10)] == 1
    ranking = overview.failure_ranking
    assert [(r.node_name, r.failures) for r in ranking] == [("report", 4)]


def test_failure_ranking_orders_nodes_by_failures(frozen, data, users, project):
    flaky = data["flaky_node"]
    finished(flaky, T0 - datetime.timedelta(days=2), state="failed", seconds=3)
    overview = overview_get(user=users["olga"], project=project, days=7)
    ranking = [(r.node_name, r.project_code, r.failures) for r in overview.failure_ranking]
    assert ranking == [("report", "acme", 3), ("flaky", "acme", 1)]
    assert overview.failure_ranking[0].last_failed_at == NOW - datetime.timedelta(
        hours=2
    ) + datetime.timedelta(seconds=40)


def test_longest_running_and_waiting_longest(frozen, data, users, project):
    early = node_create(project, "early", owner=users["alice"])
    waiting_early = instance_create(
        early, T0 - datetime.timedelta(hours=3), state="pending", wait_reason="frozen", paused=True
    )
    overview = overview_get(user=users["olga"], project=project)
    assert [i.id for i in overview.longest_running] == [data["flaky"].id]
    # Longest waiting first; an instance whose time has not come is not waiting.
    assert [i.id for i in overview.waiting_longest] == [waiting_early.id, data["child"].id]
    assert overview.active


def test_scope_is_the_visible_projects(frozen, data, users, project):
    other_project(users)  # alice only
    olga_view = overview_get(user=users["olga"])
    assert [p.code for p in olga_view.projects] == ["acme"]
    assert olga_view.today.total == 6
    alice_view = overview_get(user=users["alice"])
    assert [p.code for p in alice_view.projects] == ["acme", "beta"]
    assert alice_view.today.total == 7
    assert alice_view.today.counts["recurring"]["failed"] == 2
    assert overview_get(user=users["stranger"]).today.total == 0


def test_today_is_each_projects_own_biz_date(frozen, data, users, project):
    # 18:00 on 2026-11-21 in Los Angeles: today's biz date there is 2026-11-20.
    west = other_project(users, code="west", timezone="America/Los_Angeles")
    west_node = west.nodes.get()
    # An instance of D in the west is tomorrow's there: not counted today.
    finished(west_node, T0 + datetime.timedelta(hours=1), state="succeeded", seconds=5, biz_date=D)
    overview = overview_get(user=users["alice"])
    assert overview.today.biz_dates == [day(-1), D]
    assert overview.today.biz_date is None
    assert overview.today.total == 6 + 1  # acme's six, the west's failure of D-1
    assert overview.end == D


def test_nothing_visible_is_an_empty_overview(frozen, users):
    overview = overview_get(user=users["stranger"])
    assert overview.projects == [] and overview.today.total == 0
    assert len(overview.trend) == 7 and overview.failure_ranking == []


def test_query_count_does_not_grow_with_the_data(frozen, data, users, project):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            overview_get(user=users["olga"])
        return len(queries)

    before = count()
    for n in range(5):
        node = node_create(project, f"more_{n}", owner=users["alice"])
        finished(node, T0, state="failed", seconds=n + 1)
        instance_create(node, T0 - datetime.timedelta(days=1), state="running", started_at=T0)
        instance_create(node, T0 - datetime.timedelta(days=2), state="pending")
    assert count() == before


@pytest.mark.parametrize("value, expected", [(None, 7), ("", 7), ("7", 7), (30, 30)])
def test_overview_days_accepts_seven_or_thirty(value, expected):
    assert overview_days(value) == expected


@pytest.mark.parametrize("value", ["5", "x", "-7", "365"])
def test_overview_days_refuses_anything_else(value):
    with pytest.raises(ValidationFailed) as caught:
        overview_days(value)
    assert caught.value.errors[0]["field"] == "days"
