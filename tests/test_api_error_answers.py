"""Every error under /api is {"detail", "errors"} JSON with the status that says what went
wrong, whatever layer refuses the request; and a request body with a key the operation
does not know is refused, naming the key."""

import json

import pytest
from django.conf import settings

from apps.instances.models import Instance
from apps.nodes.models import Node
from tests.factories import node_create


def assert_json_error(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response.content[:300]
    body = json.loads(response.content)
    assert set(body) == {"detail", "errors"}
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["errors"], list)
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body


def test_a_body_over_the_upload_limit_is_413(api_as, project):
    too_big = json.dumps({"env": "prod", "nodes": [], "note": "x" * 5_000_000})
    assert len(too_big) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = api_as("alice").post(
        "/api/projects/acme/publish", data=too_big, content_type="application/json"
    )
    body = assert_json_error(response, 413, "body")
    assert str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) in body["errors"][0]["message"]


def test_a_too_big_form_body_is_413_too(api_as, project):
    response = api_as("alice").generic(
        "POST",
        "/api/projects/acme/variables",
        ("name=x&value=" + "y" * 3_000_000).encode(),
        content_type="application/x-www-form-urlencoded",
    )
    assert_json_error(response, 413, "body")


@pytest.mark.parametrize(
    "path",
    ["/api/nope", "/api/", "/api/nodes/abc", "/api/projects/acme/nope/deeper", "/api/nodes/1/x"],
)
def test_an_unknown_api_path_is_a_json_404(api_as, project, path):
    assert_json_error(api_as("vera").get(path), 404)


def test_an_unknown_api_path_is_404_without_credentials_too(client):
    assert_json_error(client.get("/api/nope"), 404)


@pytest.mark.parametrize(
    "method, path",
    [("put", "/api/projects"), ("delete", "/api/nodes"), ("get", "/api/instances/batch")],
)
def test_a_wrong_method_is_a_json_405_naming_the_allowed_ones(api_as, project, method, path):
    response = getattr(api_as("vera"), method)(path)
    body = assert_json_error(response, 405)
    for allowed in response["Allow"].split(", "):
        assert allowed in body["detail"]


def test_401_and_403_stay_json(client, api_as, project):
    assert_json_error(client.get("/api/projects"), 401)
    response = api_as("vera").delete("/api/projects/acme")
    assert_json_error(response, 403)


def test_run_with_an_unknown_key_is_422_naming_it(api_as, project, users):
    node = node_create(project, "manual", owner=users["alice"], schedule_type="one_time")
    response = api_as("olga").post(
        f"/api/nodes/{node.pk}/run",
        {"biz_date": "2026-05-06", "parameters": {"limit": 10}},
        content_type="application/json",
    )
    body = assert_json_error(response, 422, "parameters")
    assert "parameters" in body["detail"]
    assert not Instance.objects.exists()


@pytest.mark.parametrize(
    "path, body",
    [
        ("/api/instances/batch", {"ids": [1], "action": "rerun", "downstream": True}),
        ("/api/nodes/batch", {"ids": [1], "action": "pause", "force": True}),
        ("/api/nodes/owner", {"node_ids": [1], "owner": "dave", "notify": True}),
        ("/api/projects/acme/publish", {"env": "prod", "nodes": [], "dry_run": True}),
    ],
)
def test_unknown_body_keys_are_422_naming_them(api_as, project, path, body):
    response = api_as("root").post(path, body, content_type="application/json")
    extra = (set(body) - {"ids", "action", "node_ids", "owner", "env", "nodes"}).pop()
    assert_json_error(response, 422, extra)


def test_unknown_keys_on_node_and_instance_operations_change_nothing(api_as, project, users):
    node = node_create(project, "load", owner=users["alice"])
    response = api_as("olga").post(
        f"/api/nodes/{node.pk}/realtime/resources",
        {"cpu": 1, "memroy_mb": 512},
        content_type="application/json",
    )
    assert_json_error(response, 422, "memroy_mb")
    assert not Node.objects.get(pk=node.pk).paused


def test_pages_keep_their_html_errors(client, users):
    client.force_login(users["vera"])
    response = client.get("/nodes/999999/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    "inner_status, length, status",
    [(400, 10, 400), (400, 5_000_000, 413), (500, 0, 500), (503, 0, 503)],
)
def test_errors_from_around_ninja_become_json(rf, inner_status, length, status):
    # What a layer outside ninja answers (Django refusing to read a body, a server error).
    from django.http import HttpResponse

    from opscenter.api import JsonErrorsMiddleware

    middleware = JsonErrorsMiddleware(
        lambda request: HttpResponse("<h1>x</h1>", status=inner_status)
    )
    request = rf.post("/api/projects", data=b"", content_type="application/json")
    request.META["CONTENT_LENGTH"] = str(length)
    body = assert_json_error(middleware(request), status)
    assert ("body" in [e["field"] for e in body["errors"]]) == (status == 413)
    page = rf.get("/instances/")
    assert middleware(page)["Content-Type"].startswith("text/html")


HUGE = 2**70  # no 64-bit id; SQLite cannot even compare it


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/api/instances/batch", {"ids": [1, HUGE], "action": "stop"}, "ids.1"),
        ("/api/nodes/batch", {"ids": [HUGE], "action": "pause"}, "ids.0"),
        ("/api/nodes/owner", {"node_ids": [0], "owner": "dave"}, "node_ids.0"),
        (
            "/api/backfills",
            {"nodes": [HUGE], "start": "2026-11-01", "end": "2026-11-02", "dry_run": True},
            "nodes.0",
        ),
        (
            "/api/backfills",
            {"nodes": [1], "downstream": [-5], "start": "2026-11-01", "end": "2026-11-02"},
            "downstream",
        ),
    ],
)
def test_ids_that_cannot_exist_are_422_naming_them(api_as, project, path, body, field):
    response = api_as("root").post(path, body, content_type="application/json")
    errors = assert_json_error(response, 422)["errors"]
    assert any(e["field"].startswith(field) for e in errors), errors


def test_a_path_id_too_large_for_the_database_names_no_object(api_as, project):
    assert_json_error(api_as("root").get(f"/api/nodes/{HUGE}"), 404)
    assert_json_error(api_as("root").post(f"/api/instances/{HUGE}/stop"), 404)


def test_a_number_too_large_anywhere_else_is_422_not_500(api_as, project, rf):
    # The last line of defence: SQLite refuses to bind an integer over 64 bits with an
    # OverflowError, wherever a view passes one on.
    from opscenter.api import on_overflow

    request = rf.post(
        "/api/anything", data=json.dumps({"a": {"b": [1, HUGE]}}), content_type="application/json"
    )
    request.resolver_match = None
    body = assert_json_error(on_overflow(request, OverflowError("too big")), 422)
    assert [e["field"] for e in body["errors"]] == ["a.b.1"]
