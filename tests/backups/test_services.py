"""Making backups, their contents, settings, schedule, retention, upload and verify."""

import datetime
import gzip
import hashlib
import io
import json

import pytest
import time_machine
from django_q.models import Schedule

from apps.backups import services
from apps.backups.archive import ArchiveRefused
from apps.backups.models import Backup, BackupSettings
from apps.backups.tasks import backup_daily
from apps.core.errors import PermissionDenied, ValidationFailed
from apps.projects.models import Datasource

from .archives import GOOD, build, jsonl, manifest_of
from .builders import DSN_SECRET, PASSWORD, acme_setup, archive_bytes, backup_now, members_of
from .conftest import stored_archives

NOW = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)


def test_a_backup_holds_every_kind_with_a_manifest_first(project, users, storage_dir):
    acme_setup(project, users)
    backup = backup_now(users["root"])

    assert backup.state == "ready" and backup.trigger == "manual"
    assert backup.projects == ["acme"]
    data = archive_bytes(backup, storage_dir)
    assert backup.size_bytes == len(data)
    assert backup.sha256 == hashlib.sha256(data).hexdigest()
    members = members_of(data)
    names = list(members)
    assert names[0] == "manifest.json"
    manifest = json.loads(members["manifest.json"])
    assert manifest["format"] == "opscenter-backup" and manifest["format_version"] == 1
    listed = {m["path"]: m for m in manifest["members"]}
    assert set(listed) == set(names[1:])
    for name, entry in listed.items():
        assert entry["size"] == len(members[name])
        assert entry["sha256"] == hashlib.sha256(members[name]).hexdigest()
    for kind in [
        "nodes",
        "datasources",
        "variables",
        "resources",
        "monitor_rules",
        "baselines",
        "field_rules",
        "runtime_config",
    ]:
        assert f"projects/acme/{kind}.jsonl" in listed
    for kind in ["resource_groups", "throttle_rules", "runtime_config"]:
        assert f"global/{kind}.jsonl" in listed

    nodes = [json.loads(line) for line in members["projects/acme/nodes.jsonl"].splitlines()]
    assert [n["name"] for n in nodes] == ["extract", "report", "start", "transform"]
    extract = nodes[0]
    assert extract["spec"]["content"] == "echo extract ${var.region}\n"
    assert extract["version"] == 1 and list(extract["resources"]) == ["ref.csv"]
    resources = [json.loads(line) for line in members["projects/acme/resources.jsonl"].splitlines()]
    assert resources[0]["name"] == "ref.csv"
    assert members[f"projects/acme/files/{resources[0]['sha256']}"] == b"id,name\n1,a\n"


def test_secrets_are_nowhere_in_the_archive(project, users, storage_dir):
    acme_setup(project, users)
    stored = Datasource.objects.get(project=project, name="warehouse").password_encrypted
    backup = backup_now(users["root"])

    raw = gzip.decompress(archive_bytes(backup, storage_dir))
    for secret in (PASSWORD, DSN_SECRET, stored):
        assert secret.encode() not in raw
    members = members_of(archive_bytes(backup, storage_dir))
    datasources = {
        d["name"]: d
        for d in map(json.loads, members["projects/acme/datasources.jsonl"].splitlines())
    }
    assert datasources["warehouse"]["has_password"] is True
    assert datasources["warehouse"]["dsn"] == "host=db.example dbname=sales user=etl"
    assert "sslpassword" not in datasources["legacy"]["dsn"]
    assert "host=old" in datasources["legacy"]["dsn"]


def test_only_superusers_back_up(project, users, backups_dir):
    with pytest.raises(PermissionDenied):
        services.backup_create(user=users["alice"])
    assert not Backup.objects.exists() and stored_archives(backups_dir) == []


def test_a_project_never_sits_in_memory_whole_records_stream_from_iterators(
    project, users, storage_dir
):
    # Exports are generators over .iterator() querysets: nothing is listed up front.
    from apps.backups import kinds

    acme_setup(project, users)
    nodes = next(k for k in kinds.project_kinds() if k.name == "nodes")
    records = nodes.export(project)
    assert iter(records) is records  # a generator, read record by record by the writer
    assert next(records)["name"] == "extract"


def test_a_file_that_changed_in_storage_fails_the_backup_and_leaves_nothing(
    project, users, storage_dir, backups_dir
):
    from apps.resources.models import ResourceVersion

    acme_setup(project, users)
    version = ResourceVersion.objects.get()
    (storage_dir / version.file.name).write_bytes(b"id,name\n1,b\n")
    with pytest.raises(services.BackupFailed) as caught:
        backup_now(users["root"])
    assert "resource 'ref.csv' v1" in caught.value.detail
    backup = Backup.objects.get()
    assert backup.state == "failed" and "no longer has the SHA-256" in backup.error
    assert stored_archives(backups_dir) == []


# --- settings and schedule -------------------------------------------------------------


def test_settings_are_validated_naming_each_field(users):
    with pytest.raises(ValidationFailed) as caught:
        services.backup_settings_update(
            values={"time": "25:00", "retention_days": 0, "enabled": "yes"}, user=users["root"]
        )
    assert [e["field"] for e in caught.value.errors] == ["time", "retention_days", "enabled"]
    assert BackupSettings.get().retention_days == 7  # unchanged
    with pytest.raises(PermissionDenied):
        services.backup_settings_update(values={"retention_days": 3}, user=users["alice"])


@pytest.mark.django_db(transaction=True)
def test_the_daily_schedule_follows_the_settings(users, settings):
    settings.TIME_ZONE = "UTC"
    services.backup_schedule_sync()
    schedule = Schedule.objects.get(name="backup")
    assert (schedule.func, schedule.cron) == ("apps.backups.tasks.backup_daily", "0 2 * * *")

    with time_machine.travel(NOW + datetime.timedelta(hours=1), tick=False):
        services.backup_settings_update(values={"time": "04:30"}, user=users["root"])
    schedule.refresh_from_db()
    assert schedule.cron == "30 4 * * *"
    assert schedule.next_run == datetime.datetime(2026, 11, 20, 4, 30, tzinfo=datetime.UTC)

    services.backup_settings_update(values={"enabled": False}, user=users["root"])
    assert not Schedule.objects.filter(name="backup").exists()
    services.backup_settings_update(values={"enabled": True}, user=users["root"])
    assert Schedule.objects.get(name="backup").cron == "30 4 * * *"


def test_next_backup_time_is_in_the_server_timezone(settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    after = datetime.datetime(2026, 11, 20, 0, 0, tzinfo=datetime.UTC)  # 08:00 in Shanghai
    at = services.next_backup_at(datetime.time(2, 0), after)
    assert at.astimezone(datetime.UTC) == datetime.datetime(
        2026, 11, 20, 18, 0, tzinfo=datetime.UTC
    )


# --- retention ---------------------------------------------------------------------------


def test_retention_deletes_only_the_expired_rows_and_files(
    project, users, backups_dir, django_capture_on_commit_callbacks
):
    root = users["root"]
    services.backup_settings_update(values={"retention_days": 3}, user=root)
    made = {}
    for days_ago in (5, 3, 1):
        with time_machine.travel(NOW - datetime.timedelta(days=days_ago), tick=False):
            made[days_ago] = backup_now(root)
    assert len(stored_archives(backups_dir)) == 3

    # Three days after the middle one was made: it and the older one expired.
    with (
        time_machine.travel(NOW + datetime.timedelta(minutes=1), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert services.backups_expire() == 2
    kept = set(Backup.objects.values_list("pk", flat=True))
    assert kept == {made[1].pk}
    assert stored_archives(backups_dir) == [made[1].path.rpartition("/")[2]]


def test_a_longer_retention_moves_every_expiry(project, users):
    root = users["root"]
    with time_machine.travel(NOW, tick=False):
        backup = backup_now(root)
    assert backup.expires_at == NOW + datetime.timedelta(days=7)
    services.backup_settings_update(values={"retention_days": 30}, user=root)
    backup.refresh_from_db()
    assert backup.expires_at == NOW + datetime.timedelta(days=30)


@pytest.mark.django_db(transaction=True)
def test_the_daily_task_backs_up_then_expires(project, users, backups_dir):
    with time_machine.travel(NOW - datetime.timedelta(days=10), tick=False):
        old = backup_now(users["root"])
    with time_machine.travel(NOW, tick=False):
        answer = backup_daily()
    made = Backup.objects.get(pk=answer["backup"])
    assert made.trigger == "scheduled" and made.state == "ready"
    assert answer["expired"] == 1 and not Backup.objects.filter(pk=old.pk).exists()
    services.backup_settings_update(values={"enabled": False}, user=users["root"])
    with time_machine.travel(NOW + datetime.timedelta(days=1), tick=False):
        assert backup_daily()["backup"] is None


# --- upload and verify ---------------------------------------------------------------------


def test_an_uploaded_archive_is_checked_and_kept(project, users, storage_dir):
    acme_setup(project, users)
    made = backup_now(users["root"])
    data = archive_bytes(made, storage_dir)
    uploaded = services.backup_upload(fileobj=io.BytesIO(data), size=len(data), user=users["root"])
    assert uploaded.trigger == "uploaded" and uploaded.state == "ready"
    assert uploaded.sha256 == made.sha256 and uploaded.projects == ["acme"]
    assert uploaded.archived_at == made.created_at
    assert services.backup_verify(backup=uploaded, user=users["root"])["ok"] is True


BAD = {
    "wrong checksum": build(GOOD, tamper={GOOD[0][0]: jsonl({"name": "region", "value": "us"})}),
    "no manifest": build(GOOD, manifest=False),
    "dot-dot path": build([*GOOD, ("../evil.jsonl", b"x")]),
    "absolute path": build([*GOOD, ("/etc/cron.d/evil", b"x")]),
    "unknown version": build(GOOD, manifest=manifest_of(GOOD, format_version=2)),
}


@pytest.mark.parametrize("problem", list(BAD))
def test_a_bad_upload_is_refused_and_leaves_nothing(problem, users, backups_dir):
    data = BAD[problem]
    with pytest.raises(ArchiveRefused):
        services.backup_upload(fileobj=io.BytesIO(data), size=len(data), user=users["root"])
    assert not Backup.objects.exists() and stored_archives(backups_dir) == []


def test_verify_finds_an_archive_changed_in_storage(project, users, storage_dir):
    backup = backup_now(users["root"])
    path = storage_dir / backup.path
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    answer = services.backup_verify(backup=backup, user=users["root"])
    assert answer["ok"] is False
    path.unlink()
    assert "missing" in services.backup_verify(backup=backup, user=users["root"])["message"]


def test_retention_leaves_a_running_backup_unless_it_was_cut_off(users):
    def running(created_at):
        return Backup.objects.create(
            created_at=created_at, trigger="scheduled", state="running", expires_at=created_at
        )

    recent = running(NOW - datetime.timedelta(hours=2))
    cut_off = running(NOW - datetime.timedelta(days=2))
    assert services.backups_expire(now=NOW) == 1
    assert list(Backup.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not Backup.objects.filter(pk=cut_off.pk).exists()
