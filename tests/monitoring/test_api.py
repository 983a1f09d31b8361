import pytest
import time_machine

from tests.monitoring.builders import NOW, D, day, other_project, overview_data


@pytest.fixture
def data(project, users):
    with time_machine.travel(NOW, tick=False):
        yield overview_data(project, users)


def test_overview_answers_the_numbers(data, api_as):
    with time_machine.travel(NOW, tick=False):
        response = api_as("olga").get("/api/overview")
    assert response.status_code == 200
    body = response.json()
    assert body["projects"] == ["acme"]
    assert (body["days"], body["start"], body["end"]) == (7, day(-6).isoformat(), D.isoformat())
    assert body["generated_at"] == "2026-11-22T02:00:00Z"
    today = body["today"]
    assert today["biz_dates"] == ["2026-11-21"] and today["total"] == 6
    assert today["by_kind"]["recurring"]["pending"] == 2
    assert today["by_kind"]["one_time"]["succeeded"] == 1
    assert today["state_totals"]["failed"] == 1
    assert today["waiting"]["waiting_upstream"] == 1
    trend = {t["biz_date"]: t for t in body["trend"]}
    assert trend["2026-11-21"] == {
        "biz_date": "2026-11-21",
        "succeeded": 2,
        "failed": 1,
        "avg_duration_seconds": 70.0,
        "failed_attempts": 0,
    }
    assert body["failure_ranking"] == [
        {
            "node": data["report"].id,
            "node_name": "report",
            "project": "acme",
            "failures": 3,
            "last_failed_at": "2026-11-22T08:00:40+08:00",
            "failed_attempts": 0,
        }
    ]
    assert body["flaky_ranking"] == []
    [running] = body["longest_running"]
    assert running["id"] == data["flaky"].id
    assert running["running_seconds"] == 28500.0  # since 02:05, at 10:00 (Shanghai)
    assert running["started_at"] == "2026-11-22T02:05:00+08:00"
    [waiting] = body["waiting_longest"]
    assert waiting["id"] == data["child"].id
    assert (waiting["wait_reason"], waiting["waiting_seconds"]) == ("waiting_upstream", 8 * 3600.0)


def test_overview_for_thirty_days_and_one_project(data, api_as, users):
    other_project(users)
    with time_machine.travel(NOW, tick=False):
        everything = api_as("alice").get("/api/overview?days=30").json()
        acme = api_as("alice").get("/api/overview?days=30&project=acme").json()
    assert everything["projects"] == ["acme", "beta"]
    assert acme["projects"] == ["acme"]
    assert len(acme["trend"]) == 30
    assert everything["today"]["total"] == acme["today"]["total"] + 1
    assert [r["failures"] for r in acme["failure_ranking"]] == [4]


def test_overview_refuses_a_bad_period(data, api_as):
    response = api_as("olga").get("/api/overview?days=5")
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "days", "message": "one of 7, 30"}]


def test_overview_of_a_project_one_cannot_see_is_not_found(data, api_as, users):
    other_project(users)
    assert api_as("olga").get("/api/overview?project=beta").status_code == 404
    assert api_as("stranger").get("/api/overview?project=acme").status_code == 404


def test_overview_needs_authentication(client, db):
    assert client.get("/api/overview").status_code == 401
