"""The instances around one instance, level by level upstream and downstream: what a DAG
view draws. One query per level (apps.core.dag walks it), so a deep or wide graph costs
what its depth costs."""

from collections.abc import Callable
from dataclasses import dataclass, field

from apps.core import dag
from apps.projects.selectors import projects_visible_to

from .models import Instance, InstanceDependency

MAX_LEVELS = 10
MAX_INSTANCES = 500


@dataclass
class InstanceGraph:
    root: Instance
    instances: list[Instance]
    # (upstream id, downstream id, removed), both ends among `instances`
    edges: list[tuple[int, int, bool]]
    # Neighbours in projects the viewer is not a member of: counted, never shown or walked.
    hidden: int = 0
    # More instances lie beyond the requested depth in that direction.
    more_up: bool = False
    more_down: bool = False
    # MAX_INSTANCES was reached before the requested depth.
    truncated: bool = False
    levels: dict[int, int] = field(default_factory=dict)  # id -> level (-up ... +down)


def instance_graph(
    *, user, instance: Instance, up: int, down: int, max_instances: int = MAX_INSTANCES
) -> InstanceGraph:
    """`instance` and the instances within `up` levels upstream and `down` levels
    downstream of it that `user` may see, with the edges between them."""
    visible = (
        None if user.is_superuser else set(projects_visible_to(user).values_list("id", flat=True))
    )
    levels = {instance.pk: 0}
    hidden: set[int] = set()
    truncated = False
    more = {}
    for direction, depth in (("up", up), ("down", down)):
        sign = -1 if direction == "up" else 1
        last: list[int] = []
        neighbours = _visible_neighbours(direction, visible, hidden)
        # Each level in the order of _neighbours' rows (by upstream, then downstream id):
        # when MAX_INSTANCES cuts a level, the instances met first are the ones kept.
        walk = dag.Walk([instance.pk], neighbours, depth=depth, sort=direction == "up")
        for number, level in enumerate(walk):
            if number:
                kept = []
                for other in level:
                    if other in levels:
                        continue
                    if len(levels) >= max_instances:
                        truncated = True
                        continue
                    levels[other] = sign * number
                    kept.append(other)
                level[:] = kept
            last = level if number == depth else []
        if last:
            # One level further, only to know whether there is more to show.
            more[direction] = any(
                visible is None or project_id in visible
                for *_edge, project_id in _neighbours(last, direction)
            )
    # Every edge among the instances shown, also those the walk did not pass (an upstream
    # of the root that feeds one of its downstream instances too).
    edges = (
        InstanceDependency.objects.filter(upstream_id__in=levels, downstream_id__in=levels)
        .order_by("upstream_id", "downstream_id")
        .values_list("upstream_id", "downstream_id", "removed")
    )
    instances = list(
        Instance.objects.filter(pk__in=levels)
        .select_related("node", "project")
        .defer("version", "params")
        .order_by("scheduled_at", "id")
    )
    return InstanceGraph(
        root=instance,
        instances=instances,
        edges=list(edges),
        hidden=len(hidden),
        more_up=more.get("up", False),
        more_down=more.get("down", False),
        truncated=truncated,
        levels=levels,
    )


def _visible_neighbours(
    direction: str, visible: set[int] | None, hidden: set[int]
) -> Callable[[list[int]], dict[int, list[int]]]:
    """The instances one level up or down from some, as apps.core.dag walks them: those
    of projects the viewer may see (`visible`, None for all); the others are added to
    `hidden` and not walked through."""

    def neighbours(ids: list[int]) -> dict[int, list[int]]:
        found: dict[int, list[int]] = {}
        for upstream_id, downstream_id, _removed, other, project_id in _neighbours(ids, direction):
            if visible is not None and project_id not in visible:
                hidden.add(other)
                continue
            walked_from = downstream_id if direction == "up" else upstream_id
            found.setdefault(walked_from, []).append(other)
        return found

    return neighbours


def _neighbours(ids: list[int], direction: str) -> list[tuple[int, int, bool, int, int]]:
    """Edges from `ids` one level up or down: (upstream, downstream, removed, the other
    end, the other end's project), in a stable order."""
    edges = InstanceDependency.objects.order_by("upstream_id", "downstream_id")
    if direction == "up":
        rows = edges.filter(downstream_id__in=ids).values_list(
            "upstream_id", "downstream_id", "removed", "upstream__project_id"
        )
        return [(u, d, removed, u, project) for u, d, removed, project in rows]
    rows = edges.filter(upstream_id__in=ids).values_list(
        "upstream_id", "downstream_id", "removed", "downstream__project_id"
    )
    return [(u, d, removed, d, project) for u, d, removed, project in rows]


# --- boxes: many instances of one node drawn as one -------------------------------------

# A node with at least this many instances side by side in a graph (an hourly node's 24
# runs feeding a daily child) is drawn as one box until the reader expands it.
GROUP_MIN = 4
# The order a group's states are told in, the one that most needs a look first; the
# group's box takes the colour of the first state it holds.
GROUP_STATE_ORDER = (
    "failed",
    "stopped",
    "running",
    "queued",
    "starting",
    "stopping",
    "pending",
    "skipped",
    "succeeded",
)


@dataclass
class InstanceGroup:
    """Instances of one node, one biz date and one level of the graph, drawn as one box."""

    key: str
    members: list[Instance]
    expanded: bool = False

    @property
    def node_name(self) -> str:
        return self.members[0].node.name

    @property
    def states(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for member in self.members:
            counts[member.state] = counts.get(member.state, 0) + 1
        order = {state: n for n, state in enumerate(GROUP_STATE_ORDER)}
        return dict(sorted(counts.items(), key=lambda item: order.get(item[0], len(order))))

    @property
    def leading_state(self) -> str:
        return next(iter(self.states))


@dataclass
class GroupedGraph:
    """What a DAG view draws: boxes (an Instance, or an InstanceGroup not expanded) and
    lines between them (each end an instance id or a group key)."""

    boxes: list[Instance | InstanceGroup]
    edges: list[tuple[int | str, int | str, bool]]
    groups: list[InstanceGroup]


def group_key(instance: Instance, level: int) -> str:
    return f"{instance.node_id}.{instance.biz_date:%Y%m%d}.{level}"


def graph_grouped(
    graph: InstanceGraph, *, expand: frozenset[str] = frozenset(), min_size: int = GROUP_MIN
) -> GroupedGraph:
    """`graph` with the instances of one node, biz date and level (min_size or more, the
    focus left out) gathered into groups; a group whose key is in `expand` keeps its
    instances as boxes of their own. Lines into or out of a group are merged (removed only
    if all of them are), lines inside one are left out."""
    by_key: dict[str, list[Instance]] = {}
    for instance in graph.instances:
        if instance.pk == graph.root.pk:
            continue
        key = group_key(instance, graph.levels.get(instance.pk, 0))
        by_key.setdefault(key, []).append(instance)
    groups = {
        key: InstanceGroup(key=key, members=members, expanded=key in expand)
        for key, members in by_key.items()
        if len(members) >= min_size
    }
    box_of: dict[int, int | str] = {}
    for group in groups.values():
        for member in group.members:
            box_of[member.pk] = member.pk if group.expanded else group.key
    boxes: list[Instance | InstanceGroup] = []
    drawn: set[str] = set()
    for instance in graph.instances:
        box = box_of.get(instance.pk, instance.pk)
        if isinstance(box, int):
            boxes.append(instance)
        elif box not in drawn:
            drawn.add(box)
            boxes.append(groups[box])
    merged: dict[tuple[int | str, int | str], bool] = {}
    for upstream_id, downstream_id, removed in graph.edges:
        ends = (box_of.get(upstream_id, upstream_id), box_of.get(downstream_id, downstream_id))
        if ends[0] == ends[1]:
            continue
        merged[ends] = merged.get(ends, True) and removed
    return GroupedGraph(
        boxes=boxes,
        edges=[(up, down, removed) for (up, down), removed in merged.items()],
        groups=list(groups.values()),
    )
