"""The realtime panel of a node's page: state, Start / Stop, CPU and memory.

The panel polls itself while the process moves (starting, stopping) and stops polling
(a 286) once its state is stable; Start and Stop are enabled only where they apply."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.timezones import project_page
from apps.core import clock
from apps.core.errors import NotFound, OpscenterError
from apps.core.htmx import stop_polling
from apps.instances.choices import InstanceState
from apps.instances.models import Attempt
from apps.instances.operations import operate_role
from apps.nodes.choices import ScheduleType
from apps.nodes.models import Node
from apps.nodes.selectors import node_get
from apps.projects.selectors import has_role

from . import services

# Seconds between two refreshes of the panel while its process starts or stops.
PANEL_POLL_SECONDS = 2


def realtime_panel_context(node: Node) -> dict:
    """What the node page shows for a realtime node (empty for any other)."""
    if node.schedule_type != ScheduleType.REALTIME:
        return {}
    row = services.realtime_settings_get(node)
    spec = node.current_version.spec if node.current_version_id else {}
    cpu, memory_mb = services.effective_resources(row, spec)
    state = row.instance.state
    return {
        "realtime": row,
        "realtime_attempt": Attempt.objects.filter(instance_id=row.instance_id)
        .order_by("-number")
        .first(),
        "realtime_next": {"cpu": cpu, "memory_mb": memory_mb},
        "realtime_changed": state in ("starting", "running", "stopping")
        and (cpu, memory_mb) != (row.applied_cpu, row.applied_memory_mb),
        "realtime_live": state in services.MOVING,
        "realtime_poll_seconds": PANEL_POLL_SECONDS,
        "realtime_can_start": state in services.STARTABLE,
        # A stopping instance whose supervisor is gone can only be stopped by hand.
        "realtime_can_stop": state in services.STOPPABLE
        or (state == InstanceState.STOPPING and services.supervisor_lost(row, clock.now())),
    }


def _node_or_404(request, node_id: int) -> Node:
    try:
        node = node_get(user=request.user, node_id=node_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    project_page(request, node.project)
    return node


@login_required
@require_GET
def node_realtime_panel(request, node_id: int):
    """The panel alone, polled by itself while its process starts or stops; a 286 once
    the state is stable ends the polling."""
    node = _node_or_404(request, node_id)
    context = {
        "node": node,
        "can_operate": has_role(request.user, node.project, operate_role(node.env)),
        **realtime_panel_context(node),
    }
    if not context.get("realtime"):
        raise Http404(f"node {node} is not a realtime node")
    response = render(request, "realtime/_panel.html", context)
    if not context["realtime_live"]:
        stop_polling(response)
    return response


def _number(raw: str, kind: type):
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return kind(raw)
    except ValueError:
        return raw  # the service names the field and what it must be


@login_required
@require_POST
def node_realtime_action(request, node_id: int, action: str):
    node = _node_or_404(request, node_id)
    try:
        if action == "start":
            services.realtime_start(node=node, by=request.user, source="ui")
            done = "is starting"
        elif action == "stop":
            services.realtime_stop(node=node, by=request.user, source="ui")
            done = "is stopping"
        else:
            services.realtime_change_resources(
                node=node,
                by=request.user,
                source="ui",
                cpu=_number(request.POST.get("cpu"), float),
                memory_mb=_number(request.POST.get("memory_mb"), int),
            )
            done = "resources saved: they take effect at the next start"
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    except OpscenterError as exc:
        messages.error(request, f"{node.name}: {exc.detail}")
    else:
        messages.success(request, f"{node.name} {done}.")
    return redirect("nodes:detail", node_id=node.id)
