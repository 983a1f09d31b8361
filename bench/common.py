"""What every workload shares: scales, timing, result rows, bulk loading, and the
datasets B4 and B5 read.

Bulk loading writes rows with COPY on PostgreSQL and executemany on SQLite (the smoke
tests run every workload at scale "tiny" on both databases).
"""

import copy
import datetime
import json
import platform
import resource
import statistics
import time
import zoneinfo
from collections.abc import Callable, Iterable, Sequence

from django.db import connection, transaction

SCALES = ("tiny", "small", "full")
ONE_DAY = datetime.timedelta(days=1)
UTC_ZONE = zoneinfo.ZoneInfo("UTC")
# Every dataset is published long before the days it is generated or listed for.
PUBLISHED_AT = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}")
    return scale


def peak_mb() -> float:
    """This process's peak resident memory so far (Linux reports kilobytes)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def timed(func: Callable[[], object]) -> float:
    """Seconds one call of `func` takes."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def p95(func: Callable[[], object], *, repeat: int, warmup: int = 2) -> float:
    """The 95th percentile of `repeat` timed calls, in milliseconds, after `warmup`
    untimed ones (the first calls fill caches that the steady state has)."""
    for _ in range(warmup):
        func()
    samples = sorted(timed(func) * 1000 for _ in range(repeat))
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=20, method="inclusive")[-1]


def result(
    *,
    id: str,
    workload: str,
    figure: str,
    value: float,
    baseline: float | None,
    unit: str,
    goal: str,
    met: bool | None,
    note: str = "",
    ratio: float | None = None,
    peak_mb: float | None = None,
) -> dict:
    if ratio is None and baseline:
        ratio = value / baseline
    return {
        "id": id,
        "workload": workload,
        "figure": figure,
        "value": round(value, 3),
        "baseline": None if baseline is None else round(baseline, 3),
        "unit": unit,
        # Two decimals, or two significant digits below 0.1 (0.0019x, not 0.00x).
        "ratio": None
        if ratio is None
        else round(ratio, 2)
        if ratio >= 0.1
        else float(f"{ratio:.2g}"),
        "goal": goal,
        "met": None if met is None else bool(met),
        "peak_mb": peak_mb,
        "note": note,
    }


def machine() -> str:
    """CPU model, cores, memory, PostgreSQL (or SQLite) version, Python, date."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import os

    import psutil

    memory_gb = psutil.virtual_memory().total / 2**30
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            database = f"PostgreSQL {cursor.fetchone()[0].split()[0]}"
        else:
            cursor.execute("SELECT sqlite_version()")
            database = f"SQLite {cursor.fetchone()[0]}"
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory_gb:.1f} GB RAM, {database}, "
        f"Python {platform.python_version()}, {datetime.date.today().isoformat()}"
    )


# --- bulk loading ----------------------------------------------------------------------


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def next_id(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}")
        return cursor.fetchone()[0]


def sync_sequence(table: str) -> None:
    """After rows were written with explicit ids, the next id Django asks for is free."""
    if is_postgresql():
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"
            )


def defaults(table: str, columns: Sequence[str]) -> list[tuple[str, object]]:
    """(column, value) for every NOT NULL column of `table` that `columns` leaves out and
    whose model field has a default (Django keeps defaults in Python, not in the table):
    rows written directly stay valid when a model gains such a field."""
    from django.apps import apps

    model = next(m for m in apps.get_models() if m._meta.db_table == table)
    return [
        # JSON as its text: what COPY and a plain parameter both write into a jsonb column.
        (field.column, json.dumps(value) if isinstance(value, dict | list) else value)
        for field in model._meta.concrete_fields
        if field.column not in columns
        and not field.primary_key
        # A generated column is the database's to write.
        and not field.generated
        and not field.null
        and (value := field.get_default()) is not None
    ]


def _names(columns: Sequence[str]) -> str:
    """Column names quoted: a model field may be named after an SQL keyword (`group`)."""
    return ", ".join(f'"{column}"' for column in columns)


def load(table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Write rows fast: text COPY on PostgreSQL, executemany on SQLite. Columns left out
    that have a model default get it."""
    extra = defaults(table, columns)
    if extra:
        columns = [*columns, *(column for column, _ in extra)]
        tail = tuple(value for _, value in extra)
        rows = (tuple(row) + tail for row in rows)
    if is_postgresql():
        connection.ensure_connection()
        with connection.connection.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({_names(columns)}) FROM STDIN") as copy_:
                for row in rows:
                    copy_.write_row(row)
        return
    sql = f"INSERT INTO {table} ({_names(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
    batch: list = []
    with connection.cursor() as cursor:
        for row in rows:
            batch.append(row)
            if len(batch) >= 5000:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)


def column_types(table: str) -> list[tuple[str, str]]:
    """(column, PostgreSQL type name) of every column of `table` that can be written (not
    a generated one), in table order."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
            WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
              AND a.attgenerated = ''
            ORDER BY a.attnum
            """,
            [table],
        )
        return cursor.fetchall()


def copy_binary(table: str, columns: Sequence[tuple[str, str]], rows: Iterable[Sequence]) -> None:
    """The baseline write: binary COPY of ready rows (executemany on SQLite)."""
    if not is_postgresql():
        load(table, [name for name, _ in columns], rows)
        return
    names = ", ".join(name for name, _ in columns)
    with connection.connection.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy_:
            copy_.set_types([kind for _, kind in columns])
            for row in rows:
                copy_.write_row(row)


def truncate(*tables: str) -> None:
    with connection.cursor() as cursor:
        if is_postgresql():
            cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")


def analyze(*, vacuum: bool = False) -> None:
    """Fresh statistics; with `vacuum`, also what autovacuum would long since have done to
    a table of that age (hint bits, visibility map), so it does not run during timing."""
    if is_postgresql():
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE" if vacuum else "ANALYZE")


class broker:
    """This process enqueues django-q2 tasks through Redis at `url` (what a cluster the
    workload starts serves), or through the ORM broker when `url` is None, whatever the
    environment says: a workload's tasks never reach another database's queues. The
    "default" queue starts empty, and what no cluster took is dropped at the end."""

    def __init__(self, url: str | None):
        self.url = url

    def __enter__(self):
        from django_q.conf import Conf, logger

        logger.setLevel("WARNING")  # a line per enqueued task would be measured too
        self.saved = (Conf.ORM, Conf.REDIS)
        if self.url:
            import redis

            redis.Redis.from_url(self.url).delete("django_q:default:q")
            Conf.ORM, Conf.REDIS = None, self.url
        else:
            Conf.ORM, Conf.REDIS = "default", None
        return self

    def __exit__(self, *exc):
        from django_q.conf import Conf

        Conf.ORM, Conf.REDIS = self.saved
        if self.url:
            import redis

            redis.Redis.from_url(self.url).delete("django_q:default:q")


# --- the shared world: a user, projects, nodes -----------------------------------------


def bench_user():
    from django.contrib.auth import get_user_model

    user, created = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_superuser": True, "is_staff": True}
    )
    if created:
        user.set_unusable_password()
        user.save()
    return user


def bench_project(code: str, timezone: str = "UTC"):
    from apps.projects.models import Project

    project, _ = Project.objects.get_or_create(
        code=code, defaults={"name": f"Benchmark {code}", "timezone": timezone}
    )
    return project


# Node mix of issue 5: 70% daily, 20% hourly, 10% every 15 minutes.
def ready_instances(nodes: Sequence, count: int, *, scheduled_at: datetime.datetime) -> list:
    """`count` pending one-time instances, round-robin over `nodes`, all due: work the
    dispatcher may start at once (B2, B3)."""
    from apps.instances.models import Instance

    return Instance.objects.bulk_create(
        [
            Instance(
                project=node.project,
                node=node,
                version=node.current_version,
                env="prod",
                kind="one_time",
                biz_date=scheduled_at.date(),
                scheduled_at=scheduled_at,
                priority=3,
                resource_group=node.resource_group,
            )
            for i in range(count)
            for node in [nodes[i % len(nodes)]]
        ],
        batch_size=2000,
    )


def cron_of(index: int) -> str:
    slot = index % 10
    if slot < 7:
        return f"{(index * 7) % 60} {(index * 5) % 24} * * *"
    if slot < 9:
        return f"{(index * 11) % 60} * * * *"
    return "*/15 * * * *"


def nodes_load(
    project, *, count: int, upstreams: Callable[[int], list[int]], owner
) -> list[tuple[int, str]]:
    """`count` published virtual nodes of `project` with one version each, written in
    bulk (the publish service validates one batch at a time; 100k nodes would measure
    it, not what is benchmarked). upstreams(i) names the indexes (< i) node i depends on.
    Returns (node id, cron) in index order."""
    from apps.configuration.models import ResourceGroup
    from apps.nodes.specs import SPEC_DEFAULTS, spec_hash

    group = ResourceGroup.get_default()
    first_node = next_id("nodes_node")
    first_version = next_id("nodes_nodeversion")
    crons = [cron_of(i) for i in range(count)]
    links = [upstreams(i) for i in range(count)]
    now = PUBLISHED_AT

    def versions():
        for i in range(count):
            spec = copy.deepcopy(SPEC_DEFAULTS)
            spec.update(
                name=f"n{i:06d}",
                type="virtual",
                schedule={"type": "recurring", "cron": crons[i]},
                upstream=[f"n{u:06d}" for u in links[i]],
                owner=owner.username,
            )
            yield (
                first_version + i,
                first_node + i,
                1,
                json.dumps(spec),
                spec_hash(spec),
                json.dumps([first_node + u for u in links[i]]),
                now,
                owner.id,
                "",
            )

    def nodes():
        for i in range(count):
            yield (
                first_node + i,
                project.id,
                "prod",
                f"n{i:06d}",
                "virtual",
                "recurring",
                crons[i],
                False,
                owner.id,
                3,
                group.id,
                False,
                "online",
                "",
                first_version + i,
                now,
                now,
            )

    def dependencies():
        for i in range(count):
            for u in links[i]:
                yield (first_node + i, first_node + u)

    with transaction.atomic():
        # Foreign keys are checked at commit: nodes may name versions written after them.
        load(
            "nodes_node",
            [
                "id",
                "project_id",
                "env",
                "name",
                "type",
                "schedule_type",
                "cron",
                "self_dependent",
                "owner_id",
                "priority",
                "resource_group_id",
                "paused",
                "status",
                "description",
                "current_version_id",
                "created_at",
                "updated_at",
            ],
            nodes(),
        )
        load(
            "nodes_nodeversion",
            [
                "id",
                "node_id",
                "number",
                "spec",
                "spec_hash",
                "upstream_ids",
                "published_at",
                "published_by_id",
                "note",
            ],
            versions(),
        )
        load("nodes_nodedependency", ["node_id", "upstream_id"], dependencies())
    sync_sequence("nodes_node")
    sync_sequence("nodes_nodeversion")
    return [(first_node + i, crons[i]) for i in range(count)]


# --- the instance history B4 and B5 read -----------------------------------------------

HISTORY_NODES = {"tiny": 20, "small": 100, "full": 400}
HISTORY_INSTANCES = {"tiny": 2_000, "small": 200_000, "full": 5_000_000}
HISTORY_PROJECT = "bench-history"
# The last biz date of the history: "today's" business day of B5's overview.
HISTORY_END = datetime.date(2026, 11, 20)
INSTANCE_COLUMNS = [
    "project_id",
    "node_id",
    "version_id",
    "env",
    "kind",
    "biz_date",
    "scheduled_at",
    "state",
    "wait_reason",
    "dry_run",
    "paused",
    "forced",
    "run_now",
    "priority",
    "resource_group_id",
    "params",
    "attempt_count",
    "retries_used",
    "queued_at",
    "started_at",
    "finished_at",
    "created_at",
]


def history_now() -> datetime.datetime:
    """The moment B5's overview is asked at: noon of the day the last biz date is scheduled on."""
    return datetime.datetime.combine(HISTORY_END + ONE_DAY, datetime.time(12), tzinfo=datetime.UTC)


def history(scale: str):
    """The project holding HISTORY_INSTANCES[scale] instances of HISTORY_NODES[scale]
    nodes over as many past days as that takes, ending with a day still running. Loaded
    once per database: a later workload reuses it when the instance count (its
    fingerprint) matches."""
    from apps.instances.models import Instance
    from apps.nodes.models import Node

    check_scale(scale)
    owner = bench_user()
    project = bench_project(HISTORY_PROJECT)
    wanted = HISTORY_INSTANCES[scale]
    if Instance.objects.filter(project=project).count() == wanted:
        return project
    if Node.objects.filter(project=project).exists():
        raise RuntimeError(f"project {HISTORY_PROJECT} holds another scale's history")
    count = HISTORY_NODES[scale]
    nodes = nodes_load(
        project, count=count, upstreams=lambda i: [i - 1] if i % 5 else [], owner=owner
    )
    from apps.instances import schedules

    versions = dict(Node.objects.filter(project=project).values_list("id", "current_version_id"))
    group = nodes and Node.objects.get(id=nodes[0][0]).resource_group_id

    # Every cron of the mix fires at the same wall-clock times each day (UTC: no DST).
    times = {
        cron: [t.timetz() for t, _ in schedules.instance_times(cron, HISTORY_END, UTC_ZONE)]
        for _, cron in nodes
    }

    def rows():
        written = 0
        day = HISTORY_END
        while written < wanted:
            last_day = day == HISTORY_END
            for node_id, cron in nodes:
                for time_of_day in times[cron]:
                    scheduled_at = datetime.datetime.combine(day + ONE_DAY, time_of_day)
                    if written >= wanted:
                        return
                    written += 1
                    # A past day: mostly succeeded, some failed or skipped. The last day
                    # is today's: still pending, queued or running in part.
                    roll = (written * 7919) % 100
                    started = finished = queued = None
                    if last_day and roll < 40:
                        state = "pending"
                    elif last_day and roll < 45:
                        state = "running"
                        queued = started = scheduled_at
                    elif roll < 4:
                        state = "failed"
                    elif roll < 8:
                        state = "skipped"
                    else:
                        state = "succeeded"
                    if state in ("succeeded", "failed"):
                        queued = started = scheduled_at
                        finished = scheduled_at + datetime.timedelta(seconds=30 + roll * 7)
                    yield (
                        project.id,
                        node_id,
                        versions[node_id],
                        "prod",
                        "recurring",
                        day,
                        scheduled_at,
                        state,
                        "waiting_upstream" if state == "pending" else "",
                        False,
                        False,
                        False,
                        False,
                        3,
                        group,
                        "{}",
                        1 if started else 0,
                        0,
                        queued,
                        started,
                        finished,
                        PUBLISHED_AT,
                    )
            day -= ONE_DAY

    with bulk_load("instances_instance"):
        load("instances_instance", INSTANCE_COLUMNS, rows())
    analyze(vacuum=True)
    return project


class bulk_load:
    """Load a large table the way a DBA would: without its secondary indexes (made again
    afterwards, in one pass each) and without per-row foreign key triggers (the rows are
    made from ids just read). SQLite: a plain transaction."""

    def __init__(self, table: str):
        self.table = table
        self.indexes: list[str] = []

    def __enter__(self):
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        if is_postgresql():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL session_replication_role = replica")
                cursor.execute(
                    """
                    SELECT i.indexname, i.indexdef FROM pg_indexes i
                    WHERE i.tablename = %s AND NOT EXISTS (
                        SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
                    """,
                    [self.table],
                )
                found = cursor.fetchall()
                for name, _ in found:
                    cursor.execute(f'DROP INDEX "{name}"')
                self.indexes = [definition for _, definition in found]
        return self

    def __exit__(self, *exc):
        if exc[0] is None and is_postgresql():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
                for definition in self.indexes:
                    cursor.execute(definition)
        return self.atomic.__exit__(*exc)
