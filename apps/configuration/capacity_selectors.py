"""Reads of resource groups and throttling rules for the pages and the API: each with
its live usage, a group's slot holders, queue and workers, a rule's holders.

Every signed-in user reads resource groups and global throttling rules (they name no
project); a project's rules are read by its members. Instances of projects the viewer
is not a member of are counted but not named.
"""

import datetime
from collections import defaultdict

from django.db.models import Count, Q, QuerySet

from apps.core import clock
from apps.core.errors import NotFound
from apps.instances.admission import START_ORDER
from apps.instances.choices import ACTIVE, InstanceState, WaitReason
from apps.instances.dispatcher import ready_now
from apps.instances.models import Instance
from apps.nodes.models import Node
from apps.projects.selectors import projects_visible_to

from . import clusters, throttling
from .gates import allocation, group_usage, rules_usage
from .models import ResourceGroup, ThrottleRule

QUEUE_LISTED = 100  # queued instances a group's page lists
HOLDERS_LISTED = 200


def instance_ref(instance: Instance, visible: set[int] | None) -> dict:
    """An instance as these pages list it; one of a project the viewer does not see
    keeps its id, state and times only."""
    shown = visible is None or instance.project_id in visible
    return {
        "id": instance.pk,
        "hidden": not shown,
        "project": instance.project.code if shown else None,
        "node": instance.node_id if shown else None,
        "node_name": instance.node.name if shown else None,
        "state": instance.state,
        "wait_reason": instance.wait_reason,
        "priority": instance.priority,
        "scheduled_at": instance.scheduled_at,
        "queued_at": instance.queued_at,
        "started_at": instance.started_at,
        "biz_date": instance.biz_date if shown else None,
        "resource_group": instance.resource_group.name,
    }


def visible_project_ids(user) -> set[int] | None:
    if user.is_superuser:
        return None
    return set(projects_visible_to(user).values_list("id", flat=True))


# --- resource groups -------------------------------------------------------------------


def resource_group_get(*, name: str) -> ResourceGroup:
    group = ResourceGroup.objects.filter(name=name).first()
    if group is None:
        raise NotFound(f"resource group {name!r} not found")
    return group


def resource_groups_usage(groups: list[ResourceGroup]) -> dict[int, dict]:
    """Per group id: queued, running, in_use, cpu_in_use, memory_in_use_mb, waiting
    (pending instances waiting for it: full, or throttled), nodes. A few grouped reads
    for the whole list."""
    usage = {
        g.pk: {
            "queued": 0,
            "running": 0,
            "in_use": 0,
            "cpu_in_use": 0.0,
            "memory_in_use_mb": 0.0,
            "waiting": 0,
            "throttled": 0,
            "nodes": 0,
        }
        for g in groups
    }
    active = Instance.objects.filter(resource_group__in=groups, state__in=ACTIVE).values_list(
        "resource_group_id", "state", "version__spec__cpu", "version__spec__memory_mb"
    )
    for group_id, state, cpu, mem in active:
        row = usage[group_id]
        row[state] += 1
        row["in_use"] += 1
        cpu, mem = allocation(cpu, mem)
        row["cpu_in_use"] += cpu
        row["memory_in_use_mb"] += mem
    waiting = (
        Instance.objects.filter(
            resource_group__in=groups,
            state=InstanceState.PENDING,
            wait_reason__in=[WaitReason.WAITING_RESOURCES, WaitReason.THROTTLED],
        )
        .values("resource_group_id", "wait_reason")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in waiting:
        usage[row["resource_group_id"]]["waiting"] += row["n"]
        if row["wait_reason"] == WaitReason.THROTTLED:
            usage[row["resource_group_id"]]["throttled"] += row["n"]
    nodes = (
        Node.objects.filter(resource_group__in=groups)
        .values("resource_group_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    for row in nodes:
        usage[row["resource_group_id"]]["nodes"] = row["n"]
    return usage


def resource_group_rows() -> list[dict]:
    """Every group with its capacity and live usage, and the clusters serving it."""
    groups = list(ResourceGroup.objects.order_by("name"))
    usage = resource_groups_usage(groups)
    found = clusters.clusters()
    return [
        {
            "group": group,
            **usage[group.pk],
            "queue": clusters.queue_of_group(group.name),
            "clusters": clusters.clusters_serving(group.name, found=found),
        }
        for group in groups
    ]


def resource_group_detail(*, group: ResourceGroup, user, now: datetime.datetime | None = None):
    """A group's page: capacity, usage, who holds its slots, its queue in start order
    (what is ready to start now, as the dispatcher takes it), its workers, and the
    throttling rules that name it."""
    now = now or clock.now()
    visible = visible_project_ids(user)
    in_group = Instance.objects.filter(resource_group=group).select_related(
        "node", "project", "resource_group"
    )
    holders = list(in_group.filter(state__in=ACTIVE).order_by("queued_at", "id")[:HOLDERS_LISTED])
    ready = ready_now(in_group, now)
    queue = list(ready.order_by(*START_ORDER)[:QUEUE_LISTED])
    return {
        "group": group,
        "usage": group_usage(group),
        "holders": [instance_ref(i, visible) for i in holders],
        "queue": [{**instance_ref(i, visible), "position": n} for n, i in enumerate(queue, 1)],
        "queue_total": ready.count() if len(queue) == QUEUE_LISTED else len(queue),
        "queue_name": clusters.queue_of_group(group.name),
        "clusters": clusters.clusters_serving(group.name),
        "nodes": Node.objects.filter(resource_group=group).count(),
        "rules": list(ThrottleRule.objects.filter(resource_group=group).order_by("name")),
    }


# --- throttling rules ------------------------------------------------------------------


def throttle_rules_visible_to(user) -> QuerySet[ThrottleRule]:
    rules = ThrottleRule.objects.select_related("resource_group", "project", "datasource")
    if not user.is_authenticated:
        return rules.none()
    if user.is_superuser:
        return rules
    return rules.filter(Q(project__isnull=True) | Q(project__in=projects_visible_to(user)))


def throttle_rule_get(*, user, rule_id: int) -> ThrottleRule:
    rule = throttle_rules_visible_to(user).filter(pk=rule_id).first()
    if rule is None:
        raise NotFound(f"throttle rule {rule_id} not found")
    return rule


def throttle_rules_usage(
    rules: list[ThrottleRule], now: datetime.datetime | None = None
) -> dict[int, dict]:
    """Per rule id: in_force now, in_use (its scope's queued and running instances),
    throttled (pending instances waiting `throttled` under it). Two reads for the list."""
    now = now or clock.now()
    scopes = [throttling.Scope.of(rule) for rule in rules]
    in_use = rules_usage(scopes)
    throttled = defaultdict(int)
    if scopes:
        counts = Instance.objects.filter(
            state=InstanceState.PENDING, wait_reason=WaitReason.THROTTLED
        ).aggregate(**{f"r{s.rule_id}": Count("pk", filter=s.q()) for s in scopes})
        throttled.update({s.rule_id: counts[f"r{s.rule_id}"] or 0 for s in scopes})
    return {
        rule.pk: {
            "in_force": throttling.in_force(rule, now),
            "in_use": in_use.get(rule.pk, 0),
            "throttled": throttled[rule.pk],
        }
        for rule in rules
    }


def throttle_rule_holders(*, rule: ThrottleRule, user, now: datetime.datetime | None = None):
    """Who holds a rule's slots, and its queue (ready instances under it, start order)."""
    now = now or clock.now()
    visible = visible_project_ids(user)
    under = Instance.objects.filter(throttling.Scope.of(rule).q()).select_related(
        "node", "project", "resource_group"
    )
    holders = under.filter(state__in=ACTIVE).order_by("queued_at", "id")[:HOLDERS_LISTED]
    queue = ready_now(under, now).order_by(*START_ORDER)[:QUEUE_LISTED]
    return {
        "holders": [instance_ref(i, visible) for i in holders],
        "queue": [{**instance_ref(i, visible), "position": n} for n, i in enumerate(queue, 1)],
    }
