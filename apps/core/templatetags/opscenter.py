"""Template helpers shared by every opscenter page: badges, durations, navigation."""

import datetime
import functools

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.module_loading import import_string

from apps.core import clock, times

register = template.Library()

# Which choices class labels and colours a badge. The colour lives on the choices
# (apps.core.choices.colored), so each label and colour is defined exactly once.
BADGE_CHOICES = {
    "state": "apps.instances.choices.InstanceState",
    "attempt": "apps.instances.choices.AttemptState",
    "wait": "apps.instances.choices.WaitReason",
    "result": "apps.audit.choices.Result",
    "node": "apps.nodes.choices.NodeStatus",
    "alert": "apps.monitoring.choices.AlertState",
    "severity": "apps.monitoring.choices.Severity",
    "delivery": "apps.notifications.choices.DeliveryState",
    "token": "apps.accounts.choices.TokenState",
    "runtime_level": "apps.configuration.choices.RuntimeLevel",
    "resource_flag": "apps.monitoring.resources.ResourceFlag",
    "baseline": "apps.baselines.choices.CycleStatus",
    "rule_severity": "apps.quality.choices.RuleSeverity",
    "check": "apps.quality.choices.CheckStatus",
    "backup_trigger": "apps.backups.choices.Trigger",
    "backup_state": "apps.backups.choices.BackupState",
}

# The main navigation. An entry shows once its page exists (its URL name resolves), so
# a new section only has to register its URLs to appear here. A third element names a
# template rendered inside the entry (a live badge).
# The main menu: the daily pages at the top level, the rest in two menus, so the bar
# stays one line on a laptop screen. (label, url name[, badge template]) or
# (label, [entries]) for a menu.
NAV_ITEMS = [
    ("Overview", "overview:index"),
    ("Instances", "instances:list"),
    ("Nodes", "nodes:list"),
    ("Backfill", "backfills:list"),
    ("Alerts", "alerts:list", "alerts/_nav_badge.html"),
    ("Baselines", "baselines:list"),
    (
        "Monitoring",
        [
            ("Monitoring rules", "monitoring:index"),
            ("Quality", "quality:rules"),
            ("Notifications", "notifications:channels"),
        ],
    ),
    (
        "System",
        [
            ("Projects", "projects:list"),
            ("Configuration", "configuration:resource_groups"),
            ("Resources", "resources:index"),
            ("Health", "health:index"),
            ("Audit log", "audit:list"),
            ("Backups", "backups:list"),
        ],
    ),
]


@register.filter
def state_badge(value: str, kind: str = "state") -> str:
    """`{{ instance.state|state_badge }}`, `{{ attempt.state|state_badge:"attempt" }}`,
    `{{ instance.wait_reason|state_badge:"wait" }}`."""
    if not value:
        return ""
    return _badge(str(value), kind)


@functools.lru_cache(maxsize=1024)
def _badge(value: str, kind: str) -> str:
    # A badge depends on its value and kind alone: long tables reuse a handful of them.
    choices = import_string(BADGE_CHOICES[kind])
    try:
        member = choices(value)
    except ValueError:
        return format_html('<span class="badge badge-gray">{}</span>', value)
    return format_html(
        '<span class="badge badge-{}" data-{}="{}">{}</span>',
        member.color,
        kind,
        member.value,
        member.label,
    )


@register.filter
def duration(seconds: float | None) -> str:
    """3.2s, 4m 05s, 2h 07m: short enough for a dense table column."""
    if seconds is None or seconds == "":
        return ""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


@register.filter
def when(value, shape: str = "full") -> str:
    """`{{ instance.started_at|when }}` -> 2026-11-21 02:00:13 CST in the viewer's zone, as
    a <time> whose tooltip names the zone; shapes in apps.core.times.FORMATS
    (`|when:"short"` for a dense column) and "ago" (`|when:"ago"`: 5 min ago)."""
    moment = times.as_moment(value)
    if moment is None:
        return ""
    if not isinstance(moment, datetime.datetime):
        return times.format_when(moment)
    text = times.format_age(moment) if shape == "ago" else times.format_when(moment, shape)
    # The tooltip is always the whole moment with its zone, whatever the cell shows.
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        times.local(moment).isoformat(timespec="seconds"),
        f"{times.format_when(moment, 'seconds')} {times.zone_label(at=moment)}",
        text,
    )


@register.filter
def when_text(value, shape: str = "full") -> str:
    """The text of `when` alone, for attributes and SVG titles."""
    if shape == "ago":
        return times.format_age(value)
    return times.format_when(value, shape)


@register.simple_tag
def viewer_zone() -> str:
    """'CST (Asia/Shanghai)': the zone this page's times are in."""
    return times.zone_label()


@register.filter
def elapsed(obj) -> float | None:
    """Seconds an instance or attempt has run: until it finished, or until now."""
    started: datetime.datetime | None = getattr(obj, "started_at", None)
    if started is None:
        return None
    finished = getattr(obj, "finished_at", None) or clock.now()
    return max((finished - started).total_seconds(), 0.0)


@register.simple_tag(takes_context=True)
def nav_items(context) -> list[dict]:
    request = context.get("request")
    match = getattr(request, "resolver_match", None)
    current = match.namespace if match else ""

    def entries(spec) -> list[dict]:
        items = []
        for label, target, *badge in spec:
            if isinstance(target, list):
                children = entries(target)
                if children:
                    items.append(
                        {
                            "label": label,
                            "children": children,
                            "active": any(child["active"] for child in children),
                        }
                    )
                continue
            try:
                url = reverse(target)
            except NoReverseMatch:
                continue
            items.append(
                {
                    "label": label,
                    "url": url,
                    "active": target.split(":")[0] == current,
                    "badge": badge[0] if badge else "",
                }
            )
        return items

    items = entries(NAV_ITEMS)
    return items
