"""Writes of resource groups and throttling rules (SPEC 9, 12), for the API, the pages
and the admin alike.

Resource groups and global throttling rules (scoped to a resource group or a node type)
are a superuser's to change; a rule scoped to a project or to a project's datasource is
that project's admins' too. Every write goes through operation_run: the role check,
then the whole object validated (a change is merged into the stored object first, then
checked as a whole) and written in one transaction with its operation log entry. Bad
input raises ValidationFailed naming every wrong field and changes nothing; refusals
are logged.
"""

import contextlib
import math
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction

from apps.audit.services import operation_run
from apps.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.core.timeofday import parse_hhmm
from apps.instances.choices import FINISHED
from apps.instances.models import Instance
from apps.nodes.choices import NodeType
from apps.nodes.models import Node
from apps.projects.choices import Role
from apps.projects.models import Datasource, Project
from apps.projects.permissions import require_role
from apps.projects.selectors import role_of

from .choices import ThrottleScope
from .models import ResourceGroup, ThrottleRule

NAME_MAX = 100
GROUP_NAME_MAX = 64
# A bound on counts that keeps every value inside a 32-bit column.
CONCURRENCY_MAX = 100_000
MEMORY_MAX_MB = 2**31 - 1
CPU_MAX = 1_000_000.0

GROUP_DEFAULTS: dict[str, Any] = {
    "description": "",
    "max_concurrency": 10,
    "cpu_capacity": None,
    "memory_capacity_mb": None,
}
GROUP_FIELDS = ("name", *GROUP_DEFAULTS)
RESERVED_GROUP_NAMES = ("new",)

RULE_DEFAULTS: dict[str, Any] = {"window_start": None, "window_end": None, "enabled": True}
RULE_FIELDS = ("name", "scope_kind", "scope_value", "max_concurrency", *RULE_DEFAULTS)
# Scopes whose rules belong to a project (its admins change them).
PROJECT_SCOPES = (ThrottleScope.PROJECT, ThrottleScope.DATASOURCE)


def _error(field: str, message: str) -> dict:
    return {"field": field, "message": message}


def _raise_if_any(errors: list[dict], what: str) -> None:
    if errors:
        fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
        raise ValidationFailed(f"invalid {what}: {fields}", errors)


def _unknown_fields(data: dict, known) -> list[dict]:
    return [_error(key, "unknown field") for key in data if key not in known]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _whole(errors: list, data: dict, name: str, *, low: int, high: int, nullable=False) -> None:
    value = data.get(name)
    if value is None and nullable:
        return
    if not _is_int(value) or not low <= value <= high:
        empty = "; empty for none" if nullable else ""
        errors.append(_error(name, f"a whole number from {low} to {high}{empty}"))


@contextlib.contextmanager
def _name_taken_raises(message: str):
    """A unique name lost to a concurrent request answers like the check before it."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        raise ValidationFailed("invalid name", [_error("name", message)]) from exc


def _require_superuser(by, what: str) -> None:
    if not getattr(by, "is_superuser", False):
        raise PermissionDenied(f"only a superuser changes {what}")


# --- resource groups -------------------------------------------------------------------


def resource_group_data(group: ResourceGroup) -> dict:
    return {name: getattr(group, name) for name in GROUP_FIELDS}


def resource_group_errors(data: dict, *, group: ResourceGroup | None = None) -> list[dict]:
    """Every error of a whole group (every field of GROUP_FIELDS present in `data`)."""
    errors = []
    name = data.get("name")
    if group is not None:
        if name != group.name:
            errors.append(
                _error(
                    "name",
                    "a group's name is the queue its workers serve: it cannot be renamed; "
                    "create a new group instead",
                )
            )
    elif not isinstance(name, str) or not name.strip():
        errors.append(_error("name", "required"))
    else:
        try:
            validate_slug(name)
        except DjangoValidationError:
            errors.append(_error("name", "letters, digits, hyphens and underscores only"))
        else:
            if len(name) > GROUP_NAME_MAX:
                errors.append(_error("name", f"at most {GROUP_NAME_MAX} characters"))
            elif name in RESERVED_GROUP_NAMES:
                errors.append(_error("name", f"{name!r} is reserved (the pages use it)"))
            elif ResourceGroup.objects.filter(name=name).exists():
                errors.append(_error("name", f"a resource group {name!r} exists"))
    if not isinstance(data.get("description"), str):
        errors.append(_error("description", "text"))
    _whole(errors, data, "max_concurrency", low=1, high=CONCURRENCY_MAX)
    cpu = data.get("cpu_capacity")
    if cpu is not None and (
        isinstance(cpu, bool)
        or not isinstance(cpu, int | float)
        or not math.isfinite(cpu)
        or not 0 < cpu <= CPU_MAX
    ):
        errors.append(_error("cpu_capacity", "a number of cores above 0; empty for no limit"))
    _whole(errors, data, "memory_capacity_mb", low=1, high=MEMORY_MAX_MB, nullable=True)
    return errors


def _group_clean(data: dict) -> dict:
    cpu = data["cpu_capacity"]
    return {
        "name": data["name"].strip(),
        "description": data["description"],
        "max_concurrency": data["max_concurrency"],
        "cpu_capacity": float(cpu) if cpu is not None else None,
        "memory_capacity_mb": data["memory_capacity_mb"],
    }


def resource_group_create(*, data: dict, by, source: str) -> ResourceGroup:
    made: dict[str, ResourceGroup] = {}

    def change() -> dict:
        errors = _unknown_fields(data, GROUP_FIELDS)
        merged = {**GROUP_DEFAULTS, **data}
        errors += resource_group_errors(merged)
        _raise_if_any(errors, "resource group")
        clean = _group_clean(merged)
        group = ResourceGroup(**clean)
        with _name_taken_raises(f"a resource group {clean['name']!r} exists"):
            group.save()
        made["group"] = group
        return clean

    operation_run(
        by=by,
        source=source,
        action="resource_group.create",
        object_type="resource_group",
        object_id=lambda: made["group"].name,
        project=None,
        authorize=lambda: _require_superuser(by, "resource groups"),
        change=change,
    )
    return made["group"]


def resource_group_update(*, group: ResourceGroup, data: dict, by, source: str) -> ResourceGroup:
    """PATCH: the fields in `data` replace the stored ones, then the whole group is
    checked. A smaller limit or capacity takes effect for the next starts; what runs
    goes on."""

    def change() -> dict:
        current = ResourceGroup.objects.select_for_update().filter(pk=group.pk).first()
        if current is None:
            raise NotFound(f"resource group {group.name!r} not found")
        errors = _unknown_fields(data, GROUP_FIELDS)
        before = resource_group_data(current)
        merged = {**before, **data}
        errors += resource_group_errors(merged, group=current)
        _raise_if_any(errors, "resource group")
        clean = _group_clean(merged)
        changed = {k: v for k, v in clean.items() if before[k] != v}
        if changed:
            ResourceGroup.objects.filter(pk=current.pk).update(**changed)
        return {"changed": changed}

    operation_run(
        by=by,
        source=source,
        action="resource_group.update",
        object_type="resource_group",
        object_id=group.name,
        project=None,
        authorize=lambda: _require_superuser(by, "resource groups"),
        change=change,
    )
    group.refresh_from_db()
    return group


def resource_group_users(group: ResourceGroup) -> dict:
    """What keeps a group from being deleted: nodes that run in it, instances that ran
    or will run in it (their history names it), rules that throttle it."""
    return {
        "nodes": Node.objects.filter(resource_group=group).count(),
        "unfinished_instances": Instance.objects.filter(resource_group=group)
        .exclude(state__in=FINISHED)
        .count(),
        "instances": Instance.objects.filter(resource_group=group).count(),
        "throttle_rules": list(
            ThrottleRule.objects.filter(resource_group=group).values_list("name", flat=True)
        ),
    }


def resource_group_delete(*, group: ResourceGroup, by, source: str) -> None:
    """Refused (409) for the default group, and while nodes, instances or throttling
    rules use it; the message says how many."""

    def change() -> dict:
        current = ResourceGroup.objects.select_for_update().filter(pk=group.pk).first()
        if current is None:
            raise NotFound(f"resource group {group.name!r} not found")
        if current.name == ResourceGroup.DEFAULT:
            raise Conflict(
                "the default resource group cannot be deleted: nodes that name no group run in it"
            )
        users = resource_group_users(current)
        reasons = []
        if users["nodes"]:
            reasons.append(f"{users['nodes']} node(s) use it; move them to another group first")
        if users["instances"]:
            reasons.append(
                f"{users['instances']} instance(s) ran or will run in it "
                f"({users['unfinished_instances']} not finished)"
            )
        if users["throttle_rules"]:
            names = ", ".join(repr(n) for n in users["throttle_rules"])
            reasons.append(f"throttling rule(s) {names} name it")
        if reasons:
            raise Conflict(
                f"resource group {current.name!r} is in use: " + "; ".join(reasons),
                [_error("name", "; ".join(reasons))],
            )
        detail = resource_group_data(current)
        current.delete()
        return detail

    operation_run(
        by=by,
        source=source,
        action="resource_group.delete",
        object_type="resource_group",
        object_id=group.name,
        project=None,
        authorize=lambda: _require_superuser(by, "resource groups"),
        change=change,
    )


# --- throttling rules ------------------------------------------------------------------


def throttle_rule_data(rule: ThrottleRule) -> dict:
    """A rule as the API shows it (without its id)."""
    from .gates import scope_value

    return {
        "name": rule.name,
        "scope_kind": rule.scope_kind,
        "scope_value": scope_value(rule),
        "max_concurrency": rule.max_concurrency,
        "window_start": rule.window_start.strftime("%H:%M") if rule.window_start else None,
        "window_end": rule.window_end.strftime("%H:%M") if rule.window_end else None,
        "enabled": rule.enabled,
    }


def resolve_scope(kind, value) -> tuple[dict, list[dict]]:
    """The objects a scope names: ({"resource_group", "project", "datasource",
    "scope_value"}, errors). Unknown values are errors naming scope_value."""
    if kind not in ThrottleScope.values:
        return {}, [_error("scope_kind", f"one of {', '.join(ThrottleScope.values)}")]
    if not isinstance(value, str) or not value.strip():
        return {}, [_error("scope_value", "required")]
    value = value.strip()
    found: dict = {"resource_group": None, "project": None, "datasource": None}
    if kind == ThrottleScope.RESOURCE_GROUP:
        found["resource_group"] = ResourceGroup.objects.filter(name=value).first()
        if found["resource_group"] is None:
            return {}, [_error("scope_value", f"no resource group {value!r}")]
    elif kind == ThrottleScope.PROJECT:
        found["project"] = Project.objects.filter(code=value).first()
        if found["project"] is None:
            return {}, [_error("scope_value", f"no project {value!r}")]
    elif kind == ThrottleScope.NODE_TYPE:
        if value not in NodeType.values:
            return {}, [_error("scope_value", f"a node type: one of {', '.join(NodeType.values)}")]
    else:
        code, dot, name = value.partition(".")
        if not dot or not code or not name:
            return {}, [_error("scope_value", "project_code.datasource_name")]
        found["datasource"] = (
            Datasource.objects.select_related("project")
            .filter(project__code=code, name=name)
            .first()
        )
        if found["datasource"] is None:
            return {}, [_error("scope_value", f"no datasource {name!r} in project {code!r}")]
        found["project"] = found["datasource"].project
    found["scope_value"] = value
    return found, []


def throttle_rule_errors(data: dict, *, rule_id: int | None = None) -> tuple[dict, list[dict]]:
    """(the scope's objects, every error of a whole rule)."""
    errors = []
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append(_error("name", "required"))
    elif len(name.strip()) > NAME_MAX:
        errors.append(_error("name", f"at most {NAME_MAX} characters"))
    elif ThrottleRule.objects.filter(name=name.strip()).exclude(pk=rule_id).exists():
        errors.append(_error("name", f"a throttling rule {name.strip()!r} exists"))
    scope, scope_errors = resolve_scope(data.get("scope_kind"), data.get("scope_value"))
    errors += scope_errors
    _whole(errors, data, "max_concurrency", low=1, high=CONCURRENCY_MAX)
    given = []
    for end in ("window_start", "window_end"):
        value = data.get(end)
        if value is None:
            continue
        given.append(end)
        if parse_hhmm(value) is None:
            errors.append(_error(end, f"{value!r} is not a time HH:MM (00:00 to 23:59)"))
    if len(given) == 1:
        missing = ({"window_start", "window_end"} - set(given)).pop()
        errors.append(_error(missing, "a window needs both its start and its end (or neither)"))
    if not isinstance(data.get("enabled"), bool):
        errors.append(_error("enabled", "true or false"))
    return scope, errors


def require_rule_admin(by, project: Project | None) -> None:
    """A project's rule: its admin (or a superuser); a global rule: a superuser."""
    if project is not None:
        require_role(by, project, Role.ADMIN)
    else:
        _require_superuser(by, "global throttling rules (scoped to a resource group or node type)")


def _rule_write(rule: ThrottleRule, data: dict, scope: dict) -> dict:
    clean = {
        "name": data["name"].strip(),
        "scope_kind": data["scope_kind"],
        "scope_value": scope["scope_value"],
        "max_concurrency": data["max_concurrency"],
        "window_start": data["window_start"],
        "window_end": data["window_end"],
        "enabled": data["enabled"],
    }
    for name, value in clean.items():
        setattr(rule, name, parse_hhmm(value) if name.startswith("window_") and value else value)
    rule.resource_group = scope["resource_group"]
    rule.project = scope["project"]
    rule.datasource = scope["datasource"]
    with _name_taken_raises(f"a throttling rule {clean['name']!r} exists"):
        rule.save()
    return clean


def _authorize_scope(by, kind, value) -> None:
    """Before validation, who may write a rule of this scope: a project's admin the
    rules of their project (an unknown project answers like one they may not see)."""
    if kind not in ThrottleScope.values or kind not in PROJECT_SCOPES:
        require_rule_admin(by, None)
        return
    if getattr(by, "is_superuser", False):
        return  # validation names an unknown scope value
    code = value.strip().partition(".")[0] if isinstance(value, str) else ""
    project = Project.objects.filter(code=code).first()
    if project is None or role_of(by, project) is None:
        # A project one is not a member of answers like one that does not exist.
        raise ValidationFailed(
            "invalid throttle rule: scope_value",
            [_error("scope_value", f"no project {code!r} among yours")],
        )
    require_rule_admin(by, project)


def throttle_rule_create(*, data: dict, by, source: str) -> ThrottleRule:
    made: dict[str, ThrottleRule] = {}

    def change() -> dict:
        errors = _unknown_fields(data, RULE_FIELDS)
        merged = {**RULE_DEFAULTS, **data}
        scope, rule_errors = throttle_rule_errors(merged)
        errors += rule_errors
        _raise_if_any(errors, "throttle rule")
        rule = ThrottleRule()
        clean = _rule_write(rule, merged, scope)
        made["rule"] = rule
        return clean

    operation_run(
        by=by,
        source=source,
        action="throttle_rule.create",
        object_type="throttle_rule",
        object_id=lambda: made["rule"].pk,
        project=_scope_project(data),
        authorize=lambda: _authorize_scope(by, data.get("scope_kind"), data.get("scope_value")),
        change=change,
    )
    return made["rule"]


def _scope_project(data: dict) -> Project | None:
    """The project named by a project or datasource scope, for the operation log."""
    kind, value = data.get("scope_kind"), data.get("scope_value")
    if kind not in PROJECT_SCOPES or not isinstance(value, str):
        return None
    return Project.objects.filter(code=value.strip().partition(".")[0]).first()


def throttle_rule_update(*, rule: ThrottleRule, data: dict, by, source: str) -> ThrottleRule:
    """PATCH: the fields in `data` replace the stored ones, then the whole rule is
    checked. Moving a rule to another scope needs the right to write both."""
    project = rule.project if rule.scope_kind in PROJECT_SCOPES else None

    def authorize() -> None:
        require_rule_admin(by, project)
        if "scope_kind" in data or "scope_value" in data:
            merged = {**throttle_rule_data(rule), **data}
            _authorize_scope(by, merged.get("scope_kind"), merged.get("scope_value"))

    def change() -> dict:
        current = (
            ThrottleRule.objects.select_for_update(of=("self",))
            .select_related("resource_group", "project", "datasource")
            .filter(pk=rule.pk)
            .first()
        )
        if current is None:
            raise NotFound(f"throttle rule {rule.pk} not found")
        errors = _unknown_fields(data, RULE_FIELDS)
        before = throttle_rule_data(current)
        merged = {**before, **data}
        scope, rule_errors = throttle_rule_errors(merged, rule_id=current.pk)
        errors += rule_errors
        _raise_if_any(errors, "throttle rule")
        clean = _rule_write(current, merged, scope)
        return {"changed": {k: v for k, v in clean.items() if before.get(k) != v}}

    operation_run(
        by=by,
        source=source,
        action="throttle_rule.update",
        object_type="throttle_rule",
        object_id=rule.pk,
        project=project,
        authorize=authorize,
        change=change,
    )
    rule.refresh_from_db()
    return rule


def throttle_rule_delete(*, rule: ThrottleRule, by, source: str) -> None:
    """Removes the rule: what it held back may start at the next pass."""
    project = rule.project if rule.scope_kind in PROJECT_SCOPES else None

    def change() -> dict:
        detail = throttle_rule_data(rule)
        ThrottleRule.objects.filter(pk=rule.pk).delete()
        return detail

    operation_run(
        by=by,
        source=source,
        action="throttle_rule.delete",
        object_type="throttle_rule",
        object_id=rule.pk,
        project=project,
        authorize=lambda: require_rule_admin(by, project),
        change=change,
    )
