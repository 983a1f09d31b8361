"""Reads of nodes, shared by the API and the pages (one filter set serves both)."""

from dataclasses import dataclass, fields

from django.db.models import Count, Q, QuerySet

from apps.core import dag
from apps.core.errors import NotFound, ValidationFailed
from apps.core.pagination import Page, decode_cursor, encode_cursor, parse_limit
from apps.projects.selectors import projects_visible_to

from .choices import Env, NodeStatus, NodeType, ScheduleType
from .models import Node, NodeDependency, NodeVersion

MAX_DAG_DEPTH = 10


def nodes_visible_to(user) -> QuerySet[Node]:
    qs = Node.objects.select_related("project", "owner", "resource_group", "current_version")
    if user.is_superuser:
        return qs
    return qs.filter(project__in=projects_visible_to(user))


def node_get(*, user, node_id: int) -> Node:
    """The node, if `user` may see it. A node one may not see does not exist."""
    node = nodes_visible_to(user).filter(pk=node_id).first()
    if node is None:
        raise NotFound(f"node {node_id} not found")
    return node


def node_versions(*, node: Node) -> QuerySet[NodeVersion]:
    """A node's versions, each with its pinned resource versions (`resource_pins`)."""
    return (
        NodeVersion.objects.filter(node=node)
        .select_related("published_by")
        .prefetch_related("resource_pins")
    )


def node_upstream_names(node: Node) -> list[str]:
    """Upstream names as published ("name", or "project_code.name" for other projects)."""
    return list(node.current_version.spec.get("upstream", [])) if node.current_version_id else []


@dataclass
class NodeFilters:
    """Filters of SPEC section 12 for /api/nodes and the node pages. Empty strings mean
    "no filter"; `q` searches names and descriptions."""

    project: str = ""
    env: str = ""
    type: str = ""
    schedule_type: str = ""
    owner: str = ""
    paused: str = ""
    status: str = ""
    group: str = ""
    q: str = ""

    @classmethod
    def from_query(cls, query) -> "NodeFilters":
        return cls(**{f.name: (query.get(f.name) or "").strip() for f in fields(cls)})


def _refuse(field: str, message: str):
    raise ValidationFailed(f"invalid {field}", [{"field": field, "message": message}])


def _choice(field: str, value: str, allowed: list[str]) -> str:
    if value not in allowed:
        _refuse(field, f"one of {', '.join(allowed)}")
    return value


def node_filter(queryset: QuerySet[Node], filters: NodeFilters) -> QuerySet[Node]:
    if filters.project:
        queryset = queryset.filter(project__code=filters.project)
    if filters.env:
        queryset = queryset.filter(env=_choice("env", filters.env, Env.values))
    if filters.type:
        queryset = queryset.filter(type=_choice("type", filters.type, NodeType.values))
    if filters.schedule_type:
        queryset = queryset.filter(
            schedule_type=_choice("schedule_type", filters.schedule_type, ScheduleType.values)
        )
    if filters.owner:
        queryset = queryset.filter(owner__username=filters.owner)
    if filters.paused:
        if filters.paused.lower() in ("true", "1"):
            queryset = queryset.filter(paused=True)
        elif filters.paused.lower() in ("false", "0"):
            queryset = queryset.filter(paused=False)
        else:
            _refuse("paused", "true or false")
    if filters.status:
        queryset = queryset.filter(status=_choice("status", filters.status, NodeStatus.values))
    if filters.group:
        queryset = queryset.filter(group=filters.group)
    if filters.q:
        queryset = queryset.filter(
            Q(name__icontains=filters.q) | Q(description__icontains=filters.q)
        )
    return queryset


# --- node groups ------------------------------------------------------------------------
# A group is the nodes of one project published with the same `group` (by default the
# pipeline file's name when published with the CLI): not a row of its own.


def node_groups(queryset: QuerySet[Node]) -> QuerySet:
    """One row per group among `queryset`'s nodes, in one aggregate query: `project_id`,
    `project__code`, `group`, and how many `nodes` it has, how many are `paused` (and
    online) and how many `offline`. Ordered by group name, then project."""
    return (
        queryset.exclude(group="")
        .order_by()
        .values("project_id", "project__code", "group")
        .annotate(
            nodes=Count("id"),
            paused=Count("id", filter=Q(paused=True, status=NodeStatus.ONLINE)),
            offline=Count("id", filter=~Q(status=NodeStatus.ONLINE)),
        )
        .order_by("group", "project_id")
    )


def node_groups_page(queryset: QuerySet[Node], *, cursor: str | None, limit) -> Page:
    """A keyset page of node_groups(queryset): the cursor is the last (group, project)."""
    limit = parse_limit(limit)
    rows = node_groups(queryset)
    if cursor:
        group, project_id = decode_cursor(cursor)
        rows = rows.filter(
            Q(group__gte=group),
            Q(group__gt=group) | Q(group=group, project_id__gt=project_id),
        )
    items = list(rows[: limit + 1])
    if len(items) <= limit:
        return Page(items=items, next_cursor=None)
    last = items[limit - 1]
    return Page(items=items[:limit], next_cursor=encode_cursor(last["group"], last["project_id"]))


def group_get(*, user, project_code: str, group: str) -> dict:
    """The group `group` of project `project_code` as a node_groups row, if `user` sees the
    project and the group has a node; else NotFound (a group one may not see does not
    exist)."""
    row = node_groups(
        nodes_visible_to(user).filter(project__code=project_code, group=group)
    ).first()
    if row is None:
        raise NotFound(f"no node group {group!r} in project {project_code!r}")
    return row


@dataclass
class NodeGraph:
    """The node-level graph around one node. `levels` maps node id to its distance:
    negative upstream, positive downstream, 0 for the node itself."""

    nodes: list[Node]
    edges: list[tuple[int, int]]  # (upstream id, downstream id)
    levels: dict[int, int]


def node_upstream_ids(ids: list[int]) -> dict[int, list[int]]:
    """Each of `ids` to the nodes it depends on, in the current node graph; one query.
    The shape the graph walks of apps.core.dag take."""
    upstream: dict[int, list[int]] = {}
    for node_id, upstream_id in NodeDependency.objects.filter(node_id__in=ids).values_list(
        "node_id", "upstream_id"
    ):
        upstream.setdefault(node_id, []).append(upstream_id)
    return upstream


def node_downstream_ids(ids: list[int]) -> dict[int, list[int]]:
    """Each of `ids` to the nodes that depend on it, in the current node graph; one query."""
    downstream: dict[int, list[int]] = {}
    for upstream_id, node_id in NodeDependency.objects.filter(upstream_id__in=ids).values_list(
        "upstream_id", "node_id"
    ):
        downstream.setdefault(upstream_id, []).append(node_id)
    return downstream


def node_dag(*, user, node: Node, up: int, down: int) -> NodeGraph:
    """Nodes up to `up` levels upstream and `down` levels downstream of `node`, and the
    edges between them; nodes of projects `user` cannot see are left out. One query
    per level."""
    for name, value in (("up", up), ("down", down)):
        if not 0 <= value <= MAX_DAG_DEPTH:
            _refuse(name, f"a whole number from 0 to {MAX_DAG_DEPTH}")
    levels = {node.id: 0}
    edges: set[tuple[int, int]] = set()

    def upstream(ids: list[int]) -> dict[int, list[int]]:
        found = node_upstream_ids(ids)
        edges.update((u, n) for n, ups in found.items() for u in ups)
        return found

    def downstream(ids: list[int]) -> dict[int, list[int]]:
        found = node_downstream_ids(ids)
        edges.update((u, d) for u, downs in found.items() for d in downs)
        return found

    for other, level in dag.ancestors([node.id], upstream, depth=up).items():
        levels.setdefault(other, -level)
    for other, level in dag.descendants([node.id], downstream, depth=down).items():
        levels.setdefault(other, level)
    nodes = list(nodes_visible_to(user).filter(id__in=levels).order_by("id"))
    shown = {n.id for n in nodes}
    return NodeGraph(
        nodes=nodes,
        edges=sorted((u, d) for u, d in edges if u in shown and d in shown),
        levels={i: level for i, level in levels.items() if i in shown},
    )
