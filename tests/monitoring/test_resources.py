"""The resource dashboard (SPEC 11): flags and suggestions for nodes with known measured
usage, the sums per project and resource group, GET /api/resources and bad input."""

import datetime

import pytest

from apps.configuration.models import ResourceGroup
from apps.instances.models import Attempt
from apps.monitoring import resources
from apps.monitoring.resources import (
    NO_DATA,
    OK,
    OVER,
    UNDER,
    flag_of,
    percentile,
    suggestion,
)
from tests.factories import instance_create, node_create

# Runs on 2026-11-20, in the project's timezone (Asia/Shanghai).
DAY = datetime.datetime(2026, 11, 20, 1, 0, tzinfo=datetime.UTC)


def runs(node, measured: list[tuple[float, float, float]], *, killed: int = 0, day=DAY):
    """One finished instance per (wall seconds, cpu seconds, peak MB), an hour apart; the
    first `killed` ones killed for memory."""
    for n, (wall, cpu, peak) in enumerate(measured):
        started = day + datetime.timedelta(hours=n)
        instance = instance_create(
            node, started, state="failed" if n < killed else "succeeded", started_at=started
        )
        Attempt.objects.create(
            instance=instance,
            number=1,
            state="failed" if n < killed else "succeeded",
            started_at=started,
            finished_at=started + datetime.timedelta(seconds=wall),
            cpu_seconds=cpu,
            peak_memory_mb=peak,
            killed_for="memory" if n < killed else "",
        )


def test_percentile_interpolates_like_percentile_cont():
    assert percentile([]) is None
    assert percentile([5.0]) == 5.0
    # rank 0.95 x 3 = 2.85: 30 + 0.85 x (40 - 30)
    assert percentile([40.0, 10.0, 30.0, 20.0]) == pytest.approx(38.5)
    assert percentile([1.0, None, 3.0]) == pytest.approx(2.9)


@pytest.mark.parametrize(
    ("p95", "expected"),
    [
        ((0.8, 400.0), (1.0, 512)),  # 1.0 exactly: no spurious step up
        ((0.1, 10.0), (0.25, 64)),  # at least one step
        ((1.01, 512.0), (1.5, 640)),
        ((None, None), (None, None)),
    ],
)
def test_suggestion_rounds_up(p95, expected):
    assert suggestion(*p95) == expected


@pytest.mark.parametrize(
    ("facts", "flag"),
    [
        (dict(runs=2, killed_for_memory=0, avg_cores_p95=0.1, peak_memory_mb_p95=10), NO_DATA),
        (dict(runs=1, killed_for_memory=1, avg_cores_p95=0.1, peak_memory_mb_p95=10), UNDER),
        (dict(runs=5, killed_for_memory=0, avg_cores_p95=0.91, peak_memory_mb_p95=10), UNDER),
        (dict(runs=5, killed_for_memory=0, avg_cores_p95=0.1, peak_memory_mb_p95=470), UNDER),
        (dict(runs=5, killed_for_memory=0, avg_cores_p95=0.49, peak_memory_mb_p95=255), OVER),
        (dict(runs=5, killed_for_memory=0, avg_cores_p95=0.5, peak_memory_mb_p95=100), OK),
        (dict(runs=5, killed_for_memory=0, avg_cores_p95=0.9, peak_memory_mb_p95=460.8), OK),
    ],
)
def test_flags_as_spec_11_defines_them(facts, flag):
    assert flag_of(**facts, allocated_cpu=1.0, allocated_memory_mb=512) == flag


def test_over_provisioned_needs_both_allocations():
    facts = dict(runs=5, killed_for_memory=0, avg_cores_p95=0.1, peak_memory_mb_p95=10)
    assert flag_of(**facts, allocated_cpu=None, allocated_memory_mb=512) == OK
    assert flag_of(**facts, allocated_cpu=None, allocated_memory_mb=None) == OK


def script_node(*args, **kwargs):
    """A node as publishing makes it: with a script (a republish validates it)."""
    return node_create(*args, content="echo run", **kwargs)


@pytest.fixture
def usage(project, users):
    """Four nodes with known usage in group "etl" plus one in "default"."""
    ResourceGroup.objects.get_or_create(name="etl")
    owner = users["alice"]
    node_create = script_node
    lavish = node_create(
        project, "lavish", owner=owner, type="shell", resource_group="etl", cpu=2, memory_mb=2048
    )
    # avg cores 0.2, 0.3, 0.4, 0.5 (p95 0.485), peak 100..400 MB (p95 385)
    runs(lavish, [(100, 20, 100), (100, 30, 200), (100, 40, 300), (100, 50, 400)])
    tight = node_create(
        project, "tight", owner=owner, type="python", resource_group="etl", cpu=1, memory_mb=512
    )
    # peak p95 = 490.5 MB: over 90% of 512
    runs(tight, [(10, 5, 300), (10, 5, 480), (10, 5, 492)])
    killed = node_create(
        project, "killed", owner=owner, type="python", resource_group="etl", cpu=1, memory_mb=512
    )
    runs(killed, [(10, 5, 520)], killed=1)
    fine = node_create(project, "fine", owner=owner, type="shell", cpu=1, memory_mb=1024)
    runs(fine, [(60, 40, 600), (60, 42, 610), (60, 45, 620)])
    young = node_create(project, "young", owner=owner, type="shell", cpu=1, memory_mb=1024)
    runs(young, [(60, 40, 600)])
    return {"lavish": lavish, "tight": tight, "killed": killed, "fine": fine, "young": young}


def test_dashboard_flags_and_suggestions(usage, project, users, api_as):
    answer = api_as("vera").get(
        "/api/resources", {"project": "acme", "start": "2026-11-20", "end": "2026-11-20"}
    )
    assert answer.status_code == 200, answer.content
    body = answer.json()
    nodes = {n["node_name"]: n for n in body["nodes"]}
    assert set(nodes) == {"lavish", "tight", "killed", "fine", "young"}

    lavish = nodes["lavish"]
    assert lavish["runs"] == 4 and lavish["flag"] == "over_provisioned"
    assert lavish["avg_cores_p95"] == pytest.approx(0.485)
    assert lavish["peak_memory_mb_p95"] == pytest.approx(385.0)
    assert lavish["cpu_seconds"] == pytest.approx(140.0)
    assert lavish["running_seconds"] == pytest.approx(400.0, abs=0.01)
    assert lavish["allocated_cpu"] == 2 and lavish["allocated_memory_mb"] == 2048
    # 0.485 x 1.25 = 0.606 -> 0.75 core; 385 x 1.25 = 481.25 -> 512 MB
    assert (lavish["suggested_cpu"], lavish["suggested_memory_mb"]) == (0.75, 512)

    assert nodes["tight"]["flag"] == "under_provisioned"
    assert nodes["tight"]["suggested_memory_mb"] == 640  # 490.8 x 1.25 = 613.5
    assert nodes["killed"]["flag"] == "under_provisioned"
    assert nodes["killed"]["killed_for_memory"] == 1
    assert nodes["fine"]["flag"] == "ok"
    assert nodes["young"]["flag"] == "no_data"
    assert nodes["young"]["suggested_cpu"] is None

    groups = {g["name"]: g for g in body["resource_groups"]}
    etl = groups["etl"]
    assert etl["runs"] == 8 and etl["nodes"] == 3
    assert etl["cpu_seconds"] == pytest.approx(140 + 15 + 5)
    # lavish: 2 cores x 400 s; tight: 1 x 30 s; killed: 1 x 10 s
    assert etl["allocated_cpu_seconds"] == pytest.approx(800 + 30 + 10, abs=0.1)
    assert etl["flags"] == {"under_provisioned": 2, "over_provisioned": 1, "ok": 0, "no_data": 0}
    assert etl["killed_for_memory"] == 1 and etl["peak_memory_mb_max"] == 520
    assert groups["default"]["runs"] == 4
    assert body["projects"][0]["name"] == "acme" and body["projects"][0]["runs"] == 12


def test_dashboard_filters_and_range(usage, api_as):
    client = api_as("vera")
    outside = client.get("/api/resources", {"start": "2026-11-21", "end": "2026-11-25"})
    assert outside.status_code == 200 and outside.json()["nodes"] == []
    by_group = client.get(
        "/api/resources", {"resource_group": "default", "start": "2026-11-20", "end": "2026-11-20"}
    ).json()
    assert {n["node_name"] for n in by_group["nodes"]} == {"fine", "young"}
    one = client.get(
        "/api/resources",
        {"node": usage["tight"].pk, "start": "2026-11-19", "end": "2026-11-21"},
    ).json()
    assert [n["node_name"] for n in one["nodes"]] == ["tight"]


def test_dashboard_is_one_query_per_aggregate_whatever_the_nodes(
    usage, project, users, django_assert_max_num_queries
):
    scope = resources.resources_scope(user=users["root"], project=project)
    with django_assert_max_num_queries(6):
        found = resources.resources_get(
            scope=scope, start=datetime.date(2026, 11, 20), end=datetime.date(2026, 11, 20)
        )
    assert len(found.nodes) == 5


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"start": "2026-13-01"}, 422, "start"),
        ({"end": "yesterday"}, 422, "end"),
        ({"start": "2026-11-20", "end": "2026-11-01"}, 422, "start"),
        ({"start": "2020-01-01", "end": "2026-11-01"}, 422, "start"),
        ({"node": "abc"}, 422, "node"),
        ({"node": "99999999"}, 404, None),
        ({"resource_group": "nope"}, 404, None),
        ({"project": "nope"}, 404, None),
    ],
)
def test_bad_input_names_the_field(usage, api_as, params, status, field):
    answer = api_as("vera").get("/api/resources", params)
    assert answer.status_code == status, answer.content
    if field:
        assert [e["field"] for e in answer.json()["errors"]] == [field]


def test_strangers_see_nothing(usage, api_as):
    body = api_as("stranger").get("/api/resources", {"start": "2026-11-20"}).json()
    assert body["nodes"] == [] and body["projects"] == []
