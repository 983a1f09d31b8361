"""How long a node usually runs: the median of its last successful runs. One reading
for the `slower_than_usual` trigger and for baselines' predictions (SPEC 7.1, 7.3)."""

import statistics
from collections.abc import Iterable

from django.db import connection
from django.db.models import F, Window
from django.db.models.functions import RowNumber

from apps.instances.choices import AttemptState
from apps.instances.models import Attempt

LAST = 10  # successful runs a median is taken over

# PostgreSQL: per node, its instances newest first along instance_node_sched_idx and
# their successful attempts, stopping at the LAST-th: a node's long history is not read.
_LATERAL = """
SELECT n.id, EXTRACT(EPOCH FROM (r.finished_at - r.started_at))
FROM unnest(%s::bigint[]) AS n(id)
CROSS JOIN LATERAL (
    SELECT a.started_at, a.finished_at
    FROM instances_instance i JOIN instances_attempt a ON a.instance_id = i.id
    WHERE i.node_id = n.id AND a.state = %s AND a.finished_at IS NOT NULL
    ORDER BY i.scheduled_at DESC, i.id DESC
    LIMIT %s
) r
"""


def recent_durations(node_ids: Iterable[int], *, last: int = LAST) -> dict[int, list[float]]:
    """Seconds of each node's last `last` successful attempts (newest instances first);
    nodes without one are left out."""
    ids = sorted(set(node_ids))
    if not ids:
        return {}
    durations: dict[int, list[float]] = {}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_LATERAL, [ids, AttemptState.SUCCEEDED, last])
            for node_id, seconds in cursor.fetchall():
                durations.setdefault(node_id, []).append(float(seconds))
        return durations
    recent = (
        Attempt.objects.filter(
            state=AttemptState.SUCCEEDED,
            instance__node_id__in=ids,
            finished_at__isnull=False,
        )
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=F("instance__node_id"),
                order_by=[F("instance__scheduled_at").desc(), F("instance_id").desc()],
            )
        )
        .filter(rank__lte=last)
        .values_list("instance__node_id", "started_at", "finished_at")
    )
    for node_id, started, finished in recent:
        durations.setdefault(node_id, []).append((finished - started).total_seconds())
    return durations


def node_medians(node_ids: Iterable[int], *, at_least: int = 1) -> dict[int, float]:
    """Median seconds of each node's last LAST successful runs, for the nodes with at
    least `at_least` of them."""
    return {
        node_id: statistics.median(seconds)
        for node_id, seconds in recent_durations(node_ids).items()
        if len(seconds) >= at_least
    }
