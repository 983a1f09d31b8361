from django.db.models import QuerySet

from apps.core.errors import NotFound

from .choices import ROLE_RANK
from .models import Membership, Project


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
