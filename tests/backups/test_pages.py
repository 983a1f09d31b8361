"""The backups pages: list, back up now, settings, upload, restore into… with its diff."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.backups.models import Backup, BackupSettings
from apps.nodes.models import Node
from apps.projects.models import Membership, Project
from tests.nodes.helpers import publish

from .archives import GOOD, build
from .builders import acme_setup, archive_bytes, backup_now, shell
from .conftest import stored_archives


@pytest.fixture
def as_user(users):
    def make(name: str) -> Client:
        client = Client()
        client.force_login(users[name])
        return client

    return make


def test_the_list_shows_each_backup_and_the_superusers_actions(as_user, project, users):
    backup = backup_now(users["root"])
    page = as_user("root").get("/backups/")
    html = page.content.decode()
    assert page.status_code == 200
    assert f'data-backup="{backup.pk}"' in html and backup.sha256 in html
    for action in ("backup-now", "settings", "upload", "download", "verify", "restore", "delete"):
        assert f'data-action="{action}"' in html
    assert "acme" in html and "Manual" in html
    # A member sees the backups of their projects and may restore, not manage them.
    html = as_user("vera").get("/backups/").content.decode()
    assert f'data-backup="{backup.pk}"' in html
    assert 'data-action="backup-now"' not in html and 'data-action="download"' not in html
    assert f'data-backup="{backup.pk}"' not in as_user("stranger").get("/backups/").content.decode()
    assert Client().get("/backups/").status_code == 302  # sign in first


def test_back_up_now_verify_download_delete(as_user, project, users, backups_dir):
    root = as_user("root")
    answer = root.post("/backups/now", follow=True)
    backup = Backup.objects.get()
    assert f"Backup #{backup.pk} made" in answer.content.decode()
    answer = root.post(f"/backups/{backup.pk}/verify", follow=True)
    assert "verified" in answer.content.decode()
    assert root.get(f"/backups/{backup.pk}/download").status_code == 200
    assert as_user("alice").get(f"/backups/{backup.pk}/download").status_code == 403
    assert as_user("alice").post("/backups/now").status_code == 302  # refused, said on the list
    assert Backup.objects.count() == 1
    assert as_user("alice").post(f"/backups/{backup.pk}/delete").status_code == 403
    root.post(f"/backups/{backup.pk}/delete")
    assert not Backup.objects.exists()


def test_settings_form_saves_and_names_bad_fields(as_user, users):
    root = as_user("root")
    assert root.get("/backups/settings/").status_code == 200
    bad = root.post("/backups/settings/", {"time": "24:61", "retention_days": "x", "enabled": "on"})
    assert bad.status_code == 422
    html = bad.content.decode()
    assert "a time HH:MM" in html and "a whole number of days" in html
    ok = root.post("/backups/settings/", {"time": "05:45", "retention_days": "9"})
    assert ok.status_code == 302
    row = BackupSettings.get()
    assert (row.time.strftime("%H:%M"), row.retention_days, row.enabled) == ("05:45", 9, False)
    assert as_user("alice").get("/backups/settings/").status_code == 403


def test_upload_form_keeps_a_good_archive_and_refuses_a_bad_one(
    as_user, project, users, storage_dir, backups_dir
):
    root = as_user("root")
    assert root.get("/backups/upload/").status_code == 200
    bad = root.post(
        "/backups/upload/", {"file": SimpleUploadedFile("b.tar.gz", build(GOOD, manifest=False))}
    )
    assert bad.status_code == 422 and "manifest.json missing" in bad.content.decode()
    assert not Backup.objects.exists() and stored_archives(backups_dir) == []
    too_big = root.post(
        "/backups/upload/",
        {"file": SimpleUploadedFile("b.tar.gz", build(GOOD))},
        CONTENT_LENGTH=str(2 * 1024**3),
    )
    assert too_big.status_code == 413 and "at most 1,073,741,824" in too_big.content.decode()

    data = archive_bytes(backup_now(users["root"]), storage_dir)
    good = root.post(
        "/backups/upload/", {"file": SimpleUploadedFile("b.tar.gz", data)}, follow=True
    )
    assert "Archive checked and kept" in good.content.decode()
    assert Backup.objects.filter(trigger="uploaded").count() == 1


def test_upload_form_needs_its_csrf_token(users, project):
    client = Client(enforce_csrf_checks=True)
    client.force_login(users["root"])
    answer = client.post("/backups/upload/", {"file": SimpleUploadedFile("b.tar.gz", build(GOOD))})
    assert answer.status_code == 403 and not Backup.objects.exists()


def test_restore_page_shows_the_diff_then_restores(as_user, project, users):
    acme_setup(project, users)
    backup = backup_now(users["root"])
    publish(project, users["alice"], shell("transform", "echo changed\n", upstream=["extract"]))
    alice = as_user("alice")

    choose = alice.get(f"/backups/{backup.pk}/restore/")
    assert choose.status_code == 200 and 'id="restore-target"' in choose.content.decode()

    dry = alice.get(f"/backups/{backup.pk}/restore/?project=acme&source_project=acme")
    html = dry.content.decode()
    assert dry.status_code == 200 and 'data-restore="dry-run"' in html
    assert 'data-node="transform"' in html
    assert '<span class="diff-del">-echo changed</span>' in html
    assert '<span class="diff-add">+echo step 2</span>' in html
    assert 'data-action="confirm-restore"' in html
    assert Node.objects.get(project=project, name="transform").version == 2

    done = alice.post(
        f"/backups/{backup.pk}/restore/", {"project": "acme", "source_project": "acme"}
    )
    assert done.status_code == 200 and 'data-restore="done"' in done.content.decode()
    assert Node.objects.get(project=project, name="transform").version == 3


def test_restore_page_shows_why_a_restore_would_fail(as_user, project, users):
    publish(project, users["dave"], shell("daves", "echo x\n", owner="dave"))
    backup = backup_now(users["root"])
    copy = Project.objects.create(code="copy", name="Copy")
    Membership.objects.create(project=copy, user=users["alice"], role="admin")
    alice = as_user("alice")
    dry = alice.get(f"/backups/{backup.pk}/restore/?project=copy&source_project=acme")
    html = dry.content.decode()
    assert 'data-restore="errors"' in html and "not a member of project" in html
    assert 'data-action="confirm-restore"' not in html
    refused = alice.post(
        f"/backups/{backup.pk}/restore/", {"project": "copy", "source_project": "acme"}
    )
    assert refused.status_code == 422 and not Node.objects.filter(project=copy).exists()
    # Not an admin of the target: refused, saying why.
    assert as_user("olga").get(f"/backups/{backup.pk}/restore/?project=acme").status_code == 403
    assert as_user("stranger").get(f"/backups/{backup.pk}/restore/").status_code == 404


def test_the_main_menu_links_the_backups_page(as_user):
    assert 'href="/backups/"' in as_user("root").get("/backups/").content.decode()
