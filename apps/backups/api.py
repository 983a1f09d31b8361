"""/api/backups: list, make, download, verify, upload, restore, and the settings.

Backups hold every project, so making, downloading, verifying, uploading and deleting
them and the settings are for superusers. A member of a project sees the backups that
hold it, and an admin of a project restores into it from a project they have a role in.
"""

from ninja import File, Query, Router, Status
from ninja.files import UploadedFile

from apps.accounts.auth import BearerTokenAuth, SessionAuth
from apps.core import clock
from apps.core.schemas import PageQuery, errors
from apps.projects.selectors import project_get

from . import restore, selectors, services
from .http import backup_download, upload_guard, uploaded_archive
from .models import BackupSettings
from .schemas import (
    BackupList,
    BackupOut,
    BackupSettingsIn,
    BackupSettingsOut,
    BackupVerifyOut,
    RestoreIn,
    RestoreOut,
)

router = Router(tags=["backups"])
SOURCE = "api"


def settings_out(row: BackupSettings) -> dict:
    from django.conf import settings

    return {
        "time": row.time.strftime("%H:%M"),
        "timezone": settings.TIME_ZONE,
        "retention_days": row.retention_days,
        "enabled": row.enabled,
        "next_run": services.next_backup_at(row.time, clock.now()) if row.enabled else None,
    }


@router.get("", response=BackupList, summary="Backups, newest first (keyset pages)")
def backup_list(request, query: Query[PageQuery]):
    page = selectors.backups_page(request.user, cursor=query.cursor, limit=query.limit)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.post(
    "",
    response={201: BackupOut, **errors(500)},
    summary="Back up every project now (superuser); answers the backup with its SHA-256",
)
def backup_create(request):
    backup = services.backup_create(user=request.user, source=SOURCE)
    return Status(201, backup)


@router.get("/settings", response=BackupSettingsOut, summary="The daily backup's settings")
def backup_settings_get(request):
    services.require_superuser(request.user)
    return settings_out(BackupSettings.get())


@router.put(
    "/settings",
    response=BackupSettingsOut,
    summary="Change the daily backup's time, retention or enabled (superuser); the schedule "
    "and every backup's expiry follow",
)
def backup_settings_put(request, payload: BackupSettingsIn):
    row = services.backup_settings_update(
        values=payload.model_dump(exclude_unset=True), user=request.user, source=SOURCE
    )
    return settings_out(row)


def _upload_first(request):
    """Runs before the body is parsed (and before the session's CSRF check reads it): a
    body declaring more than the limit is refused unread. Authenticates no one."""
    upload_guard(request)
    return None


@router.post(
    "/upload",
    response={201: BackupOut, **errors(413)},
    auth=[_upload_first, BearerTokenAuth(), SessionAuth()],
    summary="Take in an archive (superuser; multipart `file`): refused (413, 422) before it "
    "is unpacked when too large, with too many members or inflating too far, and when its "
    "manifest is missing, of an unknown format version, names a path outside the archive "
    "or a link, or a member's SHA-256 differs; nothing is kept then",
)
def backup_upload(request, file: File[UploadedFile] = None):
    services.require_superuser(request.user)
    archive = uploaded_archive(request, file)
    backup = services.backup_upload(
        fileobj=archive, size=archive.size, user=request.user, source=SOURCE
    )
    return Status(201, backup)


@router.get("/{int:backup_id}", response=BackupOut)
def backup_detail(request, backup_id: int):
    return selectors.backup_get(user=request.user, backup_id=backup_id)


@router.delete(
    "/{int:backup_id}", response={204: None}, summary="Delete a backup and its archive (superuser)"
)
def backup_delete(request, backup_id: int):
    backup = selectors.backup_get(user=request.user, backup_id=backup_id)
    services.backup_delete(backup=backup, user=request.user, source=SOURCE)
    return Status(204, None)


@router.get(
    "/{int:backup_id}/download",
    response={200: None, **errors(409)},
    summary="The archive (superuser); its SHA-256 in X-Backup-SHA256",
)
def backup_file(request, backup_id: int):
    backup = selectors.backup_get(user=request.user, backup_id=backup_id)
    services.require_superuser(request.user)
    return backup_download(backup)


@router.post(
    "/{int:backup_id}/verify",
    response=BackupVerifyOut,
    summary="Read the stored archive again: its SHA-256 and every member's (superuser)",
)
def backup_verify(request, backup_id: int):
    backup = selectors.backup_get(user=request.user, backup_id=backup_id)
    return services.backup_verify(backup=backup, user=request.user)


@router.post(
    "/{int:backup_id}/restore",
    response={200: RestoreOut, **errors(409)},
    summary="Restore a project of the backup into `project` (admin there): the dry run "
    "answers the diff and changes nothing; a real one publishes new node versions "
    "(422 naming every error, nothing changed, when it would fail)",
)
def backup_restore(request, backup_id: int, payload: RestoreIn):
    backup = selectors.backup_get(user=request.user, backup_id=backup_id)
    project = project_get(user=request.user, code=payload.project)
    result = restore.restore_backup(
        backup=backup,
        project=project,
        user=request.user,
        source_project=payload.source_project,
        dry_run=payload.dry_run,
        remove_missing=payload.remove_missing,
        source=SOURCE,
    )
    return result.as_dict()
