"""B7 time-trigger pass: one `time_triggers_check` over a day of 1.5M instances (100k
nodes of the B1 mix) under 200 `unfinished_by` / `not_started_by` / `running_longer`
rules, beside the raw SQL that finds the same late instances.

The day (scheduled on DAY, UTC) as it stands at NOW (noon): what was due has mostly
succeeded; a few per mille of it (SHARES) have been running since their scheduled
time, still wait for an upstream, or failed; the rest of the morning's runs are
finished or running (a few minutes each); the afternoon is pending. Every started
instance has its attempt. Written with COPY (instances) and INSERT ... SELECT
(attempts), indexes built afterwards, then VACUUM ANALYZE.

Rules: 140 deadline rules over the daily nodes scheduled before 10:00 (each its share
of them, by nodes scope, half `unfinished_by`, half `not_started_by`, deadlines
10:00-11:59, and NEW_AT_NEXT of them at 12:01); 58 `running_longer` rules of 30 to 195
minutes, each over its share of all nodes; 2 project-wide `running_longer` rules of 6
and 10 hours. Each rule sends to a webhook channel (no cluster serves it here: the
deliveries are queued, through Redis when it answers, and dropped afterwards).

Measured, each beside the raw SQL of the same rules (one statement per rule and
trigger, the alert exclusion included) run just before it at the same `now`:
- the first pass at NOW, which raises an alert for every late instance;
- the pass a minute later, as the minute schedule runs it: everything late has
  alerted already (excluded in SQL) but for the few new ones;
- the peak resident memory of the process during a pass (sampled every 5 ms).
"""

import datetime
import threading
import time

from django.db import connection

from bench import common
from bench.b2_dispatch import redis_url
from bench.b6_alert_storm import REDIS

NODES = {"tiny": 200, "small": 10_000, "full": 100_000}
DAY = datetime.date(2026, 11, 22)
NOW = datetime.datetime.combine(DAY, datetime.time(12, 0), tzinfo=datetime.UTC)
NEXT = NOW + datetime.timedelta(minutes=1)
# Per mille of the instances due by NOW: stuck running, waiting for an upstream,
# failed. The tiny scale (the smoke tests) has more, so every trigger finds some.
SHARES = {"tiny": (50, 50, 50), "small": (3, 3, 4), "full": (3, 3, 4)}
DEADLINE_RULES = 140  # half unfinished_by, half not_started_by
LONG_RULES = 58
PROJECT_RULES = (360, 600)  # minutes of the project-wide running_longer rules
NEW_AT_NEXT = 10  # deadline rules whose deadline is 12:01
MEMORY_GOAL_MB = 300
PROJECT = "b7"
WORKLOAD = "time-trigger pass"
# The facts an alert needs, joined to the late rows found first (a CTE the planner
# cannot fold in: the join then never hangs on an estimate of how many rows match).
FACTS = """
    SELECT late.*, n.name, p.code, u.username FROM late
    JOIN nodes_node n ON n.id = late.node_id
    JOIN projects_project p ON p.id = late.project_id
    LEFT JOIN auth_user u ON u.id = n.owner_id
"""
LATE = "i.id, i.node_id, i.project_id, i.biz_date, i.scheduled_at, i.state"


# --- the day -------------------------------------------------------------------------------


def _roll(n: int) -> int:
    return (n * 7919 + 13) % 1000


def day_load(project, nodes: list[tuple[int, str]], *, shares: tuple[int, int, int]) -> int:
    """The day's instances (COPY, indexes rebuilt after) and their attempts."""
    from apps.instances import schedules
    from apps.nodes.models import Node

    versions = dict(Node.objects.filter(project=project).values_list("id", "current_version_id"))
    group = Node.objects.filter(project=project).values_list("resource_group_id", flat=True)[0]
    times = {
        cron: [t for t, _ in schedules.instance_times(cron, DAY, common.UTC_ZONE)]
        for cron in {cron for _, cron in nodes}
    }
    biz_date = DAY - common.ONE_DAY
    stuck, waiting, failed = shares
    written = 0

    def rows():
        nonlocal written
        for node_id, cron in nodes:
            for scheduled in times[cron]:
                written += 1
                roll = _roll(written)
                state, wait = "pending", ""
                started = finished = None
                if scheduled > NOW:
                    wait = "waiting_time"
                elif roll < stuck:
                    state, started = "running", scheduled
                elif roll < stuck + waiting:
                    wait = "waiting_upstream"
                elif roll < stuck + waiting + failed:
                    state, started = "failed", scheduled
                    finished = scheduled + datetime.timedelta(seconds=20 + roll % 60)
                else:
                    started = scheduled
                    finished = scheduled + datetime.timedelta(seconds=30 + (roll % 100) * 6)
                    state = "succeeded" if finished <= NOW else "running"
                    if state == "running":
                        finished = None
                yield (
                    project.id,
                    node_id,
                    versions[node_id],
                    "prod",
                    "recurring",
                    biz_date,
                    scheduled,
                    state,
                    wait,
                    False,
                    False,
                    False,
                    False,
                    3,
                    group,
                    "{}",
                    1 if started else 0,
                    0,
                    started,
                    started,
                    finished,
                    common.PUBLISHED_AT,
                )

    with common.bulk_load("instances_instance"):
        common.load("instances_instance", common.INSTANCE_COLUMNS, rows())
    columns = [
        "instance_id",
        "number",
        "state",
        "reason",
        "started_at",
        "finished_at",
        "exit_code",
        "worker",
        "heartbeat_at",
        "log_size",
    ]
    extra = common.defaults("instances_attempt", columns)
    with common.bulk_load("instances_attempt"):
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO instances_attempt ({", ".join(columns + [c for c, _ in extra])})
                SELECT id, 1, state, CASE WHEN state = 'failed' THEN 'exit code 1' ELSE '' END,
                    started_at, finished_at,
                    CASE WHEN state = 'failed' THEN 1 WHEN state = 'succeeded' THEN 0 END,
                    'bench:1', COALESCE(finished_at, %s), 0{", %s" * len(extra)}
                FROM instances_instance WHERE project_id = %s AND started_at IS NOT NULL
                """,
                [NOW, *(value for _, value in extra), project.id],
            )
    common.sync_sequence("instances_instance")
    common.sync_sequence("instances_attempt")
    return written


def rules_create(project, nodes: list[tuple[int, str]], *, url: str) -> list:
    """The 200 rules (fewer at small scales only if there are too few nodes)."""
    from apps.monitoring import rules as rule_checks
    from apps.monitoring.models import MonitorRule
    from apps.notifications import services as notifications

    owner = common.bench_user()
    channel = notifications.channel_create(
        by=owner, project=project, name="b7-hook", kind="webhook", config={"url": url}
    )
    # Daily nodes (common.cron_of: "m h * * *") scheduled before 10:00.
    early = [
        node_id
        for node_id, cron in nodes
        if cron.endswith(" * * *") and "*" not in cron.split()[1] and int(cron.split()[1]) < 10
    ]
    all_ids = [node_id for node_id, _ in nodes]
    specs = []
    for r in range(DEADLINE_RULES):
        kind = "unfinished_by" if r % 2 == 0 else "not_started_by"
        at = "12:01" if r < NEW_AT_NEXT else f"{10 + r % 2}:{(r * 7) % 60:02d}"
        share = early[r::DEADLINE_RULES]
        if share:
            specs.append((f"b7-{kind}-{r:03d}", {"kind": "nodes", "nodes": share}, kind, at))
    for r in range(LONG_RULES):
        share = all_ids[r::LONG_RULES]
        if share:
            minutes = 30 + 15 * (r % 12)
            specs.append((f"b7-long-{r:03d}", {"kind": "nodes", "nodes": share}, None, minutes))
    for minutes in PROJECT_RULES:
        specs.append((f"b7-long-project-{minutes}", {"kind": "project"}, None, minutes))

    made = []
    for name, scope, kind, when in specs:
        trigger = (
            {"type": "running_longer", "minutes": when}
            if kind is None
            else {"type": kind, "time": when}
        )
        data = {
            "name": name,
            "scope": scope,
            "triggers": [trigger],
            "recipients": {"owner": True},
            "dedup_minutes": 30,
        }
        errors = rule_checks.validate_rule(project, data)
        assert not errors, errors
        rule = MonitorRule.objects.create(project=project, **data)
        rule.channels.set([channel])
        made.append(rule)
    return made


# --- the raw SQL ---------------------------------------------------------------------------


def _windows(rule, hhmm: str, now: datetime.datetime) -> list[tuple]:
    """The scheduled days (as [start, end) ranges) whose HH:MM deadline has passed."""
    from apps.monitoring import rules as rule_checks

    tz = rule.project.tz
    today = now.astimezone(tz).date()
    ranges = []
    for day in (today - common.ONE_DAY, today):
        if rule_checks.deadline(day, hhmm, tz) <= now:
            start = datetime.datetime.combine(day, datetime.time(0), tzinfo=tz)
            ranges.append((start, start + common.ONE_DAY))
    return ranges


def raw_statements(rules: list, now: datetime.datetime) -> list[tuple[str, list]]:
    """One statement per rule and trigger finding what the pass finds, in SQL."""
    from apps.monitoring import rules as rule_checks

    out = []
    for rule in rules:
        node_ids = rule_checks.rule_node_ids(rule)
        scope = "i.project_id = %s AND i.env = 'prod'"
        scope_params: list = [rule.project_id]
        if node_ids is not None and common.is_postgresql():
            scope += " AND i.node_id = ANY(%s)"
            scope_params.append(sorted(node_ids))
        elif node_ids is not None:
            scope += f" AND i.node_id IN ({', '.join(['%s'] * len(node_ids))})"
            scope_params += sorted(node_ids)
        for trigger in rule.triggers:
            kind = trigger["type"]
            key = f"monitor:{rule.pk}:{kind}:instance:"
            if kind == "running_longer":
                sql = (
                    f"WITH late AS MATERIALIZED (SELECT {LATE}, a.number, a.started_at "
                    "FROM instances_attempt a JOIN instances_instance i ON i.id = a.instance_id "
                    f"WHERE {scope} AND a.state = 'running' AND a.started_at <= %s "
                    "AND i.kind <> 'realtime' AND NOT EXISTS (SELECT 1 FROM monitoring_alert al "
                    "WHERE al.dedup_key = %s || CAST(i.id AS TEXT) AND al.last_at >= a.started_at)"
                    f") {FACTS}"
                )
                limit = now - datetime.timedelta(minutes=trigger["minutes"])
                out.append((sql, [*scope_params, limit, key]))
                continue
            ranges = _windows(rule, trigger["time"], now)
            if not ranges:
                continue
            state = (
                "i.state NOT IN ('succeeded', 'skipped')"
                if kind == "unfinished_by"
                else "i.state IN ('pending', 'queued') AND i.started_at IS NULL"
            )
            sql = (
                f"WITH late AS MATERIALIZED (SELECT {LATE} FROM instances_instance i "
                f"WHERE {scope} AND i.kind = 'recurring' "
                "AND i.scheduled_at >= %s AND i.scheduled_at < %s "
                f"AND {state} AND NOT EXISTS (SELECT 1 FROM monitoring_alert al "
                f"WHERE al.dedup_key = %s || CAST(i.id AS TEXT))) {FACTS}"
            )
            # The days are consecutive: one range from the first start to the last end.
            out.append((sql, [*scope_params, ranges[0][0], ranges[-1][1], key]))
    return out


def raw_run(statements: list[tuple[str, list]]) -> int:
    found = 0
    with connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)
            found += len(cursor.fetchall())
    return found


# --- the pass --------------------------------------------------------------------------------


class RssPeak:
    """The highest resident set size of this process while in the block, sampled."""

    def __init__(self, every: float = 0.005):
        import psutil

        self.process = psutil.Process()
        self.every = every
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(self.every)

    def __enter__(self) -> "RssPeak":
        self.before = self.process.memory_info().rss
        self.peak = self.before
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)

    @property
    def delta_mb(self) -> float:
        return round((self.peak - self.before) / 2**20, 1)


def measured_pass(rules: list, now: datetime.datetime) -> dict:
    """The raw SQL, then the pass, at `now`."""
    from apps.monitoring import timepass

    statements = raw_statements(rules, now)
    raw_run(statements)  # warm: both read from the same cache
    started = time.perf_counter()
    late = raw_run(statements)
    raw_seconds = time.perf_counter() - started
    with RssPeak() as memory:
        started = time.perf_counter()
        raised = timepass.time_triggers_check(now=now)
        seconds = time.perf_counter() - started
    return {
        "late": late,
        "raw": raw_seconds,
        "seconds": seconds,
        "raised": raised,
        "memory": memory,
    }


def run(scale: str) -> list[dict]:
    from apps.monitoring.models import Alert

    nodes_count = NODES[common.check_scale(scale)]
    owner = common.bench_user()
    project = common.bench_project(PROJECT)
    nodes = common.nodes_load(project, count=nodes_count, upstreams=lambda i: [], owner=owner)
    instances = day_load(project, nodes, shares=SHARES[scale])
    rules = rules_create(project, nodes, url="http://127.0.0.1:9/b7")
    common.analyze(vacuum=True)
    # A long-lived monitor has its URLconf loaded (alert messages link to their page).
    from apps.monitoring.alerts import alert_url

    alert_url(1)

    # Deliveries are queued as a deployment with Redis queues them (no cluster takes them
    # here); with the ORM broker, each enqueue after a commit also reconnects to the
    # database (django-q2 closes "old" connections, and DB_CONN_MAX_AGE is 0).
    broker = redis_url(REDIS)
    with common.broker(broker):
        first = measured_pass(rules, NOW)
        alerts = Alert.objects.filter(rule__in=rules)
        assert first["raised"] == first["late"] == alerts.count() > 0, (first, alerts.count())
        second = measured_pass(rules, NEXT)
        assert second["raised"] == second["late"] == alerts.count() - first["late"], second

    size = (
        f"{instances:,} instances, {len(rules)} rules: {first['late']:,} late at noon, "
        f"{second['late']:,} more a minute later; {'Redis' if broker else 'ORM'} broker"
    )
    peak = max(first["memory"].peak_mb, second["memory"].peak_mb)
    delta = max(first["memory"].delta_mb, second["memory"].delta_mb)
    return [
        common.result(
            id="B7",
            workload=WORKLOAD,
            figure="first pass (raises every late instance's alert)",
            value=first["seconds"],
            baseline=first["raw"],
            unit="s",
            goal="<= 2x",
            met=first["seconds"] <= 2 * first["raw"],
            note=size,
        ),
        common.result(
            id="B7",
            workload=WORKLOAD,
            figure="pass a minute later (all but the new ones alerted)",
            value=second["seconds"],
            baseline=second["raw"],
            unit="s",
            goal="<= 2x",
            met=second["seconds"] <= 2 * second["raw"],
        ),
        common.result(
            id="B7",
            workload=WORKLOAD,
            figure="peak memory of a pass",
            value=peak,
            baseline=None,
            unit="MB",
            goal=f"< {MEMORY_GOAL_MB} MB",
            met=peak < MEMORY_GOAL_MB,
            peak_mb=peak,
            note=f"process RSS sampled during the pass; {delta:+,.0f} MB over its start",
        ),
    ]
