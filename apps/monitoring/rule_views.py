"""Monitoring rule and on-call schedule pages: lists, create and edit forms that post to
apps.monitoring.services (which check the admin role, validate the whole object and
write the operation log), enable/disable, delete.

A form's 422 answer shows the services' field errors next to the fields they name; an
htmx post gets the form block back, a plain post the whole page.
"""

import zoneinfo

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from apps.accounts.timezones import project_page
from apps.core import clock
from apps.core.errors import NotFound, OpscenterError, ValidationFailed
from apps.core.htmx import render_page_or_partial, wants_partial
from apps.nodes.models import Node
from apps.projects.choices import Role
from apps.projects.models import Membership, Project
from apps.projects.selectors import has_role, projects_visible_to

from . import oncall, rules, services
from .choices import OPEN_STATES, OnCallPeriod, ScopeKind, Severity, TriggerType
from .forms import (
    ON_CALL_HELP,
    SCOPE_HELP,
    RuleForm,
    on_call_data,
    on_call_field_errors,
    rule_data,
    rule_field_errors,
)
from .models import Alert, MonitorRule, OnCallSchedule
from .rule_selectors import (
    monitor_rule_get,
    monitor_rules_visible_to,
    on_call_get,
    on_call_visible_to,
    recipient_choices,
)

# Timezones the on-call form suggests first (any IANA name is accepted).
COMMON_TIMEZONES = [
    "UTC",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Asia/Singapore",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
]


def _admin_project_ids(user) -> set[int] | None:
    """Projects whose rules and schedules `user` may change, in one query; None: all."""
    if user.is_superuser:
        return None
    return set(
        Membership.objects.filter(user=user, role=Role.ADMIN).values_list("project_id", flat=True)
    )


def _may_change(admin_ids: set[int] | None, project_id: int | None) -> bool:
    if admin_ids is None:
        return True
    return project_id is not None and project_id in admin_ids


def _admin_projects(user):
    ids = _admin_project_ids(user)
    projects = projects_visible_to(user).order_by("code")
    return projects if ids is None else projects.filter(pk__in=ids)


def _errors_or_message(exc: OpscenterError) -> list[dict]:
    return exc.errors or [{"field": "", "message": exc.detail}]


# --- monitoring rules ------------------------------------------------------------------


@login_required
def rule_list(request):
    queryset = monitor_rules_visible_to(request.user)
    if request.project is not None:
        queryset = queryset.filter(project=request.project)
    rule_rows = list(queryset.order_by("project__code", "name"))
    admin_ids = _admin_project_ids(request.user)
    context = {
        "rows": _rule_rows(rule_rows, admin_ids),
        "may_create": admin_ids is None or bool(admin_ids),
        "show_project": request.project is None,
    }
    return render(request, "alerts/rules.html", context)


def _rule_rows(rule_list: list[MonitorRule], admin_ids) -> list[dict]:
    """Each rule with what the table says of it: its scope and triggers in words, its
    channels, its open alerts (one query for the page), whether the viewer may change it."""
    node_ids = {i for r in rule_list if r.scope.get("kind") == ScopeKind.NODES for i in _ints(r)}
    names = dict(Node.objects.filter(pk__in=node_ids).values_list("pk", "name"))
    open_counts = dict(
        Alert.objects.filter(rule__in=rule_list, state__in=OPEN_STATES)
        .values("rule")
        .annotate(n=Count("id"))
        .values_list("rule", "n")
    )
    return [
        {
            "rule": rule,
            "scope": _scope_words(rule, names),
            "triggers": [_trigger_words(t) for t in rule.triggers],
            "recipients": _recipient_words(rule.recipients),
            "escalation": _recipient_words(rule.escalate_to) if rule.escalate_after_minutes else "",
            "channels": list(rule.channels.all()),
            "open_alerts": open_counts.get(rule.pk, 0),
            "may_change": _may_change(admin_ids, rule.project_id),
        }
        for rule in rule_list
    ]


def _ints(rule: MonitorRule) -> list[int]:
    return [i for i in rule.scope.get("nodes") or [] if isinstance(i, int)]


def _scope_words(rule: MonitorRule, node_names: dict[int, str]) -> str:
    kind = rule.scope.get("kind")
    if kind == ScopeKind.NODES:
        return ", ".join(node_names.get(i, f"node {i}") for i in _ints(rule))
    if kind == ScopeKind.OWNER:
        return f"nodes of {rule.scope.get('owner')}"
    if kind == ScopeKind.PROJECT:
        return "every node"
    if kind == ScopeKind.BASELINE:
        return f"baseline {rule.scope.get('baseline')}"
    return str(kind)


def _trigger_words(trigger: dict) -> str:
    kind = trigger.get("type")
    if kind == TriggerType.RUNNING_LONGER:
        return f"running > {trigger.get('minutes')} min"
    if kind == TriggerType.UNFINISHED_BY:
        return f"unfinished by {trigger.get('time')}"
    if kind == TriggerType.NOT_STARTED_BY:
        return f"not started by {trigger.get('time')}"
    if kind == TriggerType.SLOWER_THAN_USUAL:
        return f"{trigger.get('factor')}× slower than usual"
    return dict(TriggerType.choices).get(kind, str(kind)).lower()


def _recipient_words(recipients: dict) -> str:
    recipients = recipients or {}
    parts = []
    if recipients.get("owner"):
        parts.append("owner")
    parts += recipients.get("users") or []
    parts += [f"group {g}" for g in recipients.get("groups") or []]
    if recipients.get("on_call"):
        parts.append(f"on call: {recipients['on_call']}")
    return ", ".join(parts)


def _rule_choices(project: Project, form: RuleForm) -> dict:
    """What the rule form offers for `project`: its nodes, its members (and anyone the
    rule already names), groups, on-call schedules and channels it may use."""
    return {
        **recipient_choices(project, named_users=form.named_users),
        "project": project,
        "nodes": list(Node.objects.filter(project=project).order_by("name", "env")),
        "scope_kinds": [
            (kind, label, SCOPE_HELP[kind])
            for kind, label in ScopeKind.choices
            if kind != ScopeKind.BASELINE
            or kind in rules.SCOPE_PROVIDERS
            or form.scope_kind == kind
        ],
        "severities": Severity.choices,
    }


def _render_rule_form(request, *, form: RuleForm, project, rule=None, status=200, errors=None):
    context = {
        "form": form,
        "rule": rule,
        "errors": errors or [],
        "may_change": project is not None and has_role(request.user, project, Role.ADMIN),
        "admin_projects": [] if rule else list(_admin_projects(request.user)),
        "action_url": reverse("alerts:rule_edit", args=[rule.pk])
        if rule
        else reverse("alerts:rule_new"),
    }
    if project is not None:
        context.update(_rule_choices(project, form))
    return render_page_or_partial(
        request,
        page="alerts/rule_form.html",
        partial="alerts/_rule_form.html",
        context=context,
        status=status,
    )


def _done(request, url: str):
    if wants_partial(request):
        return HttpResponseClientRedirect(url)
    return redirect(url)


@login_required
def rule_new(request):
    """GET: the form for the project chosen in it (`?rule_project=CODE`), the switcher's
    or the first the user administers. POST: monitor_rule_create."""
    admin_projects = list(_admin_projects(request.user))
    code = request.POST.get("rule_project") or request.GET.get("rule_project")
    project = None
    if code:
        project = next((p for p in admin_projects if p.code == code), None)
        if project is None:
            project = projects_visible_to(request.user).filter(code=code).first()
    elif request.project is not None:
        project = request.project
    elif admin_projects:
        project = admin_projects[0]
    if request.method != "POST":
        return _render_rule_form(request, form=RuleForm.blank(), project=project)
    data = rule_data(request.POST)
    if project is None:
        errors = [{"field": "rule_project", "message": "choose a project you administer"}]
        form = RuleForm(data, rule_field_errors(errors, data))
        return _render_rule_form(request, form=form, project=None, status=422, errors=errors)
    try:
        rule = services.monitor_rule_create(
            project=project, data=data, by=request.user, source="ui"
        )
    except ValidationFailed as exc:
        errors = _errors_or_message(exc)
        form = RuleForm(data, rule_field_errors(errors, data))
        return _render_rule_form(request, form=form, project=project, status=422, errors=errors)
    except OpscenterError as exc:
        form = RuleForm(data)
        return _render_rule_form(
            request,
            form=form,
            project=project,
            status=exc.status_code,
            errors=_errors_or_message(exc),
        )
    messages.success(request, f"Rule {rule.name} created in {project.code}.")
    return _done(request, reverse("alerts:rules"))


def _rule_or_404(request, rule_id: int) -> MonitorRule:
    try:
        rule = monitor_rule_get(user=request.user, rule_id=rule_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    project_page(request, rule.project)
    return rule


@login_required
def rule_edit(request, rule_id: int):
    """GET: the rule's form (read-only for those who may not change it). POST:
    monitor_rule_update with every field of the form."""
    rule = _rule_or_404(request, rule_id)
    if request.method != "POST":
        form = RuleForm(services.monitor_rule_data(rule))
        return _render_rule_form(request, form=form, project=rule.project, rule=rule)
    data = rule_data(request.POST)
    try:
        rule = services.monitor_rule_update(rule=rule, data=data, by=request.user, source="ui")
    except OpscenterError as exc:
        errors = _errors_or_message(exc)
        form = RuleForm(data, rule_field_errors(errors, data))
        status = exc.status_code if exc.status_code != 400 else 422
        return _render_rule_form(
            request, form=form, project=rule.project, rule=rule, status=status, errors=errors
        )
    messages.success(request, f"Rule {rule.name} saved.")
    return _done(request, reverse("alerts:rules"))


@login_required
@require_POST
def rule_toggle(request, rule_id: int):
    """Enable or disable (`enabled` = on or off). From htmx, the answer is the rule's row."""
    rule = _rule_or_404(request, rule_id)
    enabled = request.POST.get("enabled", "on" if not rule.enabled else "off") == "on"
    try:
        rule = services.monitor_rule_update(
            rule=rule, data={"enabled": enabled}, by=request.user, source="ui"
        )
    except OpscenterError as exc:
        messages.error(request, f"Rule {rule.name} not changed: {exc.detail}")
        return _done(request, reverse("alerts:rules"))
    if wants_partial(request):
        rule = _rule_or_404(request, rule.pk)
        row = _rule_rows([rule], _admin_project_ids(request.user))[0]
        return render(
            request,
            "alerts/_rule_row.html",
            {"row": row, "show_project": request.POST.get("show_project") == "1"},
        )
    messages.success(request, f"Rule {rule.name} {'enabled' if enabled else 'disabled'}.")
    return redirect("alerts:rules")


@login_required
@require_POST
def rule_delete(request, rule_id: int):
    rule = _rule_or_404(request, rule_id)
    try:
        services.monitor_rule_delete(rule=rule, by=request.user, source="ui")
    except OpscenterError as exc:
        messages.error(request, f"Rule {rule.name} not deleted: {exc.detail}")
        return HttpResponseRedirect(reverse("alerts:rule_edit", args=[rule.pk]))
    messages.success(request, f"Rule {rule.name} deleted; its alerts stay.")
    return redirect("alerts:rules")


# --- on-call schedules -----------------------------------------------------------------


@login_required
def on_call_list(request):
    """Every schedule the user may read, with who is on call now and who takes over
    next, and when (in the schedule's timezone)."""
    queryset = on_call_visible_to(request.user)
    if request.project is not None:
        queryset = queryset.filter(Q(project=request.project) | Q(project__isnull=True))
    now = clock.now()
    admin_ids = _admin_project_ids(request.user)
    rows = []
    for schedule in queryset.order_by("name"):
        following = oncall.next_handover(schedule, now)
        rows.append(
            {
                "schedule": schedule,
                "now": oncall.on_call_at(schedule, now),
                "next_user": following[1] if following else None,
                "next_at": following[0] if following else None,
                "may_change": _may_change(admin_ids, schedule.project_id)
                if schedule.project_id
                else request.user.is_superuser,
            }
        )
    context = {
        "rows": rows,
        "may_create": admin_ids is None or bool(admin_ids),
        "now": now,
    }
    return render(request, "alerts/on_call.html", context)


def _render_on_call_form(request, *, data, schedule=None, status=200, errors=None):
    errors = errors or []
    project = schedule.project if schedule else None
    context = {
        "data": data,
        "schedule": schedule,
        "errors": errors,
        "field_errors": on_call_field_errors(errors),
        "periods": OnCallPeriod.choices,
        "timezones": COMMON_TIMEZONES,
        "help": ON_CALL_HELP,
        "admin_projects": [] if schedule else list(_admin_projects(request.user)),
        "may_global": request.user.is_superuser,
        "may_change": (
            has_role(request.user, project, Role.ADMIN) if project else request.user.is_superuser
        )
        if schedule
        else True,
        "action_url": reverse("alerts:on_call_edit", args=[schedule.pk])
        if schedule
        else reverse("alerts:on_call_new"),
    }
    if schedule is not None:
        context["preview"] = _on_call_preview(schedule)
    return render_page_or_partial(
        request,
        page="alerts/on_call_form.html",
        partial="alerts/_on_call_form.html",
        context=context,
        status=status,
    )


def _on_call_preview(schedule: OnCallSchedule) -> dict:
    now = clock.now()
    following = oncall.next_handover(schedule, now)
    return {
        "now": oncall.on_call_at(schedule, now),
        "next_user": following[1] if following else None,
        "next_at": following[0] if following else None,
    }


def _on_call_form_values(data: dict) -> dict:
    """The service's data as the form's inputs show it."""
    return {**data, "users": ", ".join(data.get("users") or [])}


@login_required
def on_call_new(request):
    if request.method != "POST":
        default_project = request.project
        tz = default_project.timezone if default_project else "UTC"
        data = {
            "name": "",
            "users": "",
            "period": OnCallPeriod.WEEKLY,
            "handover": "09:00",
            "start_date": clock.now().astimezone(zoneinfo.ZoneInfo(tz)).date().isoformat(),
            "timezone": tz,
            "project": default_project.code if default_project else "",
        }
        return _render_on_call_form(request, data=data)
    data = on_call_data(request.POST)
    code = request.POST.get("project", "")
    shown = {**_on_call_form_values(data), "project": code}
    project = None
    if code:
        project = projects_visible_to(request.user).filter(code=code).first()
        if project is None:
            errors = [{"field": "project", "message": f"no project {code!r}"}]
            return _render_on_call_form(request, data=shown, status=422, errors=errors)
    try:
        schedule = services.on_call_create(project=project, data=data, by=request.user, source="ui")
    except OpscenterError as exc:
        status = exc.status_code if exc.status_code != 400 else 422
        return _render_on_call_form(
            request, data=shown, status=status, errors=_errors_or_message(exc)
        )
    messages.success(request, f"On-call schedule {schedule.name} created.")
    return _done(request, reverse("alerts:on_call"))


def _schedule_or_404(request, schedule_id: int) -> OnCallSchedule:
    try:
        return on_call_get(user=request.user, schedule_id=schedule_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc


@login_required
def on_call_edit(request, schedule_id: int):
    schedule = _schedule_or_404(request, schedule_id)
    if request.method != "POST":
        data = _on_call_form_values(services.on_call_data(schedule))
        return _render_on_call_form(request, data=data, schedule=schedule)
    data = on_call_data(request.POST)
    try:
        schedule = services.on_call_update(
            schedule=schedule, data=data, by=request.user, source="ui"
        )
    except OpscenterError as exc:
        status = exc.status_code if exc.status_code != 400 else 422
        return _render_on_call_form(
            request,
            data=_on_call_form_values(data),
            schedule=schedule,
            status=status,
            errors=_errors_or_message(exc),
        )
    messages.success(request, f"On-call schedule {schedule.name} saved.")
    return _done(request, reverse("alerts:on_call"))


@login_required
@require_POST
def on_call_delete(request, schedule_id: int):
    schedule = _schedule_or_404(request, schedule_id)
    try:
        services.on_call_delete(schedule=schedule, by=request.user, source="ui")
    except OpscenterError as exc:
        messages.error(request, f"On-call schedule {schedule.name} not deleted: {exc.detail}")
        return HttpResponseRedirect(reverse("alerts:on_call_edit", args=[schedule.pk]))
    messages.success(request, f"On-call schedule {schedule.name} deleted.")
    return redirect("alerts:on_call")
