"""Monitoring rules (SPEC 7.1): their JSON shapes checked field by field, which nodes a
rule watches, and the clock rules (mute windows, trigger deadlines). Pure functions
besides the lookups that validation needs."""

import datetime
from collections.abc import Callable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from apps.core.timeofday import in_window, parse_hhmm
from apps.nodes.models import Node

from .choices import ScopeKind, Severity, TriggerType
from .models import MonitorRule, OnCallSchedule

# Scope kinds that other apps provide (the baselines app adds "baseline"): kind ->
# (validate(project, scope) -> errors, node ids(rule) -> set[int]).
SCOPE_PROVIDERS: dict[str, tuple[Callable, Callable]] = {}


def _error(field: str, message: str) -> dict:
    return {"field": field, "message": message}


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def validate_scope(project, scope) -> list[dict]:
    if not isinstance(scope, dict):
        return [_error("scope", "an object with a kind")]
    kind = scope.get("kind")
    if kind == ScopeKind.PROJECT:
        return []
    if kind == ScopeKind.NODES:
        ids = scope.get("nodes")
        if not isinstance(ids, list) or not ids or not all(_is_id(i) for i in ids):
            return [_error("scope.nodes", "a non-empty list of node ids")]
        # An id beyond a 64-bit column names no node (and SQLite refuses to compare it).
        asked = [i for i in ids if i < 2**63]
        found = set(Node.objects.filter(pk__in=asked, project=project).values_list("pk", flat=True))
        missing = [i for i in ids if i not in found]
        if missing:
            return [
                _error("scope.nodes", f"no node {i} in project {project.code}") for i in missing
            ]
        return []
    if kind == ScopeKind.OWNER:
        owner = scope.get("owner")
        if (
            not isinstance(owner, str)
            or not get_user_model().objects.filter(username=owner).exists()
        ):
            return [_error("scope.owner", f"no user {owner!r}")]
        return []
    if kind in SCOPE_PROVIDERS:
        return SCOPE_PROVIDERS[kind][0](project, scope)
    if kind == ScopeKind.BASELINE:
        return [_error("scope.baseline", f"no baseline {scope.get('baseline')!r}")]
    return [_error("scope.kind", f"unknown scope kind {kind!r}: one of {ScopeKind.values}")]


def validate_triggers(triggers) -> list[dict]:
    if not isinstance(triggers, list) or not triggers:
        return [_error("triggers", "a non-empty list of triggers")]
    errors = []
    for n, trigger in enumerate(triggers):
        where = f"triggers.{n}"
        kind = trigger.get("type") if isinstance(trigger, dict) else None
        if kind not in TriggerType.values:
            errors.append(
                _error(f"{where}.type", f"unknown trigger {kind!r}: one of {TriggerType.values}")
            )
            continue
        if kind == TriggerType.RUNNING_LONGER:
            minutes = trigger.get("minutes")
            if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < 1:
                errors.append(_error(f"{where}.minutes", "a whole number of minutes, at least 1"))
        elif kind in (TriggerType.UNFINISHED_BY, TriggerType.NOT_STARTED_BY):
            if parse_hhmm(trigger.get("time")) is None:
                errors.append(_error(f"{where}.time", "a time HH:MM (00:00 to 23:59)"))
        elif kind == TriggerType.SLOWER_THAN_USUAL:
            factor = trigger.get("factor")
            if not isinstance(factor, int | float) or isinstance(factor, bool) or factor <= 1:
                errors.append(_error(f"{where}.factor", "a number greater than 1"))
    return errors


def validate_recipients(recipients, field: str = "recipients") -> list[dict]:
    if not isinstance(recipients, dict):
        return [_error(field, "an object {owner, users, groups, on_call}")]
    errors = []
    unknown = set(recipients) - {"owner", "users", "groups", "on_call"}
    if unknown:
        errors.append(_error(field, f"unknown keys {sorted(unknown)}"))
    if not isinstance(recipients.get("owner", False), bool):
        errors.append(_error(f"{field}.owner", "true or false"))
    users = recipients.get("users") or []
    if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
        errors.append(_error(f"{field}.users", "a list of usernames"))
    else:
        known = set(
            get_user_model().objects.filter(username__in=users).values_list("username", flat=True)
        )
        errors += [_error(f"{field}.users", f"no user {u!r}") for u in users if u not in known]
    groups = recipients.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        errors.append(_error(f"{field}.groups", "a list of group names"))
    else:
        known = set(Group.objects.filter(name__in=groups).values_list("name", flat=True))
        errors += [_error(f"{field}.groups", f"no group {g!r}") for g in groups if g not in known]
    on_call = recipients.get("on_call")
    if on_call is not None and not (
        isinstance(on_call, str) and OnCallSchedule.objects.filter(name=on_call).exists()
    ):
        errors.append(_error(f"{field}.on_call", f"no on-call schedule {on_call!r}"))
    return errors


def validate_mute_windows(windows) -> list[dict]:
    if not isinstance(windows, list):
        return [_error("mute_windows", "a list of {start, end}")]
    errors = []
    for n, window in enumerate(windows):
        for end in ("start", "end"):
            value = window.get(end) if isinstance(window, dict) else None
            if parse_hhmm(value) is None:
                errors.append(_error(f"mute_windows.{n}.{end}", f"{value!r} is not a time HH:MM"))
    return errors


def validate_rule(project, data: dict) -> list[dict]:
    """Every error of a rule's fields (the full rule, after a change is applied)."""
    errors = []
    if not (isinstance(data.get("name"), str) and data["name"].strip()):
        errors.append(_error("name", "a name is required"))
    errors += validate_scope(project, data.get("scope"))
    errors += validate_triggers(data.get("triggers"))
    if data.get("severity") not in ("", None, *Severity.values):
        errors.append(_error("severity", f"one of {Severity.values}"))
    errors += validate_recipients(data.get("recipients") or {})
    errors += validate_mute_windows(data.get("mute_windows") or [])
    dedup = data.get("dedup_minutes", 30)
    if not isinstance(dedup, int) or isinstance(dedup, bool) or dedup < 0:
        errors.append(_error("dedup_minutes", "a whole number of minutes, 0 or more"))
    after = data.get("escalate_after_minutes")
    if after is not None and (not isinstance(after, int) or isinstance(after, bool) or after < 1):
        errors.append(_error("escalate_after_minutes", "a whole number of minutes, at least 1"))
    if after is not None and data.get("escalate_to"):
        errors += validate_recipients(data["escalate_to"], "escalate_to")
    elif after is not None:
        errors.append(_error("escalate_to", "whom to escalate to"))
    return errors


# --- what a rule watches ---------------------------------------------------------------


def rule_node_ids(rule: MonitorRule) -> set[int] | None:
    """The node ids a rule watches, or None for "every node of its project"."""
    kind = rule.scope.get("kind")
    if kind == ScopeKind.PROJECT:
        return None
    if kind == ScopeKind.NODES:
        return set(rule.scope.get("nodes") or [])
    if kind == ScopeKind.OWNER:
        return set(
            Node.objects.filter(
                project=rule.project_id, owner__username=rule.scope.get("owner")
            ).values_list("pk", flat=True)
        )
    if kind in SCOPE_PROVIDERS:
        return set(SCOPE_PROVIDERS[kind][1](rule))
    return set()


def severity_of(rule: MonitorRule, trigger: str) -> str:
    from .choices import DEFAULT_SEVERITY

    return rule.severity or DEFAULT_SEVERITY[trigger]


# --- the clock -------------------------------------------------------------------------


def muted(rule: MonitorRule, now: datetime.datetime, tz) -> bool:
    local = now.astimezone(tz).time()
    return any(
        in_window(local, parse_hhmm(w["start"]), parse_hhmm(w["end"]))
        for w in rule.mute_windows or []
    )


def deadline(day: datetime.date, hhmm: str, tz) -> datetime.datetime:
    """HH:MM of `day` in `tz`, as an aware datetime."""
    return datetime.datetime.combine(day, parse_hhmm(hhmm), tzinfo=tz)
