from typing import Any

from .choices import Result, Source
from .models import OperationLog


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
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    return OperationLog.objects.create(
        user=user if authenticated else None,
        username=user.get_username() if authenticated else "",
        source=source or Source.SYSTEM,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        project=project,
        detail=detail or {},
        result=result,
        message=message,
    )
