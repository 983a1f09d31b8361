"""The resource dashboard page (SPEC 11): charts and a table of allocated versus measured
CPU and memory per project, resource group and node, and a one-click "Apply suggestion".
It reads through apps.monitoring.resources, the same numbers GET /api/resources answers."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.configuration.models import ResourceGroup
from apps.core.errors import NotFound, OpscenterError, ValidationFailed
from apps.nodes.selectors import node_get
from apps.nodes.services import publish_role
from apps.projects.selectors import has_role

from .resources import (
    FLAGS,
    ResourceFlag,
    resources_get,
    resources_range,
    resources_scope,
    resources_today,
)
from .resources_services import resource_suggestion_apply

# The node chart shows this many nodes (the table shows them all).
CHART_NODES = 25


@login_required
def resources_dashboard(request):
    errors: list[dict] = []
    group_name = (request.GET.get("resource_group") or "").strip()
    node_param = (request.GET.get("node") or "").strip()
    try:
        scope = resources_scope(
            user=request.user,
            project=request.project,
            resource_group=group_name,
            node=node_param,
        )
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    except ValidationFailed as exc:
        errors += exc.errors
        scope = resources_scope(user=request.user, project=request.project)
    today = resources_today(scope)
    try:
        start, end = resources_range(request.GET.get("start"), request.GET.get("end"), today=today)
    except ValidationFailed as exc:
        errors += exc.errors
        start, end = resources_range(None, None, today=today)
    usage = resources_get(scope=scope, start=start, end=end)
    publish_roles: dict[tuple[int, str], bool] = {}
    projects = {p.code: p for p in scope.projects}

    def may_apply(node) -> bool:
        project = projects.get(node.project_code)
        if project is None:
            return False
        key = (project.pk, node.env)
        if key not in publish_roles:
            role = publish_role(project=project, env=node.env)
            publish_roles[key] = has_role(request.user, project, role)
        return publish_roles[key]

    rows = [{"usage": n, "may_apply": n.changes and may_apply(n)} for n in usage.nodes]
    query = {"start": start.isoformat(), "end": end.isoformat()}
    if group_name:
        query["resource_group"] = group_name
    if node_param and scope.node is not None:
        query["node"] = node_param
    context = {
        "usage": usage,
        "rows": rows,
        "errors": errors,
        "flags": [
            {"flag": flag, "label": ResourceFlag(flag).label, "count": usage.flag_counts[flag]}
            for flag in FLAGS
        ],
        "groups": list(ResourceGroup.objects.values_list("name", flat=True)),
        "group_name": group_name,
        "chosen_node": scope.node,
        "chart_data": _chart_data(usage),
        "here": reverse("resources:index") + "?" + urlencode(query),
        "api_url": "/api/resources?" + urlencode({**query, **_project_query(request)}),
        "query": query,
    }
    return render(request, "monitoring/resources.html", context, status=422 if errors else 200)


def _project_query(request) -> dict:
    return {"project": request.project.code} if request.project is not None else {}


def _chart_data(usage) -> dict:
    """What static/js/resources.js draws: the nodes using most CPU, allocated against the
    95th percentile measured; and the resource groups' core-seconds."""
    top = sorted(usage.nodes, key=lambda n: -n.cpu_seconds)[:CHART_NODES]
    return {
        "nodes": {
            "labels": [f"{n.project_code}.{n.node_name}" for n in top],
            "allocated_cpu": [n.allocated_cpu for n in top],
            "avg_cores_p95": [n.avg_cores_p95 for n in top],
            "allocated_memory_mb": [n.allocated_memory_mb for n in top],
            "peak_memory_mb_p95": [n.peak_memory_mb_p95 for n in top],
            "flags": [n.flag for n in top],
        },
        "groups": {
            "labels": [g.name for g in usage.resource_groups],
            "allocated_cpu_seconds": [g.allocated_cpu_seconds for g in usage.resource_groups],
            "cpu_seconds": [g.cpu_seconds for g in usage.resource_groups],
        },
        "colors": {
            "allocated": "gray",
            "measured": "blue",
            **{flag: ResourceFlag(flag).color for flag in FLAGS},
        },
    }


@login_required
@require_POST
def resources_apply(request, node_id: int):
    """One click: republish the node with its suggested cpu and memory_mb."""
    back = request.POST.get("next") or reverse("resources:index")
    if not back.startswith("/") or back.startswith("//"):
        back = reverse("resources:index")
    try:
        node = node_get(user=request.user, node_id=node_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    try:
        start, end = resources_range(
            request.POST.get("start"),
            request.POST.get("end"),
            today=resources_today(resources_scope(user=request.user, project=node.project)),
        )
        applied = resource_suggestion_apply(
            node=node, by=request.user, source="ui", start=start, end=end
        )
    except OpscenterError as exc:
        messages.error(request, f"{node.name}: {exc.detail}")
        return HttpResponseRedirect(back)
    cpu, memory = applied.before
    messages.success(
        request,
        f"{node.name} republished as version {applied.version}: cpu "
        f"{cpu if cpu is not None else '-'} → {applied.usage.suggested_cpu:g}, memory "
        f"{memory if memory is not None else '-'} → {applied.usage.suggested_memory_mb} MB.",
    )
    return HttpResponseRedirect(back)
