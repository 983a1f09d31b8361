"""Writes of baselines (SPEC 7.3, 12): create, change, delete. A baseline is its
project's configuration: writing needs the project's `admin` role (superusers are
admins everywhere); members read (selectors). Every write goes through operation_run:
the role check, then the whole baseline validated (a change is merged into the stored
baseline first) and written in one transaction with its operation log entry. Bad input
raises ValidationFailed naming every wrong field and changes nothing.

Disabling or deleting a baseline takes back the priority it lends at once."""

import contextlib
import re
from typing import Any

from django.db import IntegrityError, transaction

from apps.audit.services import operation_run
from apps.core.errors import NotFound, ValidationFailed
from apps.core.timeofday import parse_hhmm
from apps.instances.models import Instance
from apps.monitoring.rules import validate_recipients
from apps.monitoring.services import channel_errors
from apps.nodes.choices import Env
from apps.nodes.models import Node
from apps.projects.choices import Role
from apps.projects.models import Project
from apps.projects.permissions import require_role

from .choices import CycleKind
from .models import Baseline

NAME_MAX = 100
PRIORITY_RANGE = (1, 8)
CYCLE_MINUTES = {CycleKind.DAILY: 24 * 60, CycleKind.HOURLY: 60}
MINUTE = re.compile(r"^[0-5]\d$")
MAX_ID = 2**63 - 1

# What a baseline is made of besides its project, with the value an omitted field takes.
DEFAULTS: dict[str, Any] = {
    "cycle": CycleKind.DAILY.value,
    "margin_minutes": 30,
    "priority": 5,
    "recipients": {},
    "channels": [],
    "enabled": True,
}
FIELDS = ("name", "committed_time", "key_nodes", *DEFAULTS)


def _error(field: str, message: str) -> dict:
    return {"field": field, "message": message}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def baseline_data(baseline: Baseline) -> dict:
    """A baseline as the API shows it (without its project and id)."""
    data = {
        name: getattr(baseline, name) for name in FIELDS if name not in ("key_nodes", "channels")
    }
    data["key_nodes"] = sorted(node.pk for node in baseline.key_nodes.all())
    data["channels"] = sorted(channel.pk for channel in baseline.channels.all())
    return data


def _key_node_errors(project: Project, key_nodes) -> list[dict]:
    if (
        not isinstance(key_nodes, list)
        or not key_nodes
        or not all(_is_int(i) and 0 < i <= MAX_ID for i in key_nodes)
    ):
        return [_error("key_nodes", "a non-empty list of node ids")]
    # Another project's node is answered like a missing one: nothing is told about it.
    found = {node.pk: node for node in Node.objects.filter(pk__in=key_nodes, project=project)}
    errors = []
    for node_id in dict.fromkeys(key_nodes):
        node = found.get(node_id)
        if node is None:
            errors.append(_error("key_nodes", f"no node {node_id} in project {project.code}"))
        elif node.env != Env.PROD:
            errors.append(
                _error(
                    "key_nodes",
                    f"node {node_id} ({node.name}) is a dev node: a baseline watches "
                    "production runs",
                )
            )
    return errors


def _committed_time_errors(cycle, value) -> list[dict]:
    if cycle == CycleKind.HOURLY:
        if not (isinstance(value, str) and MINUTE.match(value)):
            return [
                _error(
                    "committed_time",
                    f"{value!r} is not a minute MM (00 to 59): the baseline is hourly",
                )
            ]
        return []
    if parse_hhmm(value) is None:
        return [_error("committed_time", f"{value!r} is not a time HH:MM (00:00 to 23:59)")]
    return []


def baseline_errors(project: Project, data: dict, *, baseline_id: int | None = None) -> list[dict]:
    """Every error of a whole baseline (every field of FIELDS present in `data`)."""
    errors = []
    name = data.get("name")
    if not (isinstance(name, str) and name.strip()):
        errors.append(_error("name", "a name is required"))
    elif len(name.strip()) > NAME_MAX:
        errors.append(_error("name", f"at most {NAME_MAX} characters"))
    elif (
        Baseline.objects.filter(project=project, name=name.strip()).exclude(pk=baseline_id).exists()
    ):
        errors.append(_error("name", f"project {project.code} has a baseline {name.strip()!r}"))
    cycle = data.get("cycle")
    if cycle not in CycleKind.values:
        errors.append(_error("cycle", f"one of {', '.join(CycleKind.values)}"))
    else:
        errors += _committed_time_errors(cycle, data.get("committed_time"))
    margin = data.get("margin_minutes")
    if not _is_int(margin) or margin < 0:
        errors.append(_error("margin_minutes", "a whole number of minutes, 0 or more"))
    elif cycle in CYCLE_MINUTES and margin >= CYCLE_MINUTES[cycle]:
        errors.append(
            _error(
                "margin_minutes",
                f"less than the cycle: under {CYCLE_MINUTES[cycle]} minutes for a {cycle} baseline",
            )
        )
    priority = data.get("priority")
    low, high = PRIORITY_RANGE
    if not _is_int(priority) or not low <= priority <= high:
        errors.append(_error("priority", f"a whole number from {low} (lowest) to {high} (highest)"))
    errors += _key_node_errors(project, data.get("key_nodes"))
    errors += validate_recipients(data.get("recipients"))
    errors += channel_errors(project, data.get("channels"))
    if not isinstance(data.get("enabled"), bool):
        errors.append(_error("enabled", "true or false"))
    return errors


def _unknown_fields(data: dict, fixed: str = "") -> list[dict]:
    errors = []
    for key in data:
        if key == fixed and fixed:
            errors.append(_error(key, "cannot be changed; create a new baseline instead"))
        elif key not in FIELDS:
            errors.append(_error(key, "unknown field"))
    return errors


def _raise_if_any(errors: list[dict]) -> None:
    if errors:
        fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
        raise ValidationFailed(f"invalid baseline: {fields}", errors)


def _recipients(value) -> dict:
    value = value or {}
    return {
        "owner": bool(value.get("owner", False)),
        "users": list(value.get("users") or []),
        "groups": list(value.get("groups") or []),
        "on_call": value.get("on_call"),
    }


def _clean(data: dict) -> dict:
    return {
        "name": data["name"].strip(),
        "cycle": data["cycle"],
        "committed_time": data["committed_time"],
        "margin_minutes": data["margin_minutes"],
        "priority": data["priority"],
        "key_nodes": sorted(dict.fromkeys(data["key_nodes"])),
        "recipients": _recipients(data["recipients"]),
        "channels": sorted(dict.fromkeys(data["channels"])),
        "enabled": data["enabled"],
    }


@contextlib.contextmanager
def _name_taken_raises(message: str):
    """A unique name lost to a concurrent request answers like the check before it."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        raise ValidationFailed("invalid name", [_error("name", message)]) from exc


def _write(baseline: Baseline, clean: dict) -> None:
    for name, value in clean.items():
        if name not in ("key_nodes", "channels"):
            setattr(baseline, name, value)
    with _name_taken_raises(f"project {baseline.project.code} has a baseline {clean['name']!r}"):
        baseline.save()
    baseline.key_nodes.set(clean["key_nodes"])
    baseline.channels.set(clean["channels"])


def lending_take_back(baseline: Baseline) -> int:
    """The instances the baseline lends its priority to get their own back."""
    return Instance.objects.filter(lent_by=baseline).update(lent_priority=None, lent_by=None)


def _require_admin(by, project: Project) -> None:
    require_role(by, project, Role.ADMIN)


def baseline_create(*, project: Project, data: dict, by, source: str) -> Baseline:
    """A new baseline of `project` from `data` (FIELDS; omitted ones take DEFAULTS)."""
    made: dict[str, Baseline] = {}

    def change() -> dict:
        errors = _unknown_fields(data)
        merged = {**DEFAULTS, **data}
        errors += baseline_errors(project, merged)
        _raise_if_any(errors)
        clean = _clean(merged)
        baseline = Baseline(project=project)
        _write(baseline, clean)
        made["baseline"] = baseline
        return clean

    operation_run(
        by=by,
        source=source,
        action="baseline.create",
        object_type="baseline",
        object_id=lambda: made["baseline"].pk,
        project=project,
        authorize=lambda: _require_admin(by, project),
        change=change,
    )
    return made["baseline"]


def baseline_update(*, baseline: Baseline, data: dict, by, source: str) -> Baseline:
    """PATCH: the fields in `data` replace the stored ones, then the whole baseline is
    checked. `project` may be sent only unchanged (a baseline stays in its project)."""
    project = baseline.project

    def change() -> dict:
        current = Baseline.objects.select_for_update().filter(pk=baseline.pk).first()
        if current is None:
            raise NotFound(f"baseline {baseline.pk} not found")
        fields = dict(data)
        if fields.get("project") in (project.code, project):
            fields.pop("project")
        errors = _unknown_fields(fields, fixed="project")
        before = baseline_data(current)
        merged = {**before, **fields}
        errors += baseline_errors(project, merged, baseline_id=baseline.pk)
        _raise_if_any(errors)
        clean = _clean(merged)
        changed = {name: value for name, value in clean.items() if before.get(name) != value}
        if changed:
            current.project = project
            _write(current, clean)
            if not clean["enabled"]:
                lending_take_back(current)
        return {"changed": changed}

    operation_run(
        by=by,
        source=source,
        action="baseline.update",
        object_type="baseline",
        object_id=baseline.pk,
        project=project,
        authorize=lambda: _require_admin(by, project),
        change=change,
    )
    baseline.refresh_from_db()
    return baseline


def baseline_delete(*, baseline: Baseline, by, source: str) -> None:
    """Removes the baseline and its cycles' history; the priority it lends is taken back.
    Its alerts stay (they keep the baseline's name)."""
    project = baseline.project

    def change() -> dict:
        detail = {"name": baseline.name}
        lending_take_back(baseline)
        Baseline.objects.filter(pk=baseline.pk).delete()
        return detail

    operation_run(
        by=by,
        source=source,
        action="baseline.delete",
        object_type="baseline",
        object_id=baseline.pk,
        project=project,
        authorize=lambda: _require_admin(by, project),
        change=change,
    )
