"""Reads of instances, shared by the pages and the API (one filter set serves both)."""

import datetime
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, fields

from django.db.models import QuerySet

from apps.core.errors import NotFound, ValidationFailed
from apps.core.pagination import Page, keyset_page
from apps.projects.selectors import projects_visible_to

from .choices import InstanceKind, InstanceState, WaitReason
from .models import Attempt, AttemptLogChunk, Instance, duration_seconds


def instances_visible_to(user) -> QuerySet[Instance]:
    qs = Instance.objects.select_related("node", "project", "resource_group", "version")
    if user.is_superuser:
        return qs
    return qs.filter(project__in=projects_visible_to(user))


def instance_get(*, user, instance_id: int) -> Instance:
    instance = instances_visible_to(user).filter(pk=instance_id).first()
    if instance is None:
        raise NotFound(f"instance {instance_id} not found")
    return instance


@dataclass
class InstanceFilters:
    """Filters of SPEC section 12 for /api/instances and the instance list page. Empty
    strings mean "no filter"; `state` also accepts a wait reason (waiting_upstream...)."""

    kind: str = ""
    project: str = ""
    node: str = ""  # a node id, or a node name (exact)
    biz_date: str = ""
    state: str = ""
    owner: str = ""
    resource_group: str = ""
    backfill: str = ""
    # any, or a baseline's id: the instances on today's path of a baseline (apps.baselines)
    baseline: str = ""

    @classmethod
    def from_query(cls, query) -> "InstanceFilters":
        return cls(**{f.name: (query.get(f.name) or "").strip() for f in fields(cls)})


# Filters other apps provide: name -> apply(queryset, value) -> queryset, raising
# ValidationFailed for a value it does not take (apps.baselines registers `baseline`).
FILTER_PROVIDERS: dict[str, Callable] = {}


def _refuse(field: str, message: str):
    raise ValidationFailed(f"invalid {field}", [{"field": field, "message": message}])


def instance_filter(queryset: QuerySet[Instance], filters: InstanceFilters) -> QuerySet[Instance]:
    if filters.kind:
        if filters.kind not in InstanceKind.values:
            _refuse("kind", f"one of {', '.join(InstanceKind.values)}")
        queryset = queryset.filter(kind=filters.kind)
    if filters.project:
        queryset = queryset.filter(project__code=filters.project)
    if filters.node:
        if filters.node.isdigit():
            queryset = queryset.filter(node_id=int(filters.node))
        else:
            queryset = queryset.filter(node__name=filters.node)
    if filters.biz_date:
        try:
            day = datetime.date.fromisoformat(filters.biz_date)
        except ValueError:
            _refuse("biz_date", "a date as YYYY-MM-DD")
        queryset = queryset.filter(biz_date=day)
    if filters.state:
        if filters.state in WaitReason.values:
            queryset = queryset.filter(state=InstanceState.PENDING, wait_reason=filters.state)
        elif filters.state in InstanceState.values:
            queryset = queryset.filter(state=filters.state)
        else:
            _refuse("state", f"one of {', '.join(InstanceState.values + WaitReason.values)}")
    if filters.owner:
        queryset = queryset.filter(node__owner__username=filters.owner)
    if filters.resource_group:
        queryset = queryset.filter(resource_group__name=filters.resource_group)
    if filters.backfill:
        # true / false: backfill instances or not; a number: one backfill run's instances.
        if filters.backfill == "true":
            queryset = queryset.filter(kind=InstanceKind.BACKFILL)
        elif filters.backfill == "false":
            queryset = queryset.exclude(kind=InstanceKind.BACKFILL)
        elif filters.backfill.isdigit():
            queryset = queryset.filter(backfill_id=int(filters.backfill))
        else:
            _refuse("backfill", "true, false or a backfill run's id")
    if filters.baseline:
        if "baseline" not in FILTER_PROVIDERS:
            _refuse("baseline", "baselines are not installed")
        queryset = FILTER_PROVIDERS["baseline"](queryset, filters.baseline)
    return queryset


def attempt_log(
    *, attempt: Attempt, offset: int = 0, max_chars: int | None = None
) -> tuple[str, int]:
    """The attempt's log from character `offset` (at most `max_chars` of it), and the
    offset to ask for next."""
    start = _chunk_start(attempt, offset)
    chunks = (
        AttemptLogChunk.objects.filter(attempt=attempt, offset__gte=start)
        .order_by("offset")
        .values_list("offset", "text")
    )
    pieces, size = [], 0
    for chunk_offset, chunk_text in chunks.iterator(chunk_size=20):
        piece = chunk_text[max(0, offset - chunk_offset) :]
        pieces.append(piece)
        size += len(piece)
        if max_chars is not None and size >= max_chars:
            break
    text = "".join(pieces)
    if max_chars is not None:
        text = text[:max_chars]
    return text, offset + len(text)


def _chunk_start(attempt: Attempt, offset: int) -> int:
    """Offset of the chunk holding character `offset` (0 when none does)."""
    start = (
        AttemptLogChunk.objects.filter(attempt=attempt, offset__lte=offset)
        .order_by("-offset")
        .values_list("offset", flat=True)
        .first()
    )
    return start or 0


# --- list rows ----------------------------------------------------------------------

ROW_FIELDS = (
    "id",
    "project__code",
    "project__timezone",
    "node_id",
    "node__name",
    "env",
    "version__number",
    "kind",
    "biz_date",
    "scheduled_at",
    "state",
    "wait_reason",
    "paused",
    "forced",
    "dry_run",
    "priority",
    "lent_priority",
    "lent_by_id",
    "resource_group__name",
    "attempt_count",
    "started_at",
    "finished_at",
)


@dataclass(slots=True)
class InstanceRow:
    """An instance as a list shows it, read as plain values (no model objects: a page of
    them is the hot path of the busiest page and API call); times in its project's
    timezone."""

    id: int
    project: str
    tz: zoneinfo.ZoneInfo
    node: int
    node_name: str
    env: str
    version: int
    kind: str
    biz_date: datetime.date
    scheduled_at: datetime.datetime
    state: str
    wait_reason: str
    paused: bool
    forced: bool
    dry_run: bool
    priority: int
    lent_priority: int | None
    lent_by: int | None
    resource_group: str
    attempt_count: int
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None

    @classmethod
    def from_values(cls, v: dict) -> "InstanceRow":
        tz = zoneinfo.ZoneInfo(v["project__timezone"])
        return cls(
            id=v["id"],
            project=v["project__code"],
            tz=tz,
            node=v["node_id"],
            node_name=v["node__name"],
            env=v["env"],
            version=v["version__number"],
            kind=v["kind"],
            biz_date=v["biz_date"],
            scheduled_at=v["scheduled_at"].astimezone(tz),
            state=v["state"],
            wait_reason=v["wait_reason"],
            paused=v["paused"],
            forced=v["forced"],
            dry_run=v["dry_run"],
            priority=v["priority"],
            lent_priority=v["lent_priority"],
            lent_by=v["lent_by_id"],
            resource_group=v["resource_group__name"],
            attempt_count=v["attempt_count"],
            started_at=v["started_at"] and v["started_at"].astimezone(tz),
            finished_at=v["finished_at"] and v["finished_at"].astimezone(tz),
        )

    @property
    def duration_seconds(self) -> float | None:
        return duration_seconds(self.started_at, self.finished_at)

    def as_api(self) -> dict:
        """The InstanceOut shape of the API, ready for JSON."""
        return {
            "id": self.id,
            "project": self.project,
            "node": self.node,
            "node_name": self.node_name,
            "version": self.version,
            "kind": self.kind,
            "biz_date": self.biz_date.isoformat(),
            "scheduled_at": self.scheduled_at.isoformat(),
            "state": self.state,
            "wait_reason": self.wait_reason,
            "paused": self.paused,
            "forced": self.forced,
            "priority": self.priority,
            "lent_priority": self.lent_priority,
            "lent_by": self.lent_by,
            "resource_group": self.resource_group,
            "started_at": self.started_at and self.started_at.isoformat(),
            "finished_at": self.finished_at and self.finished_at.isoformat(),
            "duration_seconds": self.duration_seconds,
        }


def instance_rows_page(
    queryset: QuerySet[Instance],
    *,
    cursor: str | None,
    limit: int | str | None,
    order_field: str = "scheduled_at",
    descending: bool = True,
) -> Page:
    """One keyset page of `queryset` as InstanceRow items."""
    page = keyset_page(
        queryset.values(*ROW_FIELDS),
        cursor=cursor,
        limit=limit,
        order_field=order_field,
        descending=descending,
    )
    page.items = [InstanceRow.from_values(values) for values in page.items]
    return page
