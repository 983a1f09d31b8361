"""The overview counts failed attempts: a node whose retries rescue its instances is seen
in the failure ranking, the trend and the flaky ranking (page and API)."""

import datetime

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.instances.models import Attempt
from apps.monitoring.selectors import overview_get
from tests.factories import node_create
from tests.monitoring.builders import NOW, T0, D, day, finished, overview_data


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def attempts(instance, states):
    """Attempts 1..n of `instance` in `states`, a minute each from its start."""
    for number, state in enumerate(states, start=1):
        started = instance.started_at + datetime.timedelta(minutes=number - 1)
        Attempt.objects.create(
            instance=instance,
            number=number,
            state=state,
            started_at=started,
            finished_at=started + datetime.timedelta(seconds=30),
        )
    instance.attempt_count = len(states)
    instance.save(update_fields=["attempt_count"])


@pytest.fixture
def history(frozen, project, users):
    """overview_data, plus: `retrier` succeeded today after two failed attempts and on D-1
    after one; `broken` failed today on both of its attempts; `steady` succeeded at once."""
    made = overview_data(project, users)
    retrier = node_create(project, "retrier", owner=users["alice"])
    broken = node_create(project, "broken", owner=users["alice"])
    steady = node_create(project, "steady", owner=users["alice"])
    yesterday = T0 - datetime.timedelta(days=1)
    attempts(
        finished(retrier, T0, state="succeeded", seconds=200), ["failed", "failed", "succeeded"]
    )
    attempts(finished(retrier, yesterday, state="succeeded", seconds=90), ["failed", "succeeded"])
    attempts(finished(broken, T0, state="failed", seconds=70), ["failed", "failed"])
    attempts(finished(steady, T0, state="succeeded", seconds=30), ["succeeded"])
    made.update(retrier=retrier, broken=broken, steady=steady)
    return made


def test_failure_ranking_counts_failed_attempts(history, users, project):
    overview = overview_get(user=users["olga"], project=project, days=7)
    ranking = [(r.node_name, r.failed_attempts, r.failures) for r in overview.failure_ranking]
    # Failed instances first; retrier never failed an instance, yet its three failed
    # attempts put it in the ranking.
    assert ranking == [("report", 0, 3), ("broken", 2, 1), ("retrier", 3, 0)]
    retrier = overview.failure_ranking[2]
    # Its last failed attempt: the second of today's, 1 min after 02:00 + 30 s.
    assert retrier.last_failed_at == T0 + datetime.timedelta(minutes=1, seconds=30)


def test_flaky_ranking_lists_nodes_rescued_by_retries(history, users, project):
    overview = overview_get(user=users["olga"], project=project, days=7)
    flaky = [(r.node_name, r.flaky_instances, r.failed_attempts) for r in overview.flaky_ranking]
    # broken's instance failed (not flaky: failing); steady never failed.
    assert flaky == [("retrier", 2, 3)]


def test_trend_counts_failed_attempts_per_biz_date(history, users, project):
    overview = overview_get(user=users["olga"], project=project, days=7)
    by_date = {t.biz_date: t for t in overview.trend}
    assert (by_date[D].failed, by_date[D].failed_attempts) == (2, 4)
    assert (by_date[day(-1)].failed, by_date[day(-1)].failed_attempts) == (1, 1)
    assert by_date[day(-2)].failed_attempts == 0


def test_ranking_queries_do_not_grow_with_nodes(history, users, project):
    with CaptureQueriesContext(connection) as few:
        overview_get(user=users["olga"], project=project, days=7)
    for n in range(5):
        node = node_create(project, f"more_{n}", owner=users["alice"])
        attempts(finished(node, T0, state="succeeded", seconds=10), ["failed", "succeeded"])
    with CaptureQueriesContext(connection) as many:
        overview = overview_get(user=users["olga"], project=project, days=7)
    assert len(overview.flaky_ranking) == 6
    assert len(many) == len(few)


def test_api_and_page_show_failed_attempts_and_flaky_nodes(history, api_as, client, users):
    body = api_as("olga").get("/api/overview").json()
    last = body["failure_ranking"][-1]
    assert (last["node_name"], last["failed_attempts"], last["failures"]) == ("retrier", 3, 0)
    assert last["last_failed_at"] == "2026-11-22T02:01:30+08:00"
    assert body["flaky_ranking"] == [
        {
            "node": history["retrier"].id,
            "node_name": "retrier",
            "project": "acme",
            "flaky_instances": 2,
            "failed_attempts": 3,
            "last_failed_at": "2026-11-22T02:01:30+08:00",
        }
    ]
    trend = {t["biz_date"]: t for t in body["trend"]}
    assert trend[D.isoformat()]["failed_attempts"] == 4

    client.force_login(users["olga"])
    html = client.get("/overview/").content.decode()
    flaky = html[html.index('id="flaky-ranking"') :]
    flaky = flaky[: flaky.index("</section>")]
    assert f'data-node="{history["retrier"].id}"' in flaky
    assert 'data-flaky-instances="2"' in flaky and 'data-failed-attempts="3"' in flaky
    failures = html[html.index('id="failure-ranking"') :]
    failures = failures[: failures.index("</section>")]
    assert failures.index("report") < failures.index("broken") < failures.index("retrier")
