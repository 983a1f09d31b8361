"""B10 resource dashboard over 90 days of measured attempts (5M at full scale), read
through apps.monitoring.resources.resources_get: per node the runs, sums and both 95th
percentiles, per project and resource group the sums, for the whole range.

Baseline: the raw aggregate SQL of the same numbers (the per-node GROUP BY with
percentile_cont, the per project and group sums, the nodes' names and allocations).
On SQLite (the smoke test) the baseline leaves the percentiles out: it only has to run.
"""

import datetime
import json
import random

from django.db import connection

from apps.monitoring.resources import resources_get, resources_scope

from . import common

WORKLOAD = "resources"
DAYS = 90
# Attempts over the 90 days; two per instance (a failure and its retry).
ATTEMPTS = {"tiny": 2_000, "small": 200_000, "full": 5_000_000}
NODES = {"tiny": 20, "small": 200, "full": 2_000}
GROUPS = ("etl", "reports", "ml")
REPEAT = {"tiny": 3, "small": 10, "full": 10}
PROJECT = "bench-resources"
END = datetime.date(2026, 11, 20)

RAW_NODES = """
    SELECT i.node_id, COUNT(*), SUM(a.cpu_seconds),
           SUM(EXTRACT(EPOCH FROM (a.finished_at - a.started_at))), MAX(a.peak_memory_mb),
           COUNT(*) FILTER (WHERE a.killed_for = 'memory'),
           percentile_cont(0.95) WITHIN GROUP (ORDER BY a.cpu_seconds
               / NULLIF(EXTRACT(EPOCH FROM (a.finished_at - a.started_at)), 0)),
           percentile_cont(0.95) WITHIN GROUP (ORDER BY a.peak_memory_mb)
    FROM instances_attempt a JOIN instances_instance i ON i.id = a.instance_id
    WHERE a.started_at >= %(start)s AND a.started_at < %(end)s
      AND a.finished_at IS NOT NULL AND a.cpu_seconds IS NOT NULL
      AND a.peak_memory_mb IS NOT NULL AND i.project_id = %(project)s
    GROUP BY i.node_id
"""
RAW_GROUPS = """
    SELECT i.project_id, i.resource_group_id, COUNT(*), SUM(a.cpu_seconds),
           SUM(EXTRACT(EPOCH FROM (a.finished_at - a.started_at))),
           SUM(COALESCE((v.spec->>'cpu')::float, 0)
               * EXTRACT(EPOCH FROM (a.finished_at - a.started_at))),
           MAX(a.peak_memory_mb), COUNT(*) FILTER (WHERE a.killed_for = 'memory')
    FROM instances_attempt a JOIN instances_instance i ON i.id = a.instance_id
    JOIN nodes_nodeversion v ON v.id = i.version_id
    WHERE a.started_at >= %(start)s AND a.started_at < %(end)s
      AND a.finished_at IS NOT NULL AND a.cpu_seconds IS NOT NULL
      AND a.peak_memory_mb IS NOT NULL AND i.project_id = %(project)s
    GROUP BY i.project_id, i.resource_group_id
"""
RAW_INFO = """
    SELECT n.id, n.name, n.env, p.code, g.name, v.spec->'cpu', v.spec->'memory_mb'
    FROM nodes_node n JOIN projects_project p ON p.id = n.project_id
    JOIN configuration_resourcegroup g ON g.id = n.resource_group_id
    JOIN nodes_nodeversion v ON v.id = n.current_version_id
    WHERE n.project_id = %(project)s
"""
# SQLite: the same sums, no percentiles, seconds from julianday.
SQLITE = {
    "EXTRACT(EPOCH FROM (a.finished_at - a.started_at))": (
        "((julianday(a.finished_at) - julianday(a.started_at)) * 86400.0)"
    ),
    "COUNT(*) FILTER (WHERE a.killed_for = 'memory')": (
        "SUM(CASE WHEN a.killed_for = 'memory' THEN 1 ELSE 0 END)"
    ),
    "(v.spec->>'cpu')::float": "CAST(json_extract(v.spec, '$.cpu') AS REAL)",
    "v.spec->'cpu'": "json_extract(v.spec, '$.cpu')",
    "v.spec->'memory_mb'": "json_extract(v.spec, '$.memory_mb')",
}


def _sqlite(sql: str) -> str:
    if "percentile_cont" in sql:
        head, _, rest = sql.partition(",\n           percentile_cont")
        sql = head + "\n    FROM" + rest.split("\n    FROM", 1)[1]
    for postgres, sqlite in SQLITE.items():
        sql = sql.replace(postgres, sqlite)
    return sql


def _load(scale: str):
    """The project: NODES[scale] shell nodes with cpu and memory_mb allocations in three
    resource groups, and ATTEMPTS[scale] finished, measured attempts over DAYS days."""
    from apps.configuration.models import ResourceGroup
    from apps.nodes.models import Node, NodeVersion

    owner = common.bench_user()
    project = common.bench_project(PROJECT)
    wanted = ATTEMPTS[scale]
    from apps.instances.models import Attempt

    if Attempt.objects.filter(instance__project=project).count() == wanted:
        return project
    groups = [ResourceGroup.objects.get_or_create(name=name)[0] for name in GROUPS]
    count = NODES[scale]
    nodes = common.nodes_load(project, count=count, upstreams=lambda i: [], owner=owner)
    rng = random.Random(10)
    # Allocations and the usage each node really has (some lavish, some tight).
    profile = {}
    for index, (node_id, _) in enumerate(nodes):
        cpu = rng.choice((0.5, 1, 2, 4))
        memory = rng.choice((256, 512, 1024, 4096))
        profile[node_id] = (cpu * rng.uniform(0.1, 1.0), memory * rng.uniform(0.1, 1.0))
        version = Node.objects.get(pk=node_id).current_version
        spec = {**version.spec, "type": "shell", "cpu": cpu, "memory_mb": memory}
        NodeVersion.objects.filter(pk=version.pk).update(spec=spec)
        Node.objects.filter(pk=node_id).update(
            type="shell", resource_group=groups[index % len(groups)]
        )
    nodes_by_id = {
        n.pk: (n.current_version_id, n.resource_group_id)
        for n in Node.objects.filter(project=project)
    }
    node_ids = [node_id for node_id, _ in nodes]
    first = datetime.datetime.combine(
        END - datetime.timedelta(days=DAYS - 1), datetime.time(0), tzinfo=datetime.UTC
    )
    instances = wanted // 2
    # Spread over the range, the last retry an hour before its end.
    step = (datetime.timedelta(days=DAYS) - datetime.timedelta(hours=1)) / instances
    first_instance = common.next_id("instances_instance")

    def instance_rows():
        for n in range(instances):
            node_id = node_ids[n % len(node_ids)]
            version_id, group_id = nodes_by_id[node_id]
            scheduled = first + step * n
            yield (
                project.id,
                node_id,
                version_id,
                "prod",
                "recurring",
                scheduled.date(),
                scheduled,
                "succeeded",
                "",
                False,
                False,
                False,
                False,
                3,
                group_id,
                "{}",
                2,
                1,
                scheduled,
                scheduled,
                scheduled + datetime.timedelta(seconds=400),
                common.PUBLISHED_AT,
            )

    def attempt_rows():
        for n in range(instances):
            node_id = node_ids[n % len(node_ids)]
            cores, memory = profile[node_id]
            scheduled = first + step * n
            for number in (1, 2):
                started = scheduled + datetime.timedelta(seconds=200 * (number - 1))
                wall = 60 + (n * 7 + number) % 120
                roll = (n * 31 + number) % 100
                yield (
                    first_instance + n,
                    number,
                    "failed" if number == 1 else "succeeded",
                    "",
                    started,
                    started + datetime.timedelta(seconds=wall),
                    1 if number == 1 else 0,
                    round(cores * wall * (0.5 + roll / 100), 3),
                    round(memory * (0.6 + roll / 250), 1),
                    "",
                    0,
                    json.dumps({}),
                    None,
                    "memory" if roll == 0 and number == 1 else "",
                )

    with common.bulk_load("instances_instance"):
        common.load(
            "instances_instance",
            ["id", *common.INSTANCE_COLUMNS],
            ((first_instance + n, *row) for n, row in enumerate(instance_rows())),
        )
    common.sync_sequence("instances_instance")
    with common.bulk_load("instances_attempt"):
        common.load(
            "instances_attempt",
            [
                "instance_id",
                "number",
                "state",
                "reason",
                "started_at",
                "finished_at",
                "exit_code",
                "cpu_seconds",
                "peak_memory_mb",
                "worker",
                "log_size",
                "runtime",
                "timeout_alert_at",
                "killed_for",
            ],
            attempt_rows(),
        )
    common.analyze(vacuum=True)
    return project


def _raw(params: dict):
    statements = [RAW_NODES, RAW_GROUPS, RAW_INFO]
    if not common.is_postgresql():
        statements = [_sqlite(sql) for sql in statements]

    def query():
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql, params)
                cursor.fetchall()

    return query


def run(scale: str) -> list[dict]:
    common.check_scale(scale)
    project = _load(scale)
    user = common.bench_user()
    start = END - datetime.timedelta(days=DAYS - 1)
    scope = resources_scope(user=user, project=project)
    usage = resources_get(scope=scope, start=start, end=END)
    runs = sum(node.runs for node in usage.nodes)
    assert runs == ATTEMPTS[scale], (runs, ATTEMPTS[scale])
    first, after = (
        datetime.datetime.combine(day, datetime.time(0), tzinfo=project.tz)
        for day in (start, END + datetime.timedelta(days=1))
    )
    params = {"start": first, "end": after, "project": project.id}
    repeat = REPEAT[scale]
    value = common.p95(lambda: resources_get(scope=scope, start=start, end=END), repeat=repeat)
    baseline = common.p95(_raw(params), repeat=repeat)
    flags = usage.flag_counts
    return [
        common.result(
            id="B10",
            workload=WORKLOAD,
            figure=f"dashboard over {DAYS} days p95",
            value=value,
            baseline=baseline,
            unit="ms",
            goal="<= 2x",
            met=value <= 2 * baseline,
            note=(
                f"{runs:,} attempts, {len(usage.nodes):,} nodes; "
                f"{flags['under_provisioned']} under, {flags['over_provisioned']} over"
            ),
        )
    ]
