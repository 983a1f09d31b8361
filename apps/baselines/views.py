"""Baseline pages: the list (today's status of each, at-risk first), a baseline's page
(a cycle's status with the Gantt chart of its critical path, key instances, the 30-cycle
on-time rate, history and alerts), the create and edit forms (posting to
apps.baselines.services, which check the admin role, validate the whole baseline and
write the operation log, as for the API), delete. Views parse, call selectors and
services, and render."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as PermissionRefused
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.accounts.timezones import project_page
from apps.audit.choices import Source
from apps.core import clock
from apps.core.errors import NotFound, OpscenterError, PermissionDenied, ValidationFailed
from apps.core.forms import (
    field_errors,
    form_done,
    nul_errors,
    refusal_errors,
    refusal_status,
)
from apps.core.htmx import render_page_or_partial
from apps.instances.models import Instance
from apps.monitoring.forms import recipient_errors, recipients_shown
from apps.monitoring.rule_selectors import recipient_choices
from apps.nodes.choices import Env, NodeStatus, ScheduleType
from apps.nodes.models import Node
from apps.projects.choices import Role
from apps.projects.models import Project
from apps.projects.selectors import has_role, projects_visible_to, projects_where_role

from . import services
from .choices import CycleKind
from .forms import COMMITTED_HINTS, baseline_form_data, blank_form_data
from .models import Baseline
from .selectors import (
    HISTORY_CYCLES,
    baseline_alerts,
    baseline_get,
    baseline_rows,
    cycle_of,
    cycle_status,
    cycles_history,
    gantt,
    on_time_rate,
)

# The list and an open cycle's page refresh this often (the monitor recomputes each minute).
POLL_SECONDS = 30


def _admin_projects(user):
    """Projects whose baselines `user` may write (services require the admin role)."""
    return projects_where_role(user, Role.ADMIN)


def _baseline_or_404(request, baseline_id: int) -> Baseline:
    try:
        baseline = baseline_get(user=request.user, baseline_id=baseline_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    project_page(request, baseline.project)
    return baseline


@login_required
def baseline_list(request):
    now = clock.now()
    rows = baseline_rows(user=request.user, project=request.project, now=now)
    context = {
        "rows": rows,
        "now": now,
        "show_project": request.project is None,
        "poll_seconds": POLL_SECONDS,
        "may_create": _admin_projects(request.user).exists(),
    }
    return render(request, "baselines/list.html", context)


@login_required
def baseline_detail(request, baseline_id: int):
    baseline = _baseline_or_404(request, baseline_id)
    now = clock.now()
    errors, view, chart, missing = [], None, None, ""
    try:
        biz_date, hour = cycle_of(
            baseline,
            biz_date=request.GET.get("biz_date"),
            hour=request.GET.get("hour"),
            now=now,
        )
    except ValidationFailed as exc:
        errors = exc.errors
        biz_date, hour = cycle_of(baseline, biz_date=None, hour=None, now=now)
    try:
        view = cycle_status(baseline=baseline, biz_date=biz_date, hour=hour, now=now)
        chart = gantt(view, now=now, tz=timezone.get_current_timezone())
    except NotFound as exc:
        missing = exc.detail
    keys = []
    if view is not None:
        found = Instance.objects.filter(pk__in=view.key_instances).select_related("node")
        keys = sorted(found, key=lambda i: (i.scheduled_at, i.pk))
    context = {
        "baseline": baseline,
        "biz_date": biz_date,
        "hour": hour,
        "view": view,
        "chart": chart,
        "missing": missing,
        "errors": errors,
        "key_instances": keys,
        "on_time": on_time_rate(baseline),
        "history": list(cycles_history(baseline)[:HISTORY_CYCLES]),
        "history_cycles": HISTORY_CYCLES,
        "alerts": baseline_alerts(baseline),
        "now": now,
        "poll_seconds": POLL_SECONDS,
        "hours": range(24),
        "may_change": has_role(request.user, baseline.project, Role.ADMIN),
    }
    return render(request, "baselines/detail.html", context, status=422 if errors else 200)


# --- the form ----------------------------------------------------------------------------


def _key_node_choices(project: Project, chosen) -> list[Node]:
    """The project's online recurring production nodes, and any it names already (kept
    offered, so an edit does not drop a node that went offline); the chosen first."""
    chosen_ids = [i for i in chosen if isinstance(i, int)]
    nodes = Node.objects.filter(
        Q(env=Env.PROD, status=NodeStatus.ONLINE, schedule_type=ScheduleType.RECURRING)
        | Q(pk__in=chosen_ids),
        project=project,
    ).order_by("name")
    return sorted(nodes, key=lambda node: node.pk not in chosen_ids)


def _render_form(request, *, project, data, baseline=None, errors=None, status=200):
    errors = errors or []
    by_field = field_errors(errors)
    cycle = data.get("cycle") if data.get("cycle") in CycleKind.values else CycleKind.DAILY
    chosen = data.get("key_nodes") if isinstance(data.get("key_nodes"), list) else []
    context = {
        "project": project,
        "baseline": baseline,
        "data": data,
        "errors": errors,
        "field_errors": by_field,
        "recipients": recipients_shown(data.get("recipients")),
        "recipients_errors": recipient_errors(by_field, "recipients"),
        "chosen_nodes": set(chosen),
        "chosen_channels": set(data.get("channels") or []),
        # Each cycle with the committed time's format and hint (the script swaps them).
        "cycles": [(value, label, *COMMITTED_HINTS[value]) for value, label in CycleKind.choices],
        "committed_hint": COMMITTED_HINTS[cycle],
        "priorities": range(services.PRIORITY_RANGE[0], services.PRIORITY_RANGE[1] + 1),
        "admin_projects": [] if baseline else list(_admin_projects(request.user)),
        "may_change": project is not None and has_role(request.user, project, Role.ADMIN),
        "action_url": reverse("baselines:edit", args=[baseline.pk])
        if baseline
        else reverse("baselines:new"),
    }
    if project is not None:
        named = (data.get("recipients") or {}).get("users") or []
        context.update(recipient_choices(project, named_users=[u for u in named if u]))
        context["nodes"] = _key_node_choices(project, chosen)
    return render_page_or_partial(
        request,
        page="baselines/form.html",
        partial="baselines/_form.html",
        context=context,
        status=status,
    )


def _refused(request, exc: OpscenterError, **form) -> HttpResponse:
    if isinstance(exc, NotFound):
        raise Http404(exc.detail) from exc
    return _render_form(request, errors=refusal_errors(exc), status=refusal_status(exc), **form)


@login_required
def baseline_new(request):
    """GET: the form for the project chosen in it (`?baseline_project=CODE`), the
    switcher's or the first the user administers. POST: services.baseline_create."""
    source = request.POST if request.method == "POST" else request.GET
    code = source.get("baseline_project", "").strip()
    if code:
        project = projects_visible_to(request.user).filter(code=code).first()
        if project is None:
            raise Http404(f"project {code!r} not found")
    else:
        project = request.project or _admin_projects(request.user).first()
    if request.method != "POST":
        return _render_form(request, project=project, data=blank_form_data())
    data = baseline_form_data(request.POST)
    form = {"project": project, "data": data}
    if errors := nul_errors(request.POST):
        return _render_form(request, errors=errors, status=422, **form)
    if project is None:
        errors = [{"field": "baseline_project", "message": "choose a project you administer"}]
        return _render_form(request, errors=errors, status=422, **form)
    try:
        baseline = services.baseline_create(
            project=project, data=data, by=request.user, source=Source.UI
        )
    except OpscenterError as exc:
        return _refused(request, exc, **form)
    messages.success(request, f"Baseline {baseline.name} created in {project.code}.")
    return form_done(request, reverse("baselines:detail", args=[baseline.pk]))


@login_required
def baseline_edit(request, baseline_id: int):
    """GET: the baseline's form (read-only for those who may not change it). POST:
    services.baseline_update with every field of the form."""
    baseline = _baseline_or_404(request, baseline_id)
    if request.method != "POST":
        data = services.baseline_data(baseline)
        return _render_form(request, project=baseline.project, data=data, baseline=baseline)
    data = baseline_form_data(request.POST)
    form = {"project": baseline.project, "data": data, "baseline": baseline}
    if errors := nul_errors(request.POST):
        return _render_form(request, errors=errors, status=422, **form)
    try:
        services.baseline_update(baseline=baseline, data=data, by=request.user, source=Source.UI)
    except OpscenterError as exc:
        return _refused(request, exc, **form)
    messages.success(request, f"Baseline {baseline.name} saved.")
    return form_done(request, reverse("baselines:detail", args=[baseline.pk]))


@login_required
@require_POST
def baseline_delete(request, baseline_id: int):
    baseline = _baseline_or_404(request, baseline_id)
    name = baseline.name
    try:
        services.baseline_delete(baseline=baseline, by=request.user, source=Source.UI)
    except PermissionDenied as exc:
        raise PermissionRefused(exc.detail) from exc
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    messages.success(request, f"Baseline {name} deleted with its history; its alerts stay.")
    return redirect("baselines:list")
