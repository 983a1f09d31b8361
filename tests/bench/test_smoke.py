"""Every benchmark workload runs at scale "tiny" against the test database, so the
benchmark code cannot rot. Speed is not asserted here: the figures are for `make bench`."""

import pytest

from bench import (
    b1_generation,
    b2_dispatch,
    b3_chain,
    b4_instance_list,
    b5_overview,
    b6_alert_storm,
    b7_time_pass,
    b8_baselines,
    b9_field_rules,
    common,
)
from bench.__main__ import table

KEYS = {"id", "workload", "figure", "value", "baseline", "unit", "ratio", "goal", "met", "note"}


def _check(rows: list[dict], workload_id: str) -> None:
    assert rows
    for row in rows:
        assert KEYS <= row.keys()
        assert row["id"] == workload_id
        assert row["value"] > 0
        # None only for a figure shown for information, whose goal says "none".
        assert isinstance(row["met"], bool) or row["goal"].startswith("none")


@pytest.mark.django_db(transaction=True)
def test_b1_generation_makes_a_day_and_then_nothing():
    rows = b1_generation.run("tiny")
    _check(rows, "B1")
    first, second, memory = rows
    # 200 nodes: 140 daily, 40 hourly, 20 every 15 minutes.
    assert "200 nodes -> 3,020 instances" in first["note"]
    assert first["baseline"] > 0 and first["ratio"] is not None
    assert second["figure"].startswith("second run")
    assert memory["unit"] == "MB" and memory["peak_mb"] == memory["value"]
    from apps.instances.models import Instance, InstanceDependency

    # The baseline wrote back the generator's rows: the same day, complete.
    assert Instance.objects.count() == 3020
    assert InstanceDependency.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_b4_instance_list_pages_and_api():
    rows = b4_instance_list.run("tiny")
    _check(rows, "B4")
    figures = [row["figure"] for row in rows]
    assert "API no filter, page 3 p95" in figures
    assert "page biz date + state + node, page 1 p95" in figures
    assert sum("vs page 1" in f for f in figures) == 4
    assert [f for f in figures if "no rows" in f] == [
        "API with no rows (its fixed cost) p95",
        "page with no rows (its fixed cost) p95",
    ]
    assert rows[0]["note"] == "2,000 instances"


@pytest.mark.django_db(transaction=True)
def test_b5_overview_reuses_the_history():
    project = common.history("tiny")
    rows = b5_overview.run("tiny")
    _check(rows, "B5")
    assert [row["figure"] for row in rows] == [
        "overview + 7-day trend p95",
        "overview + 30-day trend p95",
    ]
    # Loaded once: the second call found it by its fingerprint.
    assert common.history("tiny") == project
    from apps.instances.models import Instance

    assert Instance.objects.filter(project=project).count() == common.HISTORY_INSTANCES["tiny"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("workload", [b2_dispatch, b3_chain], ids=["B2", "B3"])
def test_dispatch_and_chain_run_on_real_clusters(workload, users):
    from django_q.models import Schedule

    # Only the workload's own work on its clusters: no minute-long dispatcher loop.
    Schedule.objects.all().delete()
    rows = workload.run("tiny")
    _check(rows, "B2" if workload is b2_dispatch else "B3")
    if workload is b2_dispatch:
        from apps.instances.models import Attempt, Instance

        figures = [row["figure"] for row in rows]
        assert figures[:2] == ["starts per second", "starts per second, a task per instance"]
        # Every instance of both runs (batched and one task each) ran exactly once.
        runs = Instance.objects.filter(project__code__in=["b2", "b2one"])
        assert runs.exclude(state="succeeded").count() == 0
        assert Attempt.objects.filter(instance__in=runs).count() == runs.count() == 400


@pytest.mark.django_db(transaction=True)
def test_b6_alert_storm_alerts_once_per_instance_through_a_real_cluster():
    from django_q.models import Schedule

    from apps.monitoring.models import Alert, AlertEvent
    from apps.notifications.models import Delivery

    rows = b6_alert_storm.run("tiny")
    _check(rows, "B6")
    sent, rate = rows
    assert sent["figure"].startswith("every alert raised") and sent["unit"] == "s"
    assert rate["unit"] == "events/s" and rate["baseline"] > 0 and rate["ratio"] is not None
    # 200 failing instances, 20 of them twice: one alert each, sent once; the second
    # failures counted as repeats and not sent.
    assert "200 instances (20 failing twice" in sent["note"]
    alerts = Alert.objects.filter(project__code="b6")
    assert alerts.count() == 200 and sorted(set(alerts.values_list("count", flat=True))) == [1, 2]
    assert AlertEvent.objects.filter(alert__in=alerts, kind="repeated").count() == 20
    assert Delivery.objects.filter(alert__in=alerts, state="sent").count() == 200
    assert not Delivery.objects.filter(alert__in=alerts).exclude(state="sent").exists()
    # Every event was handled: the outbox is empty.
    from apps.instances.models import InstanceEvent

    assert not InstanceEvent.objects.filter(processed_at__isnull=True).exists()
    b6_alert_storm.cleanup()
    assert Schedule.objects.filter(name="monitor").exists()


@pytest.mark.django_db(transaction=True)
def test_b7_time_pass_finds_what_the_raw_sql_finds():
    from apps.monitoring.models import Alert

    rows = b7_time_pass.run("tiny")
    _check(rows, "B7")
    first, later, memory = rows
    assert first["figure"].startswith("first pass") and later["figure"].startswith("pass a minute")
    assert first["baseline"] > 0 and later["baseline"] > 0
    assert memory["unit"] == "MB" and memory["peak_mb"] == memory["value"]
    # The pass raised exactly what the raw SQL found late (run() asserts the counts);
    # every trigger kind of the workload found some at this scale.
    triggers = set(Alert.objects.filter(project__code="b7").values_list("trigger", flat=True))
    assert triggers == {"unfinished_by", "not_started_by", "running_longer"}


@pytest.mark.django_db(transaction=True)
def test_b8_baseline_pass_walks_what_the_raw_sql_walks():
    from apps.baselines.models import BaselineCycle, BaselineCycleInstance

    rows = b8_baselines.run("tiny")
    _check(rows, "B8")
    first, later, memory = rows
    assert first["figure"].startswith("first pass") and later["figure"].startswith("pass a minute")
    assert first["baseline"] > 0 and later["baseline"] > 0
    assert memory["unit"] == "MB" and memory["peak_mb"] == memory["value"]
    # Every baseline got its cycle, and its path is its key instance and 40 ancestors
    # (run() asserts the raw SQL read as many).
    assert BaselineCycle.objects.count() == b8_baselines.BASELINES["tiny"]
    assert BaselineCycleInstance.objects.count() == 3 * b8_baselines.PER_BASELINE
    assert "3 baselines, 120 ancestor instances" in first["note"]


@pytest.mark.django_db(transaction=True)
def test_b9_field_rules_keep_what_the_same_statements_find():
    import psycopg

    from apps.quality.models import FieldRuleResult

    rows = b9_field_rules.run("tiny")
    _check(rows, "B9")
    checked, per_rule = rows
    assert checked["unit"] == "s" and checked["baseline"] > 0 and checked["ratio"] is not None
    assert "2 nodes × 10 rules, 2,000 rows, PostgreSQL datasource" in checked["note"]
    assert per_rule["unit"] == "ms" and per_rule["met"] is None
    # run() checked that both sides measured the same values; every rule passed and was
    # kept, and the warehouse it made is gone.
    results = FieldRuleResult.objects.filter(rule__project__code="b9")
    assert results.count() == 20 and not results.filter(passed=False).exists()
    params, password = b9_field_rules._server()
    admin = psycopg.conninfo.make_conninfo(**{**params, "dbname": "postgres"})
    with psycopg.connect(admin, password=password) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'opscenter_b9_%'"
        ).fetchone()
    assert left == (0,)


def test_table_prints_one_line_per_row_and_marks_misses():
    rows = [
        common.result(
            id="B9",
            workload="w",
            figure="f",
            value=2.0,
            baseline=1.0,
            unit="s",
            goal="<= 3x",
            met=True,
            peak_mb=10.0,
        ),
        common.result(
            id="B9",
            workload="w",
            figure="g",
            value=4.0,
            baseline=1.0,
            unit="s",
            goal="<= 3x",
            met=False,
            peak_mb=10.0,
        ),
        common.result(
            id="B9",
            workload="w",
            figure="h",
            value=5.0,
            baseline=1.0,
            unit="s",
            goal="none: for information",
            met=None,
        ),
    ]
    rows.append(
        common.result(
            id="B9",
            workload="w",
            figure="i",
            value=0.19,
            baseline=100.0,
            unit="events/s",
            goal=">= 0.3x baseline",
            met=False,
        )
    )
    text = table(rows, "Machine: test")
    lines = text.splitlines()
    assert lines[0] == "Machine: test"
    assert lines[2].startswith("| id | workload | figure | opscenter | baseline | ratio")
    assert "| 2.00× | <= 3x | yes | 10 |" in lines[4]
    assert "| 4.00× | <= 3x | **no** | 10 |" in lines[5]
    assert "| 5.00× | none: for information | — | — |" in lines[6]
    # A ratio far below 1 keeps two significant digits instead of reading 0.00×.
    assert "| 0.0019× | >= 0.3x baseline | **no** |" in lines[7]
