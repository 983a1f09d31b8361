"""The resources page of a project: list, upload (with its refusals), a resource's
versions, downloads and delete; for a developer, a viewer, an admin and a non-member."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.audit.models import OperationLog
from apps.resources.models import Resource, ResourceVersion
from tests.factories import node_create
from tests.resources.test_services import pin, upload

LIST = "/projects/acme/resources/"
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def as_user(users):
    def login(name: str) -> Client:
        client = Client()
        client.force_login(users[name])
        return client

    return login


def test_a_developer_uploads_and_sees_the_versions(as_user, project):
    dave = as_user("dave")
    page = dave.get(LIST)
    assert page.status_code == 200
    html = page.content.decode()
    assert "No resources yet." in html and 'id="resource-upload"' in html
    assert "js/resource-upload.js" in html and 'aria-current="page">Resources' in html

    sent = dave.post(LIST, {"file": SimpleUploadedFile("lookup.csv", b"a,b\n")}, follow=True)
    assert sent.redirect_chain == [(LIST, 302)]
    assert "Uploaded lookup.csv as version 1." in sent.content.decode()
    dave.post(LIST, {"name": "lookup.csv", "file": SimpleUploadedFile("x", b"a,b\n1,2\n")})
    again = dave.post(
        LIST, {"name": "lookup.csv", "file": SimpleUploadedFile("x", b"a,b\n1,2\n")}, follow=True
    )
    assert "lookup.csv is unchanged: the file equals version 2." in again.content.decode()
    html = dave.get(LIST).content.decode()
    assert 'data-resource="lookup.csv"' in html and "v2" in html
    assert OperationLog.objects.filter(action="resource.upload", source="ui").count() == 2

    detail = dave.get(f"{LIST}lookup.csv/").content.decode()
    assert 'data-version="2"' in detail and 'data-version="1"' in detail
    assert f"{LIST}lookup.csv/download?version=1" in detail
    assert 'data-action="delete"' not in detail  # admins delete
    download = dave.get(f"{LIST}lookup.csv/download?version=1")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"a,b\n"
    assert b"".join(dave.get(f"{LIST}lookup.csv/download").streaming_content) == b"a,b\n1,2\n"


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({}, "file", "a file is required"),
        ({"name": "../x", "file": b"x"}, "name", "a file name: no"),
        ({"name": "big.bin", "file": b"x" * 11}, "file", "larger than the limit of 10 bytes"),
    ],
)
def test_a_refused_upload_shows_the_error_at_its_field(
    as_user, project, settings, data, field, message
):
    settings.OPSCENTER_RESOURCE_MAX_BYTES = 10
    if "file" in data:
        data = {**data, "file": SimpleUploadedFile("f.bin", data["file"])}
    response = as_user("dave").post(LIST, data)
    assert response.status_code == 422
    html = response.content.decode()
    block = html[html.index(f'data-field="{field}"') :]
    assert message in block[: block.index("</div>")]
    assert not ResourceVersion.objects.exists()


def test_viewers_read_and_download_but_do_not_upload(as_user, project, users):
    upload(project, users["dave"], "ref.csv", b"x")
    vera = as_user("vera")
    html = vera.get(LIST).content.decode()
    assert 'data-resource="ref.csv"' in html and 'id="resource-upload"' not in html
    assert vera.get(f"{LIST}ref.csv/download").status_code == 200
    assert vera.post(LIST, {"file": SimpleUploadedFile("y", b"y")}).status_code == 403
    assert vera.post(f"{LIST}ref.csv/delete").status_code == 403
    assert ResourceVersion.objects.count() == 1


def test_strangers_see_nothing(as_user, project, users):
    upload(project, users["dave"], "ref.csv", b"x")
    stranger = as_user("stranger")
    for path in [LIST, f"{LIST}ref.csv/", f"{LIST}ref.csv/download"]:
        assert stranger.get(path).status_code == 404
    assert stranger.post(LIST, {"file": SimpleUploadedFile("y", b"y")}).status_code == 404
    assert stranger.post(f"{LIST}ref.csv/delete").status_code == 404
    assert Client().get(LIST).status_code == 302  # to the login page


def test_unknown_names_and_versions_are_404(as_user, project, users):
    upload(project, users["dave"], "ref.csv", b"x")
    vera = as_user("vera")
    assert vera.get(f"{LIST}nope/").status_code == 404
    assert vera.get(f"{LIST}ref.csv/download?version=9").status_code == 404
    assert vera.get(f"{LIST}ref.csv/download?version=-1").status_code == 404
    assert vera.get(f"{LIST}?cursor=junk").status_code == 422


def test_an_admin_deletes_unless_a_node_uses_it(
    as_user, project, users, django_capture_on_commit_callbacks
):
    version = upload(project, users["dave"], "ref.csv", b"x")
    node = node_create(project, "load", owner=users["dave"])
    pin(node, version)
    alice = as_user("alice")
    detail = alice.get(f"{LIST}ref.csv/").content.decode()
    assert 'data-used-by="load"' in detail and 'data-action="delete"' in detail
    refused = alice.post(f"{LIST}ref.csv/delete", follow=True)
    assert refused.redirect_chain == [(f"{LIST}ref.csv/", 302)]
    assert "was not deleted" in refused.content.decode()
    assert "acme.load" in refused.content.decode()
    node.status = "offline"
    node.save(update_fields=["status"])
    with django_capture_on_commit_callbacks(execute=True):
        done = alice.post(f"{LIST}ref.csv/delete", follow=True)
    assert done.redirect_chain == [(LIST, 302)]
    assert "Resource ref.csv deleted." in done.content.decode()
    assert not Resource.objects.exists()


def test_the_list_pages_and_swaps_its_table(as_user, project, users):
    for index in range(3):
        upload(project, users["dave"], f"r{index}.txt", b"x")
    vera = as_user("vera")
    first = vera.get(f"{LIST}?limit=2")
    html = first.content.decode()
    assert 'data-resource="r0.txt"' in html and 'data-resource="r2.txt"' not in html
    cursor = first.context["page"].next_cursor
    partial = vera.get(f"{LIST}?limit=2&cursor={cursor}", **HTMX).content.decode()
    assert 'data-resource="r2.txt"' in partial and "<html" not in partial


def test_the_admin_lists_resources_and_versions_read_only(as_user, project, users):
    version = upload(project, users["dave"], "ref.csv", b"x")
    root = as_user("root")
    assert "ref.csv" in root.get("/admin/resources/resource/").content.decode()
    detail = root.get(f"/admin/resources/resource/{version.resource_id}/change/")
    assert detail.status_code == 200 and version.sha256 in detail.content.decode()
    listed = root.get("/admin/resources/resourceversion/").content.decode()
    assert version.sha256 in listed
    assert root.get("/admin/resources/resourceversion/add/").status_code == 403
    assert root.get("/admin/resources/resourcepin/").status_code == 200
