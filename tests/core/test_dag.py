"""The graph module on its own: walks, topological order, cycles, longest path."""

import datetime
import subprocess
import sys
from pathlib import Path

import pytest

from apps.core import dag

# A diamond with a tail and a separate part:
#
#   a -> b -> d -> e        x -> y
#   a -> c -> d
#
# given as upstream lists (what each node depends on) and downstream lists.
UPSTREAM = {"b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["d"], "y": ["x"]}
DOWNSTREAM = {"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": ["e"], "x": ["y"]}


class Loader:
    """A callable adjacency that records each call, as a database loader would query."""

    def __init__(self, adjacency: dict):
        self.adjacency = adjacency
        self.calls: list[list] = []

    def __call__(self, nodes: list) -> dict:
        self.calls.append(list(nodes))
        return {node: self.adjacency[node] for node in nodes if node in self.adjacency}


def _is_cycle(cycle: list, upstream: dict) -> bool:
    return bool(cycle) and all(
        following in upstream.get(node, ())
        for node, following in zip(cycle, cycle[1:] + cycle[:1], strict=True)
    )


# --- walks ---------------------------------------------------------------------------------


def test_ancestors_of_a_diamond_nearest_first_each_once():
    found = dag.ancestors(["e"], UPSTREAM)
    assert found == {"d": 1, "b": 2, "c": 2, "a": 3}
    assert list(found) == ["d", "b", "c", "a"]


def test_descendants_of_a_diamond_take_the_shortest_distance():
    # d is reached through b and through c: once, at distance 2.
    assert dag.descendants(["a"], DOWNSTREAM) == {"b": 1, "c": 1, "d": 2, "e": 3}


def test_a_walk_stays_in_its_own_part_of_the_graph():
    assert dag.descendants(["x"], DOWNSTREAM) == {"y": 1}
    assert dag.ancestors(["a"], UPSTREAM) == {}
    assert dag.ancestors(["nowhere"], UPSTREAM) == {}
    assert dag.ancestors([], UPSTREAM) == {}


def test_depth_limits_the_levels():
    assert dag.ancestors(["e"], UPSTREAM, depth=2) == {"d": 1, "b": 2, "c": 2}
    assert dag.ancestors(["e"], UPSTREAM, depth=1) == {"d": 1}
    assert dag.ancestors(["e"], UPSTREAM, depth=0) == {}
    with pytest.raises(ValueError):
        dag.ancestors(["e"], UPSTREAM, depth=-1)


def test_stop_keeps_a_node_but_does_not_go_through_it():
    assert dag.ancestors(["e"], UPSTREAM, stop=lambda n: n == "b") == {
        "d": 1,
        "b": 2,
        "c": 2,
        "a": 3,  # still reached through c
    }
    assert dag.ancestors(["e"], UPSTREAM, stop=lambda n: n == "d") == {"d": 1}
    # A start that stops is not gone through either.
    assert dag.ancestors(["e"], UPSTREAM, stop=lambda n: n == "e") == {}


def test_several_starts_are_not_in_the_answer_even_upstream_of_each_other():
    assert dag.descendants(["a", "d", "x"], DOWNSTREAM) == {"b": 1, "c": 1, "e": 1, "y": 1}


def test_a_walk_ends_on_a_cycle():
    upstream = {"a": ["c"], "b": ["a"], "c": ["b"]}
    assert dag.ancestors(["a"], upstream) == {"c": 1, "b": 2}


def test_a_level_is_in_adjacency_order_unless_sorted():
    downstream = {"r": ["z", "m", "b"]}
    assert list(dag.descendants(["r"], downstream)) == ["z", "m", "b"]
    assert list(dag.descendants(["r"], downstream, sort=True)) == ["b", "m", "z"]
    by_length = {"r": ["ccc", "a", "bb"]}
    assert list(dag.descendants(["r"], by_length, sort=len)) == ["a", "bb", "ccc"]


def test_a_loader_is_asked_once_per_level_with_the_whole_level():
    loader = Loader(UPSTREAM)
    assert dag.ancestors(["e", "y"], loader) == {"d": 1, "x": 1, "b": 2, "c": 2, "a": 3}
    assert loader.calls == [["e", "y"], ["d", "x"], ["b", "c"], ["a"]]


def test_a_loader_is_not_asked_beyond_the_depth_nor_for_stopped_nodes():
    loader = Loader(UPSTREAM)
    dag.ancestors(["e"], loader, depth=2)
    assert loader.calls == [["e"], ["d"]]
    loader = Loader(UPSTREAM)
    dag.ancestors(["e"], loader, stop=lambda n: n in ("b", "c"))
    assert loader.calls == [["e"], ["d"]]


def test_a_loader_answering_for_nodes_it_was_not_asked_about_is_not_believed():
    def loader(nodes):
        return {**{n: UPSTREAM.get(n, []) for n in nodes}, "x": ["intruder"]}

    assert "intruder" not in dag.ancestors(["e"], loader)


def test_walk_levels_parents_and_paths():
    walk = dag.Walk(["e"], UPSTREAM)
    assert list(walk) == [["e"], ["d"], ["b", "c"], ["a"]]
    assert walk.level == {"e": 0, "d": 1, "b": 2, "c": 2, "a": 3}
    # a is first reached from b, the first node of its level that lists it.
    assert walk.parent == {"d": "e", "b": "d", "c": "d", "a": "b"}
    assert walk.path("a") == ["e", "d", "b", "a"]
    assert walk.path("e") == ["e"]


def test_removing_nodes_from_a_level_keeps_the_walk_from_going_through_them():
    loader = Loader(UPSTREAM)
    walk = dag.Walk(["e"], loader)
    levels = []
    for level in walk:
        levels.append(list(level))
        if "b" in level:
            level.remove("b")
    assert levels == [["e"], ["d"], ["b", "c"], ["a"]]
    assert loader.calls[2] == ["c"]
    assert "b" not in walk.level and walk.parent["a"] == "c"


def test_a_removed_node_is_not_yielded_again_on_another_path():
    # r -> p -> q and r -> q: q removed at level 1 is not offered again at level 2.
    walk = dag.Walk(["r"], {"r": ["q", "p"], "p": ["q"]})
    levels = []
    for level in walk:
        levels.append(list(level))
        if "q" in level:
            level.remove("q")
    assert levels == [["r"], ["q", "p"]]


def test_the_next_level_is_read_only_when_asked_for():
    loader = Loader(UPSTREAM)
    for number, _level in enumerate(dag.Walk(["e"], loader)):
        if number == 1:
            break
    assert loader.calls == [["e"]]


def test_a_long_chain_needs_no_recursion():
    upstream = {n: [n - 1] for n in range(1, 50_000)}
    found = dag.ancestors([49_999], upstream)
    assert len(found) == 49_999 and found[0] == 49_999


# --- cycles and topological order ----------------------------------------------------------


def test_topological_order_puts_upstream_first_and_keeps_the_given_order_for_ties():
    nodes = ["e", "d", "c", "b", "a", "y", "x"]
    order = dag.topological_order(nodes, UPSTREAM)
    assert order == ["a", "c", "b", "d", "e", "x", "y"]
    for node, ups in UPSTREAM.items():
        assert all(order.index(u) < order.index(node) for u in ups)
    assert dag.topological_order(sorted(nodes), UPSTREAM) == ["a", "b", "c", "d", "e", "x", "y"]


def test_topological_order_ignores_edges_to_nodes_outside():
    assert dag.topological_order(["d", "e"], UPSTREAM) == ["d", "e"]
    assert dag.topological_order([], UPSTREAM) == []


def test_topological_order_names_a_cycle():
    # a <- b <- c <- a is a cycle; d hangs below it and e is fine on its own.
    upstream = {"a": ["c"], "b": ["a"], "c": ["b"], "d": ["c"], "e": []}
    with pytest.raises(dag.CycleError) as raised:
        dag.topological_order(["d", "e", "a", "b", "c"], upstream)
    cycle = raised.value.cycle
    assert sorted(cycle) == ["a", "b", "c"] and _is_cycle(cycle, upstream)
    assert "dependency cycle: " in str(raised.value)


def test_a_node_depending_on_itself_is_a_cycle():
    with pytest.raises(dag.CycleError) as raised:
        dag.topological_order(["a", "b"], {"b": ["b", "a"]})
    assert raised.value.cycle == ["b"]


def test_find_cycles_reports_each_separate_cycle_from_the_starts():
    upstream = {"a": ["b"], "b": ["a"], "c": ["d"], "d": ["c"], "e": ["a"]}
    assert dag.find_cycles(upstream, starts=["a", "c", "e"]) == [["a", "b"], ["c", "d"]]
    assert dag.find_cycles(upstream, starts=["e"]) == [["a", "b"]]
    assert dag.find_cycle(UPSTREAM) is None
    assert dag.find_cycles(UPSTREAM) == []


def test_find_cycle_names_a_cycle_in_a_diamond_closed_on_itself():
    upstream = {**UPSTREAM, "a": ["e"]}
    cycle = dag.find_cycle(upstream)
    assert _is_cycle(cycle, upstream) and set(cycle) >= {"a", "d", "e"}


def test_cycle_search_on_a_long_chain_needs_no_recursion():
    upstream = {n: [n - 1] for n in range(1, 50_000)}
    upstream[0] = [49_999]
    [cycle] = dag.find_cycles(upstream, starts=[49_999])
    assert len(cycle) == 50_000


# --- longest path --------------------------------------------------------------------------


def test_longest_path_through_a_diamond():
    weight = {"a": 2, "b": 5, "c": 1, "d": 3, "e": 1, "x": 20, "y": 1}
    result = dag.longest_path(["a", "b", "c", "d", "e"], UPSTREAM, weight=weight)
    assert result.start == {"a": 0, "b": 2, "c": 2, "d": 7, "e": 10}
    assert result.finish == {"a": 2, "b": 7, "c": 3, "d": 10, "e": 11}
    assert result.end == "e" and result.latest == 11
    assert result.path == ["a", "b", "d", "e"]
    assert result.via == {"a": None, "b": "a", "c": "a", "d": "b", "e": "d"}


def test_longest_path_over_disconnected_parts_ends_at_the_latest():
    weight = {"a": 2, "b": 5, "c": 1, "d": 3, "e": 1, "x": 20, "y": 1}
    result = dag.longest_path(list(weight), UPSTREAM, weight=weight)
    assert (result.end, result.latest, result.path) == ("y", 21, ["x", "y"])
    result = dag.longest_path(list(weight), UPSTREAM, weight=weight, targets=["e", "c"])
    assert (result.end, result.latest, result.path) == ("e", 11, ["a", "b", "d", "e"])


def test_longest_path_ties_are_broken_by_the_given_order():
    weight = dict.fromkeys("abcde", 1)
    # b and c finish together: the one given first holds d.
    result = dag.longest_path(["a", "b", "c", "d", "e"], UPSTREAM, weight=weight)
    assert result.path == ["a", "b", "d", "e"]
    result = dag.longest_path(["a", "c", "b", "d", "e"], UPSTREAM, weight=weight)
    assert result.path == ["a", "c", "d", "e"]
    # Two targets finishing together: the first target given is the end.
    result = dag.longest_path(["a", "b", "c"], UPSTREAM, weight=weight, targets=["c", "b"])
    assert (result.end, result.path) == ("c", ["a", "c"])
    result = dag.longest_path(["a", "b", "c"], UPSTREAM, weight=weight)
    assert (result.end, result.path) == ("b", ["a", "b"])


def test_an_earliest_start_later_than_the_upstream_begins_the_path():
    weight = dict.fromkeys("abcde", 1)
    earliest = {"d": 10}
    result = dag.longest_path(list("abcde"), UPSTREAM, weight=weight, earliest=earliest)
    assert result.start["d"] == 10 and result.via["d"] is None
    assert result.path == ["d", "e"] and result.latest == 12
    # A tie between the upstream finish and the earliest start goes to the upstream.
    result = dag.longest_path(list("abcde"), UPSTREAM, weight=weight, earliest={"d": 2})
    assert result.path == ["a", "b", "d", "e"]


def test_longest_path_in_time_with_fixed_finished_nodes():
    t0 = datetime.datetime(2026, 11, 22, 0, 0, tzinfo=datetime.UTC)
    minutes = datetime.timedelta(minutes=1)
    weight = {"b": 30 * minutes, "c": 10 * minutes, "d": 20 * minutes, "e": 5 * minutes}
    # a really ran from 00:00 to 00:40; c may not start before 01:00; now is 00:50.
    now = t0 + 50 * minutes
    earliest = {"b": now, "c": t0 + 60 * minutes, "d": now, "e": now}
    fixed = {"a": (t0, t0 + 40 * minutes)}
    result = dag.longest_path(
        list("abcde"), UPSTREAM, weight=weight, earliest=earliest.get, fixed=fixed
    )
    assert result.finish["a"] == t0 + 40 * minutes
    assert result.start["b"] == now and result.via["b"] is None
    assert result.finish["b"] == t0 + 80 * minutes
    assert result.finish["c"] == t0 + 70 * minutes
    assert result.finish["e"] == t0 + 105 * minutes
    assert result.path == ["b", "d", "e"]


def test_longest_path_refuses_a_cycle():
    with pytest.raises(dag.CycleError):
        dag.longest_path(["a", "b"], {"a": ["b"], "b": ["a"]}, weight={"a": 1, "b": 1})


def test_longest_path_of_nothing():
    result = dag.longest_path([], UPSTREAM, weight={})
    assert result.end is None and result.latest is None and result.path == []


def test_the_module_imports_nothing_of_django():
    root = Path(__file__).resolve().parents[2]
    code = (
        "import sys; import apps.core.dag; "
        "sys.exit(any(m.split('.')[0] == 'django' for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0
