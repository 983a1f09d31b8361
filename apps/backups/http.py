"""HTTP helpers the API and the pages share: an archive's download, and an upload that
is refused by its size before its bytes are read."""

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler
from django.http import FileResponse

from apps.core.errors import Conflict, ValidationFailed

from .archive import ArchiveTooLarge
from .choices import BackupState
from .models import Backup

# A multipart body carries a few hundred bytes besides the file (boundaries, headers).
MULTIPART_SLACK = 64 * 1024


def backup_download(backup: Backup) -> FileResponse:
    if backup.state != BackupState.READY:
        raise Conflict(f"backup #{backup.pk} is {backup.state}: there is no archive")
    try:
        stored = default_storage.open(backup.path, "rb")
    except FileNotFoundError as exc:
        raise Conflict(f"backup #{backup.pk}: its archive {backup.path} is missing") from exc
    response = FileResponse(
        stored, as_attachment=True, filename=backup.filename, content_type="application/gzip"
    )
    response["Content-Length"] = str(backup.size_bytes)
    response["X-Backup-SHA256"] = backup.sha256
    return response


class _LimitedUpload(TemporaryFileUploadHandler):
    """Spools the upload to a temporary file, and stops reading past the limit (a body
    sent without a length, or one that lies about it)."""

    def __init__(self, request, limit: int):
        super().__init__(request)
        self.limit = limit

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > self.limit:
            self.request.backup_upload_too_large = True
            raise StopUpload(connection_reset=True)
        return super().receive_data_chunk(raw_data, start)


def _too_large(size: int | None, limit: int) -> ArchiveTooLarge:
    told = f"{size:,} bytes" if size is not None else f"more than {limit:,} bytes"
    return ArchiveTooLarge(f"{told}; at most {limit:,} (OPSCENTER_BACKUP_MAX_BYTES)", field="file")


def upload_guard(request) -> None:
    """Before the body is read: refuse a declared length over the limit, and make the
    parser stop at the limit. Must run before anything reads request.POST or FILES."""
    limit = settings.OPSCENTER_BACKUP_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit + MULTIPART_SLACK:
        raise _too_large(declared, limit)
    try:
        request.upload_handlers = [_LimitedUpload(request, limit)]
    except AttributeError:  # the body was read already: the size is checked after
        pass


def uploaded_archive(request, file):
    """The uploaded file once the parser is done, or the refusal that says why not."""
    limit = settings.OPSCENTER_BACKUP_MAX_BYTES
    if getattr(request, "backup_upload_too_large", False):
        raise _too_large(None, limit)
    if file is None:
        raise ValidationFailed(
            "no archive uploaded", [{"field": "file", "message": "a .tar.gz backup archive"}]
        )
    if file.size > limit:
        raise _too_large(file.size, limit)
    return file
