"""Writes on project resources: uploading a version, deleting a resource.

Like apps.projects.services, the services validate their input (ValidationFailed naming
the field), record every change in the operation log and trust `user`: the caller checks
the role (developers and above upload, admins delete; see apps.resources.api).
"""

import hashlib
import re
import tempfile

from django.conf import settings
from django.core.files import File
from django.db import IntegrityError, transaction

from apps.audit.services import operation_record, operation_run
from apps.core import clock
from apps.core.errors import Conflict, ValidationFailed
from apps.projects.models import Project

from .models import Resource, ResourceVersion

# A resource's name is the file name its nodes find in their working directory: one
# path component, no hidden file, nothing a shell would need quoting for.
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
NAME_MAX = 200
# The executors write a node's own script under these names in the work directory.
RESERVED_NAMES = {"script.sh", "script.py"}
CHUNK = 1024 * 1024
# A stream that cannot seek is copied aside while it is measured: in memory up to this,
# then in a temporary file.
SPOOL_IN_MEMORY = 8 * 1024 * 1024


def resource_name_problem(name) -> str | None:
    """Why `name` cannot name a resource, or None when it can."""
    if not isinstance(name, str) or not name.strip():
        return "must not be empty"
    if len(name) > NAME_MAX:
        return f"at most {NAME_MAX} characters"
    if "/" in name or "\\" in name or ".." in name:
        return "a file name: no '/', '\\' or '..'"
    if name in RESERVED_NAMES:
        return f"{name!r} is the name of the node's own script in its work directory"
    if not NAME_RE.match(name):
        return (
            "letters, digits, '_', '.', '+' or '-', starting with a letter, a digit or '_' "
            "(it becomes a file name in the node's working directory)"
        )
    return None


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"invalid {field}", [{"field": field, "message": message}])


def _seekable(fileobj) -> bool:
    seekable = getattr(fileobj, "seekable", None)
    return bool(seekable()) if callable(seekable) else hasattr(fileobj, "seek")


def _measure(fileobj, limit: int):
    """(size, SHA-256, a file to store positioned at its start), read once in chunks;
    refused past `limit` bytes without reading the rest. A stream that cannot seek (a
    pipe, a member of a streamed archive) is kept in a spooled temporary file."""
    digest, size = hashlib.sha256(), 0
    seekable = _seekable(fileobj)
    if seekable:
        fileobj.seek(0)
    chunks = (
        fileobj.chunks(CHUNK)
        if hasattr(fileobj, "chunks") and seekable
        else iter(lambda: fileobj.read(CHUNK), b"")
    )
    copy = None if seekable else tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
    try:
        for chunk in chunks:
            if isinstance(chunk, str):
                raise _invalid("file", "must be opened in binary mode")
            size += len(chunk)
            if size > limit:
                raise _invalid("file", f"larger than the limit of {limit} bytes")
            digest.update(chunk)
            if copy is not None:
                copy.write(chunk)
    except BaseException:
        if copy is not None:
            copy.close()
        raise
    stored = fileobj if copy is None else copy
    stored.seek(0)
    return size, digest.hexdigest(), stored


def resource_upload(
    *, project: Project, name: str, fileobj, user, source: str = "api"
) -> ResourceVersion:
    """Store `fileobj` as the next version of the project's resource `name` (created on
    its first upload) and answer that version.

    A file whose SHA-256 equals the resource's latest version makes no new version: the
    latest is answered as it is (so uploading the same file twice does not make the
    nodes that pin it look changed at their next publish). The answer's `is_new` says
    which happened.

    Refused (ValidationFailed, nothing stored) for a bad `name`, a missing file or one
    larger than OPSCENTER_RESOURCE_MAX_BYTES (field `file`).
    """
    name = name.strip() if isinstance(name, str) else name
    errors = []
    if problem := resource_name_problem(name):
        errors.append({"field": "name", "message": problem})
    if fileobj is None:
        errors.append({"field": "file", "message": "a file is required"})
    if errors:
        raise ValidationFailed("invalid resource: " + ", ".join(e["field"] for e in errors), errors)
    limit = settings.OPSCENTER_RESOURCE_MAX_BYTES
    known_size = getattr(fileobj, "size", None)
    if isinstance(known_size, int) and known_size > limit:
        raise _invalid("file", f"larger than the limit of {limit} bytes")
    size, sha256, readable = _measure(fileobj, limit)

    stored = None
    try:
        with transaction.atomic():
            resource = _resource_locked(project=project, name=name, user=user)
            latest = resource.versions.order_by("-number").first()
            if latest is not None and latest.sha256 == sha256:
                latest.is_new = False
                return latest
            version = ResourceVersion(
                resource=resource,
                number=(latest.number if latest else 0) + 1,
                size_bytes=size,
                sha256=sha256,
                uploaded_by=user if getattr(user, "is_authenticated", False) else None,
                uploaded_at=clock.now(),
            )
            version.file.save(name, File(readable, name=name), save=False)
            stored = version.file.name
            version.save()
            operation_record(
                user=user,
                source=source,
                action="resource.upload",
                object_type="resource",
                object_id=resource.pk,
                project=project,
                detail={
                    "name": name,
                    "version": version.number,
                    "size_bytes": size,
                    "sha256": sha256,
                },
            )
    except BaseException:
        # The row was not written: the file it would have named goes too.
        if stored:
            version.file.storage.delete(stored)
        raise
    finally:
        if readable is not fileobj:  # the spooled copy of a stream
            readable.close()
    version.is_new = True
    return version


def _resource_locked(*, project: Project, name: str, user) -> Resource:
    """The resource row, locked so concurrent uploads of one name number in turn."""
    resource = Resource.objects.select_for_update().filter(project=project, name=name).first()
    if resource is not None:
        return resource
    try:
        with transaction.atomic():
            return Resource.objects.create(
                project=project,
                name=name,
                created_by=user if getattr(user, "is_authenticated", False) else None,
            )
    except IntegrityError:  # created by a concurrent upload a moment ago
        return Resource.objects.select_for_update().get(project=project, name=name)


def resource_delete(*, resource: Resource, user, source: str = "api") -> None:
    """Delete a resource with every version and its files (removed after the commit).

    Refused (Conflict naming them) while an online node's current version pins one of its
    versions: that node would fail at its next run. Older node versions that pinned it
    keep the pin's name and number; an attempt of one fails saying the file is gone."""
    from .selectors import resource_users

    used_by: list[str] = []

    def change() -> dict:
        Resource.objects.select_for_update().filter(pk=resource.pk).first()
        used_by[:] = [str(node) for node in resource_users(resource)]
        if used_by:
            shown = used_by[:20]
            raise Conflict(
                f"resource {resource.name!r} is used by published node(s) {', '.join(shown)}"
                f"{' and more' if len(used_by) > len(shown) else ''}; publish them without it "
                "or take them offline first",
                [{"field": "name", "message": f"used by {node}"} for node in shown],
            )
        versions = list(resource.versions.values_list("number", flat=True))
        resource.delete()
        return {"name": resource.name, "versions": versions}

    operation_run(
        by=user,
        source=source,
        action="resource.delete",
        object_type="resource",
        object_id=resource.pk,
        project=resource.project,
        authorize=lambda: None,
        change=change,
        refused_detail=lambda: {"name": resource.name, "used_by": used_by[:20]},
    )
