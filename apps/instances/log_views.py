"""An attempt's log for the operator: a page that searches it (?q=, matches highlighted)
or shows its last lines (?tail=N), error lines marked, and its whole text as a
download streamed from its chunks."""

import re

from django.contrib.auth.decorators import login_required
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render

from apps.core.errors import ValidationFailed

from . import logs
from .models import Attempt, Instance
from .views import _instance_or_404


def _attempt(instance: Instance, raw: str | None) -> Attempt:
    """?attempt=N, or the latest attempt without it."""
    attempts = instance.attempts.order_by("-number")
    if raw in (None, ""):
        attempt = attempts.first()
    elif raw.isdigit():
        attempt = attempts.filter(number=int(raw)).first()
    else:
        attempt = None
    if attempt is None:
        raise Http404(f"instance {instance.pk} has no attempt {raw or ''}".strip())
    return attempt


@login_required
def instance_log_view(request, instance_id: int):
    instance = _instance_or_404(request, instance_id)
    attempt = _attempt(instance, request.GET.get("attempt"))
    errors: list[dict] = []
    query, tail = "", logs.TAIL_DEFAULT
    try:
        query = logs.search_query(request.GET.get("q"))
        tail = logs.tail_lines(request.GET.get("tail"))
    except ValidationFailed as exc:
        errors = exc.errors
    search = logs.log_search(attempt=attempt, query=query) if query and not errors else None
    lines = (
        search.lines if search else ([] if errors else logs.log_tail(attempt=attempt, lines=tail))
    )
    context = {
        "instance": instance,
        "attempt": attempt,
        "attempts": list(instance.attempts.order_by("number")),
        "query": query if not errors else request.GET.get("q", "")[: logs.SEARCH_MAX_CHARS],
        "tail": tail,
        "search": search,
        "lines": lines,
        "errors": errors,
        "error_lines": sum(1 for line in lines if line.is_error),
    }
    return render(request, "instances/log_view.html", context, status=400 if errors else 200)


@login_required
def instance_log_download(request, instance_id: int):
    """The attempt's whole log as a plain-text attachment, streamed chunk by chunk."""
    instance = _instance_or_404(request, instance_id)
    attempt = _attempt(instance, request.GET.get("attempt"))
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", instance.node.name)
    filename = f"{name}-{instance.pk}-attempt-{attempt.number}.log"
    response = StreamingHttpResponse(
        (text.encode() for text in logs.log_chunks(attempt)),
        content_type="text/plain; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
