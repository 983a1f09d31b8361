"""Keyset (cursor) pagination: page 10,000 costs what page 1 costs.

A list is ordered by one column and then by id, both in the same direction. The
cursor encodes the last row's (value, id); the next page asks for rows strictly
after it, which an index on (column, id) — or on the filter columns plus id — serves.
"""

import base64
import datetime
import json
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from .errors import ValidationFailed

MAX_LIMIT = 500
DEFAULT_LIMIT = 50


@dataclass
class Page:
    items: list
    next_cursor: str | None


def _encode(value: Any, pk: int) -> str:
    if isinstance(value, datetime.datetime):
        value = {"dt": value.isoformat()}
    elif isinstance(value, datetime.date):
        value = {"d": value.isoformat()}
    raw = json.dumps([value, pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, pk = json.loads(raw)
        if isinstance(value, dict) and "dt" in value:
            value = datetime.datetime.fromisoformat(value["dt"])
        elif isinstance(value, dict) and "d" in value:
            value = datetime.date.fromisoformat(value["d"])
        return value, int(pk)
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise ValidationFailed(
            "invalid cursor", [{"field": "cursor", "message": "not a cursor this list gave"}]
        ) from exc


# For a list whose rows have no id of their own (an aggregate, such as the node groups):
# it pages on (value, another whole number) with these.
encode_cursor, decode_cursor = _encode, _decode


def parse_limit(limit: int | str | None) -> int:
    if limit in (None, ""):
        return DEFAULT_LIMIT
    try:
        value = int(limit)
    except (TypeError, ValueError):
        value = 0
    if not 1 <= value <= MAX_LIMIT:
        raise ValidationFailed(
            "invalid limit",
            [{"field": "limit", "message": f"a whole number from 1 to {MAX_LIMIT}"}],
        )
    return value


def keyset_page(
    queryset: QuerySet,
    *,
    cursor: str | None,
    limit: int | str | None,
    order_field: str = "id",
    descending: bool = True,
) -> Page:
    """One page of `queryset` ordered by (order_field, id), and the cursor of the next."""
    limit = parse_limit(limit)
    sign = "-" if descending else ""
    if order_field == "id":
        ordering = [f"{sign}id"]
    else:
        ordering = [f"{sign}{order_field}", f"{sign}id"]
    queryset = queryset.order_by(*ordering)
    if cursor:
        value, pk = _decode(cursor)
        op = "lt" if descending else "gt"
        if order_field == "id":
            queryset = queryset.filter(**{f"id__{op}": pk})
        else:
            # The first, redundant condition is the one an index on (column, id) can
            # seek to; the OR alone would make the database scan from the first page.
            queryset = queryset.filter(
                Q(**{f"{order_field}__{op}e": value}),
                Q(**{f"{order_field}__{op}": value}) | Q(**{order_field: value, f"id__{op}": pk}),
            )
    rows = list(queryset[: limit + 1])
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        if isinstance(last, dict):  # values() rows, which include the order field
            pk, value = last["id"], last[order_field]
        else:
            pk, value = last.pk, getattr(last, order_field)
        next_cursor = _encode(value, pk)
    return Page(items=rows, next_cursor=next_cursor)


def view_page(pager, queryset, query, **options) -> tuple[Page, list[dict]]:
    """A list page's rows: `pager(queryset, cursor=, limit=, **options)` read from the
    request's `query`. `queryset` may be a function making it, when filtering it can
    refuse a value. A bad filter, cursor or limit answers an empty page and the errors to
    show beside the filters (the page then answers 422), never a 500."""
    try:
        if callable(queryset):
            queryset = queryset()
        page = pager(
            queryset, cursor=query.get("cursor") or None, limit=query.get("limit"), **options
        )
    except ValidationFailed as exc:
        return Page(items=[], next_cursor=None), exc.errors or [
            {"field": "", "message": exc.detail}
        ]
    return page, []
