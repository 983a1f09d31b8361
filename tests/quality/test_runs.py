"""Field rules in real runs (`drain`: real processes, real SQLite and PostgreSQL
warehouses): checked after the script succeeded and before the children are released."""

import datetime

import pytest

from apps.instances import operations as ops
from apps.instances import worker
from apps.instances.models import Attempt, Instance
from apps.instances.selectors import attempt_log
from apps.monitoring.models import Alert, AlertEvent
from apps.notifications import services as notifications
from apps.notifications.models import Channel, Delivery
from apps.quality.models import FieldRuleResult
from tests.factories import instance_create, node_create

from .builders import rule_make
from .conftest import BIZDATE, SCHEDULED, warehouse_execute

pytestmark = pytest.mark.django_db(transaction=True)
DAY = datetime.timedelta(days=1)


def log_of(instance, number=None) -> str:
    attempts = Attempt.objects.filter(instance=instance).order_by("number")
    attempt = attempts.get(number=number) if number else attempts.last()
    return attempt_log(attempt=attempt)[0]


def loader(project, users, name="load_orders", **spec):
    spec.setdefault("content", "echo loaded ${bizdate}")
    return node_create(project, name, owner=users["alice"], type="shell", **spec)


def test_every_metric_and_operator_measures_the_warehouse(project, users, warehouse):
    node = loader(project, users)
    today = "ds = '${bizdate}'"
    qualified = "public.orders" if warehouse.kind == "postgresql" else "main.orders"
    cases = [
        # (metric, field, where, operator, threshold, high, expected value)
        ("row_count", "", today, ">", 4, None, 5),
        ("row_count", "", "", ">=", 8, None, 8),
        ("null_count", "email", today, "==", 2, None, 2),
        ("null_ratio", "email", today, "between", 0.3, 0.5, 0.4),
        ("distinct_count", "category", today, "!=", 4, None, 3),
        ("min", "amount", today, ">=", 10, None, 10),
        ("max", "amount", today, "<=", 50, None, 50),
        ("sum", "amount", today, "<", 151, None, 150),
        ("avg", "amount", today, "==", 30, None, 30),
    ]
    rules = {}
    for metric, field, where, operator, low, high, expected in cases:
        rule = rule_make(
            node,
            warehouse,
            metric=metric,
            field=field,
            where=where,
            operator=operator,
            threshold=low,
            threshold_high=high,
        )
        rules[rule.pk] = expected
    custom = rule_make(
        node,
        warehouse,
        table="",
        metric="custom_sql",
        sql="SELECT COUNT(*) * 2 FROM orders WHERE ds = '${bizdate}';",
        operator="==",
        threshold=10,
    )
    rules[custom.pk] = 10
    schema_rule = rule_make(node, warehouse, table=qualified, operator="==", threshold=8)
    rules[schema_rule.pk] = 8
    instance = instance_create(node, SCHEDULED)

    worker.drain(timeout=30)

    instance.refresh_from_db()
    log = log_of(instance)
    assert instance.state == "succeeded", log
    results = {r.rule_id: r for r in FieldRuleResult.objects.filter(instance=instance)}
    assert set(results) == set(rules)
    for rule_id, expected in rules.items():
        result = results[rule_id]
        assert result.error == "", (rule_id, result.error)
        assert result.value == pytest.approx(expected), rule_id
        assert result.passed and result.attempt == 1
        assert result.scheduled_at == SCHEDULED
    # The parameters were substituted; the names went quoted into the statement.
    assert f"""SELECT COUNT(*) FROM "orders" WHERE (ds = '{BIZDATE}'""" in log
    assert f"field rules: checking {len(rules)}" in log
    assert f"field rule #{custom.pk} [block] passed: custom SQL = 10; expected == 10" in log
    # Checked after the script and before the attempt was recorded.
    assert log.index(f"loaded {BIZDATE}") < log.index("field rules: checking")
    assert log.index("field rules: checking") < log.index("attempt 1 succeeded")
    if warehouse.kind == "postgresql":
        assert warehouse.get_password() not in log


def test_a_failing_block_rule_fails_the_attempt_and_the_downstream_waits(project, users, warehouse):
    load = loader(project, users, retries=2, retry_interval_seconds=0)
    report = node_create(
        project, "report", owner=users["alice"], type="shell", upstream=[load], content="true"
    )
    rule = rule_make(
        load, warehouse, where="ds = '${bizdate}'", operator=">", threshold=100, severity="block"
    )
    i_load = instance_create(load, SCHEDULED)
    i_report = instance_create(report, SCHEDULED, upstream=[i_load])

    worker.drain(timeout=30)

    i_load.refresh_from_db()
    i_report.refresh_from_db()
    assert i_load.state == "failed"
    # A value that fails its rule fails again on the same data: no retry was spent.
    assert Attempt.objects.filter(instance=i_load).count() == 1
    assert i_report.state == "pending" and i_report.wait_reason == "waiting_upstream"
    assert not Attempt.objects.filter(instance=i_report).exists()
    attempt = Attempt.objects.get(instance=i_load)
    assert attempt.state == "failed" and attempt.exit_code == 0
    assert attempt.reason == (
        f"field rule #{rule.pk} failed: row_count of orders where ds = '${{bizdate}}' = 5; "
        "expected > 100"
    )
    log = log_of(i_load)
    assert f"field rule #{rule.pk} [block] FAILED: row_count of orders" in log
    assert "= 5; expected > 100" in log
    result = FieldRuleResult.objects.get(rule=rule)
    assert (result.value, result.passed, result.error, result.expected) == (5, False, "", "> 100")
    # No alert of its own: the failed attempt goes through the monitoring rules.
    assert not Alert.objects.filter(source="field").exists()

    # The data is fixed and the instance rerun: the rule passes, the report runs.
    for n in range(200):
        warehouse_execute(
            warehouse,
            "INSERT INTO orders VALUES (%s, %s, 1, 'z@x', 'z')",
            (1000 + n, BIZDATE),
        )
    ops.instance_rerun(instance=Instance.objects.get(pk=i_load.pk), by=users["olga"], source="api")
    worker.drain(timeout=30)
    assert Instance.objects.get(pk=i_load.pk).state == "succeeded"
    assert Instance.objects.get(pk=i_report.pk).state == "succeeded"
    assert list(
        FieldRuleResult.objects.filter(rule=rule)
        .order_by("attempt")
        .values_list("attempt", "value", "passed")
    ) == [(1, 5, False), (2, 205, True)]


def test_a_rule_that_errors_counts_as_failed_for_block(project, users, warehouse):
    load = loader(project, users, retries=1, retry_interval_seconds=0)
    child = node_create(
        project, "child", owner=users["alice"], type="shell", upstream=[load], content="true"
    )
    missing = rule_make(load, warehouse, table="no_such_table", severity="block")
    passing = rule_make(load, warehouse, severity="block")
    i_load = instance_create(load, SCHEDULED)
    i_child = instance_create(child, SCHEDULED, upstream=[i_load])

    worker.drain(timeout=30)

    assert Instance.objects.get(pk=i_load.pk).state == "failed"
    assert Instance.objects.get(pk=i_child.pk).state == "pending"
    # An error may be the datasource's passing trouble: the retry was spent.
    attempts = list(Attempt.objects.filter(instance=i_load).order_by("number"))
    assert [a.state for a in attempts] == ["failed", "failed"]
    assert attempts[-1].reason.startswith(f"field rule #{missing.pk} errored: ")
    assert "no_such_table" in attempts[-1].reason
    errors = FieldRuleResult.objects.filter(rule=missing)
    assert errors.count() == 2
    assert all(r.value is None and not r.passed and "no_such_table" in r.error for r in errors)
    assert FieldRuleResult.objects.filter(rule=passing, passed=True).count() == 2
    assert f"field rule #{missing.pk} [block] ERROR: " in log_of(i_load)


def test_a_failing_warn_rule_alerts_only(project, users, warehouse, http_receiver):
    hook = Channel.objects.create(
        project=project, name="dq-hook", kind="webhook", config={"url": http_receiver.url}
    )
    load = loader(project, users)
    report = node_create(
        project, "report", owner=users["alice"], type="shell", upstream=[load], content="true"
    )
    rule = rule_make(
        load,
        warehouse,
        metric="null_ratio",
        field="email",
        where="ds = '${bizdate}'",
        operator="<=",
        threshold=0.1,
        severity="warn",
        channels=[hook],
    )
    i_load = instance_create(load, SCHEDULED)
    i_report = instance_create(report, SCHEDULED, upstream=[i_load])

    worker.drain(timeout=30)

    assert Instance.objects.get(pk=i_load.pk).state == "succeeded"
    assert Instance.objects.get(pk=i_report.pk).state == "succeeded"
    result = FieldRuleResult.objects.get(rule=rule)
    assert result.value == pytest.approx(0.4) and not result.passed and result.error == ""
    alert = Alert.objects.get()
    assert (alert.source, alert.severity, alert.state, alert.trigger) == (
        "field",
        "warning",
        "firing",
        "field_rule",
    )
    assert alert.instance_id == i_load.pk and alert.node_id == load.pk
    assert alert.recipients == ["alice"] and alert.channel_ids == [hook.pk]
    assert f"field rule #{rule.pk} failed: null_ratio(email) of orders" in alert.message
    assert "expected <= 0.1" in alert.message
    assert f"field rule #{rule.pk} [warn] FAILED" in log_of(i_load)
    # Sent to the rule's channel: a real delivery to a real receiver.
    (delivery,) = Delivery.objects.filter(alert=alert)
    notifications.delivery_send(delivery_id=delivery.pk, now=alert.first_at)
    (request,) = http_receiver.wait_for(1)
    assert request.json["event"] == "fired"
    assert f"field rule #{rule.pk} failed" in request.json["fields"]["what"]

    # The monitor's handling of the success does not resolve it ...
    from apps.monitoring import tasks

    tasks.events_drain()
    alert.refresh_from_db()
    assert alert.state == "firing"
    # ... a rerun that fails again counts on it; one that passes resolves it.
    ops.instance_rerun(instance=Instance.objects.get(pk=i_load.pk), by=users["olga"], source="api")
    worker.drain(timeout=30)
    alert.refresh_from_db()
    assert (alert.state, alert.count) == ("firing", 2)
    warehouse_execute(warehouse, "UPDATE orders SET email = 'fixed@x'")
    ops.instance_rerun(instance=Instance.objects.get(pk=i_load.pk), by=users["olga"], source="api")
    worker.drain(timeout=30)
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolved_by is None
    assert AlertEvent.objects.filter(alert=alert).count() == 3
    assert list(Alert.objects.values_list("pk", flat=True)) == [alert.pk]


def test_compare_with_the_previous_result_over_real_runs(project, users, warehouse):
    node = loader(project, users)
    # Today may not drop more than 30% from the previous day, nor grow more than 50%.
    rule_make(
        node,
        warehouse,
        where="ds = '${bizdate}'",
        compare="change_pct_vs_previous",
        operator="between",
        threshold=-30,
        threshold_high=50,
    )
    day1 = instance_create(node, SCHEDULED - DAY)  # biz date 20261118: 3 rows
    worker.drain(timeout=30)
    first = FieldRuleResult.objects.get(instance=day1)
    # Nothing earlier to compare with: it passes and says so.
    assert (first.value, first.baseline, first.compared, first.passed) == (3, None, None, True)
    assert "no earlier result to compare with yet: passes" in log_of(day1)

    day2 = instance_create(node, SCHEDULED)  # biz date 20261119: 5 rows, +66.7%
    worker.drain(timeout=30)
    second = FieldRuleResult.objects.get(instance=day2)
    assert second.value == 5 and second.baseline == 3
    assert second.compared == pytest.approx(200 / 3)
    assert not second.passed
    assert Instance.objects.get(pk=day2.pk).state == "failed"
    assert "(change +66.67% vs 3); expected change vs previous between -30% and 50%" in (
        Attempt.objects.get(instance=day2).reason
    )

    # A backfill of an older day compares with the days before it, not with later ones.
    day0 = instance_create(node, SCHEDULED - 2 * DAY, kind="backfill")  # 20261117: 0 rows
    worker.drain(timeout=30)
    oldest = FieldRuleResult.objects.get(instance=day0)
    assert (oldest.value, oldest.baseline, oldest.passed) == (0, None, True)


def test_compare_with_the_mean_of_the_last_seven_results(project, users, warehouse):
    node = loader(project, users)
    rule = rule_make(
        node,
        warehouse,
        where="ds = '${bizdate}'",
        compare="change_pct_vs_avg7",
        operator=">=",
        threshold=-10,
        severity="warn",
    )
    # Recorded history of the eight days before: the oldest falls out of the window,
    # and a rerun's newer value stands for its day.
    history = [100, 2, 4, 6, 8, 1, 3, 4]  # oldest first
    for back, value in zip(range(8, 0, -1), history, strict=True):
        earlier = instance_create(node, SCHEDULED - back * DAY, state="succeeded")
        at = SCHEDULED - back * DAY + datetime.timedelta(hours=1)
        FieldRuleResult.objects.create(
            rule=rule,
            instance=earlier,
            attempt=1,
            scheduled_at=earlier.scheduled_at,
            value=value * 10 if back == 1 else value,
            passed=True,
            checked_at=at,
        )
        if back == 1:  # its rerun measured 4
            FieldRuleResult.objects.create(
                rule=rule,
                instance=earlier,
                attempt=2,
                scheduled_at=earlier.scheduled_at,
                value=value,
                passed=True,
                checked_at=at + datetime.timedelta(minutes=5),
            )
    instance = instance_create(node, SCHEDULED)

    worker.drain(timeout=30)

    result = FieldRuleResult.objects.get(instance=instance)
    mean = (2 + 4 + 6 + 8 + 1 + 3 + 4) / 7  # 4.0
    assert result.baseline == pytest.approx(mean)
    assert result.value == 5 and result.compared == pytest.approx(25.0)
    assert result.passed and Instance.objects.get(pk=instance.pk).state == "succeeded"
    assert "(change +25.00% vs 4); expected change vs mean of last 7 >= -10%" in log_of(instance)


def test_checks_only_read(project, users, warehouse):
    node = loader(project, users)
    writer = rule_make(
        node,
        warehouse,
        table="",
        metric="custom_sql",
        sql="WITH doomed AS (SELECT 1) DELETE FROM orders",
        operator=">=",
        threshold=0,
        severity="warn",
    )
    instance = instance_create(node, SCHEDULED)
    worker.drain(timeout=30)
    result = FieldRuleResult.objects.get(rule=writer)
    assert result.value is None and result.error
    assert "read" in result.error.lower()
    counter = rule_make(node, warehouse, operator="==", threshold=8)
    ops.instance_rerun(
        instance=Instance.objects.get(pk=instance.pk), by=users["olga"], source="api"
    )
    worker.drain(timeout=30)
    assert FieldRuleResult.objects.get(rule=counter).value == 8


def test_disabled_rules_and_other_nodes_rules_do_not_run(project, users, warehouse):
    node = loader(project, users)
    other = loader(project, users, name="other")
    rule_make(node, warehouse, threshold=100, enabled=False)
    rule_make(other, warehouse, threshold=100)
    instance = instance_create(node, SCHEDULED)
    worker.drain(timeout=30)
    assert Instance.objects.get(pk=instance.pk).state == "succeeded"
    assert not FieldRuleResult.objects.exists()
    assert "field rules" not in log_of(instance)


def test_an_unknown_parameter_is_the_rules_error(project, users, warehouse):
    node = loader(project, users)
    rule = rule_make(node, warehouse, where="region = '${var.region}'")
    instance = instance_create(node, SCHEDULED)
    worker.drain(timeout=30)
    result = FieldRuleResult.objects.get(rule=rule)
    assert result.error == "unknown parameter(s): ${var.region}" and not result.passed
    assert Instance.objects.get(pk=instance.pk).state == "failed"


def test_a_hung_check_obeys_the_attempts_timeout(project, users, postgres_warehouse):
    from apps.projects.models import Datasource

    dsn, password, _ = postgres_warehouse
    datasource = Datasource(project=project, name="pg", kind="postgresql", dsn=dsn)
    datasource.set_password(password)
    datasource.save()
    node = loader(project, users, timeout_seconds=3)
    rule_make(
        node,
        datasource,
        table="",
        metric="custom_sql",
        sql="SELECT COUNT(*) FROM pg_sleep(60)",
        operator=">",
        threshold=0,
    )
    instance = instance_create(node, SCHEDULED)

    result = worker.drain(timeout=30)

    assert result.seconds < 20
    attempt = Attempt.objects.get(instance=instance)
    assert attempt.state == "failed" and attempt.killed_for == "timeout"
    assert attempt.reason.startswith("field rules: ")
    assert Instance.objects.get(pk=instance.pk).state == "failed"
    # Nothing was measured, so nothing was kept.
    assert not FieldRuleResult.objects.exists()


def test_a_stop_kills_a_hung_check(project, users, sqlite_warehouse):
    import threading
    import time

    from django.db import connection
    from django.utils import timezone

    from apps.instances import states
    from apps.instances.models import AttemptLogChunk
    from apps.projects.models import Datasource

    datasource = Datasource.objects.create(
        project=project, name="lite", kind="sqlite", path=str(sqlite_warehouse)
    )
    node = loader(project, users)
    rule_make(
        node,
        datasource,
        table="",
        metric="custom_sql",
        # Counts forever: a query that never ends on its own.
        sql="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
        "SELECT COUNT(*) FROM c",
        operator=">",
        threshold=0,
    )
    instance = instance_create(node, SCHEDULED)
    done = threading.Event()

    def run():
        try:
            worker.drain(timeout=30)
        finally:
            connection.close()
            done.set()

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 15
    while not AttemptLogChunk.objects.filter(
        attempt__instance=instance, text__contains="field rule #"
    ).exists():
        assert time.monotonic() < deadline, "the check never started"
        time.sleep(0.1)
    assert states.instance_stop_running(instance_id=instance.pk, now=timezone.now())
    assert done.wait(20), "drain did not end after the stop"
    thread.join()
    attempt = Attempt.objects.get(instance=instance)
    assert attempt.state == "stopped"
    assert Instance.objects.get(pk=instance.pk).state == "stopped"
    assert "stop requested: killing process tree" in log_of(instance)
    assert not FieldRuleResult.objects.exists()


def test_a_dev_run_checks_its_rules_but_pages_nobody(project, users, warehouse):
    node = loader(project, users, env="dev")
    rule = rule_make(node, warehouse, threshold=100, severity="warn")
    instance = instance_create(node, SCHEDULED, env="dev")
    worker.drain(timeout=30)
    assert Instance.objects.get(pk=instance.pk).state == "succeeded"
    assert FieldRuleResult.objects.get(rule=rule).passed is False
    assert not Alert.objects.exists()
