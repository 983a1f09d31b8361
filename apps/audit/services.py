from collections.abc import Callable
from typing import Any

from django.db import transaction

from apps.core.errors import OpscenterError

from .choices import Result, Source
from .models import OperationLog


def _entry(*, user, source: str, action: str, object_type: str, **fields) -> OperationLog:
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    return OperationLog(
        user=user if authenticated else None,
        username=user.get_username() if authenticated else "",
        source=source or Source.SYSTEM,
        action=action,
        object_type=object_type,
        **fields,
    )


def operation_record(
    *,
    user,
    source: str,
    action: str,
    object_type: str,
    object_id: Any = "",
    project=None,
    detail: dict | None = None,
    result: str = Result.OK,
    message: str = "",
) -> OperationLog:
    entry = _entry(
        user=user,
        source=source,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        project=project,
        detail=detail or {},
        result=result,
        message=message,
    )
    entry.save()
    return entry


def operation_records(
    *, user, source: str, action: str, object_type: str, rows: list[dict]
) -> list[OperationLog]:
    """One entry per object that an operation changed besides its own (the instances a
    rerun reset downstream), written at once. Each row gives `object_id`, `project_id`,
    `detail` and `message`; the result is ok."""
    return OperationLog.objects.bulk_create(
        [
            _entry(
                user=user,
                source=source,
                action=action,
                object_type=object_type,
                object_id=str(row["object_id"]),
                project_id=row["project_id"],
                detail=row.get("detail") or {},
                message=row.get("message", ""),
            )
            for row in rows
        ],
        batch_size=500,
    )


def operation_run(
    *,
    by,
    source: str,
    action: str,
    object_type: str,
    object_id: Any,
    project,
    authorize: Callable[[], None],
    change: Callable[[], dict],
    refused_detail: Callable[[], dict] | None = None,
) -> dict:
    """Every operation's frame: `authorize` (raises to refuse), then `change` (returns
    what to log, or raises to refuse) in one transaction with its log entry. A refusal
    is logged too, outside the rolled-back transaction, and raised again.

    `object_id` may be a callable read after `change` (a create learns its id only
    then); a refused create is logged without one."""
    record = dict(user=by, source=source, action=action, object_type=object_type, project=project)
    try:
        authorize()
        with transaction.atomic():
            detail = change()
            made_id = object_id() if callable(object_id) else object_id
            operation_record(**record, object_id=made_id, detail=detail)
    except OpscenterError as exc:
        operation_record(
            **record,
            object_id="" if callable(object_id) else object_id,
            detail=refused_detail() if refused_detail else {},
            result=Result.REFUSED,
            message=exc.detail,
        )
        raise
    return detail
