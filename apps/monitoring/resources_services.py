"""The resource dashboard's one write: apply a node's suggested allocation, which
republishes the node through the normal publish path (a new version, validated, in the
operation log, with the role publishing needs)."""

import copy
import datetime
from dataclasses import dataclass

from apps.core.errors import Conflict
from apps.nodes.models import Node
from apps.nodes.services import nodes_publish

from .resources import NodeUsage, resources_get, resources_scope


@dataclass
class Applied:
    node: Node
    usage: NodeUsage
    before: tuple[float | None, int | None]
    version: int | None


def resource_suggestion_apply(
    *, node: Node, by, source: str, start: datetime.date, end: datetime.date
) -> Applied:
    """Publish `node` again with the cpu and memory_mb the dashboard suggests from its
    runs between `start` and `end` (computed again now, from the same data the page
    showed). Refused (409) when there is no suggestion or it changes nothing; publishing
    checks the role (developer in dev and basic projects, operator in dev_prod's prod)."""
    scope = resources_scope(user=by, project=node.project, node=node.pk)
    found = [n for n in resources_get(scope=scope, start=start, end=end).nodes]
    usage = found[0] if found else None
    if usage is None or usage.suggested_cpu is None or usage.suggested_memory_mb is None:
        raise Conflict(
            f"node {node.name} has no suggestion for {start} – {end}: it needs at least "
            "3 measured runs (or a run killed for memory)"
        )
    if not usage.changes:
        raise Conflict(f"node {node.name} already has the suggested allocation")
    if node.current_version_id is None:
        raise Conflict(f"node {node.name} has no published version")
    spec = copy.deepcopy(node.current_version.spec)
    before = (spec.get("cpu"), spec.get("memory_mb"))
    spec["cpu"] = usage.suggested_cpu
    spec["memory_mb"] = usage.suggested_memory_mb
    nodes_publish(
        project=node.project,
        env=node.env,
        specs=[spec],
        user=by,
        note=(
            f"resource suggestion from runs {start} – {end} ({usage.flag}): cpu "
            f"{before[0] if before[0] is not None else '-'} -> {usage.suggested_cpu:g}, "
            f"memory_mb {before[1] if before[1] is not None else '-'} -> "
            f"{usage.suggested_memory_mb}"
        ),
        source=source,
    )
    node.refresh_from_db()
    return Applied(
        node=node,
        usage=usage,
        before=before,
        version=node.current_version.number if node.current_version_id else None,
    )
