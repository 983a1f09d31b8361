"""Writes of cluster health: remembering the clusters seen in the broker."""

import datetime

from django.conf import settings

from apps.configuration import clusters as q_clusters
from apps.core import clock, times

from .models import ClusterSeen


def clusters_record(*, now: datetime.datetime | None = None, found: list | None = None) -> int:
    """Save every cluster whose status is in the broker now (its last heartbeat), and
    forget those not seen for OPSCENTER_CLUSTER_FORGET_HOURS. Answers how many were seen."""
    now = now or clock.now()
    found = q_clusters.clusters() if found is None else found
    for status in found:
        fields = {
            "host": status.host,
            "pid": status.pid,
            "status": status.status,
            "workers": status.workers,
            "started_at": status.started_at,
            "heartbeat_at": status.heartbeat_at,
        }
        if status.queue:
            fields["queue"] = status.queue
        # Only ever moves a heartbeat forward (two recorders at once are harmless).
        updated = ClusterSeen.objects.filter(
            cluster_id=status.cluster_id, heartbeat_at__lte=status.heartbeat_at
        ).update(**fields)
        if not updated:
            ClusterSeen.objects.get_or_create(
                cluster_id=status.cluster_id, defaults={**fields, "first_seen_at": now}
            )
    forget = now - datetime.timedelta(hours=settings.OPSCENTER_CLUSTER_FORGET_HOURS)
    ClusterSeen.objects.filter(heartbeat_at__lt=forget).delete()
    return len(found)


CLUSTER_DEAD = "cluster_dead"


def dead_clusters_alert(*, now: datetime.datetime | None = None) -> int:
    """The monitor's minute check: a system alert per dead cluster or real-time
    supervisor, resolved when it is back (or forgotten). Answers the alerts fired."""
    from apps.monitoring.alerts import system_alerts_sync

    from .selectors import health_get

    now = now or clock.now()
    health = health_get(now=now)
    current = {}
    for cluster in health.clusters:
        if not cluster.alive:
            current[f"cluster:{cluster.cluster_id}"] = (
                f"cluster {cluster.queue or '?'} on {cluster.host}:{cluster.pid} is dead",
                f"no heartbeat since {times.format_when(cluster.heartbeat_at)}",
            )
    for supervisor in health.supervisors:
        if not supervisor.alive:
            since = (
                times.format_when(supervisor.heartbeat_at) if supervisor.heartbeat_at else "ever"
            )
            current[f"supervisor:{supervisor.name}"] = (
                f"real-time supervisor {supervisor.name} is dead",
                f"no heartbeat since {since}",
            )
    fired, _ = system_alerts_sync(trigger=CLUSTER_DEAD, current=current, now=now)
    return len(fired)
