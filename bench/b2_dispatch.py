"""B2 dispatch throughput: ready `virtual` instances over 20 resource groups through the
real dispatcher and real django-q2 worker clusters, beside a bare claim loop.

Setup (2 cores): the 20 groups share QUEUES django-q2 queues (OPSCENTER_GROUP_QUEUES),
one `qcluster` of WORKERS workers each; group limits are the dispatcher's business, so a
shared queue changes no rule. The broker is Redis when it answers (its work is then
outside PostgreSQL, as in a production cluster), else the ORM broker; the dispatcher
passes run in this process, as `opscenter tick` would. Workers keep their database
connections (DB_CONN_MAX_AGE), as a deployment should.

Baseline: as many threads as workers, each with its own connection, claiming one
instance at a time with `FOR UPDATE SKIP LOCKED` and doing the same state updates
(pending -> queued, queued -> running with an attempt row, running -> succeeded).

Transactions per start: the bench database's xact_commit delta (pg_stat_database, read
from another database after every connection closed) divided by the starts.
"""

import datetime
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.db import connection

from bench import common

ROOT = Path(__file__).resolve().parent.parent
SIZES = {"tiny": (200, 4), "small": (2000, 20), "full": (20000, 20)}  # instances, groups
QUEUES = 2
WORKERS = 4
GROUP_LIMIT = 100
BATCH = 50  # OPSCENTER_VIRTUAL_BATCH's default
SINGLE_MAX = 4000  # instances of the run with a task per instance
SCHEDULED = datetime.datetime(2026, 1, 1, 2, 0, tzinfo=datetime.UTC)
REDIS_URL = "redis://127.0.0.1:6379/8"


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgresql://{db.get('USER') or 'postgres'}@{host}:{port}/{db['NAME']}"


def redis_url(url: str = REDIS_URL) -> str | None:
    """`url` when a Redis server answers there, else None (the ORM broker then)."""
    try:
        import redis

        redis.Redis.from_url(url, socket_timeout=1).ping()
    except Exception:
        return None
    return url


class Cluster:
    """`manage.py qcluster` serving one queue, in its own process group."""

    def __init__(self, queue: str, *, workers: int, env: dict[str, str], log: Path):
        self.log = log
        self.workers = workers
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env={
                **os.environ,
                "DATABASE_URL": database_url(),
                "Q_CLUSTER_NAME": queue,
                "Q_WORKERS": str(workers),
                "DB_CONN_MAX_AGE": "600",
                **env,
            },
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready(self) -> bool:
        """Its sentinel, pusher, monitor and workers are all up."""
        import psutil

        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return False
        return len(children) >= self.workers + 3

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def clusters_start(queues: list[str], *, workers: int, env: dict[str, str]) -> list[Cluster]:
    var = Path(os.environ.get("OPSCENTER_VAR_DIR", "/tmp/opscenter-bench"))
    var.mkdir(parents=True, exist_ok=True)
    clusters = [
        Cluster(queue, workers=workers, env=env, log=var / f"bench-{queue}.log") for queue in queues
    ]
    deadline = time.monotonic() + 60
    while not all(c.ready() for c in clusters):
        if time.monotonic() > deadline or any(c.process.poll() is not None for c in clusters):
            for c in clusters:
                c.stop()
            raise RuntimeError("qcluster did not start:\n" + clusters[0].log.read_text()[-2000:])
        time.sleep(0.2)
    return clusters


def xact_commit() -> int | None:
    """Committed transactions of the bench database so far, read from another database so
    that reading does not count."""
    if connection.vendor != "postgresql":
        return None
    import psycopg

    db = connection.settings_dict
    with psycopg.connect(
        host=db.get("HOST") or "127.0.0.1",
        port=db.get("PORT") or 5432,
        user=db.get("USER") or "postgres",
        dbname="postgres",
        autocommit=True,
    ) as admin:
        row = admin.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [db["NAME"]]
        ).fetchone()
    return int(row[0])


def instances_create(code: str, *, count: int, groups: int, prefix: str) -> tuple[object, list]:
    """`count` pending virtual instances of one node per group, all due and ready."""
    from apps.configuration.models import ResourceGroup
    from tests.factories import node_create

    owner = common.bench_user()
    project = common.bench_project(code)
    nodes = []
    for g in range(groups):
        name = f"{prefix}-g{g:02d}"
        ResourceGroup.objects.update_or_create(name=name, defaults={"max_concurrency": GROUP_LIMIT})
        nodes.append(node_create(project, name, owner=owner, resource_group=name))
    common.ready_instances(nodes, count, scheduled_at=SCHEDULED)
    return project, nodes


def succeeded(project) -> int:
    from apps.instances.models import Instance

    return Instance.objects.filter(project=project, state="succeeded").count()


def baseline_run(project, nodes, *, threads: int) -> float:
    """Starts per second of the bare claim loop."""
    import psycopg

    db = connection.settings_dict
    pg = connection.vendor == "postgresql"
    lock = " FOR UPDATE SKIP LOCKED" if pg else ""
    # The classic queue claim: lock a group's first pending row in start order (the
    # dispatcher's order and index), passing over locked ones, and queue it.
    claim = (
        "UPDATE instances_instance SET state = 'queued', queued_at = %s WHERE id = ("
        "SELECT id FROM instances_instance WHERE resource_group_id = %s AND state = 'pending' "
        f"ORDER BY dispatch_priority DESC, scheduled_at, id LIMIT 1{lock}) RETURNING id"
    )
    groups = sorted({node.resource_group_id for node in nodes})
    errors: list[BaseException] = []
    # Attempt columns with a model default the statement does not name.
    extra = common.defaults(
        "instances_attempt",
        [
            "instance_id",
            "number",
            "state",
            "reason",
            "started_at",
            "worker",
            "heartbeat_at",
            "log_size",
        ],
    )
    extra_columns = "".join(f", {column}" for column, _ in extra)
    extra_marks = ", %s" * len(extra)
    extra_values = [value for _, value in extra]

    def connect():
        if pg:
            return psycopg.connect(
                host=db.get("HOST") or "127.0.0.1",
                port=db.get("PORT") or 5432,
                user=db.get("USER") or "postgres",
                dbname=db["NAME"],
            )
        import sqlite3

        return sqlite3.connect(db["NAME"], timeout=30, isolation_level=None)

    def transaction(conn, statements):
        cursor = conn.cursor()
        cursor.execute("BEGIN" if pg else "BEGIN IMMEDIATE")
        out = None
        for sql, params in statements:
            cursor.execute(sql if pg else sql.replace("%s", "?"), params)
            if "RETURNING" in sql:
                out = cursor.fetchone()
        cursor.execute("COMMIT")
        return out

    def loop(first: int):
        """Claims from one group until it is empty, then from the next: every thread
        starts at another group and all of them help with the last ones."""
        try:
            conn = connect()
            if pg:
                conn.autocommit = True
            turn = first
            empty_in_a_row = 0
            while empty_in_a_row < len(groups):
                now = datetime.datetime.now(datetime.UTC)
                got = transaction(conn, [(claim, [now, groups[turn % len(groups)]])])
                if got is None:
                    empty_in_a_row += 1
                    turn += 1
                    continue
                empty_in_a_row = 0
                (iid,) = got
                transaction(
                    conn,
                    [
                        (
                            "UPDATE instances_instance SET state = 'running', started_at = %s, "
                            "attempt_count = attempt_count + 1 WHERE id = %s AND state = 'queued'",
                            [now, iid],
                        ),
                        (
                            "INSERT INTO instances_attempt (instance_id, number, state, reason, "
                            f"started_at, worker, heartbeat_at, log_size{extra_columns}) "
                            f"VALUES (%s, 1, 'running', '', %s, 'baseline', %s, 0{extra_marks})",
                            [iid, now, now, *extra_values],
                        ),
                    ],
                )
                transaction(
                    conn,
                    [
                        (
                            "UPDATE instances_attempt SET state = 'succeeded', finished_at = %s "
                            "WHERE instance_id = %s AND number = 1",
                            [now, iid],
                        ),
                        (
                            "UPDATE instances_instance SET state = 'succeeded', finished_at = %s "
                            "WHERE id = %s AND state = 'running'",
                            [now, iid],
                        ),
                    ],
                )
            conn.close()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [
        threading.Thread(target=loop, args=(k * len(groups) // threads,)) for k in range(threads)
    ]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    return succeeded(project) / seconds


def opscenter_run(
    project, nodes, *, count: int, timeout: float, virtual_batch: int
) -> tuple[float, float | None, str]:
    """(starts per second, transactions per start, broker) through dispatcher and clusters,
    handing virtual instances over in batches of `virtual_batch`."""
    from apps.instances import dispatcher

    db_name = connection.settings_dict["NAME"].rsplit("/", 1)[-1].replace(".", "-")
    queues = [f"{db_name}-q{k}" for k in range(QUEUES)]
    mapping = {node.resource_group.name: queues[i % QUEUES] for i, node in enumerate(nodes)}
    env = {
        "OPSCENTER_GROUP_QUEUES": ",".join(f"{g}={q}" for g, q in mapping.items()),
        "LOG_LEVEL": "WARNING",
        "OPSCENTER_VIRTUAL_BATCH": str(virtual_batch),
    }
    broker = redis_url()
    if broker:
        import redis

        client = redis.Redis.from_url(broker)
        client.delete(*[f"django_q:{q}:q" for q in queues])
        env["REDIS_URL"] = broker
    else:
        os.environ.pop("REDIS_URL", None)
    clusters = clusters_start(queues, workers=WORKERS, env=env)
    # The dispatcher in this process hands off through the same broker and queues.
    from django.conf import settings
    from django_q.conf import Conf, logger

    logger.setLevel("WARNING")  # a line per enqueued task would be measured too

    saved = (
        settings.OPSCENTER_GROUP_QUEUES,
        settings.OPSCENTER_VIRTUAL_BATCH,
        Conf.ORM,
        Conf.REDIS,
    )
    settings.OPSCENTER_GROUP_QUEUES = mapping
    settings.OPSCENTER_VIRTUAL_BATCH = virtual_batch
    if broker:
        Conf.ORM, Conf.REDIS = None, broker
    polls = 0
    try:
        connection.close()
        before = xact_commit()
        start = time.perf_counter()
        deadline = start + timeout
        done = 0
        next_pass = 0.0
        while done < count:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"B2: only {done} of {count} instances finished in time")
            # Passes come at the dispatcher loop's cadence, as in production.
            if time.perf_counter() >= next_pass:
                dispatcher.tick()
                next_pass = time.perf_counter() + settings.OPSCENTER_TICK_SECONDS
            done = succeeded(project)
            polls += 1
            time.sleep(0.1)
        seconds = time.perf_counter() - start
    finally:
        for c in clusters:
            c.stop()
        (
            settings.OPSCENTER_GROUP_QUEUES,
            settings.OPSCENTER_VIRTUAL_BATCH,
            Conf.ORM,
            Conf.REDIS,
        ) = saved
        connection.close()
    after = xact_commit()
    per_start = None
    if before is not None:
        # The completion polls of this loop are the benchmark's, not opscenter's.
        per_start = (after - before - polls) / count
    return count / seconds, per_start, "Redis" if broker else "ORM"


def run(scale: str) -> list[dict]:
    count, groups = SIZES[common.check_scale(scale)]
    base_project, base_nodes = instances_create(
        "b2base", count=count, groups=groups, prefix="b2base"
    )
    ops_project, nodes = instances_create("b2", count=count, groups=groups, prefix="b2")
    common.analyze()
    baseline = baseline_run(base_project, base_nodes, threads=QUEUES * WORKERS)
    rate, per_start, broker = opscenter_run(
        ops_project, nodes, count=count, timeout=max(120.0, count / 20), virtual_batch=BATCH
    )
    # The same path with a task and two transactions per instance, as every type but
    # virtual travels (created only now: the passes above would have started them).
    single_count = min(count, SINGLE_MAX)
    single_project, single_nodes = instances_create(
        "b2one", count=single_count, groups=groups, prefix="b2one"
    )
    common.analyze()
    single_rate, single_per_start, _ = opscenter_run(
        single_project,
        single_nodes,
        count=single_count,
        timeout=max(120.0, single_count / 10),
        virtual_batch=1,
    )
    setup = (
        f"{groups} groups (limit {GROUP_LIMIT}) on {QUEUES} queues x {WORKERS} workers, "
        f"{broker} broker"
    )
    rows = [
        common.result(
            id="B2",
            workload="dispatch throughput",
            figure="starts per second",
            value=rate,
            baseline=baseline,
            unit="starts/s",
            goal=">= 0.33x baseline",
            met=rate >= 0.33 * baseline,
            note=f"{count} instances, {setup}, virtual batches of {BATCH}",
        ),
        common.result(
            id="B2",
            workload="dispatch throughput",
            figure="starts per second, a task per instance",
            value=single_rate,
            baseline=baseline,
            unit="starts/s",
            goal="none: how non-virtual types travel",
            met=None,
            note=f"{single_count} instances, OPSCENTER_VIRTUAL_BATCH=1",
        ),
    ]
    for figure, value in (
        ("transactions per start", per_start),
        ("transactions per start, a task per instance", single_per_start),
    ):
        if value is not None:
            rows.append(
                common.result(
                    id="B2",
                    workload="dispatch throughput",
                    figure=figure,
                    value=value,
                    baseline=None,
                    unit="xact/start",
                    goal="<= 3",
                    met=value <= 3,
                    note="pg_stat_database xact_commit delta / starts",
                )
            )
    return rows
