"""Backfill pages: the runs with their progress, the New backfill form with its preview
(a dry run that creates nothing), and one run's page with its grid of dates × nodes,
kept live while it runs.

Views parse the form, call apps.backfills.services and .selectors, and render; the
services check roles and write the operation log themselves.
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from apps.accounts.timezones import project_page
from apps.core import clock
from apps.core.errors import NotFound, OpscenterError, ValidationFailed
from apps.core.htmx import render_page_or_partial, stop_polling, wants_partial
from apps.core.pagination import keyset_page, view_page
from apps.instances.choices import InstanceState
from apps.instances.operations import operate_role
from apps.nodes.choices import Env, NodeStatus, ScheduleType
from apps.nodes.models import Node
from apps.nodes.selectors import nodes_visible_to
from apps.projects.selectors import has_role

from . import services
from .forms import BackfillForm, default_dates
from .models import Backfill
from .selectors import (
    BAR_COLORS,
    backfill_get,
    backfill_progress,
    backfills_progress,
    backfills_visible_to,
    grid,
    progress_bar,
)

TABLE_ID = "backfill-runs"
LIVE_ID = "backfill-live"
# While a run is going its page (and the list, while any run on it is going) asks again.
LIVE_POLL_SECONDS = 2
LIST_POLL_SECONDS = 5
# The service names some fields differently from the form.
SERVICE_FIELDS = {"start": "start_date", "end": "end_date", "downstream": "downstream_nodes"}


# --- the runs ------------------------------------------------------------------------


@login_required
@require_GET
def backfill_list(request):
    """Newest first, a page at a time; an htmx request (the poller, a page link) gets the
    table, which polls while a run on it is running and stops with a 286 when none is."""
    queryset = backfills_visible_to(request.user)
    if request.project is not None:
        queryset = queryset.filter(project=request.project)
    page, errors = view_page(keyset_page, queryset, request.GET)
    runs = _run_rows(page.items)
    running = any(row["backfill"].state == "running" for row in runs)
    context = {
        "page": page,
        "runs": runs,
        "errors": errors,
        "running": running,
        "table_id": TABLE_ID,
        "poll_seconds": LIST_POLL_SECONDS,
        "query": urlencode({k: v for k, v in request.GET.items() if v}),
    }
    response = render_page_or_partial(
        request,
        page="backfills/list.html",
        partial="backfills/_runs.html",
        context=context,
        status=422 if errors else 200,
    )
    if wants_partial(request) and not running and not errors:
        stop_polling(response)
    return response


# --- a new run -----------------------------------------------------------------------


@login_required
def backfill_new(request):
    """GET: the form (?node=ID preselects roots, as the node page's Backfill button
    does). POST with action=preview: the plan, nothing created; action=start: the run."""
    if request.method == "POST":
        form = BackfillForm(request.POST, user=request.user)
        action = request.POST.get("action", "preview")
    else:
        form = BackfillForm(initial=_initial(request), user=request.user)
        action = ""
    context: dict = {"form": form, "errors": [], "plan": None}
    status = 200
    if action and form.is_valid():
        roots = form.roots
        project = roots[0].project
        try:
            if action == "start":
                backfill = services.backfill_create(
                    by=request.user,
                    source="ui",
                    ignore_schedule_time=form.cleaned_data["ignore_schedule_time"],
                    **form.plan_kwargs,
                )
            else:
                context["plan"] = services.backfill_plan(
                    project=project, by=request.user, **form.plan_kwargs
                )
                context["plan_dag_url"] = (
                    reverse("backfills:plan_dag") + "?" + _form_query(request.POST)
                )
        except NotFound as exc:
            context["errors"] = [{"field": "nodes", "message": exc.detail}]
        except ValidationFailed as exc:
            context["errors"] = _form_errors(exc.errors) or [{"field": "", "message": exc.detail}]
        except OpscenterError as exc:
            context["errors"] = [{"field": "", "message": exc.detail}]
        else:
            if action == "start":
                messages.success(request, f"Backfill {backfill.pk} started.")
                url = reverse("backfills:detail", args=[backfill.pk])
                if wants_partial(request):
                    return HttpResponseClientRedirect(url)
                return redirect(url)
    elif action:
        context["errors"] = form.error_list()
    if context["errors"]:
        status = 422
    context.update(_form_context(request, form))
    return render_page_or_partial(
        request,
        page="backfills/new.html",
        partial="backfills/_form.html",
        context=context,
        status=status,
    )


@login_required
@require_GET
def backfill_downstream(request):
    """The checkboxes of the downstream nodes of the chosen roots (asked by htmx when
    the roots change), keeping the boxes already ticked."""
    roots = _nodes_from(request, "nodes")
    chosen = {n.id for n in _nodes_from(request, "downstream_nodes")}
    candidates = downstream_of(request.user, roots)
    return render(
        request,
        "backfills/_downstream.html",
        {"candidates": candidates, "chosen": chosen, "roots": roots},
    )


@login_required
@require_GET
def backfill_plan_dag(request):
    """The graph of one date of the plan the form describes, for partials/dag.html. The
    component adds ?up=&down=; a plan's graph is whole, so they are not used."""
    form = BackfillForm(request.GET, user=request.user)
    if not form.is_valid():
        errors = form.error_list()
        return JsonResponse({"detail": "invalid backfill", "errors": errors}, status=422)
    roots = form.roots
    try:
        plan = services.backfill_plan(project=roots[0].project, by=request.user, **form.plan_kwargs)
    except ValidationFailed as exc:
        return JsonResponse({"detail": exc.detail, "errors": _form_errors(exc.errors)}, status=422)
    root_ids = {n.id for n in roots}
    response = JsonResponse(
        {
            "nodes": [
                {
                    "id": node.id,
                    "label": node.name,
                    "sublabel": "root" if node.id in root_ids else "downstream",
                    "color": "blue" if node.id in root_ids else "gray",
                    "url": reverse("nodes:detail", args=[node.id]),
                    "focus": node.id in root_ids,
                }
                for node in plan.nodes
            ],
            "edges": [
                {"source": upstream, "target": downstream, "removed": False}
                for upstream, downstream in plan.edges
            ],
            "live": False,
            "summary": f"{len(plan.nodes)} node{'s' if len(plan.nodes) != 1 else ''} per date",
        }
    )
    patch_vary_headers(response, ["HX-Request"])
    return response


# --- one run -------------------------------------------------------------------------


@login_required
@require_GET
def backfill_detail(request, backfill_id: int):
    """The whole page; its live panel (state, progress, grid) polls this view and gets a
    286 once the run has finished."""
    backfill = _backfill_or_404(request, backfill_id)
    context = {"backfill": backfill, **_live_context(request, backfill)}
    response = render_page_or_partial(
        request,
        page="backfills/detail.html",
        partial="backfills/_live.html",
        context=context,
    )
    if wants_partial(request) and not context["live"]:
        stop_polling(response)
    return response


@login_required
@require_POST
def backfill_action(request, backfill_id: int, action: str):
    """Stop the whole run, or rerun its failed instances; the answer is a message."""
    backfill = _backfill_or_404(request, backfill_id)
    operation, done = {
        "stop": (services.backfill_stop, "stopped"),
        "rerun_failed": (services.backfill_rerun_failed, "is rerunning its failed instances"),
    }[action]
    try:
        operation(backfill=backfill, by=request.user, source="ui")
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    except OpscenterError as exc:
        messages.error(request, f"Backfill {backfill.pk} was not {_verb(action)}: {exc.detail}")
    else:
        messages.success(request, f"Backfill {backfill.pk} {done}.")
    url = reverse("backfills:detail", args=[backfill.pk])
    if wants_partial(request):
        return HttpResponseClientRedirect(url)
    return redirect(url)


# --- helpers -------------------------------------------------------------------------


def _verb(action: str) -> str:
    return "stopped" if action == "stop" else "rerun"


def _backfill_or_404(request, backfill_id: int) -> Backfill:
    try:
        backfill = backfill_get(user=request.user, backfill_id=backfill_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    project_page(request, backfill.project)
    return backfill


def _nodes_from(request, name: str) -> list[Node]:
    ids = [int(raw) for raw in request.GET.getlist(name) if raw.isdigit()]
    return list(nodes_visible_to(request.user).filter(pk__in=ids).order_by("name"))


def backfill_nodes() -> dict:
    """What a backfill may name: recurring nodes that are online."""
    return {"status": NodeStatus.ONLINE, "schedule_type": ScheduleType.RECURRING}


def _form_errors(errors: list[dict]) -> list[dict]:
    """The service's errors under the names of the form's fields."""
    return [
        {**e, "field": SERVICE_FIELDS.get(e.get("field", ""), e.get("field", ""))} for e in errors
    ]


def downstream_of(user, roots: list[Node]) -> list[Node]:
    """The nodes a backfill of `roots` may add as their downstream (the service's own
    walk, so the chooser offers exactly what the plan accepts), by name."""
    if not roots:
        return []
    return sorted(services.downstream_of(roots, by=user), key=lambda n: (n.name, n.pk))


def _initial(request) -> dict:
    project = request.project
    ids = [int(raw) for raw in request.GET.getlist("node") if raw.isdigit()]
    roots = list(nodes_visible_to(request.user).filter(pk__in=ids))
    if roots:
        project = roots[0].project
    tz = project.tz if project is not None else clock.now().tzinfo
    start, end = default_dates(clock.now().astimezone(tz).date())
    return {
        "nodes": roots,
        "start_date": start,
        "end_date": end,
        "order": "serial",
        "parallelism": 2,
        "direction": "ascending",
        "downstream": "none",
    }


def _form_context(request, form: BackfillForm) -> dict:
    """The choices the form offers and the roots chosen so far (for the downstream list)."""
    choices = nodes_visible_to(request.user).filter(**backfill_nodes())
    if request.project is not None:
        choices = choices.filter(project=request.project)
    chosen_roots = _chosen(form, "nodes")
    chosen_down = {n.id for n in _chosen(form, "downstream_nodes")}
    # A root preselected from another project than the one in the switcher stays offered.
    extra = [n for n in chosen_roots if request.project and n.project_id != request.project.id]
    options = list(choices.order_by("project__code", "name")) + extra
    roots = [n for n in chosen_roots if n.status == NodeStatus.ONLINE]
    may_start = bool(roots) and all(
        has_role(request.user, n.project, operate_role(n.env)) for n in roots
    )
    dates = {}
    for name in ("start_date", "end_date"):
        value = form[name].value()
        dates[name] = value.isoformat() if hasattr(value, "isoformat") else (value or "")
    return {
        "date_values": dates,
        "node_options": options,
        "chosen_roots": {n.id for n in chosen_roots},
        "chosen_down": chosen_down,
        "downstream_candidates": downstream_of(request.user, chosen_roots),
        "may_start": may_start or not roots,
        "downstream_url": reverse("backfills:downstream"),
    }


def _chosen(form: BackfillForm, name: str) -> list[Node]:
    """The nodes named in the form's field, valid or not yet validated."""
    if form.is_bound:
        raw = form.data.getlist(name)
    else:
        raw = [n.id for n in form.initial.get(name) or []]
    ids = [int(v) for v in raw if str(v).isdigit()]
    return list(form.fields[name].queryset.filter(pk__in=ids))


def _form_query(data) -> str:
    fields = [
        "nodes",
        "downstream",
        "downstream_nodes",
        "start_date",
        "end_date",
        "order",
        "parallelism",
        "direction",
        "ignore_schedule_time",
    ]
    return urlencode([(name, value) for name in fields for value in data.getlist(name)])


def _may_operate(user, backfill: Backfill) -> bool:
    """Operators of the project may stop and rerun; developers too when every node of
    the run is a dev node."""
    envs = set(Node.objects.filter(pk__in=backfill.node_ids).values_list("env", flat=True))
    role = operate_role(Env.DEV) if envs == {Env.DEV} else operate_role(Env.PROD)
    return has_role(user, backfill.project, role)


def _run_rows(backfills: list[Backfill]) -> list[dict]:
    """A row per run: its root nodes (one query for the page) and its progress bar."""
    ids = {i for b in backfills for i in b.root_node_ids}
    names = {n.id: n for n in Node.objects.filter(pk__in=ids).only("id", "name")}
    counts = backfills_progress(backfills)
    return [
        {
            "backfill": b,
            "roots": [names[i] for i in b.root_node_ids if i in names],
            "more": max(len(b.node_ids) - len(b.root_node_ids), 0),
            "bar": progress_bar(counts[b.pk]),
        }
        for b in backfills
    ]


def _live_context(request, backfill: Backfill) -> dict:
    progress = backfill_progress(backfill)
    bars = {biz_date: progress_bar(counts) for biz_date, counts in progress.dates}
    unfinished = sum(progress.counts.get(s, 0) for s in ("pending", "queued", "running"))
    return {
        "bar": progress_bar(progress.counts),
        "grid": _grid_rows(backfill, bars),
        "may_operate": _may_operate(request.user, backfill),
        "may_stop": backfill.state in ("running", "failed")
        and unfinished > 0
        or backfill.state == "running",
        "has_failed": progress.counts.get("failed", 0) > 0,
        # Follow while the run goes or any of its instances is still to finish.
        "live": backfill.state == "running" or unfinished > 0,
        "live_id": LIVE_ID,
        "poll_seconds": LIVE_POLL_SECONDS,
    }


def _grid_rows(backfill: Backfill, bars: dict) -> dict:
    """The grid for the template: a row per date with its progress bar, a cell per node
    holding its instances, each with the colour of its state as its bar draws it."""
    found = grid(backfill)
    colors = {**InstanceState.colors(), **BAR_COLORS}
    labels = dict(InstanceState.choices)
    rows = []
    for biz_date, cells in zip(found.dates, found.cells, strict=True):
        rows.append(
            {
                "biz_date": biz_date,
                "bar": bars.get(biz_date),
                "cells": [
                    [
                        {"id": i, "state": state, "color": colors[state], "label": labels[state]}
                        for i, state in cell
                    ]
                    for cell in cells
                ],
            }
        )
    return {"nodes": found.nodes, "rows": rows}
