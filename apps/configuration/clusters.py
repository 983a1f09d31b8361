"""Which django-q2 clusters serve which queue, and their last heartbeat.

A cluster's sentinel saves its status (django_q.status.Stat: host, pids, workers, state,
start time, and the time of saving: its heartbeat) in the broker every half second,
where it lives 3 seconds: Redis, or the ORM broker's cache (Q_CLUSTER "cache", a file
cache in the runtime directory, so that every process of one machine sees it). A Stat
does not say which queue its cluster serves; each worker process says so when it starts
and then at most every QUEUE_RECORD_REFRESH seconds, in the same store, under its
sentinel's host and pid (signals.py). Resource group pages read both.
"""

import datetime
import os
import socket
import time
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

QUEUE_RECORD_PREFIX = "opscenter:cluster-queue"
# How long a cluster's queue record lives, and how often its workers write it again.
QUEUE_RECORD_SECONDS = 24 * 3600
QUEUE_RECORD_REFRESH = 600

_last_recorded = 0.0


def queue_of_group(name: str) -> str:
    """The django-q2 queue a resource group's instances are handed to."""
    return settings.OPSCENTER_GROUP_QUEUES.get(name, name)


def _key(host: str, sentinel_pid: int) -> str:
    return f"{QUEUE_RECORD_PREFIX}:{host}:{sentinel_pid}"


def _store_set(key: str, value: str, timeout: int) -> None:
    from django_q.brokers import get_broker

    broker = get_broker()
    if broker.__class__.__name__ == "Redis":
        broker.connection.set(key, value, ex=timeout)
        return
    cache = broker.get_cache()
    if cache is not None:
        cache.set(key, value, timeout)


def _store_get_many(keys: list[str]) -> dict[str, str]:
    from django_q.brokers import get_broker

    if not keys:
        return {}
    broker = get_broker()
    if broker.__class__.__name__ == "Redis":
        values = broker.connection.mget(keys)
        return {
            k: v.decode() if isinstance(v, bytes) else v
            for k, v in zip(keys, values, strict=True)
            if v is not None
        }
    cache = broker.get_cache()
    return cache.get_many(keys) if cache is not None else {}


def record_queue(*, force: bool = False) -> None:
    """In a worker process: say which queue this worker's cluster serves (its sentinel
    is the worker's parent). Cheap when nothing is due: at most every
    QUEUE_RECORD_REFRESH seconds unless `force`."""
    global _last_recorded
    from django_q.conf import Conf

    now = time.monotonic()
    if not force and now - _last_recorded < QUEUE_RECORD_REFRESH:
        return
    _store_set(_key(socket.gethostname(), os.getppid()), Conf.CLUSTER_NAME, QUEUE_RECORD_SECONDS)
    _last_recorded = now


@dataclass
class ClusterStatus:
    cluster_id: str
    host: str
    pid: int
    sentinel: int
    queue: str | None  # None: not known (its workers have not said yet)
    status: str
    workers: int
    started_at: datetime.datetime | None
    heartbeat_at: datetime.datetime
    task_queue_size: int

    @property
    def heartbeat_age_seconds(self) -> float:
        return max((timezone.now() - self.heartbeat_at).total_seconds(), 0.0)


def clusters() -> list[ClusterStatus]:
    """Every cluster whose status is in the broker now (the ones that stopped or died
    are gone within seconds), with the queue it serves when known. Empty when the
    broker cannot be read."""
    try:
        from django_q.status import Stat

        stats = Stat.get_all()
        keys = [_key(stat.host, stat.sentinel) for stat in stats]
        queues = _store_get_many(keys)
    except Exception:  # a broker that is away shows no clusters; the page still answers
        return []
    found = []
    for stat, key in zip(stats, keys, strict=True):
        found.append(
            ClusterStatus(
                cluster_id=str(stat.cluster_id),
                host=stat.host,
                pid=stat.pid,
                sentinel=stat.sentinel,
                queue=queues.get(key),
                status=str(stat.status),
                workers=len(stat.workers or []),
                started_at=stat.tob,
                heartbeat_at=stat.timestamp,
                task_queue_size=stat.task_q_size or 0,
            )
        )
    return sorted(found, key=lambda c: (c.queue or "", c.host, c.pid))


def clusters_serving(group_name: str, *, found: list[ClusterStatus] | None = None):
    """The clusters serving a group's queue."""
    queue = queue_of_group(group_name)
    return [c for c in (clusters() if found is None else found) if c.queue == queue]
