"""Every bad request answers 4xx {"detail", "errors": [{"field", "message"}]}, never 500."""

import json

import pytest
from django.db import connection
from django.test import Client

from apps.accounts.models import ApiToken


def post(client, path, raw: str):
    return client.post(path, data=raw, content_type="application/json")


def assert_error(response, status: int, field: str | None = None):
    assert response.status_code == status, response.content
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["errors"], list)
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body


@pytest.mark.parametrize(
    "path", ["/api/projects", "/api/projects/acme", "/api/instances", "/api/instances/1/diagnosis"]
)
def test_unauthenticated_is_401(client, project, path):
    assert_error(client.get(path), 401)


def test_a_wrong_or_revoked_token_or_inactive_user_is_401(project, users):
    assert_error(Client(HTTP_AUTHORIZATION="Bearer ops_nope").get("/api/projects"), 401)
    assert_error(Client(HTTP_AUTHORIZATION="Basic dmVyYTpwdw==").get("/api/projects"), 401)
    _, key = ApiToken.issue(user=users["vera"])
    users["vera"].is_active = False
    users["vera"].save()
    assert_error(Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/projects"), 401)


def test_session_auth_works_and_checks_csrf_on_writes(project, users):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(users["alice"])
    assert browser.get("/api/projects/acme").status_code == 200
    response = browser.patch(
        "/api/projects/acme", data='{"name": "X"}', content_type="application/json"
    )
    assert_error(response, 403)
    # A bearer token is not a cookie: no CSRF token needed.
    _, key = ApiToken.issue(user=users["alice"])
    api = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {key}")
    response = api.patch(
        "/api/projects/acme", data='{"name": "X"}', content_type="application/json"
    )
    assert response.status_code == 200


def test_malformed_json_body_is_400_naming_the_body(api_as, project):
    assert_error(post(api_as("root"), "/api/projects", '{"code": "x", '), 400, "body")


@pytest.mark.parametrize(
    "raw, field",
    [
        ('["code", "x"]', "body"),
        ('"just a string"', "body"),
        ('{"code": 5, "name": "X"}', "code"),
        ('{"code": "x", "name": ["X"]}', "name"),
        ('{"code": "x", "name": "X", "generation_time": 2300}', "generation_time"),
        ('{"code": "x", "name": "X", "extra": true}', "extra"),
        ('{"name": "X"}', "code"),
    ],
)
def test_wrong_shapes_and_types_are_422_naming_the_field(api_as, project, raw, field):
    assert_error(post(api_as("root"), "/api/projects", raw), 422, field)


def test_wrong_nested_types_on_sub_resources(api_as, project):
    response = post(
        api_as("alice"), "/api/projects/acme/datasources", json.dumps({"name": "x", "kind": 3})
    )
    assert_error(response, 422, "kind")
    response = post(api_as("alice"), "/api/projects/acme/members", json.dumps({"username": "vera"}))
    assert_error(response, 422, "role")


@pytest.mark.parametrize(
    "path, field",
    [
        ("/api/projects?limit=abc", "limit"),
        ("/api/projects?limit=-3", "limit"),
        ("/api/projects?cursor=%%%", "cursor"),
        ("/api/projects/acme/members?cursor=eyJ4IjoxfQ", "cursor"),
        ("/api/instances?biz_date=yesterday", "biz_date"),
        ("/api/instances?limit=1.5", "limit"),
    ],
)
def test_bad_query_values_are_422_naming_the_field(api_as, project, path, field):
    assert_error(api_as("vera").get(path), 422, field)


@pytest.mark.parametrize(
    "path",
    [
        "/api/projects/nope",
        "/api/projects/nope/members",
        "/api/projects/acme/members/ghost",
        "/api/projects/acme/datasources/ghost",
        "/api/projects/acme/variables/ghost",
        "/api/instances/123456",
        "/api/instances/123456/log",
        "/api/instances/123456/dag",
        "/api/instances/123456/operations",
    ],
)
def test_unknown_objects_are_404(api_as, project, path):
    assert_error(api_as("vera").get(path), 404)


def test_a_strangers_writes_are_404_not_403(api_as, project):
    client = api_as("stranger")
    assert_error(
        client.patch("/api/projects/acme", data='{"name": "X"}', content_type="application/json"),
        404,
    )
    assert_error(client.delete("/api/projects/acme/variables/x"), 404)
    assert_error(post(client, "/api/projects/acme/variables", '{"name": "x", "value": "y"}'), 404)


def test_a_viewer_writing_is_403_with_a_reason(api_as, project):
    response = post(api_as("vera"), "/api/projects/acme/variables", '{"name": "x", "value": "y"}')
    assert_error(response, 403)
    assert "admin" in response.json()["detail"]


@pytest.mark.parametrize(
    "method, path, body, field",
    [
        ("get", "/api/projects/acme/members/ev%00il", None, "username"),
        ("get", "/api/instances?project=ac%00me", None, "project"),
        ("post", "/api/projects/acme/variables", {"name": "x", "value": "a\x00b"}, "value"),
    ],
)
def test_nul_characters_are_refused_naming_the_field(api_as, project, method, path, body, field):
    client = api_as("alice")
    if body is None:
        response = client.get(path)
    else:
        response = post(client, path, json.dumps(body))
    if connection.vendor == "postgresql":
        assert_error(response, 422, field)
    else:  # SQLite stores NUL like any character: an ordinary answer
        assert response.status_code in (200, 201, 404)
