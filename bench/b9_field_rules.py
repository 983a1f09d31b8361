"""B9 field rules: 1,000 `row_count` / `null_ratio` rules over a 1M-row PostgreSQL table,
checked as the worker checks them after a successful command, beside the same
aggregate statements run directly.

The warehouse is a PostgreSQL database of its own on the bench server (made for the run,
dropped after): `orders`, RANGE rows over ten business dates, an index on the date (the
way a table loaded one day at a time is read), 5% of `email` and 1/7 of `category`
NULL. Ten load nodes, one per business date, each with RULES_PER_NODE rules on its own
day (`ds = '${bizdate}'`): row_count, and null_ratio of email, category and amount in
turn, `block` and `warn` alternating, all passing.

Measured per node, the orders alternating so neither side is the one that warms the
cache: opscenter's whole check (apps.instances.worker.after_success on a started
attempt: the node's rules read, statements built with the instance's parameters, the
runner process started, every statement in its read-only transaction, each answer
judged, logged and kept as a FieldRuleResult, the log written), and the baseline: the
same statements, already built, on one open connection, one after another. The values
both found must be equal.
"""

import datetime
import os
import shutil
import time
import uuid
from pathlib import Path

from bench import common

SIZES = {  # rows, nodes, rules per node
    "tiny": (2_000, 2, 10),
    "small": (100_000, 10, 20),
    "full": (1_000_000, 10, 100),
}
PROJECT = "b9"
WORKLOAD = "field rules"
GOAL_RATIO = 1.5
FIRST_DAY = datetime.date(2026, 11, 10)
METRICS = [("row_count", ""), ("null_ratio", "email"), ("null_ratio", "category")]
METRICS += [("row_count", ""), ("null_ratio", "amount")]


def _server() -> tuple[dict, str | None]:
    """The bench server's connection parameters (DATABASE_URL when it is PostgreSQL,
    else 127.0.0.1) and its password."""
    from psycopg import conninfo

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        url = os.environ.get(
            "OPSCENTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        )
    params = conninfo.conninfo_to_dict(url)
    return params, params.pop("password", None)


def warehouse_create(rows: int) -> tuple[str, str | None, str]:
    """(dsn, password, database name) of a new warehouse with `rows` orders."""
    import psycopg
    from psycopg import conninfo

    params, password = _server()
    name = f"opscenter_b9_{uuid.uuid4().hex[:8]}"
    admin = conninfo.make_conninfo(**{**params, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True, password=password) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = conninfo.make_conninfo(**{**params, "dbname": name})
    with psycopg.connect(dsn, autocommit=True, password=password) as conn:
        conn.execute(
            """
            CREATE TABLE orders AS
            SELECT g AS id,
                   to_char(%s::date + (g %% 10), 'YYYYMMDD') AS ds,
                   (g %% 1000)::numeric(12, 2) AS amount,
                   CASE WHEN g %% 20 = 0 THEN NULL ELSE 'u' || g || '@example.com' END AS email,
                   CASE WHEN g %% 7 = 0 THEN NULL ELSE 'c' || (g %% 13) END AS category
            FROM generate_series(1, %s) AS g
            """,
            (FIRST_DAY, rows),
        )
        conn.execute("CREATE INDEX orders_ds_idx ON orders (ds)")
        conn.execute("VACUUM ANALYZE orders")
    return dsn, password, name


def warehouse_drop(name: str) -> None:
    import psycopg
    from psycopg import conninfo

    params, password = _server()
    admin = conninfo.make_conninfo(**{**params, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True, password=password) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def world(dsn: str, password: str | None, *, nodes: int, per_node: int) -> list:
    """The project, its datasource, the load nodes with their rules, one instance each
    (scheduled the day after its business date). Answers the instances."""
    from apps.projects.models import Datasource
    from apps.quality.models import FieldRule
    from tests.factories import instance_create, node_create

    owner = common.bench_user()
    project = common.bench_project(PROJECT)
    datasource = Datasource(project=project, name="warehouse", kind="postgresql", dsn=dsn)
    datasource.set_password(password or "")
    datasource.save()
    instances = []
    rules = []
    for n in range(nodes):
        node = node_create(project, f"load_day_{n}", owner=owner, type="shell", content="true")
        for r in range(per_node):
            metric, field = METRICS[r % len(METRICS)]
            rules.append(
                FieldRule(
                    project=project,
                    node=node,
                    datasource=datasource,
                    table="public.orders",
                    field=field,
                    where="ds = '${bizdate}'",
                    metric=metric,
                    operator=">=" if metric == "row_count" else "<=",
                    threshold=1 if metric == "row_count" else 0.5,
                    severity="block" if r % 2 == 0 else "warn",
                )
            )
        biz_date = FIRST_DAY + datetime.timedelta(days=n)
        scheduled = datetime.datetime.combine(
            biz_date + common.ONE_DAY, datetime.time(2), tzinfo=datetime.UTC
        )
        instances.append(instance_create(node, scheduled))
    FieldRule.objects.bulk_create(rules, batch_size=1000)
    return instances


def statements(instance) -> list[tuple[int, str]]:
    """(rule id, statement) of the instance's rules, built as the check builds them."""
    from apps.instances.params import ParamContext, render
    from apps.quality import sql
    from apps.quality.models import FieldRule

    context = ParamContext(
        biz_date=instance.biz_date, cyctime=instance.scheduled_at.astimezone(datetime.UTC)
    )
    return [
        (
            rule.pk,
            sql.statement(
                metric=rule.metric,
                table=rule.table,
                field=rule.field,
                where=render(rule.where, context),
                sql="",
                dialect="postgresql",
            ),
        )
        for rule in FieldRule.objects.filter(node_id=instance.node_id).order_by("id")
    ]


def baseline_run(conn, planned: list[tuple[int, str]]) -> tuple[float, dict[int, float]]:
    values = {}
    start = time.perf_counter()
    for rule_id, statement in planned:
        values[rule_id] = conn.execute(statement).fetchone()[0]
    return time.perf_counter() - start, {k: float(v) for k, v in values.items()}


def opscenter_run(instance) -> tuple[float, str]:
    """The worker's check of the instance, on an attempt started as the worker starts one;
    answers its seconds and the outcome."""
    from django.conf import settings

    from apps.configuration.runtime import runtime_for
    from apps.core import clock
    from apps.instances import states, worker
    from apps.instances.models import Instance

    now = clock.now()
    states.instances_queue(ids=[instance.pk], now=now)
    attempt = states.attempt_start(instance_id=instance.pk, now=now)
    instance = Instance.objects.select_related("project", "node", "version").get(pk=instance.pk)
    runtime = runtime_for(instance)
    workdir = Path(settings.VAR_DIR) / "work" / "b9" / str(instance.pk)
    log = worker.AttemptLog(attempt)
    start = time.perf_counter()
    outcome = worker.after_success(
        instance, attempt, runtime, log, workdir, states.AttemptOutcome(outcome="succeeded")
    )
    log.flush()
    seconds = time.perf_counter() - start
    shutil.rmtree(workdir, ignore_errors=True)
    states.attempt_finish(
        attempt=attempt, result=outcome, retries=0, retry_interval_seconds=0, now=clock.now()
    )
    return seconds, outcome.outcome


def run(scale: str) -> list[dict]:
    import psycopg

    from apps.quality.models import FieldRuleResult

    rows, nodes, per_node = SIZES[common.check_scale(scale)]
    dsn, password, name = warehouse_create(rows)
    try:
        instances = world(dsn, password, nodes=nodes, per_node=per_node)
        ours = base = 0.0
        with psycopg.connect(dsn, autocommit=True, password=password) as conn:
            conn.execute("SELECT COUNT(*) FROM orders").fetchone()  # the table in the cache
            for n, instance in enumerate(instances):
                planned = statements(instance)
                if n % 2:
                    took, outcome = opscenter_run(instance)
                    base_took, expected = baseline_run(conn, planned)
                else:
                    base_took, expected = baseline_run(conn, planned)
                    took, outcome = opscenter_run(instance)
                ours += took
                base += base_took
                if outcome != "succeeded":
                    raise RuntimeError(f"B9: the check of instance {instance.pk} {outcome}")
                found = dict(
                    FieldRuleResult.objects.filter(instance=instance).values_list(
                        "rule_id", "value"
                    )
                )
                if found.keys() != expected.keys() or any(
                    abs(found[k] - v) > 1e-9 * max(1.0, abs(v)) for k, v in expected.items()
                ):
                    raise RuntimeError(f"B9: instance {instance.pk} measured other values")
    finally:
        warehouse_drop(name)
    total = nodes * per_node
    ratio = ours / base
    note = f"{nodes} nodes × {per_node} rules, {rows:,} rows, PostgreSQL datasource"
    return [
        common.result(
            id="B9",
            workload=WORKLOAD,
            figure=f"{total:,} row_count/null_ratio rules checked",
            value=ours,
            baseline=base,
            unit="s",
            goal=f"≤ {GOAL_RATIO}× the same statements run directly",
            met=ratio <= GOAL_RATIO,
            note=note,
        ),
        common.result(
            id="B9",
            workload=WORKLOAD,
            figure="opscenter's cost per rule beyond its statement",
            value=max((ours - base) / total * 1000, 0.001),
            baseline=None,
            unit="ms",
            goal="none: for information",
            met=None,
        ),
    ]
