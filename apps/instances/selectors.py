"""Reads of instances, shared by the pages and the API (one filter set serves both)."""

import datetime
from dataclasses import dataclass, fields

from django.db.models import QuerySet

from apps.core.errors import NotFound, ValidationFailed
from apps.projects.selectors import projects_visible_to

from .choices import InstanceKind, InstanceState, WaitReason
from .models import Attempt, AttemptLogChunk, Instance


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

    @classmethod
    def from_query(cls, query) -> "InstanceFilters":
        return cls(**{f.name: (query.get(f.name) or "").strip() for f in fields(cls)})


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
