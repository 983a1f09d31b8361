"""Writes on runtime configuration: the global level (superusers) and a project's level
(its admins), each change in the operation log with the values before and after."""

from typing import Any

from apps.audit.services import operation_run
from apps.core.errors import PermissionDenied, ValidationFailed
from apps.nodes.specs import RUNTIME_KEYS
from apps.projects.choices import Role
from apps.projects.models import Project
from apps.projects.permissions import require_role

from .choices import RuntimeLevel
from .models import RuntimeConfig
from .runtime import level_values, runtime_value_error

LEVELS = (RuntimeLevel.GLOBAL.value, RuntimeLevel.PROJECT.value)


def runtime_values_errors(values: Any, *, prefix: str = "values.") -> list[dict]:
    """Every wrong entry of `values` ({setting: value or None}), each naming its field."""
    if not isinstance(values, dict):
        return [{"field": prefix.rstrip("."), "message": "must be an object of settings"}]
    errors = []
    for key, value in values.items():
        if key not in RUNTIME_KEYS:
            errors.append(
                {
                    "field": f"{prefix}{key}",
                    "message": f"unknown setting; runtime settings are: {', '.join(RUNTIME_KEYS)}",
                }
            )
        elif value is not None:
            message = runtime_value_error(key, value)
            if message:
                errors.append({"field": f"{prefix}{key}", "message": message})
    return errors


def _authorize(by, project: Project | None) -> None:
    if project is None:
        if not getattr(by, "is_superuser", False):
            raise PermissionDenied("only a superuser changes the global runtime configuration")
        return
    require_role(by, project, Role.ADMIN)


def runtime_config_update(
    *,
    project: Project | None,
    values: Any,
    by,
    source: str,
    replace: bool = False,
    prefix: str = "values.",
) -> RuntimeConfig:
    """Set the runtime settings of the global level (`project` None) or of `project`:
    each key of `values` sets that setting, `None` removes the level's own value (the
    next level's applies again). With `replace` (a form that shows every setting), the
    keys not in `values` are removed too. Wrong input changes nothing and names each
    wrong field."""

    def authorize() -> None:
        _authorize(by, project)
        errors = runtime_values_errors(values, prefix=prefix)
        if errors:
            raise ValidationFailed("invalid runtime configuration", errors)

    def change() -> dict:
        # Made empty first when missing (get_or_create rides out two makers at once),
        # then locked: two changes of one level apply one after the other.
        RuntimeConfig.objects.get_or_create(project=project)
        row = _level_rows(project).select_for_update().get()
        before = level_values(row)
        for key in RUNTIME_KEYS:
            if key in values:
                value = values[key]
            elif replace:
                value = None
            else:
                continue
            setattr(row, key, _stored(key, value))
        row.updated_by = by if getattr(by, "is_authenticated", False) else None
        row.save()
        after = level_values(row)
        return {
            "level": RuntimeLevel.PROJECT.value if project else RuntimeLevel.GLOBAL.value,
            "before": before,
            "after": after,
            "changed": sorted(k for k in RUNTIME_KEYS if before.get(k) != after.get(k)),
        }

    operation_run(
        by=by,
        source=source,
        action="runtime_config",
        object_type="project" if project else "global",
        object_id=project.code if project else "global",
        project=project,
        authorize=authorize,
        change=change,
    )
    return _level_rows(project).get()


def _level_rows(project: Project | None):
    if project is None:
        return RuntimeConfig.objects.filter(project__isnull=True)
    return RuntimeConfig.objects.filter(project=project)


def _stored(key: str, value: Any) -> Any:
    """A setting as its column keeps it: text columns keep "" for "not set here"."""
    if key in ("timeout_action", "rerun_policy"):
        return value or ""
    return value
