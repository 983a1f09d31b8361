"""B1 generation: N nodes (70% daily, 20% hourly, 10% every 15 minutes, ~2 upstreams
each, acyclic) -> one day's instances and edges through the nightly generator.

Baseline: binary COPY of the very rows the generator wrote (read back before the clock
starts), into the same tables with the same indexes, emptied in between.
"""

import datetime
import random

from django.db import connection

from apps.instances.generation import generate

from . import common

NODES = {"tiny": 200, "small": 10_000, "full": 100_000}
RUN_DATE = datetime.date(2026, 11, 22)
MEMORY_GOAL_MB = 1024
WORKLOAD = "generation"


def _upstreams(seed: int):
    rng = random.Random(seed)

    def pick(i: int) -> list[int]:
        # ~2 upstreams among the nodes made before: acyclic by construction.
        if i == 0:
            return []
        return sorted(rng.sample(range(i), min(i, 2)))

    return pick


def _rows(table: str, columns: list[tuple[str, str]]) -> list[tuple]:
    names = ", ".join(name for name, _ in columns)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {names} FROM {table} ORDER BY id")
        return cursor.fetchall()


def run(scale: str) -> list[dict]:
    common.check_scale(scale)
    owner = common.bench_user()
    project = common.bench_project("bench-gen")
    common.nodes_load(project, count=NODES[scale], upstreams=_upstreams(1), owner=owner)
    common.analyze()

    created = None

    def first():
        nonlocal created
        created = generate(run_date=RUN_DATE, projects=[project], trigger="bench")

    seconds = common.timed(first)
    # Measured before the baseline reads a copy of every row back into this process.
    generation_peak = common.peak_mb()
    second = None

    def again():
        nonlocal second
        second = generate(run_date=RUN_DATE, projects=[project], trigger="bench")

    second_seconds = common.timed(again)
    assert second.instances_created == 0 and second.edges_created == 0, second

    if common.is_postgresql():
        instance_columns = common.column_types("instances_instance")
        edge_columns = common.column_types("instances_instancedependency")
    else:
        instance_columns = [(f.column, "") for f in _fields("Instance")]
        edge_columns = [(f.column, "") for f in _fields("InstanceDependency")]
    instances = _rows("instances_instance", instance_columns)
    edges = _rows("instances_instancedependency", edge_columns)
    assert len(instances) == created.instances_created and len(edges) == created.edges_created

    def baseline():
        common.copy_binary("instances_instance", instance_columns, instances)
        common.copy_binary("instances_instancedependency", edge_columns, edges)

    common.truncate("instances_instancedependency", "instances_instance")
    baseline_seconds = common.timed(baseline)

    size = (
        f"{NODES[scale]:,} nodes -> {created.instances_created:,} instances, "
        f"{created.edges_created:,} edges"
    )
    return [
        common.result(
            id="B1",
            workload=WORKLOAD,
            figure="first run",
            value=seconds,
            baseline=baseline_seconds,
            unit="s",
            goal="<= 3x",
            met=seconds <= 3 * baseline_seconds,
            note=size,
        ),
        common.result(
            id="B1",
            workload=WORKLOAD,
            figure="second run (creates nothing)",
            value=second_seconds,
            baseline=baseline_seconds,
            unit="s",
            goal="<= 0.5x",
            met=second_seconds <= 0.5 * baseline_seconds,
        ),
        common.result(
            id="B1",
            workload=WORKLOAD,
            figure="peak memory of generation",
            value=generation_peak,
            baseline=None,
            unit="MB",
            goal=f"< {MEMORY_GOAL_MB} MB",
            met=generation_peak < MEMORY_GOAL_MB,
            peak_mb=generation_peak,
            note="process peak before the baseline's rows are read back",
        ),
    ]


def cleanup() -> None:
    """The day B1 made (1.5M pending instances at full scale) would sit at the top of
    B4's list and in every dispatcher pass of B2: each workload measures its own data."""
    common.truncate("instances_instancedependency", "instances_instance")


def _fields(model_name: str):
    from django.apps import apps

    model = apps.get_model("instances", model_name)
    # Generated columns are computed by the database, never written.
    return [f for f in model._meta.concrete_fields if not getattr(f, "generated", False)]
