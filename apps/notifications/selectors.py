"""Reads of channels and deliveries, and who may see and change them.

Project channels: the project's members read them, its admins change them. Global
channels (no project): every user reads them, superusers change them. A delivery is
seen by the members of its project (the alert's, else the channel's); deliveries of
global channels outside any project are seen by every user, as the channel is.
"""

from django.db.models import Q, QuerySet

from apps.core.errors import NotFound
from apps.projects.choices import Role
from apps.projects.models import Membership, Project
from apps.projects.selectors import has_role, projects_visible_to

from .models import Channel, Delivery


def channels_visible_to(user) -> QuerySet[Channel]:
    if not user.is_authenticated:
        return Channel.objects.none()
    channels = Channel.objects.select_related("project")
    if user.is_superuser:
        return channels
    return channels.filter(Q(project__isnull=True) | Q(project__in=projects_visible_to(user)))


def channel_get(*, user, channel_id: int) -> Channel:
    """The channel, if `user` may see it; one they may not see does not exist."""
    channel = channels_visible_to(user).filter(pk=channel_id).first()
    if channel is None:
        raise NotFound(f"channel {channel_id} not found")
    return channel


def may_change_channels(user, project: Project | None) -> bool:
    """Whether `user` may create, change, test and delete channels of `project` (None:
    the global channels)."""
    if not user.is_authenticated:
        return False
    if project is None:
        return user.is_superuser
    return has_role(user, project, Role.ADMIN)


def admin_project_ids(user) -> set[int] | None:
    """The projects whose channels `user` may change, in one query; None: every one."""
    if user.is_superuser:
        return None
    return set(
        Membership.objects.filter(user=user, role=Role.ADMIN).values_list("project_id", flat=True)
    )


def channel_changeable(channel: Channel, user, admin_ids: set[int] | None) -> bool:
    """may_change_channels for a list, with admin_project_ids read once."""
    if admin_ids is None:
        return True
    return channel.project_id is not None and channel.project_id in admin_ids


def projects_for_new_channels(user) -> QuerySet[Project]:
    """Projects in which `user` may create channels."""
    if user.is_superuser:
        return Project.objects.order_by("code")
    return Project.objects.filter(memberships__user=user, memberships__role=Role.ADMIN).order_by(
        "code"
    )


def deliveries_visible_to(user) -> QuerySet[Delivery]:
    if not user.is_authenticated:
        return Delivery.objects.none()
    if user.is_superuser:
        return Delivery.objects.all()
    return Delivery.objects.filter(
        Q(project__isnull=True) | Q(project__in=projects_visible_to(user))
    )
