"""Reads of the operation log: who may see which entries, the filters, keyset pages."""

import datetime
from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.core.errors import ValidationFailed
from apps.core.pagination import Page, keyset_page
from apps.projects.selectors import projects_visible_to

from .choices import Result, Source
from .models import OperationLog

FILTER_FIELDS = ("user", "action", "object_type", "object_id", "result", "source", "since", "until")


def operations_visible_to(user) -> QuerySet[OperationLog]:
    """Superusers see every entry; others the entries of their projects and their own
    entries without a project."""
    if not user.is_authenticated:
        return OperationLog.objects.none()
    if user.is_superuser:
        return OperationLog.objects.all()
    return OperationLog.objects.filter(
        Q(project__in=projects_visible_to(user)) | Q(project__isnull=True, user=user)
    )


@dataclass(frozen=True)
class OperationFilters:
    user: str = ""
    action: str = ""
    object_type: str = ""
    object_id: str = ""
    result: str = ""
    source: str = ""
    since: str = ""
    until: str = ""

    @classmethod
    def from_query(cls, query) -> "OperationFilters":
        return cls(**{name: (query.get(name) or "").strip() for name in FILTER_FIELDS})


def _date(value: str, field: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise ValidationFailed(
            f"invalid {field}", [{"field": field, "message": "a date like 2026-01-31"}]
        ) from exc


def operation_filter(queryset: QuerySet, filters: OperationFilters) -> QuerySet:
    """Apply `filters`; dates are whole days in the current timezone, both ends included.
    Raises ValidationFailed naming every bad field."""
    errors = []
    if filters.result and filters.result not in Result.values:
        errors.append({"field": "result", "message": f"one of {', '.join(Result.values)}"})
    if filters.source and filters.source not in Source.values:
        errors.append({"field": "source", "message": f"one of {', '.join(Source.values)}"})
    bounds = {}
    for field in ("since", "until"):
        value = getattr(filters, field)
        if value:
            try:
                bounds[field] = _date(value, field)
            except ValidationFailed as exc:
                errors.extend(exc.errors)
    if bounds.get("since") and bounds.get("until") and bounds["since"] > bounds["until"]:
        errors.append({"field": "until", "message": "is before the from date"})
    if errors:
        raise ValidationFailed("invalid filters", errors)
    if filters.user:
        queryset = queryset.filter(username=filters.user)
    if filters.action:
        queryset = queryset.filter(action=filters.action)
    if filters.object_type:
        queryset = queryset.filter(object_type=filters.object_type)
    if filters.object_id:
        queryset = queryset.filter(object_id=filters.object_id)
    if filters.result:
        queryset = queryset.filter(result=filters.result)
    if filters.source:
        queryset = queryset.filter(source=filters.source)
    zone = timezone.get_current_timezone()
    if "since" in bounds:
        start = datetime.datetime.combine(bounds["since"], datetime.time.min, tzinfo=zone)
        queryset = queryset.filter(created_at__gte=start)
    if "until" in bounds:
        end = datetime.datetime.combine(
            bounds["until"] + datetime.timedelta(days=1), datetime.time.min, tzinfo=zone
        )
        queryset = queryset.filter(created_at__lt=end)
    return queryset


def operations_page(queryset: QuerySet, *, cursor: str | None, limit) -> Page:
    """Newest first, by (created_at, id)."""
    return keyset_page(queryset, cursor=cursor, limit=limit, order_field="created_at")


def operations_export(queryset: QuerySet, *, chunk_size: int = 500):
    """Every matching entry, newest first, read in chunks."""
    return queryset.order_by("-created_at", "-id").iterator(chunk_size=chunk_size)
