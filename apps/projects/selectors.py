from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from apps.core.errors import NotFound

from .choices import ROLE_RANK
from .models import Datasource, Membership, Project, Variable


def projects_visible_to(user) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user)


def project_get(*, user, code: str) -> Project:
    """The project, if `user` may see it. A project one may not see does not exist."""
    project = projects_visible_to(user).filter(code=code).first()
    if project is None:
        raise NotFound(f"project {code!r} not found")
    return project


def role_of(user, project: Project) -> str | None:
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return "admin"
    return (
        Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    )


def has_role(user, project: Project, role: str) -> bool:
    held = role_of(user, project)
    return held is not None and ROLE_RANK[held] >= ROLE_RANK[role]


def projects_where_role(user, role: str) -> QuerySet[Project]:
    """The projects where `user` holds `role` or a higher one (every one for a superuser),
    by code: what a form lets one choose to create something in."""
    projects = projects_visible_to(user).order_by("code")
    if user.is_superuser:
        return projects
    roles = [held for held, rank in ROLE_RANK.items() if rank >= ROLE_RANK[role]]
    return projects.filter(memberships__user=user, memberships__role__in=roles)


def _count_per_project(queryset: QuerySet) -> Coalesce:
    """A subquery counting `queryset`'s rows of the outer project: one per column, never
    one query per row (and no join that multiplies the counts of another)."""
    counted = (
        queryset.filter(project=OuterRef("pk"))
        .order_by()
        .values("project")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def projects_with_counts(user) -> QuerySet[Project]:
    """The projects `user` may see, each with its numbers of online nodes, members,
    datasources and variables (as node_count, member_count, ...)."""
    from apps.nodes.choices import NodeStatus
    from apps.nodes.models import Node

    return projects_visible_to(user).annotate(
        node_count=_count_per_project(Node.objects.exclude(status=NodeStatus.OFFLINE)),
        member_count=_count_per_project(Membership.objects.all()),
        datasource_count=_count_per_project(Datasource.objects.all()),
        variable_count=_count_per_project(Variable.objects.all()),
    )


def roles_in(user, projects: list[Project]) -> dict[int, str]:
    """{project id: the user's role} for these projects, in one query."""
    if user.is_superuser:
        return {project.pk: "admin" for project in projects}
    return dict(
        Membership.objects.filter(user=user, project__in=[p.pk for p in projects]).values_list(
            "project_id", "role"
        )
    )


def nodes_using_datasource(datasource: Datasource, *, limit: int = 20) -> list[str]:
    """The names of the published (not offline) nodes whose current version names it."""
    from apps.nodes.choices import NodeStatus
    from apps.nodes.models import Node

    return list(
        Node.objects.filter(
            project=datasource.project_id, current_version__spec__datasource=datasource.name
        )
        .exclude(status=NodeStatus.OFFLINE)
        .order_by("name")
        .values_list("name", flat=True)[:limit]
    )
