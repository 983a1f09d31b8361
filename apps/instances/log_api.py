"""/api/instances/{id}/log/lines: an attempt's log searched (?q=) or its last lines
(?tail=N), error lines flagged; the same reads as the log page (apps.instances.logs)."""

from ninja import Field, Query, Router, Schema

from apps.core.errors import NotFound

from . import logs
from .selectors import instance_get

router = Router(tags=["instances"])


class LogLinesQuery(Schema):
    attempt: int | None = Field(None, description="attempt number; the latest without it")
    q: str = Field("", description="plain text searched case-insensitively")
    tail: str = Field("", description=f"the last N lines when q is empty (1-{logs.TAIL_MAX})")


class LogLineOut(Schema):
    number: int
    text: str
    error: bool = Field(description="matches error|exception|traceback|fatal")
    spans: list[list[int]] = Field(description="[start, end) of each match of q in text")


class LogLinesOut(Schema):
    attempt: int
    q: str
    matches: int | None = Field(description="matching lines in the whole log (with q)")
    truncated: bool
    lines: list[LogLineOut]


@router.get(
    "/{int:instance_id}/log/lines",
    response=LogLinesOut,
    summary="Search an attempt's log, or read its last lines",
)
def instance_log_lines(request, instance_id: int, query: Query[LogLinesQuery]):
    instance = instance_get(user=request.user, instance_id=instance_id)
    q = logs.search_query(query.q)
    tail = logs.tail_lines(query.tail)
    attempts = instance.attempts.order_by("-number")
    if query.attempt is not None:
        attempts = attempts.filter(number=query.attempt)
    attempt = attempts.first()
    if attempt is None:
        raise NotFound(
            f"instance {instance.pk} has no attempt {query.attempt or ''}".strip(),
            [{"field": "attempt", "message": "no such attempt"}],
        )
    if q:
        search = logs.log_search(attempt=attempt, query=q)
        lines, matches, truncated = search.lines, search.matches, search.truncated
    else:
        lines, matches, truncated = logs.log_tail(attempt=attempt, lines=tail), None, False
    return {
        "attempt": attempt.number,
        "q": q,
        "matches": matches,
        "truncated": truncated,
        "lines": [
            {**line.as_dict(), "spans": [list(span) for span in line.spans]} for line in lines
        ],
    }
