"""Reads of monitoring rules and on-call schedules: members of a project read its rules
and schedules; global schedules (no project) are read by every signed-in user, since any
project's rules may name them."""

from django.db.models import Q, QuerySet

from apps.core.errors import NotFound
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
