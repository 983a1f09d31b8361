"""Writes on backups: making one (streamed through Django's default storage), taking one
in (upload, checked before it is kept), deleting the expired, the settings and the
daily schedule that follows them. Restores are apps.backups.restore."""

import datetime
import logging
import tempfile
import zoneinfo
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import DateTimeField, ExpressionWrapper, F

from apps.audit.choices import Result
from apps.audit.services import operation_record
from apps.core import clock
from apps.core.errors import OpscenterError, PermissionDenied, ValidationFailed
from apps.core.timeofday import parse_hhmm
from apps.projects.models import Project

from . import kinds
from .archive import ArchiveSourceChanged, ArchiveWriter, Limits, archive_read
from .choices import BackupState, Trigger
from .models import Backup, BackupProject, BackupSettings

logger = logging.getLogger(__name__)

SCHEDULE_NAME = "backup"
SCHEDULE_FUNC = "apps.backups.tasks.backup_daily"
STORAGE_DIR = "backups"
MAX_RETENTION_DAYS = 3650


class BackupFailed(OpscenterError):
    """Making a backup failed for a reason of the server's (storage, a changed file)."""

    status_code = 500


def require_superuser(user) -> None:
    if not getattr(user, "is_superuser", False):
        raise PermissionDenied(
            "backups of the whole installation are for superusers: they hold every project"
        )


# --- settings and schedule ----------------------------------------------------------------


def backup_settings_update(*, values: dict[str, Any], user, source: str = "api") -> BackupSettings:
    """Change the settings (`time` HH:MM, `retention_days`, `enabled`; each optional).
    Raises ValidationFailed naming every wrong field; then nothing changed. The daily
    schedule follows at commit, and every backup's expiry follows the retention."""
    require_superuser(user)
    errors: list[dict] = []
    clean: dict[str, Any] = {}
    for key in values:
        if key not in ("time", "retention_days", "enabled"):
            errors.append({"field": key, "message": "unknown field: time, retention_days, enabled"})
    if values.get("time") is not None:
        at = parse_hhmm(values["time"])
        if at is None:
            errors.append({"field": "time", "message": f"a time HH:MM, not {values['time']!r}"})
        else:
            clean["time"] = at
    if values.get("retention_days") is not None:
        days = values["retention_days"]
        if (
            not isinstance(days, int)
            or isinstance(days, bool)
            or not 1 <= days <= MAX_RETENTION_DAYS
        ):
            errors.append(
                {
                    "field": "retention_days",
                    "message": f"a whole number of days from 1 to {MAX_RETENTION_DAYS}",
                }
            )
        else:
            clean["retention_days"] = days
    if values.get("enabled") is not None:
        if not isinstance(values["enabled"], bool):
            errors.append({"field": "enabled", "message": "true or false"})
        else:
            clean["enabled"] = values["enabled"]
    if errors:
        fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
        raise ValidationFailed(f"invalid backup settings: {fields}", errors)
    with transaction.atomic():
        row = BackupSettings.objects.select_for_update().filter(pk=BackupSettings.SINGLETON_ID)
        current = row.first() or BackupSettings.get()
        changed = {k: v for k, v in clean.items() if getattr(current, k) != v}
        if not changed:
            return current
        for key, value in changed.items():
            setattr(current, key, value)
        current.updated_by = user if getattr(user, "is_authenticated", False) else None
        current.save()
        if "retention_days" in changed:
            _expiries_follow(current.retention_days)
        operation_record(
            user=user,
            source=source,
            action="backup.settings",
            object_type="backup_settings",
            detail={
                k: (v.strftime("%H:%M") if isinstance(v, datetime.time) else v)
                for k, v in changed.items()
            },
        )
        transaction.on_commit(backup_schedule_sync)
    return current


def _expiries_follow(retention_days: int) -> None:
    """Every backup expires `retention_days` after it was made (or taken in)."""
    keep = datetime.timedelta(days=retention_days)
    Backup.objects.update(
        expires_at=ExpressionWrapper(F("created_at") + keep, output_field=DateTimeField())
    )


def next_backup_at(at: datetime.time, after: datetime.datetime) -> datetime.datetime:
    """The first `at` (wall-clock time in the server's TIME_ZONE) strictly after `after`."""
    zone = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    local = after.astimezone(zone)
    moment = datetime.datetime.combine(local.date(), at, tzinfo=zone)
    if moment <= local:
        moment = datetime.datetime.combine(
            local.date() + datetime.timedelta(days=1), at, tzinfo=zone
        )
    return moment


def backup_schedule_sync() -> None:
    """The daily backup's django-q2 schedule as the settings say: a cron at their time in
    the server's TIME_ZONE (django-q2 computes crons there), none while disabled.
    Idempotent; called at every settings change and by apps.instances.tasks.schedules_ensure."""
    from django_q.models import Schedule

    current = BackupSettings.get()
    if not current.enabled:
        Schedule.objects.filter(name=SCHEDULE_NAME).delete()
        return
    cron = f"{current.time.minute} {current.time.hour} * * *"
    existing = Schedule.objects.filter(name=SCHEDULE_NAME).first()
    if existing and existing.cron == cron and existing.func == SCHEDULE_FUNC:
        return  # in step: leave the run it is waiting for alone
    Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": SCHEDULE_FUNC,
            "schedule_type": Schedule.CRON,
            "cron": cron,
            "repeats": -1,
            "next_run": next_backup_at(current.time, clock.now()),
        },
    )


# --- making a backup -------------------------------------------------------------------------


def _storage_name(backup: Backup) -> str:
    return f"{STORAGE_DIR}/opscenter-backup-{backup.created_at:%Y%m%dT%H%M%SZ}-{backup.pk}.tar.gz"


def _backup_start(*, trigger: str, user, created_at: datetime.datetime) -> Backup:
    keep = datetime.timedelta(days=BackupSettings.get().retention_days)
    return Backup.objects.create(
        created_at=created_at,
        trigger=trigger,
        state=BackupState.RUNNING,
        expires_at=created_at + keep,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )


def _backup_ready(backup: Backup, *, path: str, sha256: str, size: int, projects: list[str]):
    with transaction.atomic():
        backup.path, backup.sha256, backup.size_bytes = path, sha256, size
        backup.projects, backup.state, backup.error = projects, BackupState.READY, ""
        backup.archived_at = backup.archived_at or backup.created_at
        backup.save()
        BackupProject.objects.bulk_create(
            [BackupProject(backup=backup, code=code) for code in dict.fromkeys(projects)],
            batch_size=1000,
        )


def archive_write(out: IO[bytes], *, workdir: Path, created_at: datetime.datetime) -> tuple:
    """Write the archive of every project and the global configuration to `out`; answers
    (SHA-256, size, project codes). Each kind's records stream from the database into a
    spooled member file, so no project sits in memory whole."""
    writer = ArchiveWriter(workdir)
    for kind in kinds.global_kinds():
        writer.add_records(
            f"global/{kind.name}.jsonl", kind.export(None), kind=kind.name, project=None
        )
    codes: list[str] = []
    for project in Project.objects.order_by("code").iterator(chunk_size=200):
        codes.append(project.code)
        base = f"projects/{project.code}"
        writer.add_records(
            f"{base}/project.jsonl",
            [_project_record(project)],
            kind="project",
            project=project.code,
        )
        for kind in kinds.project_kinds():
            writer.add_records(
                f"{base}/{kind.name}.jsonl",
                kind.export(project),
                kind=kind.name,
                project=project.code,
            )
            for archived in kind.files(project):
                path = f"{base}/files/{archived.sha256}"
                if path in writer.paths:  # the same content under another name
                    continue
                writer.add_file(
                    path,
                    size=archived.size,
                    sha256=archived.sha256,
                    open=archived.open,
                    kind=kind.name,
                    project=project.code,
                    label=archived.label,
                )
    sha256, size = writer.assemble(out, created_at=created_at, projects=codes)
    return sha256, size, codes


def _project_record(project: Project) -> dict:
    return {
        "code": project.code,
        "name": project.name,
        "description": project.description,
        "timezone": project.timezone,
        "env_mode": project.env_mode,
        "generation_time": project.generation_time,
        "generation_mode": project.generation_mode,
    }


def backup_create(*, trigger: str = Trigger.MANUAL, user=None, source: str = "api") -> Backup:
    """Back up every project now: write the archive to a temporary file, then save it to
    the default storage. A failure leaves the backup `failed` with its error (and no
    file) and raises BackupFailed."""
    if trigger != Trigger.SCHEDULED:
        require_superuser(user)
    now = clock.now()
    backup = _backup_start(trigger=trigger, user=user, created_at=now)
    stored = ""
    try:
        with tempfile.TemporaryDirectory(prefix="opscenter-backup-") as workdir:
            with tempfile.TemporaryFile(dir=workdir) as out:
                sha256, size, codes = archive_write(out, workdir=Path(workdir), created_at=now)
                out.seek(0)
                stored = default_storage.save(_storage_name(backup), File(out))
        _backup_ready(backup, path=stored, sha256=sha256, size=size, projects=codes)
    except Exception as exc:
        if stored:
            default_storage.delete(stored)
        message = (
            str(exc) if isinstance(exc, ArchiveSourceChanged) else f"{type(exc).__name__}: {exc}"
        )
        Backup.objects.filter(pk=backup.pk).update(state=BackupState.FAILED, error=message)
        operation_record(
            user=user,
            source=source,
            action="backup.create",
            object_type="backup",
            object_id=backup.pk,
            detail={"trigger": trigger},
            result=Result.FAILED,
            message=message,
        )
        logger.exception("backup %s failed", backup.pk)
        raise BackupFailed(f"backup #{backup.pk} failed: {message}") from exc
    operation_record(
        user=user,
        source=source,
        action="backup.create",
        object_type="backup",
        object_id=backup.pk,
        detail={"trigger": trigger, "sha256": sha256, "size_bytes": size, "projects": len(codes)},
    )
    return backup


# --- taking one in -----------------------------------------------------------------------------


def backup_upload(
    *, fileobj: IO[bytes], size: int, user, source: str = "api", limits: Limits | None = None
) -> Backup:
    """Keep an archive brought in from elsewhere, once it passed every check (size before
    a byte is read, then manifest, member paths, counts and checksums as it is read).
    A refused archive leaves nothing behind: no row, no file."""
    require_superuser(user)
    limits = limits or Limits.from_settings()
    try:
        fileobj.seek(0)
        manifest, sha256 = archive_read(fileobj, size=size, limits=limits)
    except ValidationFailed as exc:
        operation_record(
            user=user,
            source=source,
            action="backup.upload",
            object_type="backup",
            detail={"size_bytes": size},
            result=Result.REFUSED,
            message=exc.detail,
        )
        raise
    now = clock.now()
    backup = _backup_start(trigger=Trigger.UPLOADED, user=user, created_at=now)
    backup.archived_at = manifest.created_at
    stored = ""
    try:
        fileobj.seek(0)
        stored = default_storage.save(_storage_name(backup), File(fileobj))
        _backup_ready(backup, path=stored, sha256=sha256, size=size, projects=manifest.projects)
    except Exception:
        if stored:
            default_storage.delete(stored)
        backup.delete()
        raise
    operation_record(
        user=user,
        source=source,
        action="backup.upload",
        object_type="backup",
        object_id=backup.pk,
        detail={"sha256": sha256, "size_bytes": size, "projects": manifest.projects},
    )
    return backup


def backup_verify(*, backup: Backup, user) -> dict:
    """Read the stored archive again: its SHA-256 against the recorded one, and every
    member against the manifest. Answers {"ok", "message"}."""
    require_superuser(user)
    if backup.state != BackupState.READY:
        return {"ok": False, "message": f"backup #{backup.pk} is {backup.state}: no archive"}
    limits = Limits.from_settings().admitting(backup.size_bytes or 0)
    try:
        with default_storage.open(backup.path, "rb") as stored:
            manifest, _ = archive_read(
                stored, size=backup.size_bytes or 0, limits=limits, expected_sha256=backup.sha256
            )
    except FileNotFoundError:
        return {"ok": False, "message": f"the archive {backup.path} is missing from the storage"}
    except ValidationFailed as exc:
        return {"ok": False, "message": exc.detail}
    members = len(manifest.members) + 1
    return {
        "ok": True,
        "message": f"SHA-256 {backup.sha256} and all {members} members match",
    }


# --- deleting ----------------------------------------------------------------------------------


def _remove(backup: Backup) -> None:
    path = backup.path
    backup.delete()
    if path:
        # After the row: a file without a row would be invisible, a row without a file
        # says what is missing.
        transaction.on_commit(lambda: default_storage.delete(path))


def backup_delete(*, backup: Backup, user, source: str = "api") -> None:
    require_superuser(user)
    with transaction.atomic():
        operation_record(
            user=user,
            source=source,
            action="backup.delete",
            object_type="backup",
            object_id=backup.pk,
            detail={"path": backup.path, "sha256": backup.sha256},
        )
        _remove(backup)


# A backup still `running` this long after it started was cut off (its process died).
RUNNING_FOR_AT_MOST = datetime.timedelta(days=1)


def backups_expire(*, now: datetime.datetime | None = None) -> int:
    """Delete every backup (row and file) whose retention ended; answers how many.
    Running backups are left to finish, unless they were cut off."""
    now = now or clock.now()
    expired = Backup.objects.filter(expires_at__lte=now).exclude(
        state=BackupState.RUNNING, created_at__gt=now - RUNNING_FOR_AT_MOST
    )
    count = 0
    for backup in expired.order_by("pk").iterator(chunk_size=200):
        with transaction.atomic():
            _remove(backup)
        count += 1
    if count:
        operation_record(
            user=None,
            source="system",
            action="backup.expire",
            object_type="backup",
            detail={"deleted": count},
        )
    return count
