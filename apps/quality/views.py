"""Field rule pages (the Quality section): the rules with their last result and a
sparkline of their metric, a rule's page with its results, the create and edit forms
(posting to apps.quality.services, which check the role, validate the whole rule and
write the operation log), delete. The node and instance pages show their own panels
(templatetags/quality.py)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.timezones import project_page
from apps.core.errors import NotFound, OpscenterError, ValidationFailed
from apps.core.forms import form_done, refusal_errors, refusal_status
from apps.core.htmx import render_page_or_partial
from apps.core.pagination import keyset_page
from apps.nodes.choices import Env, NodeType
from apps.nodes.models import Node
from apps.notifications.models import Channel
from apps.projects.choices import Role
from apps.projects.models import Datasource, Project
from apps.projects.selectors import has_role, projects_visible_to, projects_where_role

from . import services
from .choices import Compare, Metric, Operator, RuleSeverity
from .forms import blank_form_data, field_errors, rule_form_data
from .models import FieldRule
from .selectors import (
    field_rule_get,
    field_rule_results,
    field_rules_visible_to,
    spark_values,
    with_last_result,
)

RESULTS_PAGE = 50


def may_change_rule(user, node: Node) -> bool:
    """Whether `user` may change the rules of `node` (services._require says the same)."""
    return has_role(user, node.project, Role.ADMIN if node.env == Env.PROD else Role.DEVELOPER)


def _configurable_projects(user):
    """Projects where `user` may make some rule (developer or more)."""
    return projects_where_role(user, Role.DEVELOPER)


def _rule_or_404(request, rule_id: int) -> FieldRule:
    try:
        rule = field_rule_get(user=request.user, rule_id=rule_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    project_page(request, rule.project)
    return rule


@login_required
@require_GET
def rule_list(request):
    queryset = field_rules_visible_to(request.user)
    if request.project is not None:
        queryset = queryset.filter(project=request.project)
    rules = list(with_last_result(queryset).order_by("project__code", "node__name", "id"))
    series = spark_values([rule.pk for rule in rules])
    rows = [
        {
            "rule": rule,
            "spark": series.get(rule.pk, []),
            "may_change": may_change_rule(request.user, rule.node),
        }
        for rule in rules
    ]
    context = {
        "rows": rows,
        "show_project": request.project is None,
        "may_create": _configurable_projects(request.user).exists(),
    }
    return render(request, "quality/rules.html", context)


@login_required
@require_GET
def rule_detail(request, rule_id: int):
    rule = _rule_or_404(request, rule_id)
    try:
        page = keyset_page(
            field_rule_results(rule=rule).select_related("instance"),
            cursor=request.GET.get("cursor") or None,
            limit=RESULTS_PAGE,
            order_field="checked_at",
        )
    except ValidationFailed as exc:
        raise Http404(exc.detail) from exc
    context = {
        "rule": rule,
        "page": page,
        "spark": spark_values([rule.pk], points=60)[rule.pk],
        "may_change": may_change_rule(request.user, rule.node),
        "paged": bool(request.GET.get("cursor")),
    }
    return render_page_or_partial(
        request,
        page="quality/rule_detail.html",
        partial="quality/_results_table.html",
        context=context,
    )


def _form_context(request, *, project: Project | None, data: dict, rule=None) -> dict:
    nodes, datasources, channels = [], [], []
    if project is not None:
        nodes = list(
            Node.objects.filter(project=project)
            .exclude(type=NodeType.VIRTUAL)
            .order_by("name", "env")
        )
        datasources = list(Datasource.objects.filter(project=project).order_by("name"))
        channels = list(
            Channel.objects.filter(project__in=[project]).order_by("name")
            | Channel.objects.filter(project__isnull=True).order_by("name")
        )
    node = rule.node if rule else next((n for n in nodes if n.pk == data.get("node")), None)
    return {
        "project": project,
        "projects": list(_configurable_projects(request.user)),
        "rule": rule,
        "data": data,
        "nodes": nodes,
        "datasources": datasources,
        "channels": channels,
        "metrics": Metric.choices,
        "operators": Operator.choices,
        "compares": Compare.choices,
        "severities": RuleSeverity.choices,
        "may_change": may_change_rule(request.user, node) if node else project is not None,
        "action_url": reverse("quality:rule_edit", args=[rule.pk])
        if rule
        else reverse("quality:rule_new"),
    }


def _render_form(request, *, project, data, rule=None, errors=None, status=200):
    context = _form_context(request, project=project, data=data, rule=rule)
    context["errors"] = errors or []
    context["field_errors"] = field_errors(errors or [])
    return render_page_or_partial(
        request,
        page="quality/rule_form.html",
        partial="quality/_rule_form.html",
        context=context,
        status=status,
    )


@login_required
def rule_new(request):
    """GET: the form for a node (`?node=ID`) or a project (`?project=CODE`, the
    switcher's, or the first the user may configure). POST: field_rule_create."""
    source = request.POST if request.method == "POST" else request.GET
    visible = projects_visible_to(request.user)
    node = None
    node_id = source.get("node", "")
    if node_id.isdigit():
        node = Node.objects.filter(pk=int(node_id), project__in=visible).first()
    code = source.get("project", "")
    project = None
    if node is not None and not code:
        project = node.project
    elif code:
        project = visible.filter(code=code).first()
    elif request.project is not None:
        project = request.project
    else:
        project = _configurable_projects(request.user).first()
    if request.method != "POST":
        data = blank_form_data(
            node.pk if node and project and node.project_id == project.pk else None
        )
        return _render_form(request, project=project, data=data)
    data = rule_form_data(request.POST)
    if project is None:
        errors = [{"field": "project", "message": "choose a project"}]
        return _render_form(request, project=None, data=data, errors=errors, status=422)
    try:
        rule = services.field_rule_create(project=project, data=data, by=request.user, source="ui")
    except OpscenterError as exc:
        return _render_form(
            request,
            project=project,
            data=data,
            errors=refusal_errors(exc),
            status=refusal_status(exc),
        )
    messages.success(request, f"Field rule #{rule.pk} created on {rule.node.name}.")
    return form_done(request, reverse("quality:rule_detail", args=[rule.pk]))


@login_required
def rule_edit(request, rule_id: int):
    """GET: the rule's form (read-only for those who may not change it). POST:
    field_rule_update with every field of the form."""
    rule = _rule_or_404(request, rule_id)
    if request.method != "POST":
        data = services.field_rule_data(rule)
        return _render_form(request, project=rule.project, data=data, rule=rule)
    data = rule_form_data(request.POST)
    try:
        rule = services.field_rule_update(rule=rule, data=data, by=request.user, source="ui")
    except OpscenterError as exc:
        return _render_form(
            request,
            project=rule.project,
            data=data,
            rule=rule,
            errors=refusal_errors(exc),
            status=refusal_status(exc),
        )
    messages.success(request, f"Field rule #{rule.pk} saved.")
    return form_done(request, reverse("quality:rule_detail", args=[rule.pk]))


@login_required
@require_POST
def rule_delete(request, rule_id: int):
    rule = _rule_or_404(request, rule_id)
    node = rule.node
    try:
        services.field_rule_delete(rule=rule, by=request.user, source="ui")
    except OpscenterError as exc:
        messages.error(request, f"Field rule #{rule.pk} not deleted: {exc.detail}")
        return redirect("quality:rule_detail", rule.pk)
    messages.success(request, f"Field rule #{rule_id} of {node.name} deleted with its results.")
    return redirect("quality:rules")
