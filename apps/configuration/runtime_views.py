"""Runtime configuration pages: the global level and each project's, each setting with
its effective value and the level it comes from, and a form to change the level (for
superusers and the project's admins). Views parse, call the services and render; the
services check roles and write the operation log."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse

from apps.audit.models import OperationLog
from apps.core.errors import NotFound, OpscenterError, ValidationFailed
from apps.nodes.specs import RUNTIME_KEYS
from apps.projects.choices import Role
from apps.projects.selectors import has_role, project_get, projects_visible_to

from .choices import RerunPolicy, TimeoutAction
from .models import RuntimeConfig
from .runtime import BUILT_IN, NUMBER_LIMITS, level_values, levels_for, runtime_for_spec
from .runtime_services import runtime_config_update

LABELS = {
    "timeout_seconds": "Timeout (seconds, 0: none)",
    "timeout_action": "Timeout action",
    "retries": "Retries",
    "retry_interval_seconds": "Retry interval (seconds)",
    "rerun_policy": "Rerun policy",
}
CHOICES = {"timeout_action": TimeoutAction.choices, "rerun_policy": RerunPolicy.choices}
HISTORY = 10


def read_values(post) -> tuple[dict[str, Any], list[dict]]:
    """The form's settings: an empty field sets nothing at this level (None); a number
    field must hold a whole number. Answers (values, errors naming their fields)."""
    values: dict[str, Any] = {}
    errors = []
    for key in RUNTIME_KEYS:
        raw = (post.get(key) or "").strip()
        if not raw:
            values[key] = None
        elif key in NUMBER_LIMITS:
            try:
                values[key] = int(raw)
            except ValueError:
                errors.append({"field": key, "message": f"must be a whole number, not {raw!r}"})
        else:
            values[key] = raw
    return values, errors


def _fields(level: dict, effective, posted: dict | None, field_errors: dict) -> list[dict]:
    """One row per setting: this level's own value (or what was posted), the effective
    value and where it comes from."""
    rows = []
    for key in RUNTIME_KEYS:
        own = level.get(key)
        rows.append(
            {
                "key": key,
                "label": LABELS[key],
                "own": "" if own is None else own,
                "input": (posted or {}).get(key, "" if own is None else own),
                "choices": CHOICES.get(key),
                "value": getattr(effective, key),
                "source": effective.source(key),
                "built_in": BUILT_IN[key],
                "errors": field_errors.get(key, []),
            }
        )
    return rows


def _history(object_type: str, object_id: str) -> list[dict]:
    """The level's latest changes from the operation log, each setting's before/after."""
    entries = OperationLog.objects.filter(
        action="runtime_config", object_type=object_type, object_id=object_id
    ).order_by("-id")[:HISTORY]
    rows = []
    for entry in entries:
        detail = entry.detail or {}
        before, after = detail.get("before") or {}, detail.get("after") or {}
        rows.append(
            {
                "entry": entry,
                "changes": [
                    {"key": key, "before": before.get(key), "after": after.get(key)}
                    for key in detail.get("changed") or []
                ],
            }
        )
    return rows


def _save(request, *, project) -> tuple[dict | None, list[dict], int]:
    """Apply the POSTed form; answers (posted values, errors, status)."""
    posted = {key: (request.POST.get(key) or "").strip() for key in RUNTIME_KEYS}
    values, errors = read_values(request.POST)
    if errors:
        return posted, errors, 422
    try:
        runtime_config_update(
            project=project, values=values, by=request.user, source="ui", replace=True, prefix=""
        )
    except ValidationFailed as exc:
        return posted, exc.errors, 422
    except OpscenterError as exc:
        return posted, [{"field": "", "message": exc.detail}], exc.status_code
    return None, [], 200


def _section() -> dict:
    """The Configuration section's tabs (configuration/_section_tabs.html)."""
    return {"tab": "runtime", "runtime_url": reverse("runtime:global")}


def _by_field(errors: list[dict]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for error in errors:
        found.setdefault(error.get("field", ""), []).append(error["message"])
    return found


@login_required
def runtime_global(request):
    """The global level, and each visible project's own settings."""
    may_change = request.user.is_superuser
    posted, errors, status = None, [], 200
    if request.method == "POST":
        posted, errors, status = _save(request, project=None)
        if not errors:
            messages.success(request, "Global runtime configuration saved.")
            return redirect("runtime:global")
    row = RuntimeConfig.objects.filter(project__isnull=True).first()
    effective = runtime_for_spec(project_id=None, spec=None)
    projects = list(projects_visible_to(request.user).order_by("code"))
    _, by_project = levels_for({p.pk for p in projects})
    context = {
        "fields": _fields(level_values(row), effective, posted, _by_field(errors)),
        "errors": errors,
        "may_change": may_change,
        "row": row,
        "projects": [
            {"project": p, "cells": [by_project.get(p.pk, {}).get(key) for key in RUNTIME_KEYS]}
            for p in projects
        ],
        "keys": RUNTIME_KEYS,
        "history": _history("global", "global"),
        "level": "global",
        **_section(),
    }
    return render(request, "configuration/runtime.html", context, status=status)


@login_required
def runtime_project(request, code: str):
    try:
        project = project_get(user=request.user, code=code)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    may_change = has_role(request.user, project, Role.ADMIN)
    posted, errors, status = None, [], 200
    if request.method == "POST":
        posted, errors, status = _save(request, project=project)
        if not errors:
            messages.success(request, f"Runtime configuration of {project.code} saved.")
            return redirect(reverse("runtime:project", args=[project.code]))
    row = RuntimeConfig.objects.filter(project=project).first()
    effective = runtime_for_spec(project_id=project.pk, spec=None)
    context = {
        "project": project,
        "fields": _fields(level_values(row), effective, posted, _by_field(errors)),
        "errors": errors,
        "may_change": may_change,
        "row": row,
        "history": _history("project", project.code),
        "level": "project",
        **_section(),
    }
    return render(request, "configuration/runtime.html", context, status=status)
