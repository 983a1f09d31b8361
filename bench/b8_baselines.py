"""B8 baseline pass: one `baselines_check` (the monitor's minute pass over baselines) over
BASELINES baselines whose key nodes have 20,000 ancestor instances in all, at a day of
1.5M instances (100k nodes of the B1 mix, the day of B7 as it stands at noon), beside
the raw recursive SQL that reads the same ancestor sets.

The baselines' graphs: ANCESTORS daily nodes per baseline in LAYERS layers of WIDTH
nodes, each node depending on two of the layer above, and a key node depending on the
whole last layer: every one of them is an ancestor of the key instance. The day's states
come from B7's load (mostly succeeded in the morning, a few per mille running long,
waiting or failed, the afternoon pending), so the cycles are a mix of finished, safe,
at risk and blocked. Committed times spread from 12:15 to 23:45 (UTC, the project's
timezone), margin 60 minutes, priority 8; every baseline sends to a webhook channel
(queued through Redis when it answers, as B7 does; no cluster takes them here).

Measured, each beside the raw SQL run just before it at the same `now`:
- the first pass at NOW, which creates every cycle, writes the paths' instances, fires
  the at-risk cycles' alerts and lends their priority;
- the pass a minute later, as the minute schedule runs it (nothing new to alert);
- the peak resident memory of the process during a pass (sampled every 5 ms).
"""

import datetime
import time

from django.db import connection

from bench import common
from bench.b2_dispatch import redis_url
from bench.b6_alert_storm import REDIS
from bench.b7_time_pass import DAY, NODES, NOW, SHARES, RssPeak, day_load

BASELINES = {"tiny": 3, "small": 100, "full": 500}
WIDTH, LAYERS = 5, 8
ANCESTORS = WIDTH * LAYERS  # per baseline: 40, so 20,000 at full scale
PER_BASELINE = ANCESTORS + 1  # with its key node
NEXT = NOW + datetime.timedelta(minutes=1)
PASS_GOAL_SECONDS = 2.0
RATIO_GOAL = 3.0
MEMORY_GOAL_MB = 500
PROJECT = "b8"
WORKLOAD = "baseline pass"


def _daily(index: int) -> bool:
    """common.cron_of: indexes 0-6 of every ten are daily nodes."""
    return index % 10 < 7


def graph(baselines: int, count: int) -> tuple[dict[int, list[int]], list[list[int]]]:
    """Node index -> the indexes it depends on, and each baseline's node indexes (its key
    last), laid on the first daily indexes."""
    daily = [i for i in range(count) if _daily(i)][: baselines * PER_BASELINE]
    upstream: dict[int, list[int]] = {}
    groups = []
    for b in range(baselines):
        members = daily[b * PER_BASELINE : (b + 1) * PER_BASELINE]
        for p, index in enumerate(members[:ANCESTORS]):
            layer, j = divmod(p, WIDTH)
            if layer:
                above = members[(layer - 1) * WIDTH : layer * WIDTH]
                upstream[index] = [above[j], above[(j + 1) % WIDTH]]
        upstream[members[-1]] = members[(LAYERS - 1) * WIDTH : ANCESTORS]
        groups.append(members)
    return upstream, groups


def edges_load(project, node_ids: list[int], upstream: dict[int, list[int]]) -> int:
    """The day's instance dependencies between the baselines' instances (each daily node
    has one instance that day), as generation would have made them."""
    by_node = dict(_day_instances(project))
    rows = [
        (by_node[node_ids[index]], by_node[node_ids[up]], False)
        for index, ups in upstream.items()
        for up in ups
    ]
    with common.bulk_load("instances_instancedependency"):
        common.load(
            "instances_instancedependency", ["downstream_id", "upstream_id", "removed"], rows
        )
    return len(rows)


def _day_instances(project) -> list[tuple[int, int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT node_id, id FROM instances_instance WHERE project_id = %s AND biz_date = %s",
            [project.id, DAY - common.ONE_DAY],
        )
        return cursor.fetchall()


def baselines_create(project, node_ids: list[int], groups: list[list[int]]) -> list:
    from apps.baselines.models import Baseline
    from apps.notifications import services as notifications

    owner = common.bench_user()
    channel = notifications.channel_create(
        by=owner,
        project=project,
        name="b8-hook",
        kind="webhook",
        config={"url": "http://127.0.0.1:9/b8"},
    )
    made = Baseline.objects.bulk_create(
        [
            Baseline(
                project=project,
                name=f"b8-{b:04d}",
                cycle="daily",
                # 12:15 .. 23:45, spread over the baselines.
                committed_time=f"{12 + (b * 7) % 12:02d}:{15 + 30 * (b % 2):02d}",
                margin_minutes=60,
                priority=8,
                recipients={"owner": True},
            )
            for b in range(len(groups))
        ]
    )
    Baseline.key_nodes.through.objects.bulk_create(
        [
            Baseline.key_nodes.through(baseline_id=baseline.pk, node_id=node_ids[members[-1]])
            for baseline, members in zip(made, groups, strict=True)
        ]
    )
    Baseline.channels.through.objects.bulk_create(
        [Baseline.channels.through(baseline_id=b.pk, channel_id=channel.pk) for b in made]
    )
    return made


# --- the raw SQL -----------------------------------------------------------------------------

# Every baseline's key instances and their ancestor closure, walked as the pass walks it
# (removed edges and finished instances of an earlier biz date left out), with the facts
# the prediction reads.
RAW = """
WITH RECURSIVE walk(baseline_id, id, biz_date) AS (
    SELECT bk.baseline_id, i.id, i.biz_date
    FROM baselines_baseline_key_nodes bk
    JOIN baselines_baseline b ON b.id = bk.baseline_id AND b.enabled
    JOIN instances_instance i ON i.node_id = bk.node_id
    WHERE i.biz_date = %s AND i.kind = 'recurring' AND i.env = 'prod'
  UNION
    SELECT w.baseline_id, u.id, u.biz_date
    FROM walk w
    JOIN instances_instancedependency d ON d.downstream_id = w.id AND NOT d.removed
    JOIN instances_instance u ON u.id = d.upstream_id
    WHERE NOT (u.state IN ('succeeded', 'skipped') AND u.biz_date < w.biz_date)
)
SELECT w.baseline_id, i.id, i.node_id, n.name, i.state, i.scheduled_at, i.next_attempt_at,
       i.started_at, i.finished_at, i.paused OR n.paused
FROM walk w
JOIN instances_instance i ON i.id = w.id
JOIN nodes_node n ON n.id = i.node_id
"""


def raw_run(biz_date: datetime.date) -> int:
    with connection.cursor() as cursor:
        cursor.execute(RAW, [biz_date])
        return len(cursor.fetchall())


def measured_pass(now: datetime.datetime, biz_date: datetime.date) -> dict:
    """The raw SQL (warm, then timed), then the pass, at `now`."""
    from apps.baselines import cycles

    raw_run(biz_date)
    started = time.perf_counter()
    rows = raw_run(biz_date)
    raw_seconds = time.perf_counter() - started
    with RssPeak() as memory:
        started = time.perf_counter()
        counts = cycles.baselines_check(now=now)
        seconds = time.perf_counter() - started
    return {
        "rows": rows,
        "raw": raw_seconds,
        "seconds": seconds,
        "counts": counts,
        "memory": memory,
    }


def run(scale: str) -> list[dict]:
    from django.db.models import Count

    from apps.baselines.models import BaselineCycle, BaselineCycleInstance
    from apps.instances.models import Instance
    from apps.monitoring.models import Alert

    count = NODES[common.check_scale(scale)]
    baselines = BASELINES[scale]
    owner = common.bench_user()
    project = common.bench_project(PROJECT)
    upstream, groups = graph(baselines, count)
    nodes = common.nodes_load(
        project, count=count, upstreams=lambda i: upstream.get(i, []), owner=owner
    )
    node_ids = [node_id for node_id, _ in nodes]
    instances = day_load(project, nodes, shares=SHARES[scale])
    edges = edges_load(project, node_ids, upstream)
    made = baselines_create(project, node_ids, groups)
    common.analyze(vacuum=True)
    from apps.monitoring.alerts import alert_url

    alert_url(1)  # a long-lived monitor has its URLconf loaded
    biz_date = DAY - common.ONE_DAY

    broker = redis_url(REDIS)
    with common.broker(broker):
        first = measured_pass(NOW, biz_date)
        second = measured_pass(NEXT, biz_date)
    members = BaselineCycleInstance.objects.filter(cycle__baseline__in=made)
    on_path = members.count()
    assert first["counts"]["cycles"] == len(made) == BaselineCycle.objects.count()
    assert on_path == len(made) * PER_BASELINE == first["rows"] == second["rows"], (
        on_path,
        first["rows"],
    )
    statuses = dict(BaselineCycle.objects.values_list("status").annotate(n=Count("id")).order_by())
    alerts = Alert.objects.filter(source="baseline").count()
    lent = Instance.objects.filter(lent_by__isnull=False).count()
    note = (
        f"{instances:,} instances, {len(made)} baselines, {on_path - len(made):,} ancestor "
        f"instances ({edges:,} edges); cycles "
        + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
        + f"; {alerts} alerts, {lent:,} instances lent; {'Redis' if broker else 'ORM'} broker"
    )
    peak = max(first["memory"].peak_mb, second["memory"].peak_mb)
    delta = max(first["memory"].delta_mb, second["memory"].delta_mb)
    rows = []
    for label, measured in (
        ("first pass (creates the cycles, their paths, alerts and lending)", first),
        ("pass a minute later", second),
    ):
        ratio = measured["seconds"] / measured["raw"]
        rows.append(
            common.result(
                id="B8",
                workload=WORKLOAD,
                figure=label,
                value=measured["seconds"],
                baseline=measured["raw"],
                unit="s",
                goal=f"<= {PASS_GOAL_SECONDS:g} s and <= {RATIO_GOAL:g}x",
                met=measured["seconds"] <= PASS_GOAL_SECONDS and ratio <= RATIO_GOAL,
                note=note if measured is first else "",
            )
        )
    rows.append(
        common.result(
            id="B8",
            workload=WORKLOAD,
            figure="peak memory of a pass",
            value=peak,
            baseline=None,
            unit="MB",
            goal=f"< {MEMORY_GOAL_MB} MB",
            met=peak < MEMORY_GOAL_MB,
            peak_mb=peak,
            note=f"process RSS sampled during the pass; {delta:+,.0f} MB over its start",
        )
    )
    return rows
