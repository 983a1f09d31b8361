"""Resource group and throttling rule pages: lists with live usage (polled), a group's
page (capacity, slot holders, queue in start order, workers), create and edit forms
that post to capacity_services (which check the role, validate the whole object and
write the operation log), enable/disable, delete.

A form's 4xx answer shows the services' field errors next to the fields they name; an
htmx post gets the form block back, a plain post the whole page.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from apps.core.errors import NotFound, OpscenterError
from apps.core.forms import field_errors
from apps.core.htmx import render_page_or_partial, triggered_by, wants_partial
from apps.nodes.choices import NodeType
from apps.projects.choices import Role
from apps.projects.models import Datasource, Membership
from apps.projects.selectors import projects_visible_to

from . import capacity_services as services
from . import throttling
from .capacity_forms import group_data, rule_data
from .capacity_selectors import (
    resource_group_detail,
    resource_group_get,
    resource_group_rows,
    throttle_rule_get,
    throttle_rule_holders,
    throttle_rules_usage,
    throttle_rules_visible_to,
)
from .choices import ThrottleScope
from .gates import rule_words, scope_value
from .models import ResourceGroup, ThrottleRule

LIVE_POLL_SECONDS = 5


def _done(request, url: str):
    if wants_partial(request):
        return HttpResponseClientRedirect(url)
    return redirect(url)


def _status(exc: OpscenterError) -> int:
    return exc.status_code if exc.status_code != 400 else 422


def _errors_or_message(exc: OpscenterError) -> list[dict]:
    return exc.errors or [{"field": "", "message": exc.detail}]


def _runtime_url() -> str:
    """The runtime configuration page, when that section exists."""
    try:
        return reverse("runtime:global")
    except NoReverseMatch:
        return ""


def _section(request, tab: str) -> dict:
    return {"tab": tab, "runtime_url": _runtime_url(), "poll_seconds": LIVE_POLL_SECONDS}


# --- resource groups -------------------------------------------------------------------


@login_required
def group_list(request):
    context = {
        **_section(request, "groups"),
        "rows": resource_group_rows(),
        "may_change": request.user.is_superuser,
    }
    if triggered_by(request, "groups-live"):
        return render(request, "configuration/_group_table.html", context)
    return render(request, "configuration/groups.html", context)


def _group_or_404(name: str) -> ResourceGroup:
    try:
        return resource_group_get(name=name)
    except NotFound as exc:
        raise Http404(exc.detail) from exc


@login_required
def group_detail(request, name: str):
    group = _group_or_404(name)
    context = {
        **_section(request, "groups"),
        **resource_group_detail(group=group, user=request.user),
        "may_change": request.user.is_superuser,
    }
    if triggered_by(request, "group-live"):
        return render(request, "configuration/_group_live.html", context)
    return render(request, "configuration/group_detail.html", context)


def _render_group_form(request, *, data, group=None, status=200, errors=None):
    errors = errors or []
    context = {
        **_section(request, "groups"),
        "data": data,
        "group": group,
        "errors": errors,
        "field_errors": field_errors(errors),
        "may_change": request.user.is_superuser,
        "action_url": reverse("configuration:resource_group_edit", args=[group.name])
        if group
        else reverse("configuration:resource_group_new"),
    }
    return render_page_or_partial(
        request,
        page="configuration/group_form.html",
        partial="configuration/_group_form.html",
        context=context,
        status=status,
    )


@login_required
def group_new(request):
    if request.method != "POST":
        data = {**services.GROUP_DEFAULTS, "name": ""}
        return _render_group_form(request, data=data)
    data = group_data(request.POST, creating=True)
    try:
        group = services.resource_group_create(data=data, by=request.user, source="ui")
    except OpscenterError as exc:
        return _render_group_form(
            request, data=data, status=_status(exc), errors=_errors_or_message(exc)
        )
    messages.success(request, f"Resource group {group.name} created.")
    return _done(request, reverse("configuration:resource_group", args=[group.name]))


@login_required
def group_edit(request, name: str):
    group = _group_or_404(name)
    if request.method != "POST":
        return _render_group_form(request, data=services.resource_group_data(group), group=group)
    data = group_data(request.POST, creating=False)
    try:
        group = services.resource_group_update(group=group, data=data, by=request.user, source="ui")
    except OpscenterError as exc:
        return _render_group_form(
            request,
            data={**data, "name": group.name},
            group=group,
            status=_status(exc),
            errors=_errors_or_message(exc),
        )
    messages.success(request, f"Resource group {group.name} saved.")
    return _done(request, reverse("configuration:resource_group", args=[group.name]))


@login_required
@require_POST
def group_delete(request, name: str):
    group = _group_or_404(name)
    try:
        services.resource_group_delete(group=group, by=request.user, source="ui")
    except OpscenterError as exc:
        messages.error(request, f"Resource group {group.name} not deleted: {exc.detail}")
        return HttpResponseRedirect(reverse("configuration:resource_group", args=[name]))
    messages.success(request, f"Resource group {name} deleted.")
    return redirect("configuration:resource_groups")


# --- throttling rules ------------------------------------------------------------------


def _admin_project_ids(user) -> set[int] | None:
    if user.is_superuser:
        return None
    return set(
        Membership.objects.filter(user=user, role=Role.ADMIN).values_list("project_id", flat=True)
    )


def _may_change(user, rule: ThrottleRule, admin_ids) -> bool:
    if rule.project_id is None:
        return user.is_superuser
    return admin_ids is None or rule.project_id in admin_ids


def _rule_rows(user, rules: list[ThrottleRule]) -> list[dict]:
    usage = throttle_rules_usage(rules)
    admin_ids = _admin_project_ids(user)
    return [
        {
            "rule": rule,
            "scope_value": scope_value(rule),
            "window": throttling.window_words(rule),
            **usage[rule.pk],
            "may_change": _may_change(user, rule, admin_ids),
        }
        for rule in rules
    ]


@login_required
def rule_list(request):
    rules = throttle_rules_visible_to(request.user)
    if request.project is not None:
        rules = rules.filter(Q(project=request.project) | Q(project__isnull=True))
    admin_ids = _admin_project_ids(request.user)
    context = {
        **_section(request, "rules"),
        "rows": _rule_rows(request.user, list(rules.order_by("name"))),
        "may_create": admin_ids is None or bool(admin_ids),
    }
    if triggered_by(request, "rules-live"):
        return render(request, "configuration/_rule_table.html", context)
    return render(request, "configuration/rules.html", context)


def _rule_or_404(request, rule_id: int) -> ThrottleRule:
    try:
        return throttle_rule_get(user=request.user, rule_id=rule_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc


def _scope_choices(user) -> dict:
    """What the scope value may be, per kind, for this user: suggestions for the form."""
    projects = projects_visible_to(user).order_by("code")
    admin_ids = _admin_project_ids(user)
    if admin_ids is not None:
        projects = projects.filter(pk__in=admin_ids)
    codes = list(projects.values_list("code", flat=True))
    datasources = [
        f"{code}.{name}"
        for code, name in Datasource.objects.filter(project__code__in=codes)
        .order_by("project__code", "name")
        .values_list("project__code", "name")
    ]
    return {
        ThrottleScope.RESOURCE_GROUP: list(
            ResourceGroup.objects.order_by("name").values_list("name", flat=True)
        )
        if user.is_superuser
        else [],
        ThrottleScope.PROJECT: codes,
        ThrottleScope.NODE_TYPE: list(NodeType.values) if user.is_superuser else [],
        ThrottleScope.DATASOURCE: datasources,
    }


def _render_rule_form(request, *, data, rule=None, status=200, errors=None):
    errors = errors or []
    choices = _scope_choices(request.user)
    if rule is not None:
        may_change = _may_change(request.user, rule, _admin_project_ids(request.user))
    else:
        may_change = any(choices.values())
    context = {
        **_section(request, "rules"),
        "data": data,
        "rule": rule,
        "errors": errors,
        "field_errors": field_errors(errors),
        "scope_kinds": ThrottleScope.choices,
        "scope_choices": choices,
        "may_change": may_change,
        "action_url": reverse("configuration:throttle_rule_edit", args=[rule.pk])
        if rule
        else reverse("configuration:throttle_rule_new"),
    }
    if rule is not None:
        context["usage"] = throttle_rules_usage([rule])[rule.pk]
        context["words"] = rule_words(rule)
        context["timezone"] = str(throttling.rule_timezone(rule))
        context |= throttle_rule_holders(rule=rule, user=request.user)
    return render_page_or_partial(
        request,
        page="configuration/rule_form.html",
        partial="configuration/_rule_form.html",
        context=context,
        status=status,
    )


@login_required
def rule_new(request):
    if request.method != "POST":
        data = {
            "name": "",
            "scope_kind": ThrottleScope.PROJECT,
            "scope_value": request.project.code if request.project else "",
            "max_concurrency": 1,
            "window_start": None,
            "window_end": None,
            "enabled": True,
        }
        return _render_rule_form(request, data=data)
    data = rule_data(request.POST)
    try:
        rule = services.throttle_rule_create(data=data, by=request.user, source="ui")
    except OpscenterError as exc:
        return _render_rule_form(
            request, data=data, status=_status(exc), errors=_errors_or_message(exc)
        )
    messages.success(request, f"Throttling rule {rule.name} created.")
    return _done(request, reverse("configuration:throttle_rules"))


@login_required
def rule_edit(request, rule_id: int):
    rule = _rule_or_404(request, rule_id)
    if request.method != "POST":
        return _render_rule_form(request, data=services.throttle_rule_data(rule), rule=rule)
    data = rule_data(request.POST)
    try:
        rule = services.throttle_rule_update(rule=rule, data=data, by=request.user, source="ui")
    except OpscenterError as exc:
        return _render_rule_form(
            request, data=data, rule=rule, status=_status(exc), errors=_errors_or_message(exc)
        )
    messages.success(request, f"Throttling rule {rule.name} saved.")
    return _done(request, reverse("configuration:throttle_rules"))


@login_required
@require_POST
def rule_toggle(request, rule_id: int):
    """Enable or disable (`enabled` = on or off). From htmx, the answer is the rule's row."""
    rule = _rule_or_404(request, rule_id)
    enabled = request.POST.get("enabled", "on" if not rule.enabled else "off") == "on"
    try:
        rule = services.throttle_rule_update(
            rule=rule, data={"enabled": enabled}, by=request.user, source="ui"
        )
    except OpscenterError as exc:
        messages.error(request, f"Throttling rule {rule.name} not changed: {exc.detail}")
        return _done(request, reverse("configuration:throttle_rules"))
    if wants_partial(request):
        row = _rule_rows(request.user, [_rule_or_404(request, rule.pk)])[0]
        return render(request, "configuration/_rule_row.html", {"row": row})
    messages.success(
        request, f"Throttling rule {rule.name} {'enabled' if enabled else 'disabled'}."
    )
    return redirect("configuration:throttle_rules")


@login_required
@require_POST
def rule_delete(request, rule_id: int):
    rule = _rule_or_404(request, rule_id)
    try:
        services.throttle_rule_delete(rule=rule, by=request.user, source="ui")
    except OpscenterError as exc:
        messages.error(request, f"Throttling rule {rule.name} not deleted: {exc.detail}")
        return HttpResponseRedirect(reverse("configuration:throttle_rule_edit", args=[rule.pk]))
    messages.success(request, f"Throttling rule {rule.name} deleted.")
    return redirect("configuration:throttle_rules")
