"""B3 chain latency: a chain of `virtual` instances on a real django-q2 cluster with the
default (ORM) broker; per hop, the child's started_at minus its parent's finished_at.
Baseline: one database round trip (SELECT 1).

The finishing worker runs a ready child of its own resource group itself, so most hops
never pass through the broker; every INLINE_CHAIN_LIMIT hops one does (and waits for the
broker's poll)."""

import os
import statistics
import time

from django.db import connection

from bench import common
from bench.b2_dispatch import SCHEDULED, clusters_start

SIZES = {"tiny": 20, "small": 200, "full": 500}


def round_trip_ms(repeat: int = 200) -> float:
    samples = []
    with connection.cursor() as cursor:
        for _ in range(repeat):
            start = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def chain_create(length: int) -> list:
    from apps.instances.models import InstanceDependency
    from tests.factories import node_create

    owner = common.bench_user()
    project = common.bench_project("b3")
    node = node_create(project, "b3-link", owner=owner)
    instances = common.ready_instances([node], length, scheduled_at=SCHEDULED)
    InstanceDependency.objects.bulk_create(
        [
            InstanceDependency(downstream=child, upstream=parent)
            for parent, child in zip(instances, instances[1:], strict=False)
        ]
    )
    return [i.pk for i in instances]


def run(scale: str) -> list[dict]:
    from apps.instances import dispatcher
    from apps.instances.models import Instance

    length = SIZES[common.check_scale(scale)]
    ids = chain_create(length)
    baseline = round_trip_ms()
    os.environ.pop("REDIS_URL", None)
    clusters = clusters_start(["default"], workers=2, env={})
    try:
        dispatcher.tick()
        deadline = time.monotonic() + 120
        while Instance.objects.filter(pk=ids[-1], state="succeeded").count() == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("B3: the chain did not finish in time")
            time.sleep(0.1)
    finally:
        for c in clusters:
            c.stop()
    times = dict(Instance.objects.filter(pk__in=ids).values_list("pk", "started_at"))
    finished = dict(Instance.objects.filter(pk__in=ids).values_list("pk", "finished_at"))
    hops = sorted(
        (times[child] - finished[parent]).total_seconds() * 1000
        for parent, child in zip(ids, ids[1:], strict=False)
    )
    p50 = statistics.median(hops)
    p99 = hops[min(len(hops) - 1, int(round(0.99 * (len(hops) - 1))))]
    note = f"{length} instances, ORM broker, 1 cluster x 2 workers"
    return [
        common.result(
            id="B3",
            workload="chain latency",
            figure="hop p50",
            value=p50,
            baseline=baseline,
            unit="ms",
            goal="< 100 ms",
            met=p50 < 100,
            note=note,
        ),
        common.result(
            id="B3",
            workload="chain latency",
            figure="hop p99",
            value=p99,
            baseline=baseline,
            unit="ms",
            goal="< 1000 ms",
            met=p99 < 1000,
            note=note,
        ),
    ]
