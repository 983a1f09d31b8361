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
