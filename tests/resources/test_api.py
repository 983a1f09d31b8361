"""/api/projects/{code}/resources: upload (multipart), list, detail, download, delete."""

import hashlib
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.audit.models import OperationLog
from apps.nodes.models import Node
from apps.projects.models import Project
from apps.resources.models import Resource, ResourceVersion
from tests.nodes.helpers import spec

BASE = "/api/projects/acme/resources"


def upload(client, content: bytes = b"a,b\n", name: str | None = "ref.csv", filename="x.csv"):
    data = {"file": SimpleUploadedFile(filename, content)} if content is not None else {}
    if name is not None:
        data["name"] = name
    return client.post(BASE, data=data)


def fields(response) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


def downloaded(response) -> bytes:
    return b"".join(response.streaming_content)


def test_upload_makes_versions_and_the_list_shows_them(api_as, project):
    dave = api_as("dave")
    first = upload(dave, b"one\n")
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["name"], body["version"], body["size_bytes"]) == ("ref.csv", 1, 4)
    assert body["sha256"] == hashlib.sha256(b"one\n").hexdigest()
    assert body["uploaded_by"] == "dave" and body["created"] is True
    assert upload(dave, b"two!!\n").json()["version"] == 2
    same = upload(dave, b"two!!\n")
    assert same.status_code == 200 and same.json() | {"uploaded_at": None} == {
        **same.json(),
        "version": 2,
        "created": False,
        "uploaded_at": None,
    }
    # Without a name, the file's own name.
    assert upload(dave, b"x", name=None, filename="tool.py").json()["name"] == "tool.py"

    listed = api_as("vera").get(BASE).json()
    assert listed["next_cursor"] is None
    assert [(r["name"], r["latest_version"], r["size_bytes"]) for r in listed["items"]] == [
        ("ref.csv", 2, 6),
        ("tool.py", 1, 1),
    ]
    versions = listed["items"][0]["versions"]
    assert [(v["number"], v["size_bytes"], v["uploaded_by"]) for v in versions] == [
        (2, 6, "dave"),
        (1, 4, "dave"),
    ]
    assert versions[0]["uploaded_at"].endswith("+00:00")


def test_the_list_pages_by_name_without_a_query_per_row(
    api_as, project, users, django_assert_max_num_queries
):
    from tests.resources.test_services import upload as upload_service

    for index in range(5):
        for content in (b"a", b"b"):
            upload_service(project, users["dave"], f"r{index}.txt", content + bytes([index]))
    client = api_as("vera")
    # Token, project, role, the page, its versions: the same for 2 rows as for 5.
    with django_assert_max_num_queries(7):
        client.get(f"{BASE}?limit=5")
    with django_assert_max_num_queries(7):
        first = client.get(f"{BASE}?limit=2").json()
    second = client.get(f"{BASE}?limit=2&cursor={first['next_cursor']}").json()
    third = client.get(f"{BASE}?limit=2&cursor={second['next_cursor']}").json()
    names = [r["name"] for page in (first, second, third) for r in page["items"]]
    assert names == [f"r{i}.txt" for i in range(5)]
    assert third["next_cursor"] is None
    assert api_as("vera").get(f"{BASE}?cursor=garbage").status_code == 422


def test_detail_names_the_nodes_that_use_it(api_as, project):
    upload(api_as("dave"), b"x")
    api_as("dave").post(
        "/api/projects/acme/publish",
        data=json.dumps(
            {
                "env": "prod",
                "nodes": [spec("load", type="shell", content="cat ref.csv", resources=["ref.csv"])],
            }
        ),
        content_type="application/json",
    )
    assert Node.objects.filter(name="load").exists()
    body = api_as("vera").get(f"{BASE}/ref.csv").json()
    assert body["name"] == "ref.csv" and body["used_by"] == ["acme.load"]
    assert body["created_by"] == "dave"
    assert api_as("vera").get(f"{BASE}/nope.csv").status_code == 404


def test_download_answers_the_latest_or_the_version_asked(api_as, project):
    upload(api_as("dave"), b"first")
    upload(api_as("dave"), b"second")
    vera = api_as("vera")
    latest = vera.get(f"{BASE}/ref.csv/download")
    assert latest.status_code == 200
    assert downloaded(latest) == b"second"
    assert latest["Content-Disposition"] == 'attachment; filename="ref.csv"'
    assert latest["X-Resource-Version"] == "2"
    assert latest["X-Resource-SHA256"] == hashlib.sha256(b"second").hexdigest()
    assert downloaded(vera.get(f"{BASE}/ref.csv/download?version=1")) == b"first"
    missing = vera.get(f"{BASE}/ref.csv/download?version=7")
    assert missing.status_code == 404 and fields(missing) == ["version"]
    assert vera.get(f"{BASE}/ref.csv/download?version=x").status_code == 422
    assert vera.get(f"{BASE}/other/download").status_code == 404


@pytest.mark.parametrize(
    "content, name, field",
    [
        (None, "ref.csv", "file"),
        (b"x", "../x", "name"),
        (b"x", "a/b", "name"),
        (b"x", "   ", "name"),
        (b"x", "script.sh", "name"),
        (b"x" * 11, "big.bin", "file"),
    ],
)
def test_bad_uploads_are_refused_naming_the_field(api_as, project, settings, content, name, field):
    settings.OPSCENTER_RESOURCE_MAX_BYTES = 10
    response = upload(api_as("dave"), content, name=name)
    assert response.status_code == 422, response.content
    assert field in fields(response)
    assert not ResourceVersion.objects.exists()


def test_roles_and_strangers(api_as, project, users):
    upload(api_as("dave"), b"x")
    refused = upload(api_as("vera"), b"y")
    assert refused.status_code == 403
    assert "developer" in refused.json()["detail"]
    for method, path in [
        ("get", BASE),
        ("get", f"{BASE}/ref.csv"),
        ("get", f"{BASE}/ref.csv/download"),
        ("delete", f"{BASE}/ref.csv"),
    ]:
        assert getattr(api_as("stranger"), method)(path).status_code == 404
    assert upload(api_as("stranger"), b"z").status_code == 404
    assert api_as("dave").delete(f"{BASE}/ref.csv").status_code == 403
    assert api_as("olga").delete(f"{BASE}/ref.csv").status_code == 403
    assert api_as("dave").post("/api/projects/nope/resources").status_code == 404
    assert ResourceVersion.objects.count() == 1


def test_delete_is_refused_while_used_then_done(
    api_as, project, django_capture_on_commit_callbacks, storage_dir
):
    upload(api_as("dave"), b"x")
    publish = {
        "env": "prod",
        "nodes": [spec("load", type="shell", content="cat ref.csv", resources=["ref.csv"])],
    }
    api_as("dave").post(
        "/api/projects/acme/publish", data=json.dumps(publish), content_type="application/json"
    )
    refused = api_as("alice").delete(f"{BASE}/ref.csv")
    assert refused.status_code == 409
    assert "acme.load" in refused.json()["detail"]
    assert Resource.objects.exists()
    api_as("olga").post(f"/api/nodes/{Node.objects.get(name='load').pk}/offline")
    with django_capture_on_commit_callbacks(execute=True):
        done = api_as("alice").delete(f"{BASE}/ref.csv")
    assert done.status_code == 204, done.content
    assert not Resource.objects.exists()
    assert not any(p.is_file() for p in storage_dir.rglob("*"))
    actions = list(
        OperationLog.objects.filter(action="resource.delete").values_list("result", "username")
    )
    assert actions == [("ok", "alice"), ("refused", "alice")]


def test_another_project_is_its_own_namespace(api_as, project, users):
    other = Project.objects.create(code="other", name="Other")
    other.memberships.create(user=users["dave"], role="developer")
    upload(api_as("dave"), b"acme's")
    response = api_as("dave").post(
        "/api/projects/other/resources",
        data={"name": "ref.csv", "file": SimpleUploadedFile("f", b"other's")},
    )
    assert response.json()["version"] == 1
    assert downloaded(api_as("dave").get(f"{BASE}/ref.csv/download")) == b"acme's"


def test_publish_naming_an_unknown_resource_answers_422_and_changes_nothing(api_as, project):
    upload(api_as("dave"), b"x")
    body = {
        "env": "prod",
        "nodes": [
            spec("ok", type="shell", content="cat ref.csv", resources=["ref.csv"]),
            spec("bad", type="shell", content="cat nope.csv", resources=["nope.csv"]),
        ],
    }
    response = api_as("dave").post(
        "/api/projects/acme/publish", data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "node": "bad",
            "field": "resources[0]",
            "message": "unknown resource 'nope.csv' in project 'acme': upload it first",
        }
    ]
    assert not Node.objects.exists()
