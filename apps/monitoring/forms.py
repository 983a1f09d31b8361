"""The monitoring rule and on-call schedule forms of the pages: what a posted form becomes
in the services' terms (apps.monitoring.services takes the API's JSON shapes), and the
services' field errors put back next to the fields they name.

Values are passed on as typed where they parse and as typed in where they do not, so the
service's own message ("a whole number of minutes, at least 1") names what is wrong: one
source of validation for the API, the CLI and the pages.
"""

import re
from dataclasses import dataclass, field

from django.http import QueryDict

from .choices import ScopeKind, TriggerType


@dataclass(frozen=True)
class TriggerHelp:
    fires_on: str
    param: str = ""  # the trigger's parameter (minutes, time, factor), if any
    param_label: str = ""
    input_type: str = "text"
    placeholder: str = ""


# What each trigger fires on and what its parameter means (SPEC 7.1), shown in the form.
TRIGGER_HELP = {
    TriggerType.FAILURE: TriggerHelp(
        "An attempt fails, also when a retry will follow: every failed attempt counts."
    ),
    TriggerType.RETRIES_EXHAUSTED: TriggerHelp(
        "An instance ends failed with no retry left: once per instance, after its last try."
    ),
    TriggerType.SUCCESS: TriggerHelp(
        "An instance succeeds. A notice rather than an incident: it is born resolved."
    ),
    TriggerType.RUNNING_LONGER: TriggerHelp(
        "An attempt has been running for longer than this many minutes.",
        "minutes",
        "Minutes",
        "number",
        "60",
    ),
    TriggerType.UNFINISHED_BY: TriggerHelp(
        "A recurring instance is not finished at this time of its scheduled day "
        "(the project's timezone).",
        "time",
        "Finished by",
        "time",
        "06:00",
    ),
    TriggerType.NOT_STARTED_BY: TriggerHelp(
        "A recurring instance has not started at this time of its scheduled day "
        "(the project's timezone).",
        "time",
        "Started by",
        "time",
        "03:00",
    ),
    TriggerType.SLOWER_THAN_USUAL: TriggerHelp(
        "An attempt runs this many times longer than the median of the node's last 10 "
        "successful runs (it needs at least 3 of them).",
        "factor",
        "Times the median",
        "number",
        "2",
    ),
}

SCOPE_HELP = {
    ScopeKind.NODES: "Only the nodes chosen below.",
    ScopeKind.OWNER: "Every node the chosen user owns, including nodes they own later.",
    ScopeKind.PROJECT: "Every node of the project, including nodes added later.",
    ScopeKind.BASELINE: "A baseline's key nodes and all their ancestors.",
}

RECIPIENT_KEYS = ("owner", "users", "groups", "on_call")


def _number(raw: str, kind=int):
    """`raw` as a number when it is one, else as typed (for the service to name)."""
    raw = raw.strip()
    try:
        return kind(raw)
    except ValueError:
        return raw


def _ids(values: list[str]) -> list:
    return [int(v) if v.strip().isdigit() else v for v in values if v.strip()]


def recipients_data(post: QueryDict, prefix: str) -> dict:
    """A recipients object (SPEC 7.1) from the inputs `prefix`_owner, _users, _groups,
    _on_call (the partial alerts/_recipients.html)."""
    return {
        "owner": post.get(f"{prefix}_owner") == "on",
        "users": [u for u in post.getlist(f"{prefix}_users") if u],
        "groups": [g for g in post.getlist(f"{prefix}_groups") if g],
        "on_call": post.get(f"{prefix}_on_call") or None,
    }


def _scope(post: QueryDict) -> dict:
    kind = post.get("scope_kind", "")
    if kind == ScopeKind.NODES:
        return {"kind": kind, "nodes": _ids(post.getlist("scope_nodes"))}
    if kind == ScopeKind.OWNER:
        return {"kind": kind, "owner": post.get("scope_owner", "")}
    if kind == ScopeKind.BASELINE:
        return {"kind": kind, "baseline": _number(post.get("scope_baseline", ""))}
    return {"kind": kind}


def _triggers(post: QueryDict) -> list[dict]:
    chosen = post.getlist("triggers")
    triggers = []
    for kind in TriggerType.values:  # in the form's order, whatever the post's
        if kind not in chosen:
            continue
        trigger = {"type": kind}
        help_ = TRIGGER_HELP[kind]
        if help_.param:
            raw = post.get(f"{kind}_{help_.param}", "")
            if help_.param == "minutes":
                trigger["minutes"] = _number(raw)
            elif help_.param == "factor":
                trigger["factor"] = _number(raw, float)
            else:
                trigger["time"] = raw.strip()
        triggers.append(trigger)
    # A type the form does not know is passed on, for the service to refuse by name.
    triggers += [{"type": kind} for kind in chosen if kind not in TriggerType.values]
    return triggers


def _mute_windows(post: QueryDict) -> list[dict]:
    starts, ends = post.getlist("mute_start"), post.getlist("mute_end")
    windows = []
    for start, end in zip(starts, ends, strict=False):
        if start.strip() or end.strip():
            windows.append({"start": start.strip(), "end": end.strip()})
    return windows


def rule_data(post: QueryDict) -> dict:
    """A posted rule form as monitor_rule_create/update take it (every field)."""
    escalate_after = post.get("escalate_after_minutes", "").strip()
    escalate_to = recipients_data(post, "escalate_to")
    if not any(escalate_to.values()):
        escalate_to = {}
    return {
        "name": post.get("name", "").strip(),
        "scope": _scope(post),
        "triggers": _triggers(post),
        "severity": post.get("severity", ""),
        "recipients": recipients_data(post, "recipients"),
        "channels": _ids(post.getlist("channels")),
        "dedup_minutes": _number(post.get("dedup_minutes", "")),
        "mute_windows": _mute_windows(post),
        "escalate_after_minutes": _number(escalate_after) if escalate_after else None,
        "escalate_to": escalate_to,
        "enabled": post.get("enabled") == "on",
    }


def recipients_shown(value) -> dict:
    """A stored (or posted) recipients object as alerts/_recipients.html shows it."""
    value = value if isinstance(value, dict) else {}
    return {
        "owner": bool(value.get("owner")),
        "users": set(value.get("users") or []),
        "groups": set(value.get("groups") or []),
        "on_call": value.get("on_call") or "",
    }


def recipient_errors(by_field: dict[str, list[str]], prefix: str) -> dict[str, list[str]]:
    """The errors of one recipients object by key (`users`...; `all`: the object's own),
    from errors filed under `prefix`_users or `prefix`.users."""
    found = {
        key: by_field.get(f"{prefix}_{key}", []) + by_field.get(f"{prefix}.{key}", [])
        for key in RECIPIENT_KEYS
    }
    found["all"] = by_field.get(prefix, [])
    return found


TRIGGER_ERROR = re.compile(r"^triggers\.(\d+)\.(\w+)$")
WINDOW_ERROR = re.compile(r"^mute_windows\.(\d+)\.(\w+)$")


def rule_field_errors(errors: list[dict], data: dict) -> dict[str, list[str]]:
    """The service's errors by form field: `triggers.2.minutes` goes next to the
    minutes of the trigger that was third in `data`, `recipients.users` next to the
    recipients' users, a mute window's error next to the windows, naming which."""
    by_field: dict[str, list[str]] = {}
    triggers = data.get("triggers") or []
    for error in errors:
        name, message = error.get("field", ""), error["message"]
        if match := TRIGGER_ERROR.match(name):
            n, key = int(match[1]), match[2]
            kind = triggers[n].get("type") if n < len(triggers) else ""
            if key == "type" or kind not in TriggerType.values:
                name = "triggers"
            else:
                name = f"{kind}_{key}" if key == TRIGGER_HELP[kind].param else f"{kind}"
        elif match := WINDOW_ERROR.match(name):
            name, message = "mute_windows", f"window {int(match[1]) + 1}, {match[2]}: {message}"
        elif name in ("scope", "scope.kind"):
            name = "scope_kind"
        else:
            name = name.replace(".", "_")
        by_field.setdefault(name, []).append(message)
    return by_field


@dataclass
class RuleForm:
    """What the rule form shows: a rule's values (stored or as posted) and their errors."""

    data: dict
    errors: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def blank(cls) -> "RuleForm":
        return cls(
            {
                "name": "",
                "scope": {"kind": ScopeKind.PROJECT},
                "triggers": [{"type": TriggerType.RETRIES_EXHAUSTED}],
                "severity": "",
                "recipients": {"owner": True, "users": [], "groups": [], "on_call": None},
                "channels": [],
                "dedup_minutes": 30,
                "mute_windows": [],
                "escalate_after_minutes": None,
                "escalate_to": {},
                "enabled": True,
            }
        )

    # --- what the template reads -------------------------------------------------------

    @property
    def scope_kind(self) -> str:
        return (self.data.get("scope") or {}).get("kind", "")

    @property
    def scope_nodes(self) -> set:
        return set((self.data.get("scope") or {}).get("nodes") or [])

    @property
    def scope_owner(self) -> str:
        return (self.data.get("scope") or {}).get("owner") or ""

    @property
    def scope_baseline(self):
        return (self.data.get("scope") or {}).get("baseline") or ""

    @property
    def triggers(self) -> list[dict]:
        """Every trigger type, chosen or not, with its explanation and parameter."""
        chosen = {t.get("type"): t for t in self.data.get("triggers") or [] if isinstance(t, dict)}
        rows = []
        for kind, label in TriggerType.choices:
            help_ = TRIGGER_HELP[kind]
            trigger = chosen.get(kind)
            value = trigger.get(help_.param, "") if trigger and help_.param else ""
            rows.append(
                {
                    "type": kind,
                    "label": label,
                    "help": help_,
                    "checked": trigger is not None,
                    "value": "" if value is None else value,
                    "errors": self.errors.get(f"{kind}_{help_.param}", [])
                    + self.errors.get(kind, []),
                }
            )
        return rows

    @property
    def recipients(self) -> dict:
        return recipients_shown(self.data.get("recipients"))

    @property
    def escalate_to(self) -> dict:
        return recipients_shown(self.data.get("escalate_to"))

    @property
    def recipients_errors(self) -> dict:
        return recipient_errors(self.errors, "recipients")

    @property
    def escalate_to_errors(self) -> dict:
        return recipient_errors(self.errors, "escalate_to")

    @property
    def channels(self) -> set:
        return set(self.data.get("channels") or [])

    @property
    def mute_windows(self) -> list[dict]:
        """The windows, and one blank row to add another."""
        return list(self.data.get("mute_windows") or []) + [{"start": "", "end": ""}]

    @property
    def named_users(self) -> set[str]:
        """Every username the rule names (kept offered even when not a member)."""
        names = {self.scope_owner} if self.scope_owner else set()
        return names | self.recipients["users"] | self.escalate_to["users"]


# --- on-call schedules ---------------------------------------------------------------------

ON_CALL_HELP = {
    "users": "Usernames in rotation order, separated by commas or new lines: the first is "
    "on call from the start date's handover, then each takes one period in turn.",
    "handover": "When one person hands over to the next, in the schedule's timezone.",
}


def on_call_data(post: QueryDict) -> dict:
    """A posted on-call form as on_call_create/update take it."""
    users = [u for u in re.split(r"[\s,]+", post.get("users", "")) if u]
    return {
        "name": post.get("name", "").strip(),
        "users": users,
        "period": post.get("period", ""),
        "handover": post.get("handover", "").strip(),
        "start_date": post.get("start_date", "").strip(),
        "timezone": post.get("timezone", "").strip(),
    }


def on_call_field_errors(errors: list[dict]) -> dict[str, list[str]]:
    by_field: dict[str, list[str]] = {}
    for error in errors:
        by_field.setdefault(error.get("field") or "", []).append(error["message"])
    return by_field
