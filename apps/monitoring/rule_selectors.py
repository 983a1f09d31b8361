"""Reads of monitoring rules and on-call schedules: members of a project read its rules
and schedules; global schedules (no project) are read by every signed-in user, since any
project's rules may name them."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Q, QuerySet

from apps.core.errors import NotFound
from apps.notifications.models import Channel
from apps.projects.selectors import projects_visible_to

from .models import MonitorRule, OnCallSchedule


def monitor_rules_visible_to(user) -> QuerySet[MonitorRule]:
    queryset = MonitorRule.objects.select_related("project").prefetch_related("channels")
    if not user.is_authenticated:
        return queryset.none()
    if user.is_superuser:
        return queryset
    return queryset.filter(project__in=projects_visible_to(user))


def monitor_rule_get(*, user, rule_id: int) -> MonitorRule:
    rule = monitor_rules_visible_to(user).filter(pk=rule_id).first()
    if rule is None:
        raise NotFound(f"monitor rule {rule_id} not found")
    return rule


def on_call_visible_to(user) -> QuerySet[OnCallSchedule]:
    queryset = OnCallSchedule.objects.select_related("project")
    if not user.is_authenticated:
        return queryset.none()
    if user.is_superuser:
        return queryset
    return queryset.filter(Q(project__isnull=True) | Q(project__in=projects_visible_to(user)))


def on_call_get(*, user, schedule_id: int) -> OnCallSchedule:
    schedule = on_call_visible_to(user).filter(pk=schedule_id).first()
    if schedule is None:
        raise NotFound(f"on-call schedule {schedule_id} not found")
    return schedule


def recipient_choices(project, *, named_users=()) -> dict:
    """What a project's recipients and channels inputs offer (monitoring rules, baselines):
    its members and anyone already named, every group, its own and the global on-call
    schedules and channels."""
    User = get_user_model()
    members = User.objects.filter(memberships__project=project)
    named = User.objects.filter(username__in=list(named_users))
    return {
        "users": list(
            (members | named).distinct().order_by("username").values_list("username", flat=True)
        ),
        "groups": list(Group.objects.order_by("name").values_list("name", flat=True)),
        "schedules": list(
            OnCallSchedule.objects.filter(Q(project=project) | Q(project__isnull=True))
            .order_by("name")
            .values_list("name", flat=True)
        ),
        "channels": list(
            Channel.objects.filter(Q(project=project) | Q(project__isnull=True)).order_by(
                "project_id", "name"
            )
        ),
    }
