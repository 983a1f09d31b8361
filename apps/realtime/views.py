"""The realtime panel of a node's page: state, Start / Stop, CPU and memory."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from apps.core.errors import NotFound, OpscenterError
from apps.instances.models import Attempt
from apps.nodes.choices import ScheduleType
from apps.nodes.models import Node
from apps.nodes.selectors import node_get

from . import services


def realtime_panel_context(node: Node) -> dict:
    """What the node page shows for a realtime node (empty for any other)."""
    if node.schedule_type != ScheduleType.REALTIME:
        return {}
    row = services.realtime_settings_get(node)
    spec = node.current_version.spec if node.current_version_id else {}
    cpu, memory_mb = services.effective_resources(row, spec)
    return {
        "realtime": row,
        "realtime_attempt": Attempt.objects.filter(instance_id=row.instance_id)
        .order_by("-number")
        .first(),
        "realtime_next": {"cpu": cpu, "memory_mb": memory_mb},
        "realtime_changed": row.instance.state in ("starting", "running", "stopping")
        and (cpu, memory_mb) != (row.applied_cpu, row.applied_memory_mb),
    }


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
    try:
        node = node_get(user=request.user, node_id=node_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
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
