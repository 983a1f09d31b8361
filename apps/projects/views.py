"""Project pages: the projects one is a member of, a project's settings, members,
datasources (with Test connection) and variables, and deleting a project.

Views parse the form, call apps.projects.services (the same functions as the API, which
validate, write and record the operation log) and render. A project one is not a member
of is a 404; viewers read, operators also test connections, admins change. A form the
service refuses comes back with each error next to its input and nothing changed.
"""

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import F
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts.timezones import project_page, timezone_names
from apps.core.errors import NotFound, OpscenterError
from apps.core.forms import field_errors, refusal_errors
from apps.core.htmx import render_page_or_partial, wants_partial
from apps.core.pagination import Page, keyset_page, view_page
from apps.instances.models import Instance

from . import services
from .choices import ROLE_RANK, DatasourceKind, EnvMode, GenerationMode, Role
from .forms import (
    DATASOURCE_FIELDS,
    MEMBER_FIELDS,
    PROJECT_FIELDS,
    VARIABLE_FIELDS,
    datasource_data,
    datasource_values,
    member_data,
    project_data,
    project_values,
    unplaced_errors,
    variable_data,
)
from .models import Datasource, Membership, Project, Variable
from .selectors import (
    nodes_using_datasource,
    project_get,
    projects_visible_to,
    projects_with_counts,
    role_of,
    roles_in,
)

SOURCE = "ui"
# Usernames offered as completions in the add-member form.
MAX_USER_CHOICES = 500


def refused_form(errors: list[dict], fields: tuple[str, ...]) -> dict:
    """The template's view of a refused form: errors per input, and the others on top."""
    return {"field_errors": field_errors(errors), "errors": unplaced_errors(errors, fields)}


def _page(request, queryset, *, order_field: str) -> tuple[Page, list[dict]]:
    """One keyset page of a list (a bad cursor or limit shows as an error, not a 500)."""
    return view_page(keyset_page, queryset, request.GET, order_field=order_field, descending=False)


def _paged(request, queryset, *, order_field: str) -> dict:
    """The page for the list's template: `page`, `paged` (past the first) and
    `page_errors`."""
    page, page_errors = _page(request, queryset, order_field=order_field)
    return {"page": page, "paged": bool(request.GET.get("cursor")), "page_errors": page_errors}


def _render_list(request, context: dict, *, page: str, partial: str, status: int = 200):
    """A list page, or only its table for the pager's htmx request."""
    if context["page_errors"] and status == 200:
        status = 422
    return render_page_or_partial(
        request, page=page, partial=partial, context=context, status=status
    )


def project_context(request, code: str) -> dict:
    """The page context of a project the user may see (else 404) with their role."""
    try:
        project = project_get(user=request.user, code=code)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    # Its times (created, member since...) in its own zone unless the viewer chose one.
    project_page(request, project)
    role = role_of(request.user, project)
    rank = ROLE_RANK[role]
    return {
        "project": project,
        "role": role,
        "may_admin": rank >= ROLE_RANK[Role.ADMIN],
        "may_operate": rank >= ROLE_RANK[Role.OPERATOR],
    }


def require_role(context: dict, role: str) -> None:
    if ROLE_RANK[context["role"]] < ROLE_RANK[role]:
        project = context["project"]
        raise DjangoPermissionDenied(
            f"this needs the {role} role in project {project.code}; you are {context['role']}"
        )


def _may_create_projects(user) -> bool:
    return user.is_superuser or user.is_staff


def _project_choices() -> dict:
    """The form's choices; the timezone input completes from every IANA name."""
    return {
        "env_modes": EnvMode.choices,
        "generation_modes": GenerationMode.choices,
        "timezones": timezone_names(),
    }


# --- projects ----------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def project_list(request):
    """The projects one is a member of (superusers: all); POST creates one (superusers
    and staff, as the API)."""
    values, errors, status = project_values(), [], 200
    if request.method == "POST":
        if not _may_create_projects(request.user):
            raise DjangoPermissionDenied("only superusers and staff create projects")
        data = project_data(request.POST, creating=True)
        try:
            project = services.project_create(user=request.user, source=SOURCE, **data)
        except OpscenterError as exc:
            values, errors, status = data, refusal_errors(exc), 422
        else:
            messages.success(request, f"Project {project.code} created: you are its admin.")
            return redirect("projects:detail", project.code)
    listed = _paged(request, projects_with_counts(request.user), order_field="code")
    roles = roles_in(request.user, listed["page"].items)
    context = {
        **listed,
        "rows": [{"project": p, "role": roles.get(p.pk)} for p in listed["page"].items],
        "may_create": _may_create_projects(request.user),
        "values": values,
        "creating": True,
        **refused_form(errors, PROJECT_FIELDS),
        **_project_choices(),
    }
    return _render_list(
        request,
        context,
        page="projects/list.html",
        partial="projects/_project_table.html",
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def project_detail(request, code: str):
    """A project's settings; admins change them here."""
    context = project_context(request, code)
    project = context["project"]
    values, errors, status = project_values(project), [], 200
    if request.method == "POST":
        require_role(context, Role.ADMIN)
        data = project_data(request.POST, creating=False)
        try:
            services.project_update(project=project, user=request.user, fields=data, source=SOURCE)
        except OpscenterError as exc:
            values = {**data, "code": project.code}
            errors, status = refusal_errors(exc), 422
        else:
            messages.success(request, f"Project {project.code} saved.")
            return redirect("projects:detail", project.code)
    counts = projects_with_counts(request.user).filter(pk=project.pk).first()
    context.update(
        {
            "tab": "settings",
            "counts": counts,
            "values": values,
            "creating": False,
            **refused_form(errors, PROJECT_FIELDS),
            **_project_choices(),
        }
    )
    return render(request, "projects/detail.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def project_delete(request, code: str):
    """A confirmation page (type the code), then the delete. The service refuses while
    the project's instances run or other projects' nodes depend on it."""
    context = project_context(request, code)
    require_role(context, Role.ADMIN)
    project = context["project"]
    errors, status = [], 200
    if request.method == "POST":
        if request.POST.get("confirm", "").strip() != project.code:
            errors = [{"field": "confirm", "message": f"type {project.code} to confirm"}]
            status = 422
        else:
            try:
                services.project_delete(project=project, user=request.user, source=SOURCE)
            except OpscenterError as exc:
                errors, status = refusal_errors(exc), exc.status_code
            else:
                messages.success(request, f"Project {code} and its history deleted.")
                return redirect("projects:list")
    context.update(
        {
            "tab": "settings",
            "counts": projects_with_counts(request.user).filter(pk=project.pk).first(),
            "instance_count": Instance.objects.filter(project=project).count(),
            **refused_form(errors, ("confirm",)),
        }
    )
    return render(request, "projects/delete.html", context, status=status)


# --- members -----------------------------------------------------------------------------


def _usernames_to_add(project: Project) -> list[str]:
    """Active users who are not members yet: completions for the add form."""
    return list(
        get_user_model()
        .objects.filter(is_active=True)
        .exclude(memberships__project=project)
        .order_by("username")
        .values_list("username", flat=True)[:MAX_USER_CHOICES]
    )


def _members_page(request, context: dict, *, status=200, add=None, add_errors=(), row_errors=None):
    project = context["project"]
    members = (
        Membership.objects.filter(project=project)
        .select_related("user")
        .annotate(username=F("user__username"))
    )
    listed = _paged(request, members, order_field="username")
    for membership in listed["page"].items:
        membership.row_errors = (row_errors or {}).get(membership.username, [])
    context.update(
        {
            **listed,
            "tab": "members",
            "roles": Role.choices,
            "add": add or {"username": "", "role": Role.VIEWER},
            **refused_form(list(add_errors), MEMBER_FIELDS),
        }
    )
    if context["may_admin"]:
        context["usernames"] = _usernames_to_add(project)
    return _render_list(
        request,
        context,
        page="projects/members.html",
        partial="projects/_member_table.html",
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def member_list(request, code: str):
    """The members and their roles; POST adds one (admin)."""
    context = project_context(request, code)
    if request.method != "POST":
        return _members_page(request, context)
    require_role(context, Role.ADMIN)
    data = member_data(request.POST)
    try:
        services.member_add(project=context["project"], user=request.user, source=SOURCE, **data)
    except OpscenterError as exc:
        return _members_page(request, context, status=422, add=data, add_errors=refusal_errors(exc))
    messages.success(request, f"{data['username']} added as {data['role']}.")
    return redirect("projects:members", code)


def _member_or_404(project: Project, username: str) -> Membership:
    try:
        return services.member_get(project=project, username=username)
    except NotFound as exc:
        raise Http404(exc.detail) from exc


@login_required
@require_POST
def member_role(request, code: str, username: str):
    """Change a member's role (admin). The last admin cannot be demoted: that comes back
    as an error on the member's row."""
    context = project_context(request, code)
    require_role(context, Role.ADMIN)
    membership = _member_or_404(context["project"], username)
    role = request.POST.get("role", "")
    try:
        services.member_update(membership=membership, role=role, user=request.user, source=SOURCE)
    except OpscenterError as exc:
        errors = [e["message"] for e in refusal_errors(exc)]
        return _members_page(request, context, status=422, row_errors={username: errors})
    messages.success(request, f"{username} is now {membership.get_role_display().lower()}.")
    return _after_member_change(request, code)


@login_required
@require_POST
def member_remove(request, code: str, username: str):
    """Remove a member (admin); refused for the last admin, on the member's row."""
    context = project_context(request, code)
    require_role(context, Role.ADMIN)
    membership = _member_or_404(context["project"], username)
    try:
        services.member_remove(membership=membership, user=request.user, source=SOURCE)
    except OpscenterError as exc:
        return _members_page(
            request, context, status=exc.status_code, row_errors={username: [exc.detail]}
        )
    messages.success(request, f"{username} removed from {code}.")
    return _after_member_change(request, code)


def _after_member_change(request, code: str):
    """Back to the members, unless one has just given up one's own admin role or
    membership: then to where one still may go."""
    if not projects_visible_to(request.user).filter(code=code).exists():
        return redirect("projects:list")
    return redirect("projects:members", code)


# --- datasources -------------------------------------------------------------------------


def _datasource_or_404(project: Project, name: str) -> Datasource:
    try:
        return services.datasource_get(project=project, name=name)
    except NotFound as exc:
        raise Http404(exc.detail) from exc


def _datasource_form(datasource: Datasource | None, data=None, errors=()) -> dict:
    return {
        "values": datasource_values(datasource, data),
        "kinds": DatasourceKind.choices,
        **refused_form(list(errors), DATASOURCE_FIELDS),
    }


@login_required
@require_http_methods(["GET", "POST"])
def datasource_list(request, code: str):
    """The project's datasources; POST adds one (admin)."""
    context = project_context(request, code)
    data, errors, status = None, [], 200
    if request.method == "POST":
        require_role(context, Role.ADMIN)
        data = datasource_data(request.POST, creating=True)
        try:
            datasource = services.datasource_create(
                project=context["project"], user=request.user, source=SOURCE, **data
            )
        except OpscenterError as exc:
            errors, status = refusal_errors(exc), 422
        else:
            messages.success(request, f"Datasource {datasource.name} added.")
            return redirect("projects:datasource", code, datasource.name)
    datasources = Datasource.objects.filter(project=context["project"])
    context.update(
        {
            **_paged(request, datasources, order_field="name"),
            "tab": "datasources",
            "form_open": bool(errors),
            **_datasource_form(None, data, errors),
        }
    )
    return _render_list(
        request,
        context,
        page="projects/datasources.html",
        partial="projects/_datasource_table.html",
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def datasource_detail(request, code: str, name: str):
    """A datasource's settings, the nodes that use it and its Test button; admins change
    it here (an empty password keeps the stored one)."""
    context = project_context(request, code)
    datasource = _datasource_or_404(context["project"], name)
    data, errors, status = None, [], 200
    if request.method == "POST":
        require_role(context, Role.ADMIN)
        data = datasource_data(request.POST, creating=False)
        try:
            services.datasource_update(
                datasource=datasource, fields=data, user=request.user, source=SOURCE
            )
        except OpscenterError as exc:
            errors, status = refusal_errors(exc), 422
        else:
            messages.success(request, f"Datasource {datasource.name} saved.")
            return redirect("projects:datasource", code, datasource.name)
    context.update(
        {
            "tab": "datasources",
            "datasource": datasource,
            "used_by": nodes_using_datasource(datasource),
            **_datasource_form(datasource, data, errors),
        }
    )
    return render(request, "projects/datasource_detail.html", context, status=status)


@login_required
@require_POST
def datasource_test(request, code: str, name: str):
    """Test connection (operator): from htmx the result in place, else as a message."""
    context = project_context(request, code)
    require_role(context, Role.OPERATOR)
    datasource = _datasource_or_404(context["project"], name)
    result = services.datasource_test(datasource=datasource, user=request.user, source=SOURCE)
    if wants_partial(request):
        return render(
            request,
            "projects/_test_result.html",
            {"result": result, "datasource": datasource},
        )
    (messages.success if result.ok else messages.error)(
        request, f"Test of {datasource.name}: {result.message}"
    )
    return redirect("projects:datasource", code, datasource.name)


@login_required
@require_POST
def datasource_delete(request, code: str, name: str):
    """Delete (admin); refused while nodes use it, with the service's reason."""
    context = project_context(request, code)
    require_role(context, Role.ADMIN)
    datasource = _datasource_or_404(context["project"], name)
    try:
        services.datasource_delete(datasource=datasource, user=request.user, source=SOURCE)
    except OpscenterError as exc:
        messages.error(request, f"Datasource {name} was not deleted: {exc.detail}")
        return redirect("projects:datasource", code, name)
    messages.success(request, f"Datasource {name} deleted.")
    return redirect("projects:datasources", code)


# --- variables ---------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def variable_list(request, code: str):
    """The project's variables (${var.NAME} in scripts); POST adds one (admin)."""
    context = project_context(request, code)
    values, errors, status = {"name": "", "value": ""}, [], 200
    if request.method == "POST":
        require_role(context, Role.ADMIN)
        values = variable_data(request.POST)
        try:
            variable = services.variable_set(
                project=context["project"], user=request.user, create=True, source=SOURCE, **values
            )
        except OpscenterError as exc:
            errors, status = refusal_errors(exc), 422
        else:
            messages.success(request, f"Variable {variable.name} added.")
            return redirect("projects:variables", code)
    variables = Variable.objects.filter(project=context["project"])
    context.update(
        {
            **_paged(request, variables, order_field="name"),
            "tab": "variables",
            "values": values,
            "form_open": bool(errors),
            **refused_form(errors, VARIABLE_FIELDS),
        }
    )
    return _render_list(
        request,
        context,
        page="projects/variables.html",
        partial="projects/_variable_table.html",
        status=status,
    )


def _variable_or_404(project: Project, name: str) -> Variable:
    try:
        return services.variable_get(project=project, name=name)
    except NotFound as exc:
        raise Http404(exc.detail) from exc


@login_required
@require_http_methods(["GET", "POST"])
def variable_detail(request, code: str, name: str):
    """A variable's value; admins change it here."""
    context = project_context(request, code)
    variable = _variable_or_404(context["project"], name)
    values, errors, status = {"name": variable.name, "value": variable.value}, [], 200
    if request.method == "POST":
        require_role(context, Role.ADMIN)
        values = {"name": variable.name, "value": variable_data(request.POST)["value"]}
        try:
            services.variable_set(
                project=context["project"], user=request.user, source=SOURCE, **values
            )
        except OpscenterError as exc:
            errors, status = refusal_errors(exc), 422
        else:
            messages.success(request, f"Variable {variable.name} saved.")
            return redirect("projects:variables", code)
    context.update(
        {
            "tab": "variables",
            "variable": variable,
            "values": values,
            **refused_form(errors, VARIABLE_FIELDS),
        }
    )
    return render(request, "projects/variable_detail.html", context, status=status)


@login_required
@require_POST
def variable_delete(request, code: str, name: str):
    context = project_context(request, code)
    require_role(context, Role.ADMIN)
    variable = _variable_or_404(context["project"], name)
    services.variable_delete(variable=variable, user=request.user, source=SOURCE)
    messages.success(request, f"Variable {name} deleted.")
    return redirect("projects:variables", code)
