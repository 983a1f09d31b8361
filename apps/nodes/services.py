"""Writes on nodes: publishing a batch of NodeSpecs."""

from dataclasses import dataclass, field

from django.db import transaction

from apps.audit.choices import Result
from apps.audit.services import operation_record
from apps.core import clock
from apps.core.errors import PermissionDenied, ValidationFailed
from apps.projects.choices import EnvMode, GenerationMode, Role
from apps.projects.models import Project
from apps.projects.permissions import require_role
from apps.resources.models import ResourcePin

from .choices import Env, NodeStatus
from .models import Node, NodeDependency, NodeVersion
from .specs import spec_hash
from .validation import CheckedBatch, CheckedNode, validate_batch

# Columns of Node that mirror the current version, rewritten at each new version.
MIRRORED_FIELDS = [
    "type",
    "schedule_type",
    "cron",
    "self_dependent",
    "owner",
    "priority",
    "resource_group",
    "paused",
    "description",
    "group",
    "status",
    "current_version",
    "updated_at",
]


@dataclass
class PublishResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def publish_role(*, project: Project, env: str) -> str:
    """The role that publishing to `env` of `project` needs.

    Developers publish to dev. In a dev_prod project prod is guarded: what reaches it
    is released by an operator (or admin), after it was tried in dev. A basic project
    has only prod, so there its developers publish to prod themselves.
    """
    if env == Env.PROD and project.env_mode == EnvMode.DEV_PROD:
        return Role.OPERATOR
    return Role.DEVELOPER


def nodes_publish(
    *, project: Project, env: str, specs: list[dict], user, note: str = "", source: str = "api"
) -> PublishResult:
    """Publish a batch of NodeSpecs into `project`/`env`, all or nothing.

    A node whose canonical spec did not change gets no new version. Raises
    ValidationFailed listing every error of the batch; then nothing changed.
    See publish_role for who may publish where.
    """
    try:
        require_role(user, project, publish_role(project=project, env=env))
    except PermissionDenied as exc:
        _record(
            project=project,
            env=env,
            user=user,
            source=source,
            result=Result.REFUSED,
            message=exc.detail,
            detail={"note": note},
        )
        raise
    try:
        with transaction.atomic():
            # One publish per project at a time: the second sees the first's nodes.
            Project.objects.select_for_update().filter(pk=project.pk).first()
            batch = validate_batch(project=project, env=env, specs=specs, user=user)
            result, changed_ids = _write(batch, user=user, note=note)
            from apps.realtime.services import realtime_instances_ensure

            realtime_instances_ensure(node_ids=changed_ids)
            _record(
                project=project,
                env=env,
                user=user,
                source=source,
                result=Result.OK,
                detail={
                    "created": result.created,
                    "updated": result.updated,
                    "unchanged": result.unchanged,
                    "note": note,
                },
            )
    except ValidationFailed as exc:
        _record(
            project=project,
            env=env,
            user=user,
            source=source,
            result=Result.REFUSED,
            message=exc.detail,
            detail={"errors": exc.errors[:100], "note": note},
        )
        raise
    if project.generation_mode == GenerationMode.IMMEDIATE and changed_ids:
        from apps.instances.generation import generate_rest_of_today

        generate_rest_of_today(project=project, node_ids=changed_ids)
    return result


def _record(*, project, env, user, source, result, detail, message="") -> None:
    operation_record(
        user=user,
        source=source,
        action="publish",
        object_type="project",
        object_id=project.code,
        project=project,
        detail={"env": env, **detail},
        result=result,
        message=message,
    )


def _write(batch: CheckedBatch, *, user, note: str) -> tuple[PublishResult, list[int]]:
    """Store a validated batch with bulk writes: a fixed number of queries for any size."""
    now = clock.now()
    result = PublishResult()
    created: list[CheckedNode] = []
    changed: list[CheckedNode] = []  # existing nodes that get a new version
    revived: list[Node] = []  # offline nodes published again with the same spec
    hashes: dict[str, str] = {}
    for checked in batch.nodes:
        pinned = {v.resource.name: v.number for v in checked.resources}
        hashes[checked.name] = digest = spec_hash(checked.spec, pinned)
        node = checked.existing
        if node is None:
            created.append(checked)
            result.created.append(checked.name)
        elif node.current_version_id is None or node.current_version.spec_hash != digest:
            changed.append(checked)
            result.updated.append(checked.name)
        elif node.status != NodeStatus.ONLINE:
            # Publishing an offline node brings it back; its spec needs no new version.
            node.status, node.updated_at = NodeStatus.ONLINE, now
            revived.append(node)
            result.updated.append(checked.name)
        else:
            result.unchanged.append(checked.name)

    new_nodes = Node.objects.bulk_create(
        [
            Node(project=batch.project, env=batch.env, name=c.name, **_mirror(c.spec, batch))
            for c in created
        ]
    )
    node_by_name = {c.name: c.existing for c in changed}
    node_by_name.update({n.name: n for n in new_nodes})
    if any(n.pk is None for n in new_nodes):  # a backend that cannot return ids
        node_by_name.update(
            Node.objects.filter(
                project=batch.project, env=batch.env, name__in=[c.name for c in created]
            ).in_bulk(field_name="name")
        )

    ids = {c.name: c.existing.id for c in batch.nodes if c.existing}
    ids.update({name: node.id for name, node in node_by_name.items()})
    to_version = created + changed
    versions = NodeVersion.objects.bulk_create(
        [
            NodeVersion(
                node=node_by_name[c.name],
                number=(c.existing.version or 0) + 1 if c.existing else 1,
                spec=c.spec,
                spec_hash=hashes[c.name],
                upstream_ids=[ref.node_id or ids[ref.name] for ref in c.upstream],
                published_at=now,
                published_by=user,
                note=note,
            )
            for c in to_version
        ]
    )
    if any(v.pk is None for v in versions):
        found = {
            (v.node_id, v.number): v
            for v in NodeVersion.objects.filter(node__in=[v.node_id for v in versions])
        }
        versions = [found[(v.node_id, v.number)] for v in versions]

    ResourcePin.objects.bulk_create(
        [
            ResourcePin(
                node_version=version,
                resource_version=pinned,
                name=pinned.resource.name,
                number=pinned.number,
            )
            for c, version in zip(to_version, versions, strict=True)
            for pinned in c.resources
        ],
        batch_size=1000,
    )

    nodes_to_update = []
    for c, version in zip(to_version, versions, strict=True):
        node = node_by_name[c.name]
        previous = (
            c.existing.current_version.spec
            if c.existing and c.existing.current_version_id
            else None
        )
        for name, value in _mirror(c.spec, batch).items():
            # An operator's pause outlives a republish that did not touch `paused`.
            if name == "paused" and previous is not None and previous.get("paused") == value:
                continue
            setattr(node, name, value)
        node.current_version, node.status, node.updated_at = version, NodeStatus.ONLINE, now
        nodes_to_update.append(node)
    Node.objects.bulk_update(nodes_to_update + revived, MIRRORED_FIELDS, batch_size=500)

    # The current graph follows the new versions.
    changed_ids = [node_by_name[c.name].id for c in to_version]
    NodeDependency.objects.filter(node_id__in=changed_ids).delete()
    NodeDependency.objects.bulk_create(
        [
            NodeDependency(node_id=ids[c.name], upstream_id=ref.node_id or ids[ref.name])
            for c in to_version
            for ref in c.upstream
        ],
        batch_size=1000,
    )
    return result, changed_ids + [n.id for n in revived]


def _mirror(spec: dict, batch: CheckedBatch) -> dict:
    return {
        "type": spec["type"],
        "schedule_type": spec["schedule"]["type"],
        "cron": spec["schedule"]["cron"],
        "self_dependent": spec["self_dependent"],
        "owner": batch.owners[spec["owner"]],
        "priority": spec["priority"],
        "resource_group": batch.resource_groups[spec["resource_group"]],
        "paused": spec["paused"],
        "description": spec["description"],
        "group": spec.get("group", ""),
    }
