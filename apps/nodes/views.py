"""Node pages: the list with batch operations, the detail with its configuration,
actions, versions and their diff, instances and graph, and the graph's JSON.

Views parse the request, call selectors and the operations of apps.nodes.operations,
and render; the operations check roles and write the operation log themselves.
"""

import datetime
import json
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import OuterRef, Subquery
from django.http import Http404, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, push_url, trigger_client_event

from apps.accounts.timezones import project_page
from apps.configuration.runtime import runtime_for_node
from apps.core import clock, dag
from apps.core.errors import NotFound, OpscenterError, ValidationFailed
from apps.core.htmx import render_page_or_partial, wants_partial
from apps.core.pagination import keyset_page, view_page
from apps.core.textdiff import classified, content_text, unified_diff
from apps.instances.choices import WaitReason
from apps.instances.history import HISTORY_CYCLES, history_cycles, node_history, pipeline_grid
from apps.instances.models import Instance
from apps.instances.operations import operate_role
from apps.projects.choices import ROLE_RANK, Role
from apps.projects.models import Membership
from apps.projects.selectors import has_role
from apps.realtime.views import realtime_panel_context

from . import operations
from .choices import Env, NodeStatus, NodeType, ScheduleType
from .models import Node, NodeDependency, NodeVersion
from .selectors import (
    NodeFilters,
    node_dag,
    node_downstream_ids,
    node_filter,
    node_get,
    node_versions,
    nodes_visible_to,
)

TABLE_ID = "node-table"
BATCH_ACTIONS = {
    "pause": "Pause",
    "resume": "Resume",
    "change_owner": "Change owner",
}
# How much of a node's history the detail page shows (the API pages through all of it).
RECENT_INSTANCES = 20
VERSIONS_SHOWN = 100
DEFAULT_DAG_DEPTH = 2


# --- list and batch ----------------------------------------------------------------------


@login_required
@require_GET
def node_list(request):
    filters = NodeFilters.from_query(request.GET)
    queryset = nodes_visible_to(request.user)
    if request.project is not None:
        queryset = queryset.filter(project=request.project)
    page, errors = view_page(
        keyset_page,
        lambda: node_filter(queryset, filters),
        request.GET,
        order_field="name",
        descending=False,
    )
    context = {
        "page": page,
        "filters": filters,
        "errors": errors,
        "paged": bool(request.GET.get("cursor")),
        "can_batch": _may_operate_somewhere(request),
        "batch_actions": BATCH_ACTIONS,
        "env_choices": Env.choices,
        "type_choices": NodeType.choices,
        "schedule_choices": ScheduleType.choices,
        "status_choices": NodeStatus.choices,
        "table_id": TABLE_ID,
    }
    response = render_page_or_partial(
        request,
        page="nodes/list.html",
        partial="nodes/_table.html",
        context=context,
        status=422 if errors else 200,
    )
    if wants_partial(request) and request.htmx.trigger != TABLE_ID:
        # A filter change or a page link: keep the address bar shareable.
        kept = [(key, value) for key, value in request.GET.items() if value]
        push_url(response, request.path + (f"?{urlencode(kept)}" if kept else ""))
    return response


@login_required
@require_POST
def nodes_batch(request):
    """Two steps: without `confirm` it lists what will change; with it, it does it and
    answers one result per node. Nodes the user cannot see are left out of both."""
    action = request.POST.get("action", "")
    owner = request.POST.get("owner", "").strip()
    errors = []
    if action not in BATCH_ACTIONS:
        errors.append({"field": "action", "message": f"one of {', '.join(BATCH_ACTIONS)}"})
    raw_ids = request.POST.getlist("ids")
    ids = sorted({int(i) for i in raw_ids if i.isdigit()})
    if not ids or len(ids) != len(set(raw_ids)):
        errors.append({"field": "ids", "message": "choose at least one node (by its id)"})
    if action == "change_owner" and not owner:
        errors.append({"field": "owner", "message": "the username of the new owner"})
    nodes = list(nodes_visible_to(request.user).filter(pk__in=ids).order_by("name", "id"))
    if ids and not nodes:
        errors.append({"field": "ids", "message": "none of these nodes exists"})
    context = {
        "action": action,
        "action_label": BATCH_ACTIONS.get(action, action),
        "owner": owner,
        "nodes": nodes,
        "errors": errors,
        "confirmed": False,
        "results": [],
    }
    if not errors and request.POST.get("confirm") == "yes":
        node_ids = [n.id for n in nodes]
        try:
            if action == "change_owner":
                items = operations.nodes_change_owner(
                    node_ids=node_ids, owner=owner, by=request.user, source="ui"
                )
            else:
                items = operations.nodes_batch(
                    ids=node_ids, action=action, by=request.user, source="ui"
                )
        except ValidationFailed as exc:
            # Refused as a whole (an unknown owner): nothing was changed.
            context["errors"] = errors = exc.errors or [{"field": "", "message": exc.detail}]
        else:
            names = {n.id: n for n in nodes}
            context.update(
                confirmed=True,
                results=[{"item": item, "node": names.get(item.id)} for item in items],
                succeeded=sum(1 for item in items if item.ok),
            )
    response = render_page_or_partial(
        request,
        page="nodes/batch.html",
        partial="nodes/_batch.html",
        context=context,
        status=422 if errors else 200,
    )
    if context["confirmed"]:
        # The list on the page re-reads itself to show the change.
        trigger_client_event(response, "nodes-changed")
    return response


# --- one-time tasks ----------------------------------------------------------------------


@login_required
@require_GET
def node_one_time_list(request):
    """The one-time (manual) nodes, each with its last run and a Run button that asks
    the biz date and parameter values (the form of node_run, loaded with htmx)."""
    queryset = nodes_visible_to(request.user).filter(schedule_type=ScheduleType.ONE_TIME)
    if request.project is not None:
        queryset = queryset.filter(project=request.project)
    query = request.GET.get("q", "").strip()
    if query:
        queryset = queryset.filter(name__icontains=query)
    last_run = Instance.objects.filter(node=OuterRef("pk")).order_by("-id")
    queryset = queryset.annotate(
        last_run_id=Subquery(last_run.values("id")[:1]),
        last_run_state=Subquery(last_run.values("state")[:1]),
        last_run_biz_date=Subquery(last_run.values("biz_date")[:1]),
    )
    page, errors = view_page(
        keyset_page, queryset, request.GET, order_field="name", descending=False
    )
    roles: dict[tuple[int, str], bool] = {}
    rows = []
    for node in page.items:
        key = (node.project_id, node.env)
        if key not in roles:
            roles[key] = has_role(request.user, node.project, operate_role(node.env))
        spec = node.current_version.spec if node.current_version_id else {}
        rows.append({"node": node, "can_run": roles[key], "params": spec.get("params") or {}})
    return render_page_or_partial(
        request,
        page="nodes/one_time.html",
        partial="nodes/_one_time_table.html",
        context={"page": page, "rows": rows, "errors": errors, "q": query},
        status=422 if errors else 200,
    )


# --- detail ------------------------------------------------------------------------------


@login_required
@require_GET
def node_detail(request, node_id: int):
    """The whole page; an htmx request (the version compare form) gets the versions panel."""
    node = _node_or_404(request, node_id)
    spec = node.current_version.spec if node.current_version_id else {}
    context = {
        "node": node,
        "spec": spec,
        "content_text": "\n".join(_content_text(spec)),
        **_actions_context(request, node),
        **_versions_context(request, node),
    }
    if not wants_partial(request):
        context.update(realtime_panel_context(node))
        context.update(_neighbours_context(request, node))
        context["instances"] = list(
            Instance.objects.filter(node=node).select_related("version", "resource_group")[
                :RECENT_INSTANCES
            ]
        )
        context["dag_url"] = reverse("nodes:dag", args=[node.id])
        context["dag_depth"] = DEFAULT_DAG_DEPTH
        # Every runtime setting with the level it comes from (SPEC 9).
        runtime = runtime_for_node(node)
        context["runtime"] = runtime.rows()
        try:
            cycles = history_cycles(request.GET.get("cycles", ""))
        except ValidationFailed:
            cycles = HISTORY_CYCLES[0]
        history = node_history(node=node, cycles=cycles, timeout=runtime.timeout)
        context.update(
            history=history,
            history_chart=history.chart(),
            history_cycles=cycles,
            history_choices=HISTORY_CYCLES,
        )
    return render_page_or_partial(
        request,
        page="nodes/detail.html",
        partial="nodes/_versions.html",
        context=context,
        status=422 if context["diff_errors"] else 200,
    )


@login_required
@require_GET
def node_pipeline_history(request, node_id: int):
    """nodes × biz dates: the node with its downstream (`?depth=`), or a chosen set of
    nodes (`?nodes=1,2,3`), over the last `?days=` (30 or 90) biz dates."""
    node = _node_or_404(request, node_id)
    errors = []
    try:
        days = history_cycles(request.GET.get("days", ""))
    except ValidationFailed as exc:
        errors += [{**e, "field": "days"} for e in exc.errors]
        days = HISTORY_CYCLES[0]
    raw_nodes = request.GET.get("nodes", "").strip()
    visible = nodes_visible_to(request.user)
    if raw_nodes:
        parts = [p.strip() for p in raw_nodes.split(",") if p.strip()]
        if not all(p.isdigit() for p in parts):
            errors.append({"field": "nodes", "message": "node ids separated by commas"})
            parts = []
        ids = [node.id, *(int(p) for p in parts if int(p) != node.id)]
    else:
        depth = request.GET.get("depth", "").strip()
        if depth and not (depth.isdigit() and 1 <= int(depth) <= 10):
            errors.append({"field": "depth", "message": "a whole number from 1 to 10"})
            depth = ""
        below = dag.descendants([node.id], node_downstream_ids, depth=int(depth) if depth else None)
        ids = [node.id, *sorted(below, key=lambda i: (below[i], i))]
    shown = {n.id: n for n in visible.filter(pk__in=ids).select_related("project")}
    nodes = [shown[i] for i in ids if i in shown]
    until = _default_biz_date(node)
    grid = pipeline_grid(nodes=nodes, days=days, until=until)
    rows = [{"node": n, "cells": cells} for n, cells in zip(grid.nodes, grid.cells, strict=True)]
    return render_page_or_partial(
        request,
        page="nodes/history.html",
        partial="nodes/history.html",
        context={
            "node": node,
            "grid": grid,
            "rows": rows,
            "days": days,
            "day_choices": HISTORY_CYCLES,
            "chosen": raw_nodes,
            "hidden": len(ids) - len(nodes),
            "errors": errors,
        },
        status=422 if errors else 200,
    )


@login_required
@require_POST
def node_action(request, node_id: int, action: str):
    """Pause, resume or take offline; the answer comes back as a message on the page."""
    node = _node_or_404(request, node_id)
    operation = {
        "pause": operations.node_pause,
        "resume": operations.node_resume,
        "offline": operations.node_offline,
    }[action]
    done = {"pause": "paused", "resume": "resumed", "offline": "taken offline"}[action]
    try:
        operation(node=node, by=request.user, source="ui")
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    except OpscenterError as exc:
        messages.error(request, f"{node.name} was not {done}: {exc.detail}")
    else:
        messages.success(request, f"{node.name} {done}.")
    return redirect("nodes:detail", node_id=node.id)


@login_required
def node_run(request, node_id: int):
    """Run a one-time node, or any dev node: a form asking the biz date and parameter
    values (GET), then a one_time instance (POST), opened at once."""
    node = _node_or_404(request, node_id)
    context = {"node": node, **_actions_context(request, node)}
    status = 200
    if request.method == "POST":
        biz_date, params, errors = _run_input(request, node)
        context["run_form"] = {"biz_date": request.POST.get("biz_date", ""), "params": params}
        if not errors:
            try:
                instance = operations.node_run(
                    node=node, by=request.user, source="ui", biz_date=biz_date, params=params
                )
            except NotFound as exc:
                raise Http404(exc.detail) from exc
            except ValidationFailed as exc:
                errors = exc.errors or [{"field": "", "message": exc.detail}]
            except OpscenterError as exc:
                errors = [{"field": "", "message": exc.detail}]
            else:
                messages.success(
                    request,
                    f"{node.name} started as instance {instance.id} "
                    f"for biz date {instance.biz_date:%Y-%m-%d}.",
                )
                url = reverse("instances:detail", args=[instance.id])
                if wants_partial(request):
                    return HttpResponseClientRedirect(url)
                return redirect(url)
        context["run_errors"] = errors
        status = 422
    return render_page_or_partial(
        request,
        page="nodes/run.html",
        partial="nodes/_run_form.html",
        context=context,
        status=status,
    )


@login_required
@require_GET
def node_dag_json(request, node_id: int):
    """The node graph for the shared DAG component (templates/partials/dag.html)."""
    node = _node_or_404(request, node_id)
    try:
        up = _depth(request, "up")
        down = _depth(request, "down")
        graph = node_dag(user=request.user, node=node, up=up, down=down)
    except ValidationFailed as exc:
        return JsonResponse({"detail": exc.detail, "errors": exc.errors}, status=422)
    return JsonResponse(
        {
            "nodes": [
                {
                    "id": n.id,
                    "label": n.name,
                    "sublabel": _dag_sublabel(n, node),
                    "color": _node_color(n),
                    "badge": _node_badge(n),
                    "paused": n.paused,
                    "url": reverse("nodes:detail", args=[n.id]),
                    "focus": n.id == node.id,
                }
                for n in graph.nodes
            ],
            "edges": [
                {"source": upstream, "target": downstream, "removed": False}
                for upstream, downstream in graph.edges
            ],
        }
    )


# --- helpers -----------------------------------------------------------------------------


def _node_or_404(request, node_id: int) -> Node:
    try:
        node = node_get(user=request.user, node_id=node_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    project_page(request, node.project)
    return node


def _may_operate_somewhere(request) -> bool:
    """Whether to offer batch actions: the user operates nodes in some project listed
    (developers their dev nodes). Each node's own permission is checked when it runs."""
    user = request.user
    if user.is_superuser:
        return True
    memberships = Membership.objects.filter(
        user=user,
        role__in=[r for r, rank in ROLE_RANK.items() if rank >= ROLE_RANK[Role.DEVELOPER]],
    )
    if request.project is not None:
        memberships = memberships.filter(project=request.project)
    return memberships.exists()


def _actions_context(request, node: Node) -> dict:
    can_operate = has_role(request.user, node.project, operate_role(node.env))
    runnable = node.schedule_type == ScheduleType.ONE_TIME or node.env == Env.DEV
    spec = node.current_version.spec if node.current_version_id else {}
    return {
        "can_operate": can_operate,
        "runnable": runnable,
        # A backfill reruns a recurring node's cron times over past biz dates.
        "backfillable": node.schedule_type == ScheduleType.RECURRING
        and node.status == NodeStatus.ONLINE,
        "run_params": [
            {"name": name, "default": "" if default is None else str(default)}
            for name, default in sorted((spec.get("params") or {}).items())
        ],
        "default_biz_date": _default_biz_date(node),
    }


def _default_biz_date(node: Node) -> datetime.date:
    """Yesterday in the node's project: the business date a run is for unless told."""
    return clock.now().astimezone(node.project.tz).date() - datetime.timedelta(days=1)


def _run_input(request, node: Node) -> tuple[datetime.date | None, dict, list[dict]]:
    """The run form's biz date and parameter values, and every error in them. The form
    comes with yesterday filled in; a date cleared on purpose or by mistake is asked for
    again rather than silently taken as yesterday (the API keeps that default)."""
    errors = []
    biz_date = None
    raw = request.POST.get("biz_date", "").strip()
    if not raw:
        yesterday = _default_biz_date(node)
        errors.append(
            {
                "field": "biz_date",
                "message": f"choose the business date to run for (yesterday: {yesterday})",
            }
        )
    else:
        try:
            biz_date = datetime.date.fromisoformat(raw)
        except ValueError:
            errors.append({"field": "biz_date", "message": f"{raw!r} is not a date as YYYY-MM-DD"})
    spec = node.current_version.spec if node.current_version_id else {}
    params = {}
    for name in (spec.get("params") or {}).keys():
        value = request.POST.get(f"param.{name}")
        if value is not None:
            params[name] = value
    return biz_date, params, errors


def _neighbours_context(request, node: Node) -> dict:
    """Upstream and downstream nodes the user may see, and how many they may not."""
    visible = nodes_visible_to(request.user)
    upstream = list(visible.filter(downstream_links__node=node).order_by("name"))
    downstream = list(visible.filter(upstream_links__upstream=node).order_by("name"))
    upstream_all = NodeDependency.objects.filter(node=node).count()
    downstream_all = NodeDependency.objects.filter(upstream=node).count()
    return {
        "upstream": upstream,
        "upstream_hidden": upstream_all - len(upstream),
        "downstream": downstream,
        "downstream_hidden": downstream_all - len(downstream),
    }


def _versions_context(request, node: Node) -> dict:
    """The version history and the diff between the two versions chosen (?a=&b=; by
    default the one before the current and the current)."""
    versions = list(node_versions(node=node).order_by("-number")[:VERSIONS_SHOWN])
    by_number = {v.number: v for v in versions}
    errors = []
    chosen = {}
    for field, default_index in (("a", 1), ("b", 0)):
        raw = request.GET.get(field, "").strip()
        if not raw:
            if len(versions) > default_index:
                chosen[field] = versions[default_index]
            continue
        version = by_number.get(int(raw)) if raw.isdigit() else None
        if version is None and raw.isdigit():
            version = node_versions(node=node).filter(number=int(raw)).first()
        if version is None:
            errors.append({"field": field, "message": f"node {node.name} has no version {raw!r}"})
        else:
            chosen[field] = version
    old, new = chosen.get("a"), chosen.get("b")
    return {
        "versions": versions,
        "diff_a": old,
        "diff_b": new,
        "diff": version_diff(old, new) if old and new and not errors else None,
        "diff_errors": errors,
    }


def _spec_text(spec: dict) -> list[str]:
    """The spec as canonical JSON, without its content (compared on its own)."""
    rest = {key: value for key, value in spec.items() if key != "content"}
    return json.dumps(rest, indent=2, sort_keys=True, default=str).splitlines()


def _content_text(spec: dict) -> list[str]:
    return content_text(spec.get("content", "")).splitlines()


def version_diff(old: NodeVersion, new: NodeVersion) -> list[dict]:
    """A unified diff of two versions, in two sections (settings, content), each a list
    of lines classed for display: head, hunk, add, del, ctx."""
    return [
        {
            "title": title,
            "lines": classified(
                unified_diff(
                    text(old.spec),
                    text(new.spec),
                    fromfile=f"v{old.number}",
                    tofile=f"v{new.number}",
                )
            ),
        }
        for title, text in (("Settings", _spec_text), ("Content", _content_text))
    ]


def _depth(request, name: str) -> int:
    raw = request.GET.get(name, "")
    if raw == "":
        return DEFAULT_DAG_DEPTH
    if not raw.isdigit():
        raise ValidationFailed(
            f"invalid {name}", [{"field": name, "message": "a whole number from 0 to 10"}]
        )
    return int(raw)


def _node_color(node: Node) -> str:
    # Colours come from the choices: a paused node is frozen, else its status.
    if node.paused:
        return WaitReason.FROZEN.color
    return NodeStatus(node.status).color


def _node_badge(node: Node) -> str:
    return "Paused" if node.paused else NodeStatus(node.status).label


def _dag_sublabel(node: Node, focus: Node) -> str:
    parts = []
    if node.project_id != focus.project_id:
        parts.append(node.project.code)
    if node.env == Env.DEV:
        parts.append("dev")
    parts.append(node.get_type_display())
    parts.append(
        node.cron
        if node.schedule_type == ScheduleType.RECURRING
        else node.get_schedule_type_display()
    )
    return " · ".join(parts)
