import hashlib
import io
import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from apps.audit.models import OperationLog
from apps.core.errors import Conflict, ValidationFailed
from apps.nodes.models import NodeVersion
from apps.projects.models import Project
from apps.resources.models import Resource, ResourcePin, ResourceVersion
from apps.resources.selectors import (
    pinned_resources,
    resource_version_open,
    resources_for_project,
)
from apps.resources.services import resource_delete, resource_upload
from tests.factories import node_create


def upload(project, user, name, content: bytes, **kwargs):
    return resource_upload(
        project=project, name=name, fileobj=io.BytesIO(content), user=user, **kwargs
    )


def read(version) -> bytes:
    with resource_version_open(version) as handle:
        return handle.read()


def test_uploads_of_a_name_are_its_versions(project, users):
    first = upload(project, users["dave"], "lookup.csv", b"a,b\n1,2\n")
    second = resource_upload(
        project=project,
        name="lookup.csv",
        fileobj=SimpleUploadedFile("whatever.csv", b"a,b\n3,4\n"),
        user=users["alice"],
        source="ui",
    )
    assert (first.number, second.number) == (1, 2)
    assert first.resource_id == second.resource_id
    assert second.size_bytes == 8 and second.sha256 == hashlib.sha256(b"a,b\n3,4\n").hexdigest()
    assert (second.uploaded_by, first.resource.created_by) == (users["alice"], users["dave"])
    assert read(first) == b"a,b\n1,2\n" and read(second) == b"a,b\n3,4\n"
    assert first.file.name.startswith("resources/acme/lookup.csv/1-")
    assert first.file.name.endswith("/lookup.csv")
    logs = OperationLog.objects.filter(action="resource.upload").order_by("id")
    assert [(log.username, log.source, log.detail["version"]) for log in logs] == [
        ("dave", "api", 1),
        ("alice", "ui", 2),
    ]
    [resource] = resources_for_project(project)
    assert resource.version_count == 2
    assert [v.number for v in resource.versions.all()] == [2, 1]


def test_the_same_content_again_is_the_latest_version_not_a_new_one(project, users):
    first = upload(project, users["dave"], "job.sh", b"echo 1\n")
    again = upload(project, users["dave"], "job.sh", b"echo 1\n")
    assert again.pk == first.pk
    changed = upload(project, users["dave"], "job.sh", b"echo 2\n")
    back = upload(project, users["dave"], "job.sh", b"echo 1\n")
    assert (changed.number, back.number) == (2, 3)
    assert OperationLog.objects.filter(action="resource.upload").count() == 3


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "script.sh",
        "a/b",
        "a\\b",
        "..",
        "x..y",
        "",
        "   ",
        ".hidden",
        "a b",
        "x" * 201,
        "-rf",
    ],
)
def test_a_bad_name_is_refused_naming_the_field(project, users, name, storage_dir):
    with pytest.raises(ValidationFailed) as caught:
        upload(project, users["dave"], name, b"data")
    assert [e["field"] for e in caught.value.errors] == ["name"]
    assert not Resource.objects.exists()
    assert not storage_dir.exists() or not any(storage_dir.rglob("*"))


def test_a_missing_file_is_refused(project, users):
    with pytest.raises(ValidationFailed) as caught:
        resource_upload(project=project, name="x.txt", fileobj=None, user=users["dave"])
    assert caught.value.errors == [{"field": "file", "message": "a file is required"}]


def test_a_file_over_the_limit_is_refused_and_nothing_stored(project, users, settings, storage_dir):
    settings.OPSCENTER_RESOURCE_MAX_BYTES = 10
    with pytest.raises(ValidationFailed) as caught:
        upload(project, users["dave"], "big.bin", b"x" * 11)
    assert [e["field"] for e in caught.value.errors] == ["file"]
    with pytest.raises(ValidationFailed):
        resource_upload(
            project=project,
            name="big.bin",
            fileobj=SimpleUploadedFile("big.bin", b"x" * 11),
            user=users["dave"],
        )
    assert not ResourceVersion.objects.exists() and not Resource.objects.exists()
    assert not storage_dir.exists() or not any(p.is_file() for p in storage_dir.rglob("*"))
    assert upload(project, users["dave"], "big.bin", b"x" * 10).size_bytes == 10


def test_a_failed_write_leaves_no_file_behind(project, users, storage_dir, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("log is down")

    monkeypatch.setattr("apps.resources.services.operation_record", broken)
    with pytest.raises(RuntimeError):
        upload(project, users["dave"], "x.txt", b"data")
    assert not ResourceVersion.objects.exists()
    assert not any(p.is_file() for p in storage_dir.rglob("*"))


def pin(node, version):
    ResourcePin.objects.create(
        node_version=node.current_version,
        resource_version=version,
        name=version.resource.name,
        number=version.number,
    )


def test_delete_is_refused_while_an_online_node_pins_it(
    project, users, storage_dir, django_capture_on_commit_callbacks
):
    version = upload(project, users["dave"], "ref.csv", b"1\n")
    node = node_create(project, "load", owner=users["dave"], type="shell", content="cat ref.csv")
    pin(node, version)
    with pytest.raises(Conflict) as caught:
        resource_delete(resource=version.resource, user=users["alice"])
    assert "acme.load" in caught.value.detail
    assert Resource.objects.filter(pk=version.resource_id).exists()
    refused = OperationLog.objects.get(action="resource.delete")
    assert refused.result == "refused" and refused.detail["used_by"] == ["acme.load"]

    # A new version of the node without it (the old version keeps its pin) frees it.
    node_create(project, "load", owner=users["dave"], type="shell", content="echo")
    old = NodeVersion.objects.get(node=node, number=1)
    with django_capture_on_commit_callbacks(execute=True):
        resource_delete(resource=version.resource, user=users["alice"])
    assert not Resource.objects.exists()
    assert not any(p.is_file() for p in storage_dir.rglob("*"))
    [kept] = ResourcePin.objects.filter(node_version=old)
    assert (kept.name, kept.number, kept.resource_version) == ("ref.csv", 1, None)
    assert pinned_resources(old) == []


def test_an_offline_node_does_not_hold_a_resource(project, users):
    version = upload(project, users["dave"], "ref.csv", b"1\n")
    node = node_create(project, "load", owner=users["dave"])
    pin(node, version)
    node.status = "offline"
    node.save(update_fields=["status"])
    resource_delete(resource=version.resource, user=users["alice"])
    assert not Resource.objects.exists()


def test_deleting_the_project_removes_its_files(
    project, users, storage_dir, django_capture_on_commit_callbacks
):
    upload(project, users["dave"], "a.txt", b"a")
    upload(project, users["dave"], "a.txt", b"b")
    assert len([p for p in storage_dir.rglob("*") if p.is_file()]) == 2
    with django_capture_on_commit_callbacks(execute=True):
        Project.objects.filter(pk=project.pk).delete()
    assert not any(p.is_file() for p in storage_dir.rglob("*"))


@pytest.mark.django_db(transaction=True)
def test_concurrent_uploads_number_in_turn(project, users):
    errors = []

    def one(content):
        try:
            upload(project, users["dave"], "race.txt", content)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one, args=(f"{i}".encode(),)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    numbers = sorted(ResourceVersion.objects.values_list("number", flat=True))
    assert numbers == [1, 2, 3, 4]


class Stream(io.RawIOBase):
    """A pipe-like binary stream: read once, no seeking."""

    def __init__(self, data: bytes):
        self.data = io.BytesIO(data)

    def readable(self):
        return True

    def seekable(self):
        return False

    def readinto(self, buffer):
        chunk = self.data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_a_stream_that_cannot_seek_is_stored_whole(project, users, settings):
    content = bytes(range(256)) * 40_000  # 10 MB: past the in-memory part of the spool
    version = resource_upload(
        project=project, name="blob.bin", fileobj=Stream(content), user=users["dave"]
    )
    assert version.size_bytes == len(content)
    assert version.sha256 == hashlib.sha256(content).hexdigest()
    assert read(version) == content
    settings.OPSCENTER_RESOURCE_MAX_BYTES = 100
    with pytest.raises(ValidationFailed):
        resource_upload(project=project, name="blob.bin", fileobj=Stream(content), user=None)
