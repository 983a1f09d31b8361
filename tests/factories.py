"""Test helpers that build rows directly, without going through publish validation, and
an enqueue that records what the dispatcher hands over."""

import copy
import datetime

from django.utils import timezone

from apps.configuration.models import ResourceGroup
from apps.nodes.models import Node, NodeDependency, NodeVersion
from apps.nodes.specs import SPEC_DEFAULTS, spec_hash


def node_create(
    project,
    name: str,
    *,
    owner,
    type: str = "virtual",
    cron: str = "0 2 * * *",
    schedule_type: str = "recurring",
    upstream: list[Node] | None = None,
    env: str = "prod",
    published_at: datetime.datetime | None = None,
    resource_group: str = "default",
    **spec_fields,
) -> Node:
    """A node with one published version (or a new version of an existing node)."""
    upstream = upstream or []
    spec = copy.deepcopy(SPEC_DEFAULTS)
    spec.update(
        name=name,
        type=type,
        schedule={"type": schedule_type, "cron": cron if schedule_type == "recurring" else ""},
        upstream=[
            u.name if u.project_id == project.id else f"{u.project.code}.{u.name}" for u in upstream
        ],
        owner=owner.username,
        resource_group=resource_group,
    )
    spec.update(spec_fields)
    group, _ = ResourceGroup.objects.get_or_create(name=resource_group)
    node, _ = Node.objects.update_or_create(
        project=project,
        env=env,
        name=name,
        defaults=dict(
            type=type,
            schedule_type=schedule_type,
            cron=spec["schedule"]["cron"],
            self_dependent=spec["self_dependent"],
            owner=owner,
            priority=spec["priority"],
            resource_group=group,
            paused=spec["paused"],
        ),
    )
    number = (node.current_version.number if node.current_version_id else 0) + 1
    version = NodeVersion.objects.create(
        node=node,
        number=number,
        spec=spec,
        spec_hash=spec_hash(spec),
        upstream_ids=[u.id for u in upstream],
        published_at=published_at or timezone.now(),
        published_by=owner,
    )
    node.current_version = version
    node.save(update_fields=["current_version"])
    NodeDependency.objects.filter(node=node).exclude(upstream__in=upstream).delete()
    for u in upstream:
        NodeDependency.objects.get_or_create(node=node, upstream=u)
    return node


def instance_create(node: Node, scheduled_at: datetime.datetime, *, upstream=(), **fields):
    """A pending recurring instance of `node`'s current version (biz date = day before)."""
    from apps.instances.models import Instance, InstanceDependency

    local = scheduled_at.astimezone(node.project.tz)
    values = dict(
        project=node.project,
        node=node,
        version=node.current_version,
        env=node.env,
        kind="recurring",
        biz_date=local.date() - datetime.timedelta(days=1),
        scheduled_at=scheduled_at,
        priority=node.priority,
        resource_group=node.resource_group,
    )
    values.update(fields)
    instance = Instance.objects.create(**values)
    InstanceDependency.objects.bulk_create(
        [InstanceDependency(downstream=instance, upstream=u) for u in upstream]
    )
    return instance


class Enqueued:
    """An enqueue that records what was handed to a queue instead of running it."""

    def __init__(self):
        self.handed: list[tuple[str, list[int]]] = []

    def __call__(self, group: str, ids: list[int]) -> None:
        self.handed.append((group, list(ids)))
