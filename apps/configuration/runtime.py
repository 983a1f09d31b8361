"""Runtime configuration (SPEC 9): the ONE place that answers an instance's effective
timeout, timeout action, retries, retry interval and rerun policy, each with the level it
comes from. The nearest level that sets a value wins: the node (its NodeSpec, in the
version the instance runs), then its project's row, then the global row; a value no row
sets is the built-in default, reported as the global level's (it is what the global
level says until someone changes it).

The worker reads it when an attempt starts and keeps it on the attempt (an attempt uses
the settings in force when it starts: its retries and interval are those, whatever
changes while it runs); the rerun operation and its buttons read `rerun_policy` here.
"""

import datetime
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q

from apps.nodes.specs import RUNTIME_KEYS, NodeSpec

from .choices import RerunPolicy, RuntimeLevel, TimeoutAction
from .models import RuntimeConfig

MAX_TIMEOUT_SECONDS = 31 * 86400
MAX_RETRIES = 100
MAX_RETRY_INTERVAL_SECONDS = 86400

# What the global level says until someone changes it: opscenter's behaviour before
# runtime configuration existed (an hour's timeout that fails the attempt, no retry).
BUILT_IN: dict[str, Any] = {
    "timeout_seconds": 3600,
    "timeout_action": TimeoutAction.FAIL.value,
    "retries": 0,
    "retry_interval_seconds": 60,
    "rerun_policy": RerunPolicy.ALWAYS.value,
}
NUMBER_LIMITS = {
    "timeout_seconds": (0, MAX_TIMEOUT_SECONDS),
    "retries": (0, MAX_RETRIES),
    "retry_interval_seconds": (0, MAX_RETRY_INTERVAL_SECONDS),
}
CHOICES = {
    "timeout_action": TimeoutAction.values,
    "rerun_policy": RerunPolicy.values,
}
assert set(NUMBER_LIMITS) | set(CHOICES) == set(RUNTIME_KEYS) == set(BUILT_IN)


def runtime_value_error(key: str, value: Any) -> str | None:
    """Why `value` cannot be the runtime setting `key` (None when it can). The same
    check for a NodeSpec, a project's or the global row, the API and the forms."""
    if key in NUMBER_LIMITS:
        low, high = NUMBER_LIMITS[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            unit = "" if key == "retries" else " seconds"
            return f"must be a whole number from {low} to {high}{unit}, not {value!r}"
        return None
    if key in CHOICES:
        if not isinstance(value, str) or value not in CHOICES[key]:
            return f"must be one of {', '.join(CHOICES[key])}, not {value!r}"
        return None
    return f"unknown setting; runtime settings are: {', '.join(RUNTIME_KEYS)}"


@dataclass(frozen=True)
class Runtime:
    """The effective runtime settings, each with its level (`sources`)."""

    timeout_seconds: int  # 0: no timeout
    timeout_action: str
    retries: int
    retry_interval_seconds: int
    rerun_policy: str
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def timeout(self) -> int | None:
        """Seconds before the timeout action; None when there is no timeout."""
        return self.timeout_seconds or None

    def source(self, key: str) -> str:
        return self.sources.get(key, RuntimeLevel.GLOBAL)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """`{"timeout_seconds": {"value": 3600, "source": "project"}, ...}`: the API's
        answer, and what an attempt keeps of the settings it started with."""
        return {
            key: {"value": getattr(self, key), "source": self.source(key)} for key in RUNTIME_KEYS
        }

    def rows(self) -> list[dict[str, Any]]:
        """One row per setting, for pages: key, value, source."""
        return [{"key": key, **item} for key, item in self.as_dict().items()]

    @classmethod
    def from_dict(cls, data: dict | None) -> "Runtime | None":
        """The settings an attempt kept (as_dict); None for an attempt that kept none."""
        if not data:
            return None
        values, sources = {}, {}
        for key in RUNTIME_KEYS:
            item = data.get(key) or {}
            values[key] = item.get("value", BUILT_IN[key])
            sources[key] = item.get("source", RuntimeLevel.GLOBAL)
        return cls(**values, sources=sources)

    def timeout_alert_at(self, started_at: datetime.datetime) -> datetime.datetime | None:
        """With `alert_only`, when an attempt started at `started_at` passes its timeout."""
        if self.timeout_action != TimeoutAction.ALERT_ONLY or not self.timeout:
            return None
        return started_at + datetime.timedelta(seconds=self.timeout)

    def rerun_refusal(self, *, state: str) -> str:
        """Why a manual rerun of an instance in `state` is refused by the rerun policy
        ("" when it is allowed)."""
        where = f"rerun_policy {self.rerun_policy} (set at the {self.source('rerun_policy')} level)"
        if self.rerun_policy == RerunPolicy.NEVER:
            return f"{where}: this node is never rerun by hand"
        if self.rerun_policy == RerunPolicy.FAILED_ONLY and state == "succeeded":
            return f"{where}: a succeeded instance is not rerun by hand"
        return ""


def resolve(*, node: dict[str, Any], project: dict[str, Any], global_: dict[str, Any]) -> Runtime:
    """Each setting from the nearest level that sets it (a pure function of the levels'
    given values)."""
    values, sources = {}, {}
    for key in RUNTIME_KEYS:
        for level, given in (
            (RuntimeLevel.NODE, node),
            (RuntimeLevel.PROJECT, project),
            (RuntimeLevel.GLOBAL, global_),
        ):
            if given.get(key) is not None:
                values[key], sources[key] = given[key], level.value
                break
        else:
            values[key], sources[key] = BUILT_IN[key], RuntimeLevel.GLOBAL.value
    return Runtime(**values, sources=sources)


def level_values(row: RuntimeConfig | None) -> dict[str, Any]:
    """What one level's row sets (its non-empty fields)."""
    if row is None:
        return {}
    values = {key: getattr(row, key) for key in RUNTIME_KEYS}
    return {key: value for key, value in values.items() if value not in (None, "")}


def levels_for(project_ids: set[int]) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """The global level's values and each project's, in one query."""
    found = RuntimeConfig.objects.filter(
        Q(project__isnull=True) | Q(project_id__in=sorted(project_ids))
    )
    global_: dict[str, Any] = {}
    projects: dict[int, dict[str, Any]] = {}
    for row in found:
        if row.project_id is None:
            global_ = level_values(row)
        else:
            projects[row.project_id] = level_values(row)
    return global_, projects


def runtime_for_spec(*, project_id: int | None, spec: dict | None) -> Runtime:
    """The settings for a node version's spec in a project (or for the project alone
    when `spec` is None; for the global level alone when both are None)."""
    global_, projects = levels_for({project_id} if project_id else set())
    node = NodeSpec.from_spec(spec).runtime_given() if spec else {}
    return resolve(node=node, project=projects.get(project_id, {}), global_=global_)


def runtime_for(instance) -> Runtime:
    """The settings in force now for `instance`: its version's NodeSpec, its project's
    and the global level."""
    return runtime_for_spec(project_id=instance.project_id, spec=instance.version.spec)


def runtime_for_node(node) -> Runtime:
    """The settings in force for the node's current version (what its next instances
    get)."""
    spec = node.current_version.spec if node.current_version_id else None
    return runtime_for_spec(project_id=node.project_id, spec=spec or {})


def runtime_of_attempt(attempt, *, instance=None) -> Runtime:
    """The settings an attempt started with (kept on it); for an attempt that kept none
    (started before runtime configuration), those in force now."""
    kept = Runtime.from_dict(attempt.runtime)
    if kept is not None:
        return kept
    from apps.instances.models import Instance

    instance = instance or Instance.objects.select_related("version").get(pk=attempt.instance_id)
    return runtime_for(instance)


def rerun_refusals(rows: list[tuple[int, str, int, str | None]]) -> dict[int, str]:
    """Why a manual rerun of each instance is refused by its rerun policy, for rows of
    (instance id, state, project id, the node's own rerun_policy or None), resolved with
    one query whatever the number of rows. Instances rerun may go are left out."""
    global_, projects = levels_for({project_id for _, _, project_id, _ in rows})
    refused = {}
    for instance_id, state, project_id, own in rows:
        runtime = resolve(
            node={"rerun_policy": own} if own else {},
            project=projects.get(project_id, {}),
            global_=global_,
        )
        reason = runtime.rerun_refusal(state=state)
        if reason:
            refused[instance_id] = reason
    return refused
