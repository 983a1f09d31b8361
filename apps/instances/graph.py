"""The instances around one instance, level by level upstream and downstream: what a DAG
view draws. One query per level, so a deep or wide graph costs what its depth costs."""

from dataclasses import dataclass, field

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
        frontier = [instance.pk]
        for level in range(1, depth + 2):
            if not frontier:
                break
            found = _neighbours(frontier, direction)
            if level > depth:
                # One level further, only to know whether there is more to show.
                more[direction] = any(
                    visible is None or project_id in visible for _, _, _, _, project_id in found
                )
                break
            frontier = []
            for _up, _down, _removed, other, project_id in found:
                if visible is not None and project_id not in visible:
                    hidden.add(other)
                    continue
                if other not in levels:
                    if len(levels) >= max_instances:
                        truncated = True
                        continue
                    levels[other] = level if direction == "down" else -level
                    frontier.append(other)
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
