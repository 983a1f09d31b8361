"""/api/projects: projects, members, datasources and variables.

Viewers read; admins change the project's configuration and members; superusers and
staff create projects. A project one is not a member of answers 404.
"""

from django.db.models import QuerySet
from ninja import Query, Router, Status

from apps.core.errors import PermissionDenied
from apps.core.pagination import keyset_page
from apps.core.schemas import PageQuery, errors

from . import services
from .choices import Role
from .models import Datasource, Membership, Project, Variable
from .permissions import require_role
from .schemas import (
    DatasourceIn,
    DatasourceList,
    DatasourceOut,
    DatasourcePatch,
    DatasourceTestOut,
    MemberIn,
    MemberList,
    MemberOut,
    MemberPatch,
    ProjectIn,
    ProjectList,
    ProjectOut,
    ProjectPatch,
    VariableIn,
    VariableList,
    VariableOut,
    VariablePatch,
)
from .selectors import project_get, projects_visible_to, roles_in

router = Router(tags=["projects"])
SOURCE = "api"


def _page(queryset: QuerySet, query: PageQuery, *, order_field: str) -> dict:
    page = keyset_page(
        queryset, cursor=query.cursor, limit=query.limit, order_field=order_field, descending=False
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


def _project_for(request, code: str, role: str = Role.VIEWER) -> Project:
    """The project if the caller may see it (else 404) and holds `role` in it (else 403)."""
    project = project_get(user=request.user, code=code)
    require_role(request.user, project, role)
    return project


def _with_role(project: Project, user) -> Project:
    if user.is_superuser:
        project.caller_role = Role.ADMIN
    else:
        project.caller_role = (
            Membership.objects.filter(project=project, user=user)
            .values_list("role", flat=True)
            .first()
        )
    return project


# --- projects --------------------------------------------------------------------------


@router.get("", response=ProjectList, summary="Projects the caller is a member of")
def project_list(request, query: Query[PageQuery]):
    result = _page(projects_visible_to(request.user), query, order_field="code")
    roles = roles_in(request.user, result["items"])
    for project in result["items"]:
        project.caller_role = roles.get(project.pk)
    return result


@router.post("", response={201: ProjectOut}, summary="Create a project (superusers and staff)")
def project_create(request, payload: ProjectIn):
    if not (request.user.is_superuser or request.user.is_staff):
        raise PermissionDenied("only superusers and staff create projects")
    project = services.project_create(user=request.user, source=SOURCE, **payload.dict())
    return Status(201, _with_role(project, request.user))


@router.get("/{code}", response=ProjectOut)
def project_detail(request, code: str):
    return _with_role(_project_for(request, code), request.user)


@router.patch("/{code}", response=ProjectOut, summary="Change a project (admin)")
def project_update(request, code: str, payload: ProjectPatch):
    project = _project_for(request, code, Role.ADMIN)
    services.project_update(
        project=project, user=request.user, fields=payload.dict(exclude_unset=True), source=SOURCE
    )
    return _with_role(project, request.user)


@router.delete(
    "/{code}",
    response={204: None, **errors(409)},
    summary="Delete a project and its history (admin); 409 while something of it runs or "
    "is being generated",
)
def project_delete(request, code: str):
    project = _project_for(request, code, Role.ADMIN)
    services.project_delete(project=project, user=request.user, source=SOURCE)
    return Status(204, None)


# --- members ---------------------------------------------------------------------------


@router.get("/{code}/members", response=MemberList)
def member_list(request, code: str, query: Query[PageQuery]):
    project = _project_for(request, code)
    members = Membership.objects.filter(project=project).select_related("user")
    return _page(members, query, order_field="id")


@router.post("/{code}/members", response={201: MemberOut}, summary="Add a member (admin)")
def member_add(request, code: str, payload: MemberIn):
    project = _project_for(request, code, Role.ADMIN)
    membership = services.member_add(
        project=project,
        username=payload.username,
        role=payload.role,
        user=request.user,
        source=SOURCE,
    )
    return Status(201, membership)


@router.get("/{code}/members/{username}", response=MemberOut)
def member_detail(request, code: str, username: str):
    project = _project_for(request, code)
    return services.member_get(project=project, username=username)


@router.patch("/{code}/members/{username}", response=MemberOut, summary="Change a role (admin)")
def member_update(request, code: str, username: str, payload: MemberPatch):
    project = _project_for(request, code, Role.ADMIN)
    membership = services.member_get(project=project, username=username)
    return services.member_update(
        membership=membership, role=payload.role, user=request.user, source=SOURCE
    )


@router.delete(
    "/{code}/members/{username}",
    response={204: None, **errors(409)},
    summary="Remove a member (admin); 409 for the last admin",
)
def member_remove(request, code: str, username: str):
    project = _project_for(request, code, Role.ADMIN)
    membership = services.member_get(project=project, username=username)
    services.member_remove(membership=membership, user=request.user, source=SOURCE)
    return Status(204, None)


# --- datasources -----------------------------------------------------------------------


@router.get("/{code}/datasources", response=DatasourceList)
def datasource_list(request, code: str, query: Query[PageQuery]):
    project = _project_for(request, code)
    return _page(Datasource.objects.filter(project=project), query, order_field="name")


@router.post(
    "/{code}/datasources", response={201: DatasourceOut}, summary="Add a datasource (admin)"
)
def datasource_create(request, code: str, payload: DatasourceIn):
    project = _project_for(request, code, Role.ADMIN)
    datasource = services.datasource_create(
        project=project, user=request.user, source=SOURCE, **payload.dict()
    )
    return Status(201, datasource)


@router.get("/{code}/datasources/{name}", response=DatasourceOut)
def datasource_detail(request, code: str, name: str):
    project = _project_for(request, code)
    return services.datasource_get(project=project, name=name)


@router.patch(
    "/{code}/datasources/{name}", response=DatasourceOut, summary="Change a datasource (admin)"
)
def datasource_update(request, code: str, name: str, payload: DatasourcePatch):
    project = _project_for(request, code, Role.ADMIN)
    datasource = services.datasource_get(project=project, name=name)
    return services.datasource_update(
        datasource=datasource,
        fields=payload.dict(exclude_unset=True),
        user=request.user,
        source=SOURCE,
    )


@router.delete(
    "/{code}/datasources/{name}",
    response={204: None, **errors(409)},
    summary="Delete a datasource (admin); 409 while nodes use it",
)
def datasource_delete(request, code: str, name: str):
    project = _project_for(request, code, Role.ADMIN)
    datasource = services.datasource_get(project=project, name=name)
    services.datasource_delete(datasource=datasource, user=request.user, source=SOURCE)
    return Status(204, None)


@router.post(
    "/{code}/datasources/{name}/test",
    response=DatasourceTestOut,
    summary="Test connection (operator): connect as its SQL nodes do and say whether it "
    "worked (`ok`: false with the driver's message, never the password)",
)
def datasource_test(request, code: str, name: str):
    project = _project_for(request, code, Role.OPERATOR)
    datasource = services.datasource_get(project=project, name=name)
    return services.datasource_test(datasource=datasource, user=request.user, source=SOURCE)


# --- variables -------------------------------------------------------------------------


@router.get("/{code}/variables", response=VariableList)
def variable_list(request, code: str, query: Query[PageQuery]):
    project = _project_for(request, code)
    return _page(Variable.objects.filter(project=project), query, order_field="name")


@router.post("/{code}/variables", response={201: VariableOut}, summary="Add a variable (admin)")
def variable_create(request, code: str, payload: VariableIn):
    project = _project_for(request, code, Role.ADMIN)
    variable = services.variable_set(
        project=project,
        name=payload.name,
        value=payload.value,
        user=request.user,
        create=True,
        source=SOURCE,
    )
    return Status(201, variable)


@router.get("/{code}/variables/{name}", response=VariableOut)
def variable_detail(request, code: str, name: str):
    project = _project_for(request, code)
    return services.variable_get(project=project, name=name)


@router.patch("/{code}/variables/{name}", response=VariableOut, summary="Change a variable (admin)")
def variable_update(request, code: str, name: str, payload: VariablePatch):
    project = _project_for(request, code, Role.ADMIN)
    variable = services.variable_get(project=project, name=name)
    return services.variable_set(
        project=project, name=variable.name, value=payload.value, user=request.user, source=SOURCE
    )


@router.delete(
    "/{code}/variables/{name}", response={204: None}, summary="Delete a variable (admin)"
)
def variable_delete(request, code: str, name: str):
    project = _project_for(request, code, Role.ADMIN)
    variable = services.variable_get(project=project, name=name)
    services.variable_delete(variable=variable, user=request.user, source=SOURCE)
    return Status(204, None)
