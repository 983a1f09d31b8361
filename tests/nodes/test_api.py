import json

import pytest

from apps.nodes.models import Node
from apps.projects.models import Membership, Project
from tests.factories import node_create

from .helpers import publish, spec

NODE_FIELDS = {
    "id",
    "project",
    "env",
    "name",
    "type",
    "schedule_type",
    "cron",
    "upstream",
    "self_dependent",
    "owner",
    "priority",
    "resource_group",
    "paused",
    "version",
    "group",
}


def post_publish(client, body, code="acme"):
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(f"/api/projects/{code}/publish", data=data, content_type="application/json")


# --- publish -----------------------------------------------------------------


def test_publish_answers_what_changed(project, api_as):
    client = api_as("dave")
    response = post_publish(
        client, {"env": "prod", "nodes": [spec("a"), spec("b", upstream=["a"])]}
    )
    assert response.status_code == 200
    assert response.json() == {"created": ["a", "b"], "updated": [], "unchanged": []}
    response = post_publish(
        client, {"nodes": [spec("a", priority=5), spec("b", upstream=["a"])], "note": "x"}
    )
    assert response.json() == {"created": [], "updated": ["a"], "unchanged": ["b"]}
    assert Node.objects.get(name="a").current_version.note == "x"


def test_publish_refusal_lists_every_error(project, api_as):
    response = post_publish(
        api_as("dave"),
        {
            "nodes": [
                spec("a", upstream=["b"]),
                spec("b", upstream=["a"]),
                spec("c", schedule={"cron": "every day"}),
                spec("d", owner="ghost"),
            ]
        },
    )
    assert response.status_code == 422
    body = response.json()
    assert "nothing was published" in body["detail"]
    assert {(e["node"], e["field"]) for e in body["errors"]} == {
        ("a", "upstream"),
        ("c", "schedule.cron"),
        ("d", "owner"),
    }
    assert any("a -> b -> a" in e["message"] for e in body["errors"])
    assert not Node.objects.exists()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"nodes": "a"}, "nodes"),
        ({"nodes": []}, "nodes"),
        ({}, "nodes"),
        ({"env": 5, "nodes": [spec("a")]}, "env"),
        ({"nodes": [spec("a")], "note": ["x"]}, "note"),
        ({"nodes": [7]}, ""),
    ],
)
def test_publish_bad_input_names_the_field(project, api_as, body, field):
    response = post_publish(api_as("dave"), body)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]


def test_publish_malformed_json_is_a_client_error(project, api_as):
    response = post_publish(api_as("dave"), '{"nodes": [')
    assert 400 <= response.status_code < 500
    assert response.json()["errors"][0]["field"] == "body"


def test_publish_permissions(project, api_as, client):
    body = {"nodes": [spec("a")]}
    assert post_publish(api_as("vera"), body).status_code == 403
    assert post_publish(api_as("stranger"), body).status_code == 404
    assert post_publish(api_as("dave"), body, code="nosuch").status_code == 404
    assert post_publish(client, body).status_code == 401
    assert not Node.objects.exists()


# --- reads -------------------------------------------------------------------


@pytest.fixture
def graph(project, users):
    """acme: raw -> stage -> report, plus a paused python node; beta: one node."""
    dave = users["dave"]
    publish(
        project,
        dave,
        spec("raw", description="raw orders from the shop"),
        spec("stage", type="shell", content="echo", upstream=["raw"], owner="olga"),
        spec("report", type="python", content="print(1)", upstream=["stage"]),
        spec(
            "adhoc", type="python", content="print(2)", schedule={"type": "one_time"}, paused=True
        ),
    )
    other = Project.objects.create(code="beta", name="Beta")
    Membership.objects.create(project=other, user=users["olga"], role="viewer")
    node_create(other, "elsewhere", owner=users["root"], upstream=[Node.objects.get(name="report")])
    return {n.name: n for n in Node.objects.all()}


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["name"] for item in response.json()["items"]]


def test_node_list_fields_and_visibility(graph, api_as):
    response = api_as("vera").get("/api/nodes")
    items = response.json()["items"]
    assert [i["name"] for i in items] == ["adhoc", "raw", "report", "stage"]
    stage = items[3]
    assert set(stage) == NODE_FIELDS
    assert stage == {
        "id": graph["stage"].id,
        "project": "acme",
        "env": "prod",
        "name": "stage",
        "type": "shell",
        "schedule_type": "recurring",
        "cron": "0 2 * * *",
        "upstream": ["raw"],
        "self_dependent": False,
        "owner": "olga",
        "priority": 3,
        "resource_group": "default",
        "paused": False,
        "version": 1,
        "group": "",
    }
    assert names(api_as("olga").get("/api/nodes")) == [
        "adhoc",
        "elsewhere",
        "raw",
        "report",
        "stage",
    ]
    assert names(api_as("stranger").get("/api/nodes")) == []


@pytest.mark.parametrize(
    "query, expected",
    [
        ("project=beta", ["elsewhere"]),
        ("project=acme&type=python", ["adhoc", "report"]),
        ("schedule_type=one_time", ["adhoc"]),
        ("owner=olga", ["stage"]),
        ("paused=true", ["adhoc"]),
        ("paused=false&project=acme", ["raw", "report", "stage"]),
        ("q=ORDERS", ["raw"]),
        ("q=rep", ["report"]),
        ("env=dev", []),
        ("status=online&project=beta", ["elsewhere"]),
    ],
)
def test_node_list_filters(graph, api_as, query, expected):
    assert names(api_as("root").get(f"/api/nodes?{query}")) == expected


@pytest.mark.parametrize(
    "query, field",
    [
        ("type=perl", "type"),
        ("paused=maybe", "paused"),
        ("env=qa", "env"),
        ("limit=0", "limit"),
        ("cursor=zzz", "cursor"),
    ],
)
def test_node_list_bad_filters_name_the_field(graph, api_as, query, field):
    response = api_as("root").get(f"/api/nodes?{query}")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


def test_node_list_cursor_pagination(project, users, api_as):
    publish(project, users["dave"], *[spec(f"n{i:02d}") for i in range(7)])
    client = api_as("vera")
    seen, cursor, pages = [], "", 0
    while True:
        body = client.get(f"/api/nodes?limit=3&cursor={cursor}").json()
        seen += [item["name"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert seen == [f"n{i:02d}" for i in range(7)]
    assert pages == 3


def test_node_detail(graph, api_as):
    response = api_as("vera").get(f"/api/nodes/{graph['report'].id}")
    assert response.status_code == 200
    body = response.json()
    assert NODE_FIELDS <= set(body)
    assert body["upstream"] == ["stage"]
    assert body["downstream"] == []  # vera cannot see beta
    assert body["status"] == "online"
    assert body["spec"]["content"] == "print(1)"
    assert body["published_at"].endswith(("+00:00", "Z"))
    body = api_as("olga").get(f"/api/nodes/{graph['report'].id}").json()
    assert body["downstream"] == ["beta.elsewhere"]
    assert api_as("stranger").get(f"/api/nodes/{graph['report'].id}").status_code == 404
    assert api_as("vera").get(f"/api/nodes/{graph['elsewhere'].id}").status_code == 404
    assert api_as("vera").get("/api/nodes/999999").status_code == 404


def test_node_versions_newest_first(project, users, api_as):
    dave = users["dave"]
    publish(project, dave, spec("a"), note="one")
    publish(project, dave, spec("a", priority=4), note="two")
    publish(project, dave, spec("a", priority=5), note="three")
    node = Node.objects.get(name="a")
    client = api_as("vera")
    first = client.get(f"/api/nodes/{node.id}/versions?limit=2").json()
    assert [v["number"] for v in first["items"]] == [3, 2]
    assert first["items"][0]["note"] == "three"
    assert first["items"][0]["published_by"] == "dave"
    assert first["items"][0]["spec"]["priority"] == 5
    rest = client.get(f"/api/nodes/{node.id}/versions?limit=2&cursor={first['next_cursor']}").json()
    assert [v["number"] for v in rest["items"]] == [1]
    assert rest["next_cursor"] is None


def test_node_dag(graph, api_as):
    stage = graph["stage"]
    body = api_as("olga").get(f"/api/nodes/{stage.id}/dag?up=1&down=2").json()
    levels = {n["name"]: n["level"] for n in body["nodes"]}
    assert levels == {"raw": -1, "stage": 0, "report": 1, "elsewhere": 2}
    ids = {n["name"]: n["id"] for n in body["nodes"]}
    assert sorted((e["upstream"], e["downstream"]) for e in body["edges"]) == sorted(
        [
            (ids["raw"], ids["stage"]),
            (ids["stage"], ids["report"]),
            (ids["report"], ids["elsewhere"]),
        ]
    )
    # vera cannot see beta: its node and the edge to it are left out.
    body = api_as("vera").get(f"/api/nodes/{stage.id}/dag?up=0&down=5").json()
    assert {n["name"] for n in body["nodes"]} == {"stage", "report"}
    assert len(body["edges"]) == 1


@pytest.mark.parametrize("query, field", [("up=-1", "up"), ("down=11", "down"), ("up=x", "up")])
def test_node_dag_bad_depth(graph, api_as, query, field):
    response = api_as("vera").get(f"/api/nodes/{graph['stage'].id}/dag?{query}")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field
