"""Instance pages: the list, the detail, and the htmx partials that keep them live.

Views only parse the request, call selectors and render; every read goes through
apps.instances.selectors so the pages and the API agree on visibility and filters.
"""

from functools import wraps
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django_htmx.http import push_url

from apps.configuration.models import ResourceGroup
from apps.core.errors import NotFound, ValidationFailed
from apps.core.htmx import render_page_or_partial, stop_polling, triggered_by, wants_partial
from apps.core.pagination import Page, keyset_page
from apps.projects.selectors import projects_visible_to

from .choices import ACTIVE, AttemptState, InstanceKind, InstanceState, WaitReason
from .models import Attempt, Instance, InstanceDependency
from .selectors import (
    InstanceFilters,
    attempt_log,
    instance_filter,
    instance_get,
    instances_visible_to,
)

# The list table re-renders itself this often while something in it is queued or running.
LIST_POLL_SECONDS = 5
# The detail page's state panel: fast while it runs, slower while it waits.
LIVE_POLL_SECONDS_ACTIVE = 2
LIVE_POLL_SECONDS_WAITING = 5
# The most log text one answer carries: a page opens on the tail of a long log, and a
# poller catching up on a burst of output takes it in pieces of this size.
LOG_CHUNK_CHARS = 256 * 1024

TABLE_ID = "instance-table"


def refuses_bad_input(view):
    """A partial asked with a malformed parameter answers 422 naming it, never a 500."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except ValidationFailed as exc:
            message = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
            return HttpResponse(
                message or exc.detail, status=422, content_type="text/plain; charset=utf-8"
            )

    return wrapper


@login_required
def instance_list(request):
    filters = InstanceFilters.from_query(request.GET)
    queryset = instances_visible_to(request.user)
    if request.project is not None:
        queryset = queryset.filter(project=request.project)
    errors: list[dict] = []
    try:
        page = keyset_page(
            instance_filter(queryset, filters),
            cursor=request.GET.get("cursor") or None,
            limit=request.GET.get("limit"),
            order_field="scheduled_at",
        )
    except ValidationFailed as exc:
        errors = exc.errors or [{"field": "", "message": exc.detail}]
        page = Page(items=[], next_cursor=None)

    polling = any(instance.state in ACTIVE for instance in page.items)
    context = {
        "page": page,
        "filters": filters,
        "errors": errors,
        "polling": polling,
        "poll_seconds": LIST_POLL_SECONDS,
        "paged": bool(request.GET.get("cursor")),
        "state_choices": InstanceState.choices,
        "wait_choices": WaitReason.choices,
        "kind_choices": InstanceKind.choices,
        "resource_groups": ResourceGroup.objects.values_list("name", flat=True),
    }
    response = render_page_or_partial(
        request,
        page="instances/list.html",
        partial="instances/_table.html",
        context=context,
        status=422 if errors else 200,
    )
    if wants_partial(request):
        if triggered_by(request, TABLE_ID):
            if not polling and not errors:
                stop_polling(response)
        else:
            # A filter change or a page link: keep the address bar shareable, without
            # the empty fields a form submits.
            kept = [(key, value) for key, value in request.GET.items() if value]
            push_url(response, request.path + (f"?{urlencode(kept)}" if kept else ""))
    return response


@login_required
def instance_detail(request, instance_id: int):
    instance = _instance_or_404(request, instance_id)
    attempts = list(instance.attempts.order_by("number"))
    selected = _selected_attempt(request, attempts)
    upstream, upstream_hidden = _neighbours(request.user, instance, direction="upstream")
    downstream, downstream_hidden = _neighbours(request.user, instance, direction="downstream")
    context = {
        "instance": instance,
        "upstream": upstream,
        "upstream_hidden": upstream_hidden,
        "downstream": downstream,
        "downstream_hidden": downstream_hidden,
        **_live_context(instance, attempts, selected, follow="attempt" not in request.GET),
        **_log_context(selected),
    }
    return render(request, "instances/detail.html", context)


@login_required
@refuses_bad_input
def instance_live(request, instance_id: int):
    """The state panel of the detail page (facts and attempts), polled while the
    instance is not finished. When a new attempt starts and the page follows the latest
    one, the log panel is swapped for the new attempt's."""
    instance = _instance_or_404(request, instance_id)
    attempts = list(instance.attempts.order_by("number"))
    follow = "attempt" not in request.GET
    selected = _selected_attempt(request, attempts)
    seen = _int_param(request, "seen", default=0)
    context = _live_context(instance, attempts, selected, follow=follow)
    if follow and len(attempts) != seen:
        context.update(_log_context(selected), swap_log_panel=True)
    response = render(request, "instances/_live.html", context)
    if instance.is_finished:
        stop_polling(response)
    return response


@login_required
@refuses_bad_input
def instance_log(request, instance_id: int):
    """New log text of one attempt from `offset`, appended to the page's <pre>. Answers
    286 once the attempt has finished and all its text was sent, so the page stops asking."""
    instance = _instance_or_404(request, instance_id)
    number = request.GET.get("attempt", "")
    attempt = instance.attempts.filter(number=int(number)).first() if number.isdigit() else None
    if attempt is None:
        raise Http404(f"instance {instance_id} has no attempt {number!r}")
    offset = _int_param(request, "offset", default=0)
    # Read the state before the log: a finished attempt's log is complete, so what
    # follows is everything; a running one is read again on the next poll.
    finished = attempt.state != AttemptState.RUNNING
    context = {"instance": instance, **_log_context(attempt, offset=offset)}
    response = render(request, "instances/_log_append.html", context)
    if finished and not context["log_more"]:
        stop_polling(response)
    return response


# --- helpers -------------------------------------------------------------------------


def _instance_or_404(request, instance_id: int) -> Instance:
    try:
        return instance_get(user=request.user, instance_id=instance_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc


def _int_param(request, name: str, *, default: int) -> int:
    raw = request.GET.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit():
        raise ValidationFailed(
            f"invalid {name}", [{"field": name, "message": "a whole number of 0 or more"}]
        )
    return int(raw)


def _selected_attempt(request, attempts: list[Attempt]) -> Attempt | None:
    """?attempt=N chooses an attempt; without it, the latest one."""
    number = request.GET.get("attempt")
    if number is None:
        return attempts[-1] if attempts else None
    for attempt in attempts:
        if str(attempt.number) == number:
            return attempt
    raise Http404(f"no attempt {number!r}")


def _neighbours(user, instance: Instance, *, direction: str) -> tuple[list[dict], int]:
    """Upstream or downstream instances with their edge, and how many of them lie in
    projects the user cannot see (counted, never shown)."""
    if direction == "upstream":
        edges = InstanceDependency.objects.filter(downstream=instance)
        other = "upstream"
    else:
        edges = InstanceDependency.objects.filter(upstream=instance)
        other = "downstream"
    edges = edges.select_related(f"{other}__node", f"{other}__project").order_by(
        f"{other}__scheduled_at", f"{other}__id"
    )
    visible = (
        None if user.is_superuser else set(projects_visible_to(user).values_list("id", flat=True))
    )
    shown, hidden = [], 0
    for edge in edges:
        neighbour = getattr(edge, other)
        if visible is not None and neighbour.project_id not in visible:
            hidden += 1
            continue
        shown.append({"instance": neighbour, "removed": edge.removed})
    return shown, hidden


def _live_context(instance: Instance, attempts: list[Attempt], selected, *, follow: bool) -> dict:
    query = {"seen": len(attempts)}
    if not follow and selected is not None:
        query["attempt"] = selected.number
    active = instance.state in ACTIVE or instance.state in (
        InstanceState.STARTING,
        InstanceState.STOPPING,
    )
    return {
        "instance": instance,
        "attempts": attempts,
        "selected": selected,
        "live_query": urlencode(query),
        "live_poll_seconds": LIVE_POLL_SECONDS_ACTIVE if active else LIVE_POLL_SECONDS_WAITING,
    }


def _log_context(attempt: Attempt | None, *, offset: int | None = None) -> dict:
    """The log text to show from `offset` (default: near the end of a very long log, by
    the size the worker has written). One answer carries at most LOG_CHUNK_CHARS; while
    more is left (`log_more`) the page keeps asking, even after the attempt ended."""
    if attempt is None:
        return {
            "attempt": None,
            "log_text": "",
            "log_offset": 0,
            "log_skipped": 0,
            "log_more": False,
        }
    skipped = 0
    if offset is None:
        offset = skipped = max(attempt.log_size - LOG_CHUNK_CHARS, 0)
    # One character more than is sent tells whether anything is left.
    text, _ = attempt_log(attempt=attempt, offset=offset, max_chars=LOG_CHUNK_CHARS + 1)
    more = len(text) > LOG_CHUNK_CHARS
    text = text[:LOG_CHUNK_CHARS]
    return {
        "attempt": attempt,
        "log_text": text,
        "log_offset": offset + len(text),
        "log_skipped": skipped,
        "log_more": more,
    }
