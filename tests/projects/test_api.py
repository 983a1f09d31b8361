import json

import pytest

from apps.audit.models import OperationLog
from apps.projects.models import Datasource, Membership, Project


def send(client, method: str, path: str, body=None):
    return getattr(client, method)(path, data=json.dumps(body), content_type="application/json")


def error_fields(response) -> set[str]:
    return {e["field"] for e in response.json()["errors"]}


# --- projects --------------------------------------------------------------------------


def test_list_shows_only_my_projects_with_my_role(api_as, users, project):
    Project.objects.create(code="secret", name="Secret")
    response = api_as("vera").get("/api/projects")
    assert response.status_code == 200
    body = response.json()
    assert [p["code"] for p in body["items"]] == ["acme"]
    assert body["items"][0]["role"] == "viewer"
    assert body["items"][0]["generation_time"] == "23:00"
    assert body["items"][0]["timezone"] == "Asia/Shanghai"
    assert body["next_cursor"] is None
    assert api_as("stranger").get("/api/projects").json()["items"] == []
    everything = api_as("root").get("/api/projects").json()["items"]
    assert [(p["code"], p["role"]) for p in everything] == [("acme", "admin"), ("secret", "admin")]


def test_list_pages_with_a_cursor(api_as, users):
    for n in range(5):
        Project.objects.create(code=f"p{n}", name=f"P{n}")
    client = api_as("root")
    first = client.get("/api/projects?limit=2").json()
    second = client.get(f"/api/projects?limit=2&cursor={first['next_cursor']}").json()
    third = client.get(f"/api/projects?limit=2&cursor={second['next_cursor']}").json()
    codes = [p["code"] for page in (first, second, third) for p in page["items"]]
    assert codes == ["p0", "p1", "p2", "p3", "p4"]
    assert third["next_cursor"] is None


def test_staff_create_a_project_and_become_its_admin(api_as, users):
    users["olga"].is_staff = True
    users["olga"].save()
    response = send(
        api_as("olga"),
        "post",
        "/api/projects",
        {"code": "sales", "name": "Sales", "timezone": "Europe/Berlin", "generation_time": "22:15"},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["code"] == "sales" and body["role"] == "admin"
    assert body["generation_time"] == "22:15"
    assert body["env_mode"] == "basic" and body["generation_mode"] == "t_plus_1"
    assert body["created_at"].endswith("+00:00")
    assert Membership.objects.get(project__code="sales").user == users["olga"]
    assert OperationLog.objects.get(action="project.create").source == "api"


def test_ordinary_users_cannot_create_projects(api_as, project):
    response = send(api_as("alice"), "post", "/api/projects", {"code": "x", "name": "X"})
    assert response.status_code == 403
    assert not Project.objects.filter(code="x").exists()


def test_create_refuses_bad_fields_naming_them(api_as, users):
    response = send(
        api_as("root"),
        "post",
        "/api/projects",
        {
            "code": "x",
            "name": "X",
            "timezone": "Nowhere/City",
            "generation_time": "9pm",
            "color": "red",
        },
    )
    assert response.status_code == 422
    # Unknown fields are refused by the schema before the service sees the rest.
    assert error_fields(response) == {"color"}
    response = send(
        api_as("root"),
        "post",
        "/api/projects",
        {"code": "x", "name": "X", "timezone": "Nowhere/City", "generation_time": "9pm"},
    )
    assert response.status_code == 422
    assert error_fields(response) == {"timezone", "generation_time"}
    response = send(api_as("root"), "post", "/api/projects", {"name": "X"})
    assert response.status_code == 422
    assert error_fields(response) == {"code"}


def test_detail_and_patch_need_membership_and_admin(api_as, project):
    assert api_as("vera").get("/api/projects/acme").json()["name"] == "Acme Data"
    assert api_as("stranger").get("/api/projects/acme").status_code == 404
    assert send(api_as("olga"), "patch", "/api/projects/acme", {"name": "New"}).status_code == 403
    assert send(api_as("stranger"), "patch", "/api/projects/acme", {"name": "N"}).status_code == 404
    response = send(
        api_as("alice"), "patch", "/api/projects/acme", {"generation_mode": "immediate"}
    )
    assert response.status_code == 200
    assert response.json()["generation_mode"] == "immediate"
    assert response.json()["name"] == "Acme Data"
    response = send(api_as("alice"), "patch", "/api/projects/acme", {"name": None})
    assert response.status_code == 422 and error_fields(response) == {"name"}
    response = send(api_as("alice"), "patch", "/api/projects/acme", {"code": "other"})
    assert response.status_code == 422 and error_fields(response) == {"code"}


def test_delete_project(api_as, project):
    assert api_as("olga").delete("/api/projects/acme").status_code == 403
    assert api_as("alice").delete("/api/projects/acme").status_code == 204
    assert not Project.objects.exists()
    assert api_as("alice").get("/api/projects/acme").status_code == 404


# --- members ---------------------------------------------------------------------------


def test_members_crud(api_as, users, project):
    listed = api_as("vera").get("/api/projects/acme/members").json()["items"]
    assert {(m["username"], m["role"]) for m in listed} == {
        ("alice", "admin"),
        ("olga", "operator"),
        ("dave", "developer"),
        ("vera", "viewer"),
    }
    admin = api_as("alice")
    assert (
        send(
            api_as("olga"),
            "post",
            "/api/projects/acme/members",
            {"username": "stranger", "role": "viewer"},
        ).status_code
        == 403
    )
    response = send(
        admin, "post", "/api/projects/acme/members", {"username": "stranger", "role": "viewer"}
    )
    assert response.status_code == 201
    assert response.json()["username"] == "stranger"
    assert api_as("stranger").get("/api/projects/acme").status_code == 200
    response = send(admin, "patch", "/api/projects/acme/members/stranger", {"role": "operator"})
    assert response.json()["role"] == "operator"
    assert api_as("vera").get("/api/projects/acme/members/stranger").json()["role"] == "operator"
    assert admin.delete("/api/projects/acme/members/stranger").status_code == 204
    assert api_as("stranger").get("/api/projects/acme").status_code == 404
    assert admin.get("/api/projects/acme/members/stranger").status_code == 404
    actions = list(OperationLog.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["member.add", "member.update", "member.remove"]


def test_member_errors_name_the_field(api_as, project):
    admin = api_as("alice")
    response = send(
        admin, "post", "/api/projects/acme/members", {"username": "ghost", "role": "king"}
    )
    assert response.status_code == 422
    assert error_fields(response) == {"username", "role"}
    response = send(admin, "patch", "/api/projects/acme/members/alice", {"role": "viewer"})
    assert response.status_code == 422 and error_fields(response) == {"role"}
    assert admin.delete("/api/projects/acme/members/alice").status_code == 409


# --- datasources -----------------------------------------------------------------------


def test_datasource_password_is_write_only(api_as, project):
    admin = api_as("alice")
    response = send(
        admin,
        "post",
        "/api/projects/acme/datasources",
        {
            "name": "dw",
            "kind": "postgresql",
            "dsn": "host=db dbname=dw user=etl",
            "password": "hunter22",
        },
    )
    assert response.status_code == 201, response.content
    assert response.json()["has_password"] is True
    assert "password" not in response.json()
    assert Datasource.objects.get(name="dw").get_password() == "hunter22"
    for body in (
        api_as("vera").get("/api/projects/acme/datasources").content,
        api_as("vera").get("/api/projects/acme/datasources/dw").content,
        send(
            admin, "patch", "/api/projects/acme/datasources/dw", {"dsn": "host=db2 dbname=dw"}
        ).content,
    ):
        assert b"hunter22" not in body
        assert b"password_encrypted" not in body
    assert Datasource.objects.get(name="dw").get_password() == "hunter22"
    response = send(admin, "patch", "/api/projects/acme/datasources/dw", {"password": ""})
    assert response.json()["has_password"] is False


def test_datasource_crud_and_errors(api_as, project):
    admin = api_as("alice")
    response = send(
        admin, "post", "/api/projects/acme/datasources", {"name": "lake", "kind": "sqlite"}
    )
    assert response.status_code == 422 and error_fields(response) == {"path"}
    response = send(
        admin, "post", "/api/projects/acme/datasources", {"name": "pg", "kind": "postgresql"}
    )
    assert response.status_code == 422 and error_fields(response) == {"dsn"}
    response = send(
        admin,
        "post",
        "/api/projects/acme/datasources",
        {"name": "lake", "kind": "sqlite", "path": "/tmp/l.db"},
    )
    assert response.status_code == 201
    assert send(api_as("olga"), "delete", "/api/projects/acme/datasources/lake").status_code == 403
    assert admin.delete("/api/projects/acme/datasources/lake").status_code == 204
    assert admin.get("/api/projects/acme/datasources/lake").status_code == 404


# --- variables -------------------------------------------------------------------------


def test_variables_crud(api_as, project):
    admin = api_as("alice")
    response = send(
        admin, "post", "/api/projects/acme/variables", {"name": "region", "value": "eu"}
    )
    assert response.status_code == 201
    response = send(
        admin, "post", "/api/projects/acme/variables", {"name": "region", "value": "us"}
    )
    assert response.status_code == 422 and error_fields(response) == {"name"}
    assert (
        send(
            api_as("dave"), "patch", "/api/projects/acme/variables/region", {"value": "x"}
        ).status_code
        == 403
    )
    response = send(admin, "patch", "/api/projects/acme/variables/region", {"value": "us"})
    assert response.json() == {"name": "region", "value": "us"}
    assert api_as("vera").get("/api/projects/acme/variables").json()["items"] == [
        {"name": "region", "value": "us"}
    ]
    assert admin.delete("/api/projects/acme/variables/region").status_code == 204
    assert admin.delete("/api/projects/acme/variables/region").status_code == 404
    assert api_as("stranger").get("/api/projects/acme/variables").status_code == 404


@pytest.mark.parametrize("path", ["members", "datasources", "variables"])
def test_sub_resources_hidden_from_strangers(api_as, project, path):
    assert api_as("stranger").get(f"/api/projects/acme/{path}").status_code == 404
    response = send(api_as("stranger"), "post", f"/api/projects/acme/{path}", {"name": "x"})
    assert response.status_code in (404, 422)
