"""Walks over a dependency graph: ancestors, descendants, topological order, cycles, and
the longest path by weights. Pure: no database and no Django, so every walk of the node
graph and of the instance graph is this one code, tested on its own.

A graph is adjacency in one of two shapes:

- a mapping `{node: [neighbour, ...]}` (a node missing from it has no neighbours), or
- a callable `neighbours(nodes) -> {node: [neighbour, ...]}`, called once per level of a
  walk with every node of that level it goes through, so a caller reading the graph
  from the database pays one query (or one per chunk) per level, never one per node.

Which way the edges point is the adjacency's business: give upstream lists to walk to
ancestors, downstream lists to walk to descendants. Topological order, cycles and the
longest path take the whole graph as a mapping from each node to its upstream nodes.
Nodes are any hashable values: instance ids, node ids, keys of a publish batch.

Orders are deterministic: a walk reaches nodes level by level, nearest first, and within
a level in the order the adjacency lists them (or sorted, when asked); ties elsewhere go
to the node given first.
"""

import heapq
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

N = TypeVar("N", bound=Hashable)

Adjacency = Mapping[N, Iterable[N]] | Callable[[list[N]], Mapping[N, Iterable[N]]]


class CycleError(ValueError):
    """The graph has a cycle; `cycle` names one, each node depending on the next and the
    last on the first."""

    def __init__(self, cycle: list):
        self.cycle = cycle
        super().__init__("dependency cycle: " + " -> ".join(map(str, [*cycle, cycle[0]])))


def _loader(adjacency: Adjacency) -> Callable[[list], Mapping]:
    if callable(adjacency):
        return adjacency
    return lambda nodes: {node: adjacency.get(node, ()) for node in nodes}


def _value(given: Mapping | Callable | None, node, default=None):
    if given is None:
        return default
    if callable(given):
        return given(node)
    return given.get(node, default)


# --- walks -----------------------------------------------------------------------------


class Walk(Generic[N]):
    """A breadth-first walk from `starts`, iterated level by level: level 0 is the starts,
    level k the nodes first reached k steps away. Each level is a list; remove nodes from
    it before asking for the next level (as with os.walk's directory lists) and the walk
    neither goes through them nor yields them again.

    - `depth`: the last level yielded; its nodes are not gone through.
    - `stop(node)`: true for a node the walk yields but does not go through.
    - `sort`: sort each level (True: by the nodes themselves; or a key function);
      otherwise a level is in the order the adjacency lists its nodes.

    The next level is read (one call of a callable adjacency) only when asked for, so a
    caller may break off at any level. After or during iteration, `level` maps each node
    yielded (and not removed) to its level, nearest first, and `parent` each node past
    the starts to the node it was first reached from.
    """

    def __init__(
        self,
        starts: Iterable[N],
        neighbours: Adjacency,
        *,
        depth: int | None = None,
        stop: Callable[[N], bool] | None = None,
        sort: bool | Callable[[N], Any] = False,
    ):
        if depth is not None and depth < 0:
            raise ValueError("depth must not be negative")
        self.starts = list(dict.fromkeys(starts))
        self.depth = depth
        self._load = _loader(neighbours)
        self._stop = stop
        self._sort = sort
        self.level: dict[N, int] = {}
        self.parent: dict[N, N] = {}

    def __iter__(self) -> Iterator[list[N]]:
        self.level, self.parent = {}, {}
        seen = set(self.starts)
        current = list(self.starts)
        number = 0
        while current:
            yielded = list(current)
            for node in current:
                self.level[node] = number
            yield current
            kept = set(current)
            for node in yielded:
                if node not in kept:
                    del self.level[node]
                    self.parent.pop(node, None)
            if self.depth is not None and number >= self.depth:
                return
            through = [n for n in current if self._stop is None or not self._stop(n)]
            if not through:
                return
            asked = set(through)
            found: list[N] = []
            for node, others in self._load(through).items():
                if node not in asked:
                    continue
                for other in others:
                    if other not in seen:
                        seen.add(other)
                        self.parent[other] = node
                        found.append(other)
            if self._sort is True:
                found.sort()
            elif self._sort:
                found.sort(key=self._sort)
            number += 1
            current = found

    def path(self, node: N) -> list[N]:
        """From the start the walk set out from to `node`, each reached from the one before."""
        path = [node]
        while path[-1] in self.parent:
            path.append(self.parent[path[-1]])
        return path[::-1]


def _reach(starts, neighbours, **options) -> dict:
    walk = Walk(starts, neighbours, **options)
    for _level in walk:
        pass
    return {node: level for node, level in walk.level.items() if level}


def ancestors(
    starts: Iterable[N],
    upstream: Adjacency,
    *,
    depth: int | None = None,
    stop: Callable[[N], bool] | None = None,
    sort: bool | Callable[[N], Any] = False,
) -> dict[N, int]:
    """Every node upstream of `starts` (within `depth` levels), nearest first, mapped to
    its distance. The starts are not in the answer, even one upstream of another. A node
    for which `stop` is true is in the answer but its own upstream is not walked."""
    return _reach(starts, upstream, depth=depth, stop=stop, sort=sort)


def descendants(
    starts: Iterable[N],
    downstream: Adjacency,
    *,
    depth: int | None = None,
    stop: Callable[[N], bool] | None = None,
    sort: bool | Callable[[N], Any] = False,
) -> dict[N, int]:
    """Every node downstream of `starts`, as `ancestors` does upstream."""
    return _reach(starts, downstream, depth=depth, stop=stop, sort=sort)


# --- order and cycles -------------------------------------------------------------------


def find_cycles(
    neighbours: Mapping[N, Iterable[N]], *, starts: Iterable[N] | None = None
) -> list[list[N]]:
    """The cycles a depth-first walk from each of `starts` (default: every node of the
    mapping) in turn runs into (a node on
    the walk's own path reached again), each as its nodes in edge order without the first
    repeated at the end. Iterative, so a long chain needs no recursion. Every graph with a
    cycle reachable from `starts` yields at least one; two cycles sharing nodes may yield
    one or both."""
    return list(_cycles(neighbours if starts is None else starts, neighbours))


def find_cycle(
    neighbours: Mapping[N, Iterable[N]], *, starts: Iterable[N] | None = None
) -> list[N] | None:
    """One cycle reachable from `starts` (default: every node of the mapping), or None."""
    return next(_cycles(neighbours if starts is None else starts, neighbours), None)


def _cycles(starts: Iterable[N], neighbours: Mapping[N, Iterable[N]]) -> Iterator[list[N]]:
    on_path: dict[N, int] = {}
    done: set[N] = set()
    for start in starts:
        if start in done:
            continue
        path = [start]
        on_path[start] = 0
        stack = [iter(neighbours.get(start, ()))]
        while stack:
            following = next(stack[-1], None)
            if following is None:
                finished = path.pop()
                del on_path[finished]
                done.add(finished)
                stack.pop()
            elif following in on_path:
                yield path[on_path[following] :]
            elif following not in done:
                on_path[following] = len(path)
                path.append(following)
                stack.append(iter(neighbours.get(following, ())))


def topological_order(nodes: Iterable[N], upstream: Mapping[N, Iterable[N]]) -> list[N]:
    """`nodes` with each after every one of its upstream nodes (Kahn's algorithm); edges
    to nodes outside `nodes` are ignored. Among nodes ready at the same time the one
    given first comes first. Raises CycleError naming one cycle when there is none."""
    index = {node: i for i, node in enumerate(dict.fromkeys(nodes))}
    waiting = dict.fromkeys(index, 0)
    children: dict[N, list[N]] = {}
    inside: dict[N, list[N]] = {}
    for node in index:
        inside[node] = [u for u in dict.fromkeys(upstream.get(node, ())) if u in index]
        waiting[node] = len(inside[node])
        for u in inside[node]:
            children.setdefault(u, []).append(node)
    ready = [(i, node) for node, i in index.items() if not waiting[node]]
    heapq.heapify(ready)
    order: list[N] = []
    while ready:
        _, node = heapq.heappop(ready)
        order.append(node)
        for child in children.get(node, ()):
            waiting[child] -= 1
            if not waiting[child]:
                heapq.heappush(ready, (index[child], child))
    if len(order) < len(index):
        # Every node left waits for another node left, so a walk up from any finds a cycle.
        left = [node for node in index if waiting[node]]
        cycle = find_cycle({node: inside[node] for node in left}, starts=left)
        raise CycleError(cycle or left)
    return order


# --- longest path -----------------------------------------------------------------------


@dataclass
class LongestPath(Generic[N]):
    """When each node starts and finishes, and the chain that makes the last one late."""

    start: dict[N, Any] = field(default_factory=dict)
    finish: dict[N, Any] = field(default_factory=dict)
    # The upstream node whose finish set each node's start; None where nothing upstream
    # held it (its own earliest start, or no upstream).
    via: dict[N, N | None] = field(default_factory=dict)
    end: N | None = None  # the target that finishes last
    path: list[N] = field(default_factory=list)  # from a root to `end`

    @property
    def latest(self):
        return None if self.end is None else self.finish[self.end]

    def path_to(self, node: N) -> list[N]:
        path = [node]
        while self.via.get(path[-1]) is not None:
            path.append(self.via[path[-1]])
        return path[::-1]


def longest_path(
    nodes: Iterable[N],
    upstream: Mapping[N, Iterable[N]],
    *,
    weight: Mapping[N, Any] | Callable[[N], Any],
    earliest: Mapping[N, Any] | Callable[[N], Any] | None = None,
    fixed: Mapping[N, tuple[Any, Any]] | None = None,
    targets: Iterable[N] | None = None,
    origin: Any = 0,
) -> LongestPath[N]:
    """Earliest schedule of `nodes` and the critical path to the one of `targets` (default:
    all) that finishes last.

    A node starts at the latest of its own `earliest` start (None: no bound) and the
    finishes of its upstream nodes, and finishes `weight` later; a node with neither
    starts at `origin`. A node in `fixed` has known (start, finish) times, used as they
    are. Durations and times may be numbers, or timedeltas and datetimes. Edges to nodes
    outside `nodes` are ignored; a cycle raises CycleError.

    `via` follows, from each node, the upstream node that finished last; the path stops
    where the node's own earliest start came later. Ties go to the upstream node given
    first in `nodes`, and to the upstream over the earliest start; the end is the first
    of `targets` among those finishing last.
    """
    order = topological_order(nodes, upstream)
    rank = {node: i for i, node in enumerate(dict.fromkeys(nodes))}
    result: LongestPath[N] = LongestPath()
    for node in order:
        held_by = None
        for u in dict.fromkeys(upstream.get(node, ())):
            if u not in rank:
                continue
            if (
                held_by is None
                or result.finish[u] > result.finish[held_by]
                or (result.finish[u] == result.finish[held_by] and rank[u] < rank[held_by])
            ):
                held_by = u
        own = _value(earliest, node)
        if held_by is not None and own is not None and own > result.finish[held_by]:
            held_by = None
        if fixed is not None and node in fixed:
            start, finish = fixed[node]
        else:
            if held_by is not None:
                start = result.finish[held_by]
            else:
                start = origin if own is None else own
            finish = start + _value(weight, node)
        result.start[node], result.finish[node] = start, finish
        result.via[node] = held_by
    for node in dict.fromkeys(rank if targets is None else targets):
        if node in result.finish and (
            result.end is None or result.finish[node] > result.finish[result.end]
        ):
            result.end = node
    if result.end is not None:
        result.path = result.path_to(result.end)
    return result
