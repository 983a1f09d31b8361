"""The walks of the instance graph at their bounds (they go through apps.core.dag): where
the graph view cuts a level, where diagnosis stops walking up, and what a rerun with
downstream reads per level."""

import datetime

from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.instances import diagnosis, operations
from apps.instances.graph import instance_graph
from apps.instances.models import Instance
from tests.factories import instance_create, node_create

T0 = datetime.datetime(2026, 11, 21, 18, 0, tzinfo=datetime.UTC)
NOW = T0 + datetime.timedelta(hours=1)


def make(project, users, name, *, upstream=(), **fields) -> Instance:
    node = node_create(project, name, owner=users["alice"])
    return instance_create(node, T0, upstream=upstream, **fields)


def test_the_graph_view_cut_by_its_limit_keeps_the_instances_met_first(project, users):
    root = make(project, users, "root")
    first = make(project, users, "first", upstream=[root])
    second = make(project, users, "second", upstream=[root])
    # Made before `under_first`, so it has the lower id; `first` is met first all the same.
    under_second = make(project, users, "under_second", upstream=[second])
    under_first = make(project, users, "under_first", upstream=[first])
    graph = instance_graph(user=users["root"], instance=root, up=0, down=3, max_instances=4)
    assert graph.levels == {root.pk: 0, first.pk: 1, second.pk: 1, under_first.pk: 2}
    assert under_second.pk < under_first.pk
    assert graph.truncated and not graph.more_down
    assert {i.pk for i in graph.instances} == set(graph.levels)
    assert graph.edges == [
        (root.pk, first.pk, False),
        (root.pk, second.pk, False),
        (first.pk, under_first.pk, False),
    ]

    whole = instance_graph(user=users["root"], instance=under_first, up=1, down=0)
    assert whole.levels == {under_first.pk: 0, first.pk: -1}
    assert whole.more_up and not whole.truncated


def test_diagnosis_stops_walking_up_at_its_level_bound(project, users, monkeypatch):
    top = make(project, users, "top", state="failed")
    chain = [top]
    for n in range(4):
        chain.append(make(project, users, f"step{n}", upstream=[chain[-1]]))
    instance = make(project, users, "report", upstream=[chain[-1]])

    def upstream_detail():
        [waiting] = [
            b
            for b in diagnosis.diagnose(instance, now=NOW).blockers
            if b.kind == "waiting_upstream"
        ]
        return waiting.detail

    detail = upstream_detail()
    assert [c["id"] for c in detail["root_causes"]] == [top.pk]
    assert detail["root_causes"][0]["via"] == [c.pk for c in reversed(chain)]
    assert detail["walk_truncated"] is False
    # Four levels above the direct upstream lie within the bound; the fifth (top) not.
    monkeypatch.setattr(diagnosis, "MAX_WALK_LEVELS", 4)
    detail = upstream_detail()
    assert detail["root_causes"] == [] and detail["walk_truncated"] is True
    monkeypatch.setattr(diagnosis, "MAX_WALK_LEVELS", 5)
    assert upstream_detail()["walk_truncated"] is False


def test_diagnosis_stops_walking_up_after_the_level_that_passes_its_instance_bound(
    project, users, monkeypatch
):
    middles = [
        make(project, users, f"m{n}", upstream=[make(project, users, f"r{n}", state="stopped")])
        for n in range(5)
    ]
    instance = make(project, users, "report", upstream=middles)

    def upstream_detail():
        [waiting] = [
            b
            for b in diagnosis.diagnose(instance, now=NOW).blockers
            if b.kind == "waiting_upstream"
        ]
        return waiting.detail

    # The five middles and their five roots: ten instances walked.
    monkeypatch.setattr(diagnosis, "MAX_WALK_INSTANCES", 10)
    detail = upstream_detail()
    assert len(detail["root_causes"]) == 5 and detail["walk_truncated"] is False
    monkeypatch.setattr(diagnosis, "MAX_WALK_INSTANCES", 9)
    detail = upstream_detail()
    assert detail["root_causes"] == [] and detail["walk_truncated"] is True


def test_rerun_downstream_reads_one_query_per_level_and_chunk(project, users, monkeypatch):
    root = make(project, users, "root", state="succeeded")
    children = [make(project, users, f"c{n}", upstream=[root]) for n in range(5)]
    grandchildren = [make(project, users, f"g{n}", upstream=[c]) for n, c in enumerate(children)]
    monkeypatch.setattr(operations, "CHUNK", 2)
    with CaptureQueriesContext(connection) as queries:
        found = operations._descendants(root.pk)
    assert found == [i.pk for i in children + grandchildren]
    # The root (1 chunk), five children (3 chunks), five grandchildren (3 chunks).
    assert len(queries.captured_queries) == 7
