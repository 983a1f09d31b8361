"""How long a node usually runs: the median of its last successful runs. One reading
for the `slower_than_usual` trigger and for baselines' predictions (SPEC 7.1, 7.3)."""

import datetime
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


class MedianCache:
    """Medians kept in this process between passes: a pass over thousands of nodes every
    minute need not read their history every minute, since a median of 10 runs moves only
    when a run succeeds. An entry (also "no history") is read again once `max_age` old,
    or at once after forget() (the event consumer forgets a node whose run succeeded)."""

    def __init__(self, max_age: datetime.timedelta, *, at_least: int = 1, size: int = 200_000):
        self.max_age = max_age
        self.at_least = at_least
        self.size = size
        self._entries: dict[int, tuple[float | None, datetime.datetime]] = {}

    def get(self, node_ids: Iterable[int], *, now: datetime.datetime) -> dict[int, float]:
        """The medians of those of `node_ids` that have one."""
        ids = set(node_ids)
        stale = {
            n for n in ids if n not in self._entries or now - self._entries[n][1] > self.max_age
        }
        if stale:
            if len(self._entries) + len(stale) > self.size:
                self._entries.clear()
            read = node_medians(stale, at_least=self.at_least)
            for n in stale:
                self._entries[n] = (read.get(n), now)
        found = {}
        for n in ids:
            median = self._entries[n][0]
            if median is not None:
                found[n] = median
        return found

    def __len__(self) -> int:
        return len(self._entries)

    def forget(self, node_ids: Iterable[int]) -> None:
        for n in node_ids:
            self._entries.pop(n, None)

    def clear(self) -> None:
        self._entries.clear()
