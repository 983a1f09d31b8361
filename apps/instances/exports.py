"""CSV export of an instance list: every row the filters match (not one page), read in
keyset batches so memory and each query stay small however long the list is."""

import csv
from collections.abc import Iterator

from django.db.models import QuerySet

from apps.core.pagination import keyset_page

from .models import Instance

BATCH_ROWS = 500

COLUMNS = [
    "id",
    "project",
    "node",
    "env",
    "kind",
    "biz_date",
    "scheduled_at",
    "state",
    "wait_reason",
    "paused",
    "forced",
    "dry_run",
    "priority",
    "resource_group",
    "owner",
    "attempts",
    "started_at",
    "finished_at",
    "duration_seconds",
]


class _Echo:
    """A file whose write() hands back the line, so csv.writer can feed a stream."""

    def write(self, value: str) -> str:
        return value


def _iso(value, tz) -> str:
    return value.astimezone(tz).isoformat() if value else ""


def _row(instance: Instance) -> list:
    tz = instance.project.tz
    return [
        instance.pk,
        instance.project.code,
        instance.node.name,
        instance.env,
        instance.kind,
        instance.biz_date.isoformat(),
        _iso(instance.scheduled_at, tz),
        instance.state,
        instance.wait_reason,
        str(instance.paused).lower(),
        str(instance.forced).lower(),
        str(instance.dry_run).lower(),
        instance.priority,
        instance.resource_group.name,
        instance.node.owner.get_username(),
        instance.attempt_count,
        _iso(instance.started_at, tz),
        _iso(instance.finished_at, tz),
        "" if instance.duration_seconds is None else instance.duration_seconds,
    ]


def instances_csv(
    queryset: QuerySet[Instance], *, order_field: str, descending: bool
) -> Iterator[str]:
    """The header and one line per instance, in the list's order (times ISO 8601 in each
    instance's project timezone)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS)
    queryset = queryset.select_related("node__owner").defer(
        "version__spec", "version__upstream_ids", "params"
    )
    cursor = None
    while True:
        page = keyset_page(
            queryset,
            cursor=cursor,
            limit=BATCH_ROWS,
            order_field=order_field,
            descending=descending,
        )
        for instance in page.items:
            yield writer.writerow(_row(instance))
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
