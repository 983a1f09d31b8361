"""/api/backups: list, make, settings, download, verify, upload (checked), restore, delete;
who may do what."""

import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.backups.models import Backup
from apps.nodes.models import Node
from apps.projects.models import Membership, Project
from tests.nodes.helpers import publish

from .archives import GOOD, build, manifest_of
from .builders import acme_setup, archive_bytes, backup_now, shell
from .conftest import stored_archives


def upload(client, data: bytes, **extra):
    return client.post(
        "/api/backups/upload", {"file": SimpleUploadedFile("b.tar.gz", data)}, **extra
    )


def test_make_list_and_detail(api_as, project, users):
    root = api_as("root")
    made = root.post("/api/backups")
    assert made.status_code == 201, made.content
    body = made.json()
    assert body["trigger"] == "manual" and body["state"] == "ready"
    assert body["projects"] == ["acme"] and len(body["sha256"]) == 64
    assert body["created_by"] == "root"
    assert set(body) >= {"id", "created_at", "size_bytes", "expires_at", "path"}
    listed = root.get("/api/backups").json()
    assert [b["id"] for b in listed["items"]] == [body["id"]] and listed["next_cursor"] is None
    assert root.get(f"/api/backups/{body['id']}").json()["sha256"] == body["sha256"]


def test_lists_are_keyset_paged(api_as, project, users):
    for _ in range(3):
        backup_now(users["root"])
    root = api_as("root")
    first = root.get("/api/backups?limit=2").json()
    second = root.get(f"/api/backups?limit=2&cursor={first['next_cursor']}").json()
    ids = [b["id"] for b in first["items"] + second["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 3
    assert root.get("/api/backups?cursor=garbage").status_code == 422


def test_members_see_the_backups_of_their_projects_only_superusers_change_them(
    api_as, project, users
):
    backup = backup_now(users["root"])
    vera, stranger = api_as("vera"), api_as("stranger")
    assert [b["id"] for b in vera.get("/api/backups").json()["items"]] == [backup.pk]
    assert stranger.get("/api/backups").json()["items"] == []
    assert stranger.get(f"/api/backups/{backup.pk}").status_code == 404
    alice = api_as("alice")
    assert alice.post("/api/backups").status_code == 403
    assert alice.get(f"/api/backups/{backup.pk}/download").status_code == 403
    assert alice.get("/api/backups/settings").status_code == 403
    assert (
        alice.put("/api/backups/settings", {"retention_days": 2}, "application/json").status_code
        == 403
    )
    assert alice.delete(f"/api/backups/{backup.pk}").status_code == 403
    assert alice.post(f"/api/backups/{backup.pk}/verify").status_code == 403
    assert upload(alice, build(GOOD)).status_code == 403
    assert Backup.objects.count() == 1


def test_settings_read_and_change_naming_each_bad_field(api_as, users):
    root = api_as("root")
    got = root.get("/api/backups/settings").json()
    assert (got["time"], got["retention_days"], got["enabled"]) == ("02:00", 7, True)
    assert got["next_run"] is not None
    changed = root.put(
        "/api/backups/settings",
        {"time": "03:15", "retention_days": 14, "enabled": True},
        "application/json",
    )
    assert changed.status_code == 200
    assert (changed.json()["time"], changed.json()["retention_days"]) == ("03:15", 14)
    bad = root.put(
        "/api/backups/settings", {"time": "3pm", "retention_days": -1}, "application/json"
    )
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["time", "retention_days"]
    typo = root.put("/api/backups/settings", {"retention": 3}, "application/json")
    assert typo.status_code == 422 and typo.json()["errors"][0]["field"] == "retention"
    wrong_type = root.put("/api/backups/settings", {"retention_days": "many"}, "application/json")
    assert wrong_type.status_code == 422
    assert root.get("/api/backups/settings").json()["time"] == "03:15"


def test_download_streams_the_archive_with_its_checksum(api_as, project, users, storage_dir):
    backup = backup_now(users["root"])
    answer = api_as("root").get(f"/api/backups/{backup.pk}/download")
    assert answer.status_code == 200
    data = b"".join(answer.streaming_content)
    assert hashlib.sha256(data).hexdigest() == backup.sha256 == answer["X-Backup-SHA256"]
    assert answer["Content-Disposition"].startswith("attachment")
    assert api_as("root").post(f"/api/backups/{backup.pk}/verify").json()["ok"] is True


def test_delete_removes_the_row_and_the_file(
    api_as, project, users, backups_dir, django_capture_on_commit_callbacks
):
    backup = backup_now(users["root"])
    with django_capture_on_commit_callbacks(execute=True):
        assert api_as("root").delete(f"/api/backups/{backup.pk}").status_code == 204
    assert not Backup.objects.exists() and stored_archives(backups_dir) == []


def test_an_upload_is_checked_then_kept(api_as, project, users, storage_dir):
    acme_setup(project, users)
    data = archive_bytes(backup_now(users["root"]), storage_dir)
    answer = upload(api_as("root"), data)
    assert answer.status_code == 201, answer.content
    assert answer.json()["trigger"] == "uploaded"
    assert answer.json()["sha256"] == hashlib.sha256(data).hexdigest()


BAD = {
    "wrong checksum": (
        build(GOOD, tamper={GOOD[0][0]: b'{"name": "region", "value": "us"}\n'}),
        "does not match its SHA-256",
    ),
    "no manifest": (build(GOOD, manifest=False), "manifest.json missing"),
    "dot-dot": (build([*GOOD, ("../x.jsonl", b"")]), "escapes the archive"),
    "absolute": (build([*GOOD, ("/tmp/x.jsonl", b"")]), "absolute path"),
    "unknown version": (
        build(GOOD, manifest=manifest_of(GOOD, format_version=7)),
        "unknown format version 7",
    ),
    "not an archive": (b"hello", "not a readable .tar.gz"),
}


@pytest.mark.parametrize("problem", list(BAD))
def test_a_bad_upload_answers_422_naming_the_problem_and_keeps_nothing(
    problem, api_as, users, backups_dir
):
    data, words = BAD[problem]
    answer = upload(api_as("root"), data)
    assert answer.status_code == 422, answer.content
    assert words in answer.json()["detail"]
    assert not Backup.objects.exists() and stored_archives(backups_dir) == []


def test_an_upload_over_the_limit_is_refused_by_its_declared_size_unread(
    api_as, users, settings, backups_dir
):
    # A body that says it is 2 GB is refused before a byte of it is read: the test
    # client's body is far shorter, so reading it would fail differently.
    answer = upload(api_as("root"), build(GOOD), CONTENT_LENGTH=str(2 * 1024**3))
    assert answer.status_code == 413
    assert "2,147,483,648 bytes; at most 1,073,741,824" in answer.json()["detail"]
    # One under the declared limit but larger than a lowered one is stopped while read.
    settings.OPSCENTER_BACKUP_MAX_BYTES = 100
    answer = upload(api_as("root"), build(GOOD))
    assert answer.status_code == 413 and answer.json()["errors"][0]["field"] == "file"
    assert not Backup.objects.exists() and stored_archives(backups_dir) == []


def test_too_many_members_or_bytes_are_refused_with_small_limits(api_as, users, settings):
    settings.OPSCENTER_BACKUP_MAX_MEMBERS = 2
    answer = upload(api_as("root"), build(GOOD))
    assert answer.status_code == 413 and "OPSCENTER_BACKUP_MAX_MEMBERS" in answer.json()["detail"]
    settings.OPSCENTER_BACKUP_MAX_MEMBERS = 100
    settings.OPSCENTER_BACKUP_MAX_UNCOMPRESSED_BYTES = 10
    answer = upload(api_as("root"), build(GOOD))
    assert answer.status_code == 413
    assert "OPSCENTER_BACKUP_MAX_UNCOMPRESSED_BYTES" in answer.json()["detail"]
    assert not Backup.objects.exists()


def test_no_file_is_a_422_naming_it(api_as, users):
    answer = api_as("root").post("/api/backups/upload")
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "file"


def test_restore_dry_run_then_for_real(api_as, project, users):
    acme_setup(project, users)
    backup = backup_now(users["root"])
    Node.objects.filter(project=project, name="report").delete()
    alice = api_as("alice")
    url = f"/api/backups/{backup.pk}/restore"
    dry = alice.post(url, {"project": "acme"}, "application/json")
    assert dry.status_code == 200, dry.content
    body = dry.json()
    assert body["dry_run"] is True and body["nodes"]["added"] == ["report"]
    assert set(body) >= {"nodes", "variables", "datasources", "resources", "errors"}
    assert not Node.objects.filter(project=project, name="report").exists()

    real = alice.post(url, {"project": "acme", "dry_run": False}, "application/json")
    assert real.status_code == 200, real.content
    assert real.json()["published"]["created"] == ["report"]
    assert Node.objects.filter(project=project, name="report").exists()


def test_restore_refusals(api_as, project, users):
    backup = backup_now(users["root"])
    url = f"/api/backups/{backup.pk}/restore"
    assert api_as("olga").post(url, {"project": "acme"}, "application/json").status_code == 403
    assert api_as("stranger").post(url, {"project": "acme"}, "application/json").status_code == 404
    bad = api_as("alice").post(url, {"project": "acme", "dryrun": True}, "application/json")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "dryrun"
    missing = api_as("alice").post(
        url, {"project": "acme", "source_project": "other"}, "application/json"
    )
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "source_project"
    gone = api_as("alice").post(
        "/api/backups/999999/restore", {"project": "acme"}, "application/json"
    )
    assert gone.status_code == 404


def test_a_refused_real_restore_answers_422_with_every_error(api_as, project, users):
    publish(
        project,
        users["dave"],
        shell("a", "echo a\n", owner="dave"),
        shell("b", "echo b\n", owner="dave"),
    )
    backup = backup_now(users["root"])
    copy = Project.objects.create(code="copy", name="Copy")
    Membership.objects.create(project=copy, user=users["alice"], role="admin")
    answer = api_as("alice").post(
        f"/api/backups/{backup.pk}/restore",
        {"project": "copy", "source_project": "acme", "dry_run": False},
        "application/json",
    )
    assert answer.status_code == 422
    assert [(e["node"], e["field"]) for e in answer.json()["errors"]] == [
        ("a", "owner"),
        ("b", "owner"),
    ]
    assert not Node.objects.filter(project=copy).exists()


def test_a_datasource_restored_without_its_password_says_so_in_the_api(api_as, project, users):
    acme_setup(project, users)
    backup = backup_now(users["root"])
    copy = Project.objects.create(code="copy", name="Copy")
    Membership.objects.create(project=copy, user=users["alice"], role="admin")
    alice = api_as("alice")
    answer = alice.post(
        f"/api/backups/{backup.pk}/restore",
        {"project": "copy", "source_project": "acme", "dry_run": False},
        "application/json",
    )
    assert answer.json()["restored_without_secret"] == ["warehouse"]
    warehouse = alice.get("/api/projects/copy/datasources/warehouse").json()
    assert warehouse["restored_without_secret"] is True and warehouse["has_password"] is False
    alice.patch(
        "/api/projects/copy/datasources/warehouse", {"password": "again"}, "application/json"
    )
    warehouse = alice.get("/api/projects/copy/datasources/warehouse").json()
    assert warehouse["restored_without_secret"] is False and warehouse["has_password"] is True
