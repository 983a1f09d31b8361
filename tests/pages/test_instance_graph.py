"""The graph around an instance: its JSON (for the DAG component) and the full-screen page."""

import datetime

import pytest

from apps.instances.models import Instance, InstanceDependency
from apps.projects.models import Project
from tests.factories import instance_create, node_create
from tests.pages.builders import T0

HTMX = {"HTTP_HX_REQUEST": "true"}

# Layer sizes of wide_graph: three levels up, the focus, three levels down (200 in all).
LAYERS = [20, 30, 40, 1, 40, 40, 29]
WORDS = [
    "orders", "items", "customers", "payments", "refunds", "shipments", "stock", "prices",
    "campaigns", "sessions", "clicks", "carts", "vendors", "returns", "ledger", "invoices",
    "tickets", "reviews", "coupons", "regions",
]  # fmt: skip


def wide_graph(project, owner) -> tuple[Instance, list[Instance]]:
    """200 instances in 7 layers around one focus instance: every instance of an upper
    layer feeds one or two of the next, so all of them lie within 3 levels of the focus."""
    nodes = [
        node_create(project, f"{prefix}_{word}", owner=owner)
        for prefix in ("stg", "dwd")
        for word in WORDS
    ]
    states = ["succeeded"] * 7 + ["failed", "running", "skipped"]
    layers: list[list[Instance]] = []
    focus_layer = LAYERS.index(1)
    for depth, size in enumerate(LAYERS):
        rows = []
        for j in range(size):
            if depth < focus_layer:
                state = states[(depth * 7 + j) % len(states)]
            else:
                state = "pending"
            rows.append(
                Instance(
                    project=project,
                    node=nodes[j % len(nodes)],
                    version=nodes[j % len(nodes)].current_version,
                    kind="recurring",
                    biz_date=datetime.date(2026, 11, 21),
                    scheduled_at=T0 + datetime.timedelta(minutes=depth * 3 + j // len(nodes)),
                    state=state,
                    wait_reason="waiting_upstream" if state == "pending" else "",
                    paused=depth > focus_layer and j % 17 == 0,
                    resource_group=nodes[0].resource_group,
                )
            )
        layers.append(Instance.objects.bulk_create(rows))
    edges = []
    for upper, lower in zip(layers, layers[1:], strict=False):
        for j, instance in enumerate(upper):
            if len(upper) == 1 or len(lower) == 1:
                targets = lower  # out of the focus into each below, or each above into it
            else:
                targets = {lower[j % len(lower)], lower[(j + 7) % len(lower)]}
            edges += [InstanceDependency(upstream=instance, downstream=t) for t in targets]
    InstanceDependency.objects.bulk_create(edges)
    made = [instance for layer in layers for instance in layer]
    return layers[focus_layer][0], made


@pytest.fixture
def olga(client, users):
    client.force_login(users["olga"])
    return client


@pytest.fixture
def chain(users, project):
    """extract -> load (failed) -> report -> publish, and a removed edge stale -> report."""
    alice = users["alice"]
    extract = node_create(project, "extract", owner=alice)
    load = node_create(project, "load", owner=alice, upstream=[extract])
    stale = node_create(project, "stale", owner=alice)
    report = node_create(project, "report", owner=alice, upstream=[load, stale])
    publish = node_create(project, "publish", owner=alice, upstream=[report])
    made = {"extract": instance_create(extract, T0, state="succeeded")}
    made["load"] = instance_create(load, T0, upstream=[made["extract"]], state="failed")
    made["stale"] = instance_create(stale, T0, state="stopped")
    made["report"] = instance_create(report, T0, upstream=[made["load"], made["stale"]])
    InstanceDependency.objects.filter(upstream=made["stale"]).update(removed=True)
    made["publish"] = instance_create(publish, T0, upstream=[made["report"]], paused=True)
    return made


def graph(client, instance, query: str = ""):
    return client.get(f"/instances/{instance.id}/graph{query}")


def test_graph_json_has_the_boxes_and_lines_of_the_dag_component(olga, chain):
    response = graph(olga, chain["report"])
    assert response.status_code == 200
    data = response.json()
    by_id = {n["id"]: n for n in data["nodes"]}
    assert set(by_id) == {i.id for i in chain.values()}
    report, load = by_id[chain["report"].id], by_id[chain["load"].id]
    assert report["focus"] is True and load["focus"] is False
    assert load == {
        "id": chain["load"].id,
        "label": "load",
        # 18:00 UTC is 02:00 the next day in Asia/Shanghai.
        "sublabel": "Failed · 11-22 02:00",
        "badge": "Failed",
        "color": "red",
        "url": f"/instances/{chain['load'].id}/",
        "focus": False,
        "paused": False,
        "state": "failed",
    }
    assert by_id[chain["publish"].id]["paused"] is True
    assert by_id[chain["extract"].id]["color"] == "green"
    edges = {(e["source"], e["target"]): e["removed"] for e in data["edges"]}
    assert edges == {
        (chain["extract"].id, chain["load"].id): False,
        (chain["load"].id, chain["report"].id): False,
        (chain["stale"].id, chain["report"].id): True,
        (chain["report"].id, chain["publish"].id): False,
    }
    assert data["up"] == 2 and data["down"] == 2
    assert data["more_up"] is False and data["more_down"] is False
    assert data["live"] is True  # report and publish wait
    assert data["summary"] == "5 instances"


def test_graph_colours_come_from_the_state_choices(olga, chain):
    from apps.instances.choices import InstanceState

    data = graph(olga, chain["report"]).json()
    for node in data["nodes"]:
        assert node["color"] == InstanceState(node["state"]).color
        assert node["badge"] == InstanceState(node["state"]).label


def test_graph_depth_limits_the_levels_and_says_there_is_more(olga, chain):
    data = graph(olga, chain["report"], "?up=1&down=0").json()
    ids = {n["id"] for n in data["nodes"]}
    assert ids == {chain["report"].id, chain["load"].id, chain["stale"].id}
    assert data["more_up"] is True  # extract lies one level further
    assert data["more_down"] is True  # publish
    data = graph(olga, chain["report"], "?up=0&down=0").json()
    assert [n["id"] for n in data["nodes"]] == [chain["report"].id] and data["edges"] == []


def test_graph_is_not_live_once_everything_finished(olga, chain):
    Instance.objects.update(state="succeeded")
    data = graph(olga, chain["report"]).json()
    assert data["live"] is False


@pytest.mark.parametrize("query, field", [("?up=11", "up"), ("?down=-1", "down"), ("?up=x", "up")])
def test_graph_bad_depth_is_422_naming_it(olga, chain, query, field):
    response = graph(olga, chain["report"], query)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


def test_graph_shows_no_instance_of_a_project_the_viewer_is_not_in(olga, users, chain):
    other = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    secret = instance_create(node_create(other, "secret", owner=users["root"]), T0)
    InstanceDependency.objects.create(upstream=secret, downstream=chain["load"])
    data = graph(olga, chain["report"], "?up=5").json()
    assert secret.id not in {n["id"] for n in data["nodes"]}
    assert data["hidden"] == 1
    assert "secret" not in str(data)


def test_graph_answers_200_instances_in_a_bounded_number_of_queries(
    olga, users, project, django_assert_max_num_queries
):
    focus, made = wide_graph(project, users["alice"])
    # Session, user, project, the instance, visible projects, 4 levels each way, the
    # edges and the instances: a number set by the depth, not by the 200 instances.
    with django_assert_max_num_queries(16):
        response = graph(olga, focus, "?up=3&down=3")
    data = response.json()
    assert len(data["nodes"]) == len(made) == 200
    assert data["more_up"] is False and data["more_down"] is False
    assert len(data["edges"]) > 200


def test_graph_of_strangers_is_404(client, users, chain):
    client.force_login(users["stranger"])
    assert graph(client, chain["report"]).status_code == 404
    assert client.get(f"/instances/{chain['report'].id}/dag/").status_code == 404


# --- the full-screen page -------------------------------------------------------------


def test_full_screen_graph_page(olga, chain):
    for extra in ({}, HTMX):
        response = olga.get(f"/instances/{chain['report'].id}/dag/?up=4&down=1", **extra)
        assert response.status_code == 200
        html = response.content.decode()
        assert "<html" in html and "<h1>report" in html
        assert f'data-url="/instances/{chain["report"].id}/graph"' in html
        assert 'data-up="4" data-down="1"' in html
        assert 'data-max-depth="10"' in html and "data-sync-address" in html
        assert "vendor/cytoscape/cytoscape.min.js" in html
        assert "vendor/cytoscape-dagre/cytoscape-dagre.min.js" in html
        assert "js/dag.js" in html
        # The legend shows each state as its badge.
        assert '<span class="badge badge-red" data-state="failed">Failed</span>' in html


def test_full_screen_graph_with_a_bad_depth_says_so_and_shows_the_default(olga, chain):
    response = olga.get(f"/instances/{chain['report'].id}/dag/?up=99")
    assert response.status_code == 200
    html = response.content.decode()
    assert "up: a whole number from 0 to 10" in html
    assert 'data-up="3" data-down="3"' in html


def test_the_vendored_graph_libraries_are_served(olga, chain):
    for path in [
        "/static/vendor/cytoscape/cytoscape.min.js",
        "/static/vendor/cytoscape-dagre/cytoscape-dagre.min.js",
        "/static/js/dag.js",
    ]:
        response = olga.get(path)
        assert response.status_code == 200, path
