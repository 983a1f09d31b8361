"""The baseline form of the pages: what a posted form becomes in the services' terms
(apps.baselines.services takes the API's shapes), and the hint the committed time takes
for each cycle.

Values are passed on typed where they parse and as typed in where they do not, so the
service's own message ("a whole number from 1 (lowest) to 8 (highest)") names what is
wrong: one validation for the API, the admin and the pages."""

from django.http import QueryDict

from apps.monitoring.forms import recipients_data

from .choices import CycleKind
from .services import DEFAULTS

# What the committed time input asks for, by cycle (the form's script swaps them).
COMMITTED_HINTS = {
    CycleKind.DAILY: ("HH:MM", "The time of the scheduled day (the day after the biz date)."),
    CycleKind.HOURLY: ("MM", "The minute of each hour, 00 to 59."),
}


def _int_or_raw(raw: str):
    raw = raw.strip()
    return int(raw) if raw.lstrip("-").isdigit() and len(raw) < 19 else raw


def baseline_form_data(post: QueryDict) -> dict:
    """A posted baseline form as services.baseline_create/update take it (every field)."""
    return {
        "name": post.get("name", "").strip(),
        "cycle": post.get("cycle", "").strip(),
        "committed_time": post.get("committed_time", "").strip(),
        "margin_minutes": _int_or_raw(post.get("margin_minutes", "")),
        "priority": _int_or_raw(post.get("priority", "")),
        "key_nodes": [_int_or_raw(v) for v in post.getlist("key_nodes") if v.strip()],
        "recipients": recipients_data(post, "recipients"),
        "channels": [_int_or_raw(v) for v in post.getlist("channels") if v.strip()],
        "enabled": post.get("enabled") == "on",
    }


def blank_form_data() -> dict:
    return {
        **DEFAULTS,
        "name": "",
        "committed_time": "",
        "key_nodes": [],
        "recipients": {"owner": True, "users": [], "groups": [], "on_call": None},
    }
