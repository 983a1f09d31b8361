"""Reads on backups."""

from django.db.models import QuerySet

from apps.core.errors import NotFound
from apps.core.pagination import Page, keyset_page
from apps.projects.choices import ROLE_RANK, Role
from apps.projects.models import Membership, Project

from .models import Backup


def backups_visible_to(user) -> QuerySet[Backup]:
    """Superusers see every backup; others those holding a project they are a member of
    (the projects they may restore from)."""
    if not user.is_authenticated:
        return Backup.objects.none()
    if user.is_superuser:
        return Backup.objects.all()
    codes = Membership.objects.filter(user=user).values("project__code")
    return Backup.objects.filter(project_rows__code__in=codes).distinct()


def backups_page(user, *, cursor: str | None, limit) -> Page:
    return keyset_page(
        backups_visible_to(user).select_related("created_by"),
        cursor=cursor,
        limit=limit,
        order_field="id",
    )


def backup_get(*, user, backup_id: int) -> Backup:
    backup = backups_visible_to(user).filter(pk=backup_id).first()
    if backup is None:
        raise NotFound(f"backup {backup_id} not found")
    return backup


def restore_targets(user) -> QuerySet[Project]:
    """The projects `user` may restore into: those they administer."""
    if user.is_superuser:
        return Project.objects.order_by("code")
    admin_roles = [role for role, rank in ROLE_RANK.items() if rank >= ROLE_RANK[Role.ADMIN]]
    return Project.objects.filter(
        memberships__user=user, memberships__role__in=admin_roles
    ).order_by("code")


def restore_sources(user, backup: Backup) -> list[str]:
    """The backup's projects `user` may restore from (see apps.backups.restore)."""
    if user.is_superuser:
        return list(backup.projects)
    mine = set(Membership.objects.filter(user=user).values_list("project__code", flat=True))
    return [code for code in backup.projects if code in mine]
