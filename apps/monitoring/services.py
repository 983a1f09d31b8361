"""Writes of monitoring configuration — rules (SPEC 7.1) and on-call schedules (7.2) —
and operators' acknowledge/resolve of many alerts at once.

A project's rules and schedules are its configuration: changing them needs the project's
`admin` role; a global schedule (no project) is a superuser's. Members read them (see
rule_selectors). Every write goes through operation_run: the role check, then the whole
object validated (a change is merged into the stored object first, then checked as a
whole) and written in one transaction with its operation log entry. Bad input raises
ValidationFailed naming every wrong field and changes nothing; a refusal is logged.
"""

import contextlib
import datetime
import zoneinfo
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from apps.audit.services import operation_run
from apps.core.errors import Conflict, NotFound, OpscenterError, PermissionDenied, ValidationFailed
from apps.instances.operations import BatchItem, batch_ids
from apps.notifications.models import Channel
from apps.projects.choices import Role
from apps.projects.models import Project
from apps.projects.permissions import require_role

from . import rules
from .alert_selectors import MAX_ID, alerts_visible_to
from .alerts import ALERT_ACTIONS
from .choices import OnCallPeriod, TriggerType
from .models import Alert, MonitorRule, OnCallSchedule

NAME_MAX = 100
# Minutes a rule counts (dedup interval, escalation delay, running_longer): up to 30 days.
MINUTES_MAX = 30 * 24 * 60

# What a rule is made of besides its project, with the value an omitted field takes.
RULE_DEFAULTS: dict[str, Any] = {
    "severity": "",
    "recipients": {},
    "channels": [],
    "dedup_minutes": 30,
    "mute_windows": [],
    "escalate_after_minutes": None,
    "escalate_to": {},
    "enabled": True,
}
RULE_FIELDS = ("name", "scope", "triggers", *RULE_DEFAULTS)
# Each trigger type's parameter (SPEC 7.1); the others take none.
TRIGGER_PARAMETER = {
    TriggerType.RUNNING_LONGER: "minutes",
    TriggerType.UNFINISHED_BY: "time",
    TriggerType.NOT_STARTED_BY: "time",
    TriggerType.SLOWER_THAN_USUAL: "factor",
}
ON_CALL_FIELDS = ("name", "users", "period", "handover", "start_date", "timezone")


def _error(field: str, message: str) -> dict:
    return {"field": field, "message": message}


def _raise_if_any(errors: list[dict], what: str) -> None:
    if errors:
        fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
        raise ValidationFailed(f"invalid {what}: {fields}", errors)


@contextlib.contextmanager
def _name_taken_raises(message: str):
    """A unique name lost to a concurrent request answers like the check before it."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        raise ValidationFailed("invalid name", [_error("name", message)]) from exc


def _unknown_fields(data: dict, known: Iterable[str], fixed: str) -> list[dict]:
    errors = []
    for key in data:
        if key == fixed:
            errors.append(_error(key, "cannot be changed; create a new one instead"))
        elif key not in known:
            errors.append(_error(key, "unknown field"))
    return errors


def _require_admin(by, project: Project | None, what: str) -> None:
    if project is not None:
        require_role(by, project, Role.ADMIN)
    elif not getattr(by, "is_superuser", False):
        raise PermissionDenied(f"only a superuser changes a global {what}")


# --- monitoring rules --------------------------------------------------------------------


def monitor_rule_data(rule: MonitorRule) -> dict:
    """A rule as the API shows it (without its project and id)."""
    data = {name: getattr(rule, name) for name in RULE_FIELDS if name != "channels"}
    data["channels"] = sorted(channel.pk for channel in rule.channels.all())
    return data


def _trigger_errors(triggers) -> list[dict]:
    """What rules.validate_triggers leaves: unknown keys, a parameter its type does not
    take, the same type twice (alerts are keyed by rule, trigger type and target)."""
    if not isinstance(triggers, list):
        return []
    errors, seen = [], set()
    for n, trigger in enumerate(triggers):
        if not isinstance(trigger, dict):
            continue
        kind = trigger.get("type")
        for key in trigger:
            if key == "type":
                continue
            if key not in TRIGGER_PARAMETER.values():
                errors.append(_error(f"triggers.{n}.{key}", "unknown key"))
            elif kind in TriggerType.values and TRIGGER_PARAMETER.get(kind) != key:
                errors.append(_error(f"triggers.{n}.{key}", f"{kind} takes no {key}"))
        minutes = trigger.get("minutes")
        if isinstance(minutes, int) and minutes > MINUTES_MAX:
            errors.append(_error(f"triggers.{n}.minutes", f"at most {MINUTES_MAX} (30 days)"))
        factor = trigger.get("factor")
        if isinstance(factor, int | float) and not factor < 1000:
            errors.append(_error(f"triggers.{n}.factor", "less than 1000"))
        if kind in seen:
            errors.append(_error(f"triggers.{n}.type", f"{kind} is already a trigger of the rule"))
        if isinstance(kind, str):
            seen.add(kind)
    return errors


def _mute_window_errors(windows) -> list[dict]:
    if not isinstance(windows, list):
        return []
    return [
        _error(f"mute_windows.{n}.{key}", "unknown key: a window has start and end")
        for n, window in enumerate(windows)
        if isinstance(window, dict)
        for key in window
        if key not in ("start", "end")
    ]


def _on_call_errors(project: Project, recipients, field: str) -> list[dict]:
    """A rule may name a global schedule or one of its own project."""
    name = recipients.get("on_call") if isinstance(recipients, dict) else None
    if not isinstance(name, str):
        return []
    owner = OnCallSchedule.objects.filter(name=name).values_list("project_id", flat=True).first()
    if owner is not None and owner != project.pk:
        return [_error(f"{field}.on_call", f"on-call schedule {name!r} belongs to another project")]
    return []


def channel_errors(project: Project, channels) -> list[dict]:
    """What is wrong with `channels` as a project's object's channel ids: each must exist and
    be global or the project's own (monitoring rules, baselines)."""
    if not isinstance(channels, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in channels
    ):
        return [_error("channels", "a list of channel ids")]
    asked = [i for i in channels if 0 < i <= MAX_ID]
    usable = dict(Channel.objects.filter(pk__in=asked).values_list("pk", "project_id").iterator())
    errors = []
    for channel_id in dict.fromkeys(channels):
        if channel_id not in usable:
            errors.append(_error("channels", f"no channel {channel_id}"))
        elif usable[channel_id] not in (None, project.pk):
            errors.append(_error("channels", f"channel {channel_id} belongs to another project"))
    return errors


def monitor_rule_errors(project: Project, data: dict, *, rule_id: int | None = None) -> list[dict]:
    """Every error of a whole rule (every field of RULE_FIELDS present in `data`)."""
    errors = rules.validate_rule(project, data)
    name = data.get("name")
    if isinstance(name, str) and name.strip():
        if len(name.strip()) > NAME_MAX:
            errors.append(_error("name", f"at most {NAME_MAX} characters"))
        elif (
            MonitorRule.objects.filter(project=project, name=name.strip())
            .exclude(pk=rule_id)
            .exists()
        ):
            errors.append(_error("name", f"project {project.code} has a rule {name.strip()!r}"))
    errors += _trigger_errors(data.get("triggers"))
    errors += _mute_window_errors(data.get("mute_windows"))
    errors += _on_call_errors(project, data.get("recipients"), "recipients")
    escalate_to = data.get("escalate_to")
    if data.get("escalate_after_minutes") is None and escalate_to:
        # Kept while escalation is off, so it must be right too.
        errors += rules.validate_recipients(escalate_to, "escalate_to")
    errors += _on_call_errors(project, escalate_to, "escalate_to")
    errors += channel_errors(project, data.get("channels"))
    for field in ("dedup_minutes", "escalate_after_minutes"):
        value = data.get(field)
        if isinstance(value, int) and value > MINUTES_MAX:
            errors.append(_error(field, f"at most {MINUTES_MAX} minutes (30 days)"))
    if not isinstance(data.get("enabled"), bool):
        errors.append(_error("enabled", "true or false"))
    return errors


def _recipients(value) -> dict:
    value = value or {}
    return {
        "owner": bool(value.get("owner", False)),
        "users": list(value.get("users") or []),
        "groups": list(value.get("groups") or []),
        "on_call": value.get("on_call"),
    }


def _rule_clean(data: dict) -> dict:
    """A validated rule in the shape it is stored (and answered) in."""
    return {
        "name": data["name"].strip(),
        "scope": data["scope"],
        "triggers": data["triggers"],
        "severity": data.get("severity") or "",
        "recipients": _recipients(data.get("recipients")),
        "channels": list(dict.fromkeys(data["channels"])),
        "dedup_minutes": data["dedup_minutes"],
        "mute_windows": [{"start": w["start"], "end": w["end"]} for w in data["mute_windows"]],
        "escalate_after_minutes": data["escalate_after_minutes"],
        "escalate_to": _recipients(data["escalate_to"]) if data.get("escalate_to") else {},
        "enabled": data["enabled"],
    }


def _rule_write(rule: MonitorRule, clean: dict) -> None:
    for name, value in clean.items():
        if name != "channels":
            setattr(rule, name, value)
    with _name_taken_raises(f"project {rule.project.code} has a rule {clean['name']!r}"):
        rule.save()
    rule.channels.set(clean["channels"])


def monitor_rule_create(*, project: Project, data: dict, by, source: str) -> MonitorRule:
    """A new rule of `project` from `data` (RULE_FIELDS; omitted ones take RULE_DEFAULTS)."""
    made: dict[str, MonitorRule] = {}

    def change() -> dict:
        errors = _unknown_fields(data, RULE_FIELDS, fixed="")
        merged = {**RULE_DEFAULTS, **data}
        errors += monitor_rule_errors(project, merged)
        _raise_if_any(errors, "monitor rule")
        clean = _rule_clean(merged)
        rule = MonitorRule(project=project)
        _rule_write(rule, clean)
        made["rule"] = rule
        return clean

    operation_run(
        by=by,
        source=source,
        action="monitor_rule.create",
        object_type="monitor_rule",
        object_id=lambda: made["rule"].pk,
        project=project,
        authorize=lambda: _require_admin(by, project, "monitor rule"),
        change=change,
    )
    return made["rule"]


def monitor_rule_update(*, rule: MonitorRule, data: dict, by, source: str) -> MonitorRule:
    """PATCH: the fields in `data` replace the stored ones, then the whole rule is checked.
    `project` may be sent only unchanged (a rule stays in its project)."""
    project = rule.project

    def change() -> dict:
        current = MonitorRule.objects.select_for_update().filter(pk=rule.pk).first()
        if current is None:
            raise NotFound(f"monitor rule {rule.pk} not found")
        fields = dict(data)
        if fields.get("project") in (project.code, project):
            fields.pop("project")
        errors = _unknown_fields(fields, RULE_FIELDS, fixed="project")
        before = monitor_rule_data(current)
        merged = {**before, **fields}
        errors += monitor_rule_errors(project, merged, rule_id=rule.pk)
        _raise_if_any(errors, "monitor rule")
        clean = _rule_clean(merged)
        changed = {name: value for name, value in clean.items() if before.get(name) != value}
        if changed:
            current.project = project
            _rule_write(current, clean)
        return {"changed": changed}

    operation_run(
        by=by,
        source=source,
        action="monitor_rule.update",
        object_type="monitor_rule",
        object_id=rule.pk,
        project=project,
        authorize=lambda: _require_admin(by, project, "monitor rule"),
        change=change,
    )
    rule.refresh_from_db()
    return rule


def monitor_rule_delete(*, rule: MonitorRule, by, source: str) -> None:
    """Removes the rule. Its alerts stay (their rule becomes empty); open ones still
    resolve themselves when their instance succeeds."""
    project = rule.project

    def change() -> dict:
        detail = {"name": rule.name}
        MonitorRule.objects.filter(pk=rule.pk).delete()
        return detail

    operation_run(
        by=by,
        source=source,
        action="monitor_rule.delete",
        object_type="monitor_rule",
        object_id=rule.pk,
        project=project,
        authorize=lambda: _require_admin(by, project, "monitor rule"),
        change=change,
    )


# --- on-call schedules -------------------------------------------------------------------


def on_call_data(schedule: OnCallSchedule) -> dict:
    return {
        "name": schedule.name,
        "users": list(schedule.users),
        "period": schedule.period,
        "handover": schedule.handover.strftime("%H:%M"),
        "start_date": schedule.start_date.isoformat(),
        "timezone": schedule.timezone,
    }


def _parse_date(value) -> datetime.date | None:
    if isinstance(value, datetime.datetime):
        return None
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _valid_timezone(value) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        return False
    return True


def on_call_errors(data: dict, *, schedule_id: int | None = None) -> list[dict]:
    """Every error of a whole schedule (every field of ON_CALL_FIELDS present)."""
    errors = []
    name = data.get("name")
    if not (isinstance(name, str) and name.strip()):
        errors.append(_error("name", "a name is required"))
    elif len(name.strip()) > NAME_MAX:
        errors.append(_error("name", f"at most {NAME_MAX} characters"))
    elif OnCallSchedule.objects.filter(name=name.strip()).exclude(pk=schedule_id).exists():
        errors.append(_error("name", f"an on-call schedule {name.strip()!r} exists"))
    users = data.get("users")
    if not isinstance(users, list) or not users or not all(isinstance(u, str) for u in users):
        errors.append(_error("users", "a non-empty list of usernames, in rotation order"))
    else:
        known = set(
            get_user_model()
            .objects.filter(username__in=users, is_active=True)
            .values_list("username", flat=True)
        )
        errors += [
            _error("users", f"no user {u!r}") for u in dict.fromkeys(users) if u not in known
        ]
    if data.get("period") not in OnCallPeriod.values:
        errors.append(_error("period", f"one of {', '.join(OnCallPeriod.values)}"))
    handover = data.get("handover")
    if not isinstance(handover, datetime.time) and rules.parse_hhmm(handover) is None:
        errors.append(_error("handover", f"{handover!r} is not a time HH:MM (00:00 to 23:59)"))
    if _parse_date(data.get("start_date")) is None:
        errors.append(_error("start_date", "a date YYYY-MM-DD"))
    if not _valid_timezone(data.get("timezone")):
        errors.append(
            _error(
                "timezone",
                f"unknown timezone {data.get('timezone')!r}: an IANA name such as Asia/Shanghai",
            )
        )
    return errors


def _on_call_clean(data: dict) -> dict:
    handover = data["handover"]
    if not isinstance(handover, datetime.time):
        handover = rules.parse_hhmm(handover)
    return {
        "name": data["name"].strip(),
        "users": list(data["users"]),
        "period": data["period"],
        "handover": handover.replace(second=0, microsecond=0, tzinfo=None),
        "start_date": _parse_date(data["start_date"]),
        "timezone": data["timezone"],
    }


def _on_call_logged(clean: dict) -> dict:
    return {
        **clean,
        "handover": clean["handover"].strftime("%H:%M"),
        "start_date": clean["start_date"].isoformat(),
    }


def _rules_naming(schedule_name: str):
    """Rules whose recipients or escalation name the schedule."""
    return MonitorRule.objects.filter(
        recipients__on_call=schedule_name
    ) | MonitorRule.objects.filter(escalate_to__on_call=schedule_name)


def on_call_create(*, project: Project | None, data: dict, by, source: str) -> OnCallSchedule:
    """A new schedule of `project`, or a global one (None). The timezone defaults to the
    project's (UTC for a global schedule), the period to weekly, the handover to 09:00."""
    made: dict[str, OnCallSchedule] = {}

    def change() -> dict:
        errors = _unknown_fields(data, ON_CALL_FIELDS, fixed="")
        defaults = {
            "period": OnCallPeriod.WEEKLY,
            "handover": "09:00",
            "timezone": project.timezone if project else "UTC",
        }
        merged = {**defaults, **data}
        errors += on_call_errors(merged)
        _raise_if_any(errors, "on-call schedule")
        clean = _on_call_clean(merged)
        with _name_taken_raises(f"an on-call schedule {clean['name']!r} exists"):
            made["schedule"] = OnCallSchedule.objects.create(project=project, **clean)
        return _on_call_logged(clean)

    operation_run(
        by=by,
        source=source,
        action="on_call.create",
        object_type="on_call",
        object_id=lambda: made["schedule"].pk,
        project=project,
        authorize=lambda: _require_admin(by, project, "on-call schedule"),
        change=change,
    )
    return made["schedule"]


def on_call_update(*, schedule: OnCallSchedule, data: dict, by, source: str) -> OnCallSchedule:
    """PATCH, merged then checked whole. A new name is carried into the rules that name
    the schedule, in the same transaction."""
    project = schedule.project

    def change() -> dict:
        current = OnCallSchedule.objects.select_for_update().filter(pk=schedule.pk).first()
        if current is None:
            raise NotFound(f"on-call schedule {schedule.pk} not found")
        fields = dict(data)
        if "project" in fields and fields["project"] in (
            project.code if project else None,
            project,
        ):
            fields.pop("project")
        errors = _unknown_fields(fields, ON_CALL_FIELDS, fixed="project")
        before = on_call_data(current)
        merged = {**before, **fields}
        errors += on_call_errors(merged, schedule_id=current.pk)
        _raise_if_any(errors, "on-call schedule")
        clean = _on_call_clean(merged)
        logged = _on_call_logged(clean)
        changed = {name: value for name, value in logged.items() if before[name] != value}
        if not changed:
            return {"changed": {}}
        renamed = []
        if "name" in changed:
            renamed = _rename_in_rules(before["name"], clean["name"])
        for name, value in clean.items():
            setattr(current, name, value)
        with _name_taken_raises(f"an on-call schedule {clean['name']!r} exists"):
            current.save()
        return {"changed": changed, **({"rules_renamed_in": renamed} if renamed else {})}

    operation_run(
        by=by,
        source=source,
        action="on_call.update",
        object_type="on_call",
        object_id=schedule.pk,
        project=project,
        authorize=lambda: _require_admin(by, project, "on-call schedule"),
        change=change,
    )
    schedule.refresh_from_db()
    return schedule


def _rename_in_rules(old: str, new: str) -> list[int]:
    changed = []
    for rule in _rules_naming(old).select_for_update():
        for field in ("recipients", "escalate_to"):
            value = getattr(rule, field) or {}
            if value.get("on_call") == old:
                setattr(rule, field, {**value, "on_call": new})
        rule.save(update_fields=["recipients", "escalate_to", "updated_at"])
        changed.append(rule.pk)
    return sorted(changed)


def on_call_delete(*, schedule: OnCallSchedule, by, source: str) -> None:
    """Removes the schedule; refused while a rule names it (the rule would lose its
    on-call recipient without anyone noticing)."""
    project = schedule.project

    def change() -> dict:
        naming = list(
            _rules_naming(schedule.name)
            .select_related("project")
            .order_by("project__code", "name")[:6]
        )
        if naming:
            names = ", ".join(f"{r.project.code}/{r.name}" for r in naming[:5])
            more = " and more" if len(naming) > 5 else ""
            raise Conflict(
                f"on-call schedule {schedule.name!r} is named by monitor rules {names}{more}: "
                "change them first"
            )
        detail = {"name": schedule.name}
        OnCallSchedule.objects.filter(pk=schedule.pk).delete()
        return detail

    operation_run(
        by=by,
        source=source,
        action="on_call.delete",
        object_type="on_call",
        object_id=schedule.pk,
        project=project,
        authorize=lambda: _require_admin(by, project, "on-call schedule"),
        change=change,
    )


# --- alerts: many at once ----------------------------------------------------------------


def _alert_state(alert_id: int) -> str | None:
    return Alert.objects.filter(pk=alert_id).values_list("state", flat=True).first()


def alerts_batch(
    *, ids: list[int], action: str, by, source: str, comment: str = ""
) -> list[BatchItem]:
    """`action` (ack, resolve) on each alert on its own: a refusal of one does not stop
    the others, and each is in the operation log."""
    operation = ALERT_ACTIONS.get(action)
    if operation is None:
        raise ValidationFailed(
            f"unknown action {action!r}",
            [_error("action", f"one of {', '.join(ALERT_ACTIONS)}")],
        )
    ids = batch_ids(ids)
    found = alerts_visible_to(by).in_bulk([i for i in ids if 0 < i <= MAX_ID])
    results = []
    for alert_id in ids:
        alert = found.get(alert_id)
        if alert is None:
            results.append(BatchItem(alert_id, False, None, f"alert {alert_id} not found"))
            continue
        try:
            alert = operation(alert=alert, by=by, source=source, comment=comment)
        except OpscenterError as exc:
            results.append(BatchItem(alert_id, False, _alert_state(alert_id), exc.detail))
        else:
            results.append(BatchItem(alert_id, True, alert.state, f"{action}: now {alert.state}"))
    return results
