"""B6 alert storm: N running instances fail within a minute under 50 rules, through the
real outbox, monitor and delivery tasks, to a webhook receiver on 127.0.0.1.

Setup: NODES published nodes, split among RULES monitoring rules (scope: its share of
the nodes, trigger `failure`, a webhook channel of its own pointing at the receiver):
every failing instance matches exactly one rule. The running attempts are written in
bulk; the storm ends them through apps.instances.states.attempt_finish, the path a
worker takes, from STORM_THREADS threads. One instance in TWICE gets one retry: its
first attempt fails (running -> pending), the retry is queued, started and fails too
(running -> failed) inside the rule's dedup interval, so its alert counts a repeat that
is recorded and not sent.

Measured, after the storm (its events wait in the outbox, as they would for a monitor
that was down for that minute):
- the bare claim loop over the storm's event rows (SELECT id ... FOR UPDATE SKIP
  LOCKED LIMIT 500 + UPDATE processed_at), one connection: the baseline; then the rows
  are unclaimed again and vacuumed;
- the real monitor (apps.monitoring.tasks.events_drain, as `opscenter monitor` runs it)
  over the same rows in this process, while a real `qcluster` ("default" queue, the
  one deliveries go to; Redis broker when it answers, else the ORM broker) runs the
  delivery tasks: the time until every alert is raised and every delivery that is not
  a duplicate is `sent` (and received), and the monitor's events per second.
"""

import datetime
import os
import threading
import time

from django.db import connection

from bench import common
from bench.b2_dispatch import clusters_start, redis_url
from bench.receiver import Receiver

# instances, rules, nodes
SIZES = {"tiny": (200, 5, 20), "small": (2_000, 20, 200), "full": (10_000, 50, 500)}
TWICE = 10  # one instance in TWICE fails twice
STORM_THREADS = 4
WORKERS = 4  # of the delivery cluster
CLAIM = 500  # events_consume's batch
REDIS = "redis://127.0.0.1:6379/9"
PROJECT = "b6"
WORKLOAD = "alert storm"
SCHEDULED = datetime.datetime(2026, 11, 22, 1, 0, tzinfo=datetime.UTC)


def world(count: int, rule_count: int, node_count: int, url: str) -> tuple:
    """The project, its nodes, RULES rules with a webhook channel each, and `count`
    running instances with their running attempts (written in bulk)."""
    from apps.instances.models import InstanceEvent
    from apps.monitoring import rules as rule_checks
    from apps.monitoring.models import MonitorRule
    from apps.nodes.models import Node
    from apps.notifications import services as notifications

    # What earlier workloads left in the outbox is not this storm's: taken as handled.
    InstanceEvent.objects.filter(processed_at__isnull=True).update(processed_at=common.PUBLISHED_AT)
    owner = common.bench_user()
    project = common.bench_project(PROJECT)
    nodes = common.nodes_load(project, count=node_count, upstreams=lambda i: [], owner=owner)
    node_ids = [node_id for node_id, _ in nodes]
    rules = []
    for r in range(rule_count):
        channel = notifications.channel_create(
            by=owner, project=project, name=f"b6-hook-{r:02d}", kind="webhook", config={"url": url}
        )
        data = {
            "name": f"b6-rule-{r:02d}",
            "scope": {"kind": "nodes", "nodes": node_ids[r::rule_count]},
            "triggers": [{"type": "failure"}],
            "recipients": {"owner": True},
            "dedup_minutes": 30,
        }
        errors = rule_checks.validate_rule(project, data)
        assert not errors, errors
        rule = MonitorRule.objects.create(project=project, **data)
        rule.channels.set([channel])
        rules.append(rule)

    versions = dict(Node.objects.filter(project=project).values_list("id", "current_version_id"))
    group = Node.objects.get(pk=node_ids[0]).resource_group_id
    started = SCHEDULED + datetime.timedelta(minutes=1)
    per_node = -(-count // node_count)

    def instances():
        for i in range(count):
            node_id = node_ids[i % node_count]
            # Each node's instances a quarter of an hour apart: distinct recurring slots.
            scheduled = SCHEDULED - datetime.timedelta(minutes=15 * (i // node_count))
            yield (
                project.id,
                node_id,
                versions[node_id],
                "prod",
                "recurring",
                scheduled.date() - common.ONE_DAY,
                scheduled,
                "running",
                "",
                False,
                False,
                False,
                False,
                3,
                group,
                "{}",
                1,
                0,
                started,
                started,
                None,
                common.PUBLISHED_AT,
            )

    assert per_node * 15 < 24 * 60, "one day of slots per node"
    with common.bulk_load("instances_instance"):
        common.load("instances_instance", common.INSTANCE_COLUMNS, instances())
    ids = _instance_ids(project)
    assert len(ids) == count

    def attempts():
        for instance_id in ids:
            yield (instance_id, 1, "running", "", started, "bench:1", started, 0)

    common.load(
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
        attempts(),
    )
    common.analyze()
    return project, rules, ids


def _instance_ids(project) -> list[int]:
    from apps.instances.models import Instance

    return list(
        Instance.objects.filter(project=project).order_by("id").values_list("id", flat=True)
    )


def storm(ids: list[int], *, threads: int) -> float:
    """Every running attempt fails through the state machine; one instance in TWICE
    retries and fails again. Answers the seconds it took."""
    from apps.core import clock
    from apps.instances import states
    from apps.instances.models import Attempt

    attempts = list(Attempt.objects.filter(instance_id__in=ids, state="running").order_by("id"))
    twice = set(ids[::TWICE])
    failed = states.AttemptOutcome(outcome="failed", exit_code=1, reason="exit code 1")
    errors: list[BaseException] = []

    def work(chunk: list) -> None:
        try:
            # First every attempt of the chunk ends; then the retries run and fail.
            for attempt in chunk:
                retries = 1 if attempt.instance_id in twice else 0
                states.attempt_finish(
                    attempt=attempt,
                    result=failed,
                    retries=retries,
                    retry_interval_seconds=0,
                    now=clock.now(),
                )
            for attempt in chunk:
                if attempt.instance_id not in twice:
                    continue
                assert states.instances_queue(ids=[attempt.instance_id], now=clock.now()) == 1
                retry = states.attempt_start(instance_id=attempt.instance_id, now=clock.now())
                assert retry is not None
                states.attempt_finish(
                    attempt=retry,
                    result=failed,
                    retries=1,
                    retry_interval_seconds=0,
                    now=clock.now(),
                )
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=work, args=(attempts[k::threads],)) for k in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    return seconds


def _unprocessed() -> int:
    from apps.instances.models import InstanceEvent

    return InstanceEvent.objects.filter(processed_at__isnull=True).count()


def baseline_claims(expected: int) -> float:
    """Events per second of the bare claim loop over the waiting events (one connection
    of its own), which it then leaves unclaimed again, as they were."""
    pg = common.is_postgresql()
    db = connection.settings_dict
    if pg:
        import psycopg

        raw = psycopg.connect(
            host=db.get("HOST") or "127.0.0.1",
            port=db.get("PORT") or 5432,
            user=db.get("USER") or "postgres",
            dbname=db["NAME"],
            autocommit=True,
        )
        select = (
            "SELECT id FROM instances_instanceevent WHERE processed_at IS NULL "
            f"ORDER BY id LIMIT {CLAIM} FOR UPDATE SKIP LOCKED"
        )
        update = "UPDATE instances_instanceevent SET processed_at = %s WHERE id = ANY(%s)"
    else:
        import sqlite3

        raw = sqlite3.connect(db["NAME"], timeout=30, isolation_level=None)
        select = (
            "SELECT id FROM instances_instanceevent WHERE processed_at IS NULL "
            f"ORDER BY id LIMIT {CLAIM}"
        )
        update = "UPDATE instances_instanceevent SET processed_at = ? WHERE id IN ({})"
    claimed: list[int] = []
    cursor = raw.cursor()
    start = time.perf_counter()
    while True:
        now = datetime.datetime.now(datetime.UTC)
        cursor.execute("BEGIN" if pg else "BEGIN IMMEDIATE")
        cursor.execute(select)
        batch = [row[0] for row in cursor.fetchall()]
        if batch and pg:
            cursor.execute(update, [now, batch])
        elif batch:
            cursor.execute(update.format(",".join("?" * len(batch))), [now.isoformat(), *batch])
        cursor.execute("COMMIT")
        if not batch:
            break
        claimed += batch
    seconds = time.perf_counter() - start
    raw.close()
    assert len(claimed) == expected, (len(claimed), expected)
    # The same rows wait again for the monitor, on a table as clean as the loop found it.
    from apps.instances.models import InstanceEvent

    for start in range(0, len(claimed), 5000):
        InstanceEvent.objects.filter(pk__in=claimed[start : start + 5000]).update(processed_at=None)
    if pg:
        with connection.cursor() as c:
            c.execute("VACUUM ANALYZE instances_instanceevent")
    return len(claimed) / seconds


def monitor_run(
    *, rules: list, alerts_expected: int, sent_expected: int, receiver: Receiver, timeout: float
) -> dict:
    """The monitor drains the outbox here while the cluster delivers. Answers seconds to
    everything raised (`raised`) and sent (`sent`), and the events the monitor handled."""
    from apps.monitoring import tasks
    from apps.monitoring.models import Alert
    from apps.notifications.models import Delivery

    deliveries = Delivery.objects.filter(alert__rule__in=rules)
    start = time.perf_counter()
    handled = tasks.events_drain()
    raised = time.perf_counter() - start
    alerts = Alert.objects.filter(rule__in=rules).count()
    assert alerts == alerts_expected, (alerts, alerts_expected)
    deadline = start + timeout
    while True:
        sent = deliveries.filter(state="sent").count()
        if sent >= sent_expected:
            break
        failed = deliveries.filter(state="failed").first()
        if failed is not None:
            raise RuntimeError(f"B6: delivery {failed.pk} failed: {failed.last_error}")
        if time.perf_counter() > deadline:
            raise RuntimeError(f"B6: only {sent} of {sent_expected} deliveries sent in time")
        time.sleep(0.1)
    done = time.perf_counter() - start
    got = receiver.stats()
    return {"handled": handled, "raised": raised, "sent": done, "received": got}


def run(scale: str) -> list[dict]:
    from django_q.models import Schedule

    from apps.monitoring.models import Alert, AlertEvent
    from apps.notifications.models import Delivery

    count, rule_count, node_count = SIZES[common.check_scale(scale)]
    twice = len(range(0, count, TWICE))
    pg = common.is_postgresql()
    with Receiver() as receiver:
        project, rules, ids = world(count, rule_count, node_count, receiver.url)
        storm_seconds = storm(ids, threads=STORM_THREADS if pg else 1)
        # first failures + (queued, running, failed again) for the retried ones
        events = count + 3 * twice
        assert _unprocessed() == events, (_unprocessed(), events)
        baseline = baseline_claims(events)

        # Only the delivery tasks on the cluster: no schedule (dispatcher, monitor loop)
        # competes with what is measured; cleanup() puts them back.
        Schedule.objects.all().delete()
        broker = redis_url(REDIS)
        env = {"LOG_LEVEL": "WARNING"}
        if broker:
            env["REDIS_URL"] = broker
        else:
            os.environ.pop("REDIS_URL", None)
        with common.broker(broker):
            connection.close()
            clusters = clusters_start(["default"], workers=WORKERS, env=env)
            try:
                got = monitor_run(
                    rules=rules,
                    alerts_expected=count,
                    sent_expected=count,
                    receiver=receiver,
                    timeout=max(300.0, count / 20),
                )
            finally:
                for cluster in clusters:
                    cluster.stop()
                connection.close()

    # Every alert fired once and was sent once; every repeat counted and not sent.
    alerts = Alert.objects.filter(rule__in=rules)
    assert alerts.filter(state="firing").count() == count
    assert sum(alerts.values_list("count", flat=True)) == count + twice
    repeats = AlertEvent.objects.filter(alert__in=alerts, kind="repeated")
    assert repeats.count() == twice and not repeats.filter(detail__sent=True).exists()
    deliveries = Delivery.objects.filter(alert__in=alerts)
    assert deliveries.count() == deliveries.filter(state="sent", event="fired").count() == count
    assert got["received"]["requests"] == got["received"]["deliveries"] == count, got
    assert got["handled"] == events, (got["handled"], events)

    rate = events / got["raised"]
    setup = (
        f"{count:,} instances ({twice:,} failing twice: {twice:,} repeats counted, not sent), "
        f"{rule_count} rules, a webhook each; {'Redis' if broker else 'ORM'} broker, "
        f"1 cluster x {WORKERS} workers; storm written in {storm_seconds:.1f} s"
    )
    return [
        common.result(
            id="B6",
            workload=WORKLOAD,
            figure="every alert raised and every non-duplicate delivery sent",
            value=got["sent"],
            baseline=None,
            unit="s",
            goal="<= 60 s",
            met=got["sent"] <= 60,
            note=setup,
        ),
        common.result(
            id="B6",
            workload=WORKLOAD,
            figure="events handled per second",
            value=rate,
            baseline=baseline,
            unit="events/s",
            goal=">= 0.3x baseline",
            met=rate >= 0.3 * baseline,
            note=f"{events:,} events, all {count:,} alerts raised in {got['raised']:.1f} s",
        ),
    ]


def cleanup() -> None:
    """The schedules B6 took away come back."""
    from apps.instances.tasks import schedules_ensure

    schedules_ensure()
