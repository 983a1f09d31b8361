"""The backups pages: the list (back up now, download, verify, delete), the settings,
the upload form and "Restore into…" with its diff. Thin over services and restore."""

import functools
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core import clock
from apps.core.errors import NotFound, OpscenterError, PermissionDenied, ValidationFailed
from apps.core.pagination import Page
from apps.projects.selectors import project_get

from . import restore, selectors, services
from .diff import DIFF_KINDS, classify_diff_lines
from .http import backup_download, upload_guard, uploaded_archive
from .kinds import restorable_kinds
from .models import BackupSettings

SOURCE = "ui"
# The diff's rows on the restore page, each with its kind's label.
DIFF_LABELS = [
    (kind.name, kind.label)
    for name in DIFF_KINDS
    for kind in restorable_kinds()
    if kind.name == name
]


def _errors(exc: OpscenterError) -> list[dict]:
    return exc.errors or [{"field": "", "message": exc.detail}]


def page(view):
    """A page: signed in; a backup or project one may not see is a 404, a role one lacks
    a 403 (Django's pages for both)."""

    @login_required
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except NotFound as exc:
            raise Http404(exc.detail) from exc
        except PermissionDenied as exc:
            raise DjangoPermissionDenied(exc.detail) from exc

    return wrapped


@page
@require_GET
def backup_list(request):
    errors: list[dict] = []
    try:
        page = selectors.backups_page(
            request.user, cursor=request.GET.get("cursor") or None, limit=request.GET.get("limit")
        )
    except ValidationFailed as exc:
        errors, page = _errors(exc), Page(items=[], next_cursor=None)
    row = BackupSettings.get()
    context = {
        "backups": page.items,
        "next_page_url": f"?{urlencode({'cursor': page.next_cursor})}" if page.next_cursor else "",
        "paged": bool(request.GET.get("cursor")),
        "errors": errors,
        "superuser": request.user.is_superuser,
        "settings_row": row,
        "next_run": services.next_backup_at(row.time, clock.now()) if row.enabled else None,
    }
    return render(request, "backups/list.html", context, status=422 if errors else 200)


@page
@require_POST
def backup_now(request):
    try:
        backup = services.backup_create(user=request.user, source=SOURCE)
    except OpscenterError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(
            request,
            f"Backup #{backup.pk} made: {backup.size_bytes:,} bytes, SHA-256 {backup.sha256}",
        )
    return redirect("backups:list")


@page
@require_GET
def backup_file(request, backup_id: int):
    backup = _backup(request, backup_id)
    services.require_superuser(request.user)
    return backup_download(backup)


def _backup(request, backup_id: int):
    return selectors.backup_get(user=request.user, backup_id=backup_id)


@page
@require_POST
def backup_verify(request, backup_id: int):
    backup = _backup(request, backup_id)
    answer = services.backup_verify(backup=backup, user=request.user)
    if answer["ok"]:
        messages.success(request, f"Backup #{backup.pk} verified: {answer['message']}")
    else:
        messages.error(request, f"Backup #{backup.pk} failed verification: {answer['message']}")
    return redirect("backups:list")


@page
@require_POST
def backup_delete(request, backup_id: int):
    backup = _backup(request, backup_id)
    services.backup_delete(backup=backup, user=request.user, source=SOURCE)
    messages.success(request, f"Backup #{backup_id} deleted with its archive.")
    return redirect("backups:list")


@page
@require_http_methods(["GET", "POST"])
def backup_settings(request):
    services.require_superuser(request.user)
    row = BackupSettings.get()
    errors: list[dict] = []
    data = {
        "time": row.time.strftime("%H:%M"),
        "retention_days": str(row.retention_days),
        "enabled": row.enabled,
    }
    if request.method == "POST":
        data = {
            "time": request.POST.get("time", "").strip(),
            "retention_days": request.POST.get("retention_days", "").strip(),
            "enabled": request.POST.get("enabled") == "on",
        }
        values = {"time": data["time"], "enabled": data["enabled"]}
        days = data["retention_days"]
        values["retention_days"] = int(days) if days.isdigit() else days
        try:
            services.backup_settings_update(values=values, user=request.user, source=SOURCE)
        except ValidationFailed as exc:
            errors = _errors(exc)
        else:
            messages.success(request, "Backup settings saved; the daily schedule follows them.")
            return redirect("backups:list")
    field_errors: dict[str, list[str]] = {}
    for error in errors:
        field_errors.setdefault(error["field"], []).append(error["message"])
    context = {
        "data": data,
        "errors": errors,
        "field_errors": field_errors,
        "timezone": settings.TIME_ZONE,
    }
    return render(request, "backups/settings.html", context, status=422 if errors else 200)


@csrf_exempt
@page
def backup_upload(request):
    """The size limit goes in before the body is read: Django's CSRF check would parse
    the whole upload first, so it runs after (csrf_protect below), as Django's upload
    handler documentation does it."""
    if request.method == "POST":
        try:
            upload_guard(request)
        except ValidationFailed as exc:
            return render(request, "backups/upload.html", {"errors": _errors(exc)}, status=413)
    return _backup_upload(request)


@csrf_protect
@require_http_methods(["GET", "POST"])
def _backup_upload(request):
    services.require_superuser(request.user)
    if request.method == "GET":
        return render(request, "backups/upload.html", {"errors": []})
    try:
        archive = uploaded_archive(request, request.FILES.get("file"))
        backup = services.backup_upload(
            fileobj=archive, size=archive.size, user=request.user, source=SOURCE
        )
    except ValidationFailed as exc:
        return render(
            request, "backups/upload.html", {"errors": _errors(exc)}, status=exc.status_code
        )
    messages.success(
        request,
        f"Archive checked and kept as backup #{backup.pk} ({', '.join(backup.projects) or 'no project'})",
    )
    return redirect("backups:list")


@page
@require_http_methods(["GET", "POST"])
def backup_restore(request, backup_id: int):
    """GET without a project: choose the target and source. GET with one: the dry run's
    diff, with a confirm button. POST: the real restore and its result."""
    backup = _backup(request, backup_id)
    params = request.POST if request.method == "POST" else request.GET
    targets = list(selectors.restore_targets(request.user).values_list("code", "name"))
    sources = selectors.restore_sources(request.user, backup)
    chosen = {
        "project": params.get("project", "").strip(),
        "source_project": params.get("source_project", "").strip() or None,
        "remove_missing": params.get("remove_missing") in ("on", "1", "true"),
    }
    context = {
        "backup": backup,
        "targets": targets,
        "sources": sources,
        "chosen": chosen,
        "result": None,
        "errors": [],
    }
    if not chosen["project"]:
        return render(request, "backups/restore.html", context)
    dry_run = request.method == "GET"
    status = 200
    try:
        project = project_get(user=request.user, code=chosen["project"])
        result = restore.restore_backup(
            backup=backup,
            project=project,
            user=request.user,
            source_project=chosen["source_project"],
            dry_run=dry_run,
            remove_missing=chosen["remove_missing"],
            source=SOURCE,
        )
    except NotFound as exc:
        context["errors"], status = _errors(exc), 404
    except OpscenterError as exc:
        context["errors"], status = _errors(exc), exc.status_code
    else:
        answer = result.as_dict()
        for change in answer["node_changes"]:
            change["lines"] = classify_diff_lines(change["script_diff"])
        context["result"] = answer
        context["diff_rows"] = [(name, label, answer[name]) for name, label in DIFF_LABELS]
    return render(request, "backups/restore.html", context, status=status)
