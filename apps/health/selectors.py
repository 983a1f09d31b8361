"""Reads of the cluster health page: every django-q2 cluster (live in the broker, or
remembered and silent: dead), every real-time supervisor, the tasks waiting in each
queue and the recently failed tasks.

A cluster is dead when its last heartbeat is older than OPSCENTER_CLUSTER_DEAD_SECONDS:
a live cluster's sentinel writes one every half second, and django-q2 drops the status
of a cluster that stopped writing within seconds, so a remembered cluster that is no
longer in the broker has stopped or died. A supervisor is dead when the heartbeat it
writes on its realtime nodes is older than the same threshold (or its poll, if longer).
"""

import datetime
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, Max
from django_q.models import Failure

from apps.configuration import clusters as q_clusters
from apps.core import clock
from apps.realtime.models import RealtimeSettings

from .models import ClusterSeen
from .services import clusters_record

FAILED_TASKS_SHOWN = 20


@dataclass
class ClusterHealth:
    cluster_id: str
    host: str
    pid: int
    queue: str  # "" when its workers have not said yet
    status: str  # django-q2's (Idle, Working, ...), or "dead"
    workers: int
    started_at: datetime.datetime | None
    heartbeat_at: datetime.datetime
    heartbeat_age_seconds: float
    alive: bool
    queued_tasks: int | None = None  # tasks waiting in its queue; None: unknown
    failed_tasks: int = 0  # failures of its queue among the recent ones


@dataclass
class SupervisorHealth:
    name: str  # host:pid
    host: str
    queues: list[str]  # the resource groups of the nodes it runs
    workers: int  # realtime nodes it runs
    heartbeat_at: datetime.datetime | None
    heartbeat_age_seconds: float | None
    alive: bool


@dataclass
class Health:
    now: datetime.datetime
    dead_after_seconds: float
    clusters: list[ClusterHealth] = field(default_factory=list)
    supervisors: list[SupervisorHealth] = field(default_factory=list)
    failed_tasks: list[Failure] = field(default_factory=list)
    broker_readable: bool = True

    @property
    def dead(self) -> int:
        return sum(not c.alive for c in self.clusters) + sum(not s.alive for s in self.supervisors)


def health_get(*, now: datetime.datetime | None = None) -> Health:
    now = now or clock.now()
    dead_after = settings.OPSCENTER_CLUSTER_DEAD_SECONDS
    health = Health(now=now, dead_after_seconds=dead_after)
    live = q_clusters.clusters()
    clusters_record(now=now, found=live)  # whatever is seen now is remembered
    live_ids = {c.cluster_id for c in live}
    failures = list(Failure.objects.order_by("-stopped")[:FAILED_TASKS_SHOWN])
    health.failed_tasks = failures
    failed_by_queue: dict[str, int] = {}
    for failure in failures:
        failed_by_queue[failure.cluster or ""] = failed_by_queue.get(failure.cluster or "", 0) + 1
    queue_sizes: dict[str, int | None] = {}
    for seen in ClusterSeen.objects.all():
        age = max((now - seen.heartbeat_at).total_seconds(), 0.0)
        alive = seen.cluster_id in live_ids and age <= dead_after
        if seen.queue not in queue_sizes:
            queue_sizes[seen.queue] = _queue_size(seen.queue) if seen.queue else None
        health.clusters.append(
            ClusterHealth(
                cluster_id=seen.cluster_id,
                host=seen.host,
                pid=seen.pid,
                queue=seen.queue,
                status=seen.status if alive else "dead",
                workers=seen.workers,
                started_at=seen.started_at,
                heartbeat_at=seen.heartbeat_at,
                heartbeat_age_seconds=round(age, 1),
                alive=alive,
                queued_tasks=queue_sizes[seen.queue],
                failed_tasks=failed_by_queue.get(seen.queue, 0),
            )
        )
    # The dead first: they are what the page is for.
    health.clusters.sort(key=lambda c: (c.alive, c.queue, c.host, c.pid))
    health.supervisors = _supervisors(now, dead_after)
    return health


def _queue_size(queue: str) -> int | None:
    """Tasks waiting in a django-q2 queue (OrmQ rows or the Redis list)."""
    try:
        from django_q.brokers import get_broker

        return get_broker(queue).queue_size()
    except Exception:  # a broker that is away: unknown, the page still answers
        return None


def _supervisors(now: datetime.datetime, dead_after: float) -> list[SupervisorHealth]:
    rows = (
        RealtimeSettings.objects.exclude(supervisor="")
        .values("supervisor")
        .annotate(nodes=Count("id"), last=Max("heartbeat_at"))
        .order_by("supervisor")
    )
    groups: dict[str, set[str]] = {}
    for name, group in RealtimeSettings.objects.exclude(supervisor="").values_list(
        "supervisor", "instance__resource_group__name"
    ):
        groups.setdefault(name, set()).add(group or "")
    found = []
    for row in rows:
        last = row["last"]
        age = max((now - last).total_seconds(), 0.0) if last else None
        found.append(
            SupervisorHealth(
                name=row["supervisor"],
                host=row["supervisor"].rsplit(":", 1)[0],
                queues=sorted(g for g in groups.get(row["supervisor"], ()) if g),
                workers=row["nodes"],
                heartbeat_at=last,
                heartbeat_age_seconds=round(age, 1) if age is not None else None,
                alive=age is not None and age <= dead_after,
            )
        )
    found.sort(key=lambda s: (s.alive, s.name))
    return found
