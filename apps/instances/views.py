"""Instance pages: the lists per kind (filters, sorting, CSV, batches), the detail with its
operations, diagnosis, graph and operation log, the full-screen graph, and the htmx
partials that keep them live.

Views only parse the request, call selectors and operations, and render; every read
goes through apps.instances.selectors so the pages and the API agree on visibility and
filters, and every change through apps.instances.operations.
"""

import datetime
from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import (
    Http404,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST
from django_htmx.http import push_url

from apps.accounts.timezones import project_page
from apps.audit.choices import Result
from apps.audit.models import OperationLog
from apps.configuration.models import ResourceGroup
from apps.core import clock, times
from apps.core.errors import NotFound, OpscenterError, ValidationFailed
from apps.core.htmx import render_page_or_partial, stop_polling, triggered_by, wants_partial
from apps.core.pagination import Page, keyset_page
from apps.nodes.operations import node_resume
from apps.projects.choices import Role
from apps.projects.models import Membership
from apps.projects.selectors import projects_visible_to

from . import operations
from .actions import (
    ACTIONS,
    BATCH_ACTIONS,
    RERUN_ACTIONS,
    Roles,
    offered,
    refusal,
    rerun_policy_refusal,
    state_allows,
)
from .choices import (
    ACTIVE,
    DONE_FOR_DOWNSTREAM,
    AttemptState,
    InstanceKind,
    InstanceState,
    WaitReason,
)
from .diagnosis import diagnose
from .exports import instances_csv
from .forms import BatchForm, OperationForm
from .graph import MAX_LEVELS, InstanceGroup, graph_grouped, instance_graph
from .logs import log_html
from .models import Attempt, Instance, InstanceDependency
from .params import run_parameters
from .selectors import (
    InstanceFilters,
    attempt_log,
    instance_filter,
    instance_get,
    instance_rows_page,
    instances_visible_to,
)
from .tables import instance_rows_html

# The list table re-renders itself this often while something in it is queued or running.
LIST_POLL_SECONDS = 5
# The detail page's state panel: fast while it runs, slower while it waits.
LIVE_POLL_SECONDS_ACTIVE = 2
LIVE_POLL_SECONDS_WAITING = 5
# Diagnosis and neighbours change when others move: asked again this often.
PANEL_POLL_SECONDS = 5
# A graph with something queued or running is asked again sooner than one that only waits.
GRAPH_POLL_SECONDS_ACTIVE = 5
GRAPH_POLL_SECONDS_WAITING = 15
# The most log text one answer carries: a page opens on the tail of a long log, and a
# poller catching up on a burst of output takes it in pieces of this size.
LOG_CHUNK_CHARS = 256 * 1024
OPERATIONS_PAGE = 10
# Depth of the graph on the detail page, and first shown on the full-screen graph.
DETAIL_GRAPH_DEPTH = 2
FULL_GRAPH_DEPTH = 3

TABLE_ID = "instance-table"
# The event static/js/dag.js listens for to ask for its data again at once.
GRAPH_REFRESH_EVENT = "opscenter:graph-refresh"

# Columns the list sorts by: those keyset pagination serves (not null, indexed with id).
SORTS = {
    "scheduled_at": "Scheduled at",
    "biz_date": "Biz date",
    "priority": "Priority",
    "id": "ID",
}
DEFAULT_SORT = "-scheduled_at"


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


# --- the list --------------------------------------------------------------------------


def _sort(raw: str) -> tuple[str, bool]:
    """?sort=priority or ?sort=-priority -> (column, descending)."""
    raw = raw or DEFAULT_SORT
    field = raw.removeprefix("-")
    if field not in SORTS:
        raise ValidationFailed(
            "invalid sort",
            [{"field": "sort", "message": f"one of {', '.join(SORTS)}, optionally with a -"}],
        )
    return field, raw.startswith("-")


def _listed(request) -> tuple[InstanceFilters, object]:
    """The filters of the request and the instances they select (visible ones only)."""
    filters = InstanceFilters.from_query(request.GET)
    queryset = instances_visible_to(request.user)
    if request.project is not None:
        queryset = queryset.filter(project=request.project)
    return filters, instance_filter(queryset, filters)


def _query(request, **changes) -> str:
    """The request's non-empty parameters with `changes` (None drops one), as ?a=b (or
    nothing when none is left)."""
    params = {key: value for key, value in request.GET.items() if value}
    for key, value in changes.items():
        if value in (None, ""):
            params.pop(key, None)
        else:
            params[key] = value
    params.pop("project", None)  # the switcher keeps it in the session
    return f"?{urlencode(params)}" if params else ""


def _kind_tabs(request, filters: InstanceFilters) -> list[dict]:
    tabs = [("", "All kinds")] + list(InstanceKind.choices)
    return [
        {
            "value": value,
            "label": label,
            "url": request.path + _query(request, kind=value, cursor=None),
            "active": filters.kind == value,
        }
        for value, label in tabs
    ]


def _sort_links(request, field: str, descending: bool) -> dict:
    """For each sortable column: the link that sorts by it (again: the other way round)
    and the arrow shown when it is the current order."""
    links = {}
    for name in SORTS:
        current = name == field
        next_sort = name if (current and descending) else f"-{name}"
        links[name] = {
            "url": _query(request, sort=next_sort, cursor=None),
            "arrow": ("↓" if descending else "↑") if current else "",
            "aria": ("descending" if descending else "ascending") if current else "none",
        }
    return links


@login_required
def instance_list(request):
    errors: list[dict] = []
    field, descending = "scheduled_at", True
    try:
        field, descending = _sort(request.GET.get("sort", ""))
        filters, queryset = _listed(request)
        page = instance_rows_page(
            queryset,
            cursor=request.GET.get("cursor") or None,
            limit=request.GET.get("limit"),
            order_field=field,
            descending=descending,
        )
    except ValidationFailed as exc:
        filters = InstanceFilters.from_query(request.GET)
        errors = exc.errors or [{"field": "", "message": exc.detail}]
        page = Page(items=[], next_cursor=None)

    polling = any(row.state in ACTIVE for row in page.items)
    partial = wants_partial(request)
    is_poll = partial and triggered_by(request, TABLE_ID)
    may_batch = _may_operate_somewhere(request.user)
    context = {
        "page": page,
        "rows_html": instance_rows_html(
            page.items, may_batch=may_batch, show_project=request.project is None
        ),
        "filters": filters,
        "errors": errors,
        "polling": polling,
        "poll_seconds": LIST_POLL_SECONDS,
        "paged": bool(request.GET.get("cursor")),
        "state_choices": InstanceState.choices,
        "wait_choices": WaitReason.choices,
        "kind_tabs": _kind_tabs(request, filters),
        "kind_label": dict(InstanceKind.choices).get(filters.kind, ""),
        "sort_links": _sort_links(request, field, descending),
        "export_url": reverse("instances:export") + _query(request, cursor=None, limit=None),
        "batch_actions": [ACTIONS[name] for name in BATCH_ACTIONS],
        "may_batch": may_batch,
        "resource_groups": ResourceGroup.objects.values_list("name", flat=True),
        # A filter change also redraws the kind tabs (their links carry the filters).
        "swap_tabs": partial and not is_poll,
    }
    response = render_page_or_partial(
        request,
        page="instances/list.html",
        partial="instances/_table.html",
        context=context,
        status=422 if errors else 200,
    )
    if partial:
        if is_poll:
            if not polling and not errors:
                stop_polling(response)
        else:
            # A filter change or a page link: keep the address bar shareable, without
            # the empty fields a form submits.
            kept = [(key, value) for key, value in request.GET.items() if value]
            push_url(response, request.path + (f"?{urlencode(kept)}" if kept else ""))
    return response


def _listable(queryset):
    # A table needs the version's number, not its (possibly large) spec and script.
    return queryset.defer("version__spec", "version__upstream_ids", "params")


def _may_operate_somewhere(user) -> bool:
    """Whether the list offers batch actions: only to someone who may operate in at least
    one project (a developer operates on dev instances)."""
    if user.is_superuser:
        return True
    return Membership.objects.filter(
        user=user, role__in=[Role.DEVELOPER, Role.OPERATOR, Role.ADMIN]
    ).exists()


@login_required
def instance_export(request):
    """Every instance the list's filters match, as CSV, in the list's order."""
    try:
        field, descending = _sort(request.GET.get("sort", ""))
        _filters, queryset = _listed(request)
        # Refuse a bad filter now, as a 422, not halfway through a download.
        queryset.exists()
    except ValidationFailed as exc:
        message = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
        return HttpResponse(
            message or exc.detail, status=422, content_type="text/plain; charset=utf-8"
        )
    stamp = clock.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(
        instances_csv(queryset, order_field=field, descending=descending),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="instances-{stamp}.csv"'
    return response


@login_required
@require_POST
def instance_batch(request):
    """A batch from the list: first a confirmation naming which instances will change and
    which would be refused; once confirmed, the operations and a result per instance."""
    form = BatchForm(request.POST)
    back = form.next_url(request, reverse("instances:list"))
    if not form.is_valid():
        for error in form.error_list():
            messages.error(request, error["message"])
        return HttpResponseRedirect(back)
    action = ACTIONS[form.cleaned_data["action"]]
    ids = form.cleaned_data["ids"]
    context = {"action": action, "next": back}
    if form.cleaned_data["confirm"]:
        results = operations.instances_batch(
            ids=ids, action=action.name, by=request.user, source="ui"
        )
        found = _listable(instances_visible_to(request.user)).in_bulk([r.id for r in results])
        context["results"] = [
            {
                "item": result,
                "instance": found.get(result.id),
                "result": Result.OK if result.ok else Result.REFUSED,
            }
            for result in results
        ]
        context["applied"] = sum(1 for r in results if r.ok)
    else:
        roles = Roles(request.user)
        found = _listable(instances_visible_to(request.user)).in_bulk(ids)
        policies = (
            operations.rerun_policy_refusals(list(found)) if action.name in RERUN_ACTIONS else {}
        )
        change, refused = [], []
        for instance_id in ids:
            instance = found.get(instance_id)
            if instance is None:
                refused.append({"id": instance_id, "instance": None, "reason": "not found"})
                continue
            reason = refusal(action.name, instance, roles, policy_refusals=policies)
            if reason:
                refused.append({"id": instance_id, "instance": instance, "reason": reason})
            else:
                change.append(instance)
        context.update(change=change, refused=refused)
    return render_page_or_partial(
        request, page="instances/batch.html", partial="instances/_batch.html", context=context
    )


# --- the detail ------------------------------------------------------------------------


@login_required
def instance_detail(request, instance_id: int):
    instance = _instance_or_404(request, instance_id)
    attempts = list(instance.attempts.order_by("number"))
    selected = _selected_attempt(request, attempts)
    roles = Roles(request.user)
    context = {
        "instance": instance,
        **_actions_context(request, instance, roles),
        **_neighbours_context(request.user, instance, roles),
        **_diagnosis_context(request, instance, roles),
        **_operations_context(instance, cursor=None),
        **_live_context(instance, attempts, selected, follow="attempt" not in request.GET),
        **_log_context(selected),
        "graph_url": reverse("instances:graph", args=[instance.pk]),
        "graph_full_url": reverse("instances:dag", args=[instance.pk]),
        "graph_depth": DETAIL_GRAPH_DEPTH,
        "max_depth": MAX_LEVELS,
    }
    return render(request, "instances/detail.html", context)


@login_required
@refuses_bad_input
def instance_live(request, instance_id: int):
    """The state panel of the detail page (facts and attempts), polled while the
    instance is not finished. When a new attempt starts and the page follows the latest
    one, the log panel is swapped for the new attempt's; when the state changed, the
    operation buttons, the diagnosis and the neighbours too, and the graph is asked to
    refresh: each then knows at once whether it still has anything to follow."""
    instance = _instance_or_404(request, instance_id)
    attempts = list(instance.attempts.order_by("number"))
    follow = "attempt" not in request.GET
    selected = _selected_attempt(request, attempts)
    seen = _int_param(request, "seen", default=0)
    context = _live_context(instance, attempts, selected, follow=follow)
    if follow and len(attempts) != seen:
        context.update(_log_context(selected), swap_log_panel=True)
    if request.GET.get("shown") != context["shown"]:
        roles = Roles(request.user)
        context |= _actions_context(request, instance, roles)
        context |= _diagnosis_context(request, instance, roles)
        context |= _neighbours_context(request.user, instance, roles)
        context["swap_actions"] = True
    response = render(request, "instances/_live.html", context)
    if context.get("swap_actions"):
        # Graphs on the page ask for their data again now, not at their next poll.
        response["HX-Trigger"] = GRAPH_REFRESH_EVENT
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


@login_required
def instance_diagnosis(request, instance_id: int):
    """The diagnosis panel, polled while the instance is pending (what holds it changes as
    others move); 286 once it is not."""
    instance = _instance_or_404(request, instance_id)
    context = {"instance": instance, **_diagnosis_context(request, instance, Roles(request.user))}
    response = render(request, "instances/_diagnosis.html", context)
    if not context["diagnosis_polling"]:
        stop_polling(response)
    return response


@login_required
def instance_neighbours(request, instance_id: int):
    """The upstream and downstream panels, polled while one of the instances listed is
    unfinished."""
    instance = _instance_or_404(request, instance_id)
    context = {
        "instance": instance,
        **_neighbours_context(request.user, instance, Roles(request.user)),
    }
    response = render(request, "instances/_neighbours_panels.html", context)
    if not context["neighbours_polling"]:
        stop_polling(response)
    return response


@login_required
@refuses_bad_input
def instance_operations(request, instance_id: int):
    """The operation log panel, a page at a time (newest first)."""
    instance = _instance_or_404(request, instance_id)
    context = {
        "instance": instance,
        **_operations_context(instance, cursor=request.GET.get("cursor") or None),
    }
    return render(request, "instances/_operations.html", context)


def _run(action: str, instance: Instance, form: OperationForm, user):
    """One operation on `instance`, chosen by the form's action."""
    data = form.cleaned_data
    common = {"instance": instance, "by": user, "source": "ui"}
    match action:
        case "rerun":
            return operations.instance_rerun(**common)
        case "rerun_downstream":
            return operations.instance_rerun(**common, downstream=True)
        case "set_success":
            return operations.instance_set_success(**common)
        case "stop":
            return operations.instance_stop(**common)
        case "pause":
            return operations.instance_pause(**common)
        case "resume":
            return operations.instance_resume(**common)
        case "run_now":
            return operations.instance_run_now(**common)
        case "change_resource_group":
            return operations.instance_change_resource_group(
                **common, resource_group=data["resource_group"]
            )
        case "remove_dependency":
            return operations.instance_remove_dependency(**common, upstream_id=data["upstream"])
        case "resume_node":
            node_resume(node=instance.node, by=user, source="ui")
            return instance
    raise ValueError(f"unknown action {action!r}")


DONE_MESSAGES = {
    "rerun": "{name} #{id} will run again: now {state}.",
    "rerun_downstream": "{name} #{id} and its finished downstream will run again: now {state}.",
    "set_success": "{name} #{id} was set to succeeded.",
    "stop": "{name} #{id} was stopped.",
    "pause": "{name} #{id} is paused: it will not start until resumed.",
    "resume": "{name} #{id} was resumed: now {state}.",
    "run_now": "{name} #{id} runs without dependencies as soon as its resource group has room.",
    "change_resource_group": "{name} #{id} moved to resource group {group}.",
    "remove_dependency": "{name} #{id} no longer waits for instance {upstream}.",
    "resume_node": "Node {name} was resumed.",
}


@login_required
@require_POST
def instance_operate(request, instance_id: int):
    """One operation from a button of the detail page (or its diagnosis). A refusal comes
    back as a message naming why; the page is shown again either way."""
    instance = _instance_or_404(request, instance_id)
    form = OperationForm(request.POST)
    back = form.next_url(request, reverse("instances:detail", args=[instance.pk]))
    if not form.is_valid():
        for error in form.error_list():
            messages.error(request, f"{error['field']}: {error['message']}")
        return HttpResponseRedirect(back)
    action = form.cleaned_data["action"]
    try:
        changed = _run(action, instance, form, request.user)
    except OpscenterError as exc:
        messages.error(request, f"{ACTIONS[action].label} refused: {exc.detail}")
    else:
        messages.success(
            request,
            DONE_MESSAGES[action].format(
                name=instance.node.name,
                id=instance.pk,
                state=InstanceState(changed.state).label.lower(),
                group=form.cleaned_data.get("resource_group"),
                upstream=form.cleaned_data.get("upstream"),
            ),
        )
    return HttpResponseRedirect(back)


# --- the graph -------------------------------------------------------------------------


def _depth(request, name: str, default: int) -> int:
    raw = request.GET.get(name, "")
    if raw == "":
        return default
    if not raw.isdigit() or int(raw) > MAX_LEVELS:
        raise ValidationFailed(
            f"invalid {name}",
            [{"field": name, "message": f"a whole number from 0 to {MAX_LEVELS}"}],
        )
    return int(raw)


@login_required
def instance_graph_data(request, instance_id: int):
    """The graph around one instance for the DAG component (partials/dag.html)."""
    instance = _instance_or_404(request, instance_id)
    try:
        up = _depth(request, "up", DETAIL_GRAPH_DEPTH)
        down = _depth(request, "down", DETAIL_GRAPH_DEPTH)
    except ValidationFailed as exc:
        return JsonResponse({"detail": exc.detail, "errors": exc.errors}, status=422)
    graph = instance_graph(user=request.user, instance=instance, up=up, down=down)
    # Groups the reader opened (their keys come back as they were given; others are
    # simply not found).
    expand = frozenset(key[:64] for key in request.GET.getlist("expand"))
    grouped = graph_grouped(graph, expand=expand)
    member_of = {m.pk: g.key for g in grouped.groups if g.expanded for m in g.members}
    nodes = []
    for box in grouped.boxes:
        if isinstance(box, InstanceGroup):
            nodes.append(_group_box(box))
            continue
        nodes.append(_instance_box(box, focus=instance, group=member_of.get(box.pk, "")))
    states = {other.state for other in graph.instances}
    active = bool(states & set(ACTIVE))
    live = active or InstanceState.PENDING in states
    count = len(graph.instances)
    response = JsonResponse(
        {
            "nodes": nodes,
            "edges": [
                {"source": up_id, "target": down_id, "removed": removed}
                for up_id, down_id, removed in grouped.edges
            ],
            "groups": [
                {"key": g.key, "label": f"{g.node_name} ×{len(g.members)}", "expanded": g.expanded}
                for g in grouped.groups
            ],
            "up": up,
            "down": down,
            "more_up": graph.more_up,
            "more_down": graph.more_down,
            "hidden": graph.hidden,
            "truncated": graph.truncated,
            "live": live,
            "poll_seconds": GRAPH_POLL_SECONDS_ACTIVE if active else GRAPH_POLL_SECONDS_WAITING,
            "summary": _graph_summary(count, grouped.groups),
        }
    )
    patch_vary_headers(response, ["HX-Request"])
    return response


def _graph_summary(count: int, groups: list[InstanceGroup]) -> str:
    """'27 instances (24 in 1 box)': what the status line says of a graph."""
    summary = f"{count} instance{'s' if count != 1 else ''}"
    closed = [g for g in groups if not g.expanded]
    if closed:
        inside = sum(len(g.members) for g in closed)
        summary += f" ({inside} in {len(closed)} box{'es' if len(closed) != 1 else ''})"
    return summary


def _instance_box(other: Instance, *, focus: Instance, group: str) -> dict:
    """One instance as the DAG component draws it (partials/dag.html)."""
    state = InstanceState(other.state)
    where = "" if other.project_id == focus.project_id else f"{other.project.code} · "
    box = {
        "id": other.pk,
        "label": other.node.name,
        "sublabel": f"{where}{state.label} · {times.format_when(other.scheduled_at, 'short_minute')}",
        "badge": state.label,
        "color": state.color,
        "url": reverse("instances:detail", args=[other.pk]),
        "focus": other.pk == focus.pk,
        "paused": other.paused or other.node.paused,
        "state": other.state,
    }
    if group:
        box["group"] = group  # drawn on its own inside an opened group
    return box


def _group_box(group: InstanceGroup) -> dict:
    """A group's box: "hourly_load ×24" over "22 succeeded · 2 failed", in the colour of
    the state that most needs a look; tapping it opens it (?expand=<key>)."""
    states = group.states
    leading = InstanceState(group.leading_state)
    return {
        "id": group.key,
        "label": f"{group.node_name} ×{len(group.members)}",
        "sublabel": " · ".join(
            f"{n} {InstanceState(state).label.lower()}" for state, n in states.items()
        ),
        "badge": f"×{len(group.members)}",
        "color": leading.color,
        "url": "",
        "focus": False,
        "paused": any(m.paused or m.node.paused for m in group.members),
        "state": leading.value,
        "group": group.key,
        "collapsed": True,
        "members": [m.pk for m in group.members],
        "states": states,
    }


@login_required
def instance_dag(request, instance_id: int):
    """The graph around one instance, on the whole screen."""
    instance = _instance_or_404(request, instance_id)
    try:
        up = _depth(request, "up", FULL_GRAPH_DEPTH)
        down = _depth(request, "down", FULL_GRAPH_DEPTH)
    except ValidationFailed as exc:
        up = down = FULL_GRAPH_DEPTH
        messages.error(request, "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors))
    context = {
        "instance": instance,
        "graph_url": reverse("instances:graph", args=[instance.pk]),
        "up": up,
        "down": down,
        "max_depth": MAX_LEVELS,
        "legend": [InstanceState(value) for value in InstanceState.values],
    }
    return render(request, "instances/dag.html", context)


# --- helpers -------------------------------------------------------------------------


def _instance_or_404(request, instance_id: int) -> Instance:
    try:
        instance = instance_get(user=request.user, instance_id=instance_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    project_page(request, instance.project)
    return instance


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


def _signature(instance: Instance) -> str:
    """What the operation buttons and the diagnosis depend on: when it changes, the
    live panel's answer brings them again."""
    return ":".join(
        str(v)
        for v in (
            instance.state,
            int(instance.paused),
            int(instance.node.paused),
            int(instance.run_now),
            instance.attempt_count,
            instance.resource_group_id,
        )
    )


def _actions_context(request, instance: Instance, roles: Roles) -> dict:
    may_operate = roles.may_operate(instance)
    groups = []
    if may_operate and state_allows("change_resource_group", instance):
        groups = list(
            ResourceGroup.objects.exclude(pk=instance.resource_group_id).values_list(
                "name", flat=True
            )
        )
    here = reverse("instances:detail", args=[instance.pk])
    # The rerun policy (SPEC 9) may refuse a rerun its state allows: the button is shown
    # disabled, with the policy's reason.
    rerun_refused = rerun_policy_refusal(instance) if may_operate else ""
    return {
        "actions": [
            _button(action.name, instance, here)
            for action in offered(instance, roles, rerun_refused=rerun_refused)
        ],
        "rerun_refused": rerun_refused,
        "may_operate": may_operate,
        "role_needed": roles.needed(instance),
        "other_groups": groups,
        "here": here,
    }


def _neighbours_context(user, instance: Instance, roles: Roles) -> dict:
    upstream, upstream_hidden = _neighbours(user, instance, direction="upstream")
    downstream, downstream_hidden = _neighbours(user, instance, direction="downstream")
    removable = roles.may_operate(instance) and state_allows("remove_dependency", instance)
    here = reverse("instances:detail", args=[instance.pk])
    for item in upstream:
        blocking = not item["removed"] and item["instance"].state not in DONE_FOR_DOWNSTREAM
        item["button"] = (
            _button("remove_dependency", instance, here, upstream=item["instance"].pk)
            if removable and blocking
            else None
        )
    # The instance's own changes come with the live panel's answer; this panel follows
    # only its neighbours.
    unfinished = [i for i in upstream + downstream if not i["instance"].is_finished]
    return {
        "upstream": upstream,
        "upstream_hidden": upstream_hidden,
        "downstream": downstream,
        "downstream_hidden": downstream_hidden,
        "neighbours_polling": bool(unfinished),
        "panel_poll_seconds": PANEL_POLL_SECONDS,
    }


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
    shown = _signature(instance)
    query = {"seen": len(attempts)}
    if not follow and selected is not None:
        query["attempt"] = selected.number
    query["shown"] = shown
    active = instance.state in ACTIVE or instance.state in (
        InstanceState.STARTING,
        InstanceState.STOPPING,
    )
    return {
        "instance": instance,
        "attempts": attempts,
        "selected": selected,
        "shown": shown,
        "live_query": urlencode(query),
        "live_poll_seconds": LIVE_POLL_SECONDS_ACTIVE if active else LIVE_POLL_SECONDS_WAITING,
        # A one-time run shows what it was started with (given at Run, or the defaults).
        "run_params": run_parameters(
            defaults=instance.version.spec.get("params") or {}, given=instance.params or {}
        )
        if instance.kind == InstanceKind.ONE_TIME
        else None,
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
        "log_html": log_html(text),
        "log_offset": offset + len(text),
        "log_skipped": skipped,
        "log_more": more,
    }


def _operations_context(instance: Instance, *, cursor: str | None) -> dict:
    records = OperationLog.objects.filter(object_type="instance", object_id=str(instance.pk))
    page = keyset_page(records, cursor=cursor, limit=OPERATIONS_PAGE)
    return {"operation_page": page, "operations_paged": cursor is not None}


# --- diagnosis -----------------------------------------------------------------------

# How a root cause is named on the page.
CAUSES = {
    "failed": "failed",
    "stopped": "was stopped",
    "paused": "is paused",
    "node_paused": "its node is paused",
}


def _button(action: str, target: Instance, here: str, **fields) -> dict:
    spec = ACTIONS[action]
    return {
        "action": action,
        "label": spec.label,
        "url": reverse("instances:operate", args=[target.pk]),
        "confirm": spec.confirm.format(name=target.node.name) if spec.confirm else "",
        "danger": spec.danger,
        "fields": fields,
        "next": here,
    }


def _diagnosis_context(request, instance: Instance, roles: Roles) -> dict:
    """diagnose() for the page: each blocker with its detail, and each operation that
    would unblock it as a button on the instance it applies to (the instance itself, a
    root-cause ancestor, an upstream edge), where the viewer may do it."""
    now = clock.now()
    diagnosis = diagnose(instance, now=now, viewer=request.user)
    here = reverse("instances:detail", args=[instance.pk])
    # The instances the buttons act on, loaded once (only those the viewer may see).
    targets = {instance.pk}
    for blocker in diagnosis.blockers:
        for cause in blocker.detail.get("root_causes", []):
            targets.add(cause["id"])
    loaded = instances_visible_to(request.user).in_bulk(targets)
    policy_refused = operations.rerun_policy_refusals(list(loaded)) if loaded else {}

    def allowed(action: str, target: Instance | None) -> bool:
        if action in RERUN_ACTIONS and target is not None and target.pk in policy_refused:
            return False
        return target is not None and roles.may_operate(target) and state_allows(action, target)

    blockers = []
    for blocker in diagnosis.blockers:
        detail = dict(blocker.detail)
        buttons = []
        names = {a["action"] for a in blocker.actions}
        if blocker.kind == WaitReason.FROZEN:
            action = "resume" if detail.get("paused") == "instance" else "resume_node"
            if allowed(action, instance):
                buttons.append(_button(action, instance, here))
        if blocker.kind == WaitReason.WAITING_UPSTREAM:
            causes = []
            for cause in detail.get("root_causes", []):
                ancestor = loaded.get(cause["id"]) if not cause.get("hidden") else None
                kind = cause["cause"]
                offers = {
                    "failed": ["rerun", "set_success"],
                    "stopped": ["rerun", "set_success"],
                    "paused": ["resume"],
                    "node_paused": ["resume_node"],
                }.get(kind, [])
                causes.append(
                    {
                        **cause,
                        "cause_label": CAUSES.get(kind, kind.replace("_", " ")),
                        "levels": len(cause.get("via", [])),
                        "buttons": [
                            _button(name, ancestor, here)
                            for name in offers
                            if allowed(name, ancestor)
                        ],
                    }
                )
            detail["root_causes"] = causes
            removable = "remove_dependency" in names and allowed("remove_dependency", instance)
            detail["upstream"] = [
                {
                    **up,
                    "buttons": [_button("remove_dependency", instance, here, upstream=up["id"])]
                    if removable
                    else [],
                }
                for up in detail.get("upstream", [])
            ]
        if "run_now" in names and allowed("run_now", instance):
            buttons.append(_button("run_now", instance, here))
        if blocker.kind == WaitReason.WAITING_TIME and detail.get("until"):
            detail["until_at"] = datetime.datetime.fromisoformat(detail["until"])
        if blocker.kind == WaitReason.WAITING_RESOURCES:
            detail["change_group"] = "change_resource_group" in names and allowed(
                "change_resource_group", instance
            )
        blockers.append(
            {
                "kind": blocker.kind,
                "message": blocker.message,
                "detail": detail,
                "buttons": buttons,
            }
        )
    waited = None
    if instance.state == InstanceState.PENDING and instance.scheduled_at <= now:
        waited = (now - instance.scheduled_at).total_seconds()
    groups = []
    if any(b["detail"].get("change_group") for b in blockers):
        groups = list(
            ResourceGroup.objects.exclude(pk=instance.resource_group_id).values_list(
                "name", flat=True
            )
        )
    return {
        "diagnosis": diagnosis,
        "blockers": blockers,
        "waited_seconds": waited,
        "diagnosis_groups": groups,
        "diagnosis_polling": instance.state == InstanceState.PENDING,
        "panel_poll_seconds": PANEL_POLL_SECONDS,
        "here": here,
    }
