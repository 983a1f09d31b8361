"""Throttling rules (SPEC 9): which instances a rule counts, and when it is in force.
Pure besides the queries they build; the gate that enforces rules is in gates.py.

A rule applies to an instance by its scope: its resource group, its project, its node's
type, or its node version's datasource (a name within its project). It is in
force while enabled and inside its window: [window_start, window_end) in the rule's
timezone — its project's for a project or datasource rule, TIME_ZONE's for a global
one — crossing midnight when the end is before the start (22:00-06:00); without a
window, always.
"""

import datetime
import zoneinfo
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q, TextField, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce
from django.db.models.lookups import Exact

from apps.core.timeofday import in_window

from .choices import ThrottleScope
from .models import ThrottleRule


def spec_text(key: str):
    """The node version's `key` as text, '' when absent or null (so that a negated
    condition on it never meets a NULL)."""
    return Coalesce(KeyTextTransform(key, "version__spec"), Value(""), output_field=TextField())


def rule_timezone(rule: ThrottleRule) -> datetime.tzinfo:
    if rule.project_id is not None:
        return rule.project.tz
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def in_force(rule: ThrottleRule, now: datetime.datetime) -> bool:
    """Enabled and inside its window at `now` (a rule without a window: always)."""
    if not rule.enabled:
        return False
    if rule.window_start is None or rule.window_end is None:
        return True
    local = now.astimezone(rule_timezone(rule)).time()
    return in_window(local, rule.window_start, rule.window_end)


def window_words(rule: ThrottleRule) -> str:
    if rule.window_start is None or rule.window_end is None:
        return "always"
    start, end = rule.window_start.strftime("%H:%M"), rule.window_end.strftime("%H:%M")
    return f"{start}–{end} {rule_timezone(rule)}"


@dataclass(frozen=True)
class Scope:
    """A rule's scope resolved to what an instance row is compared with."""

    rule_id: int
    kind: str
    resource_group_id: int | None = None
    project_id: int | None = None
    text: str = ""  # the node type, or the datasource's name

    @classmethod
    def of(cls, rule: ThrottleRule) -> "Scope":
        kind = rule.scope_kind
        if kind == ThrottleScope.RESOURCE_GROUP:
            return cls(rule.pk, kind, resource_group_id=rule.resource_group_id)
        if kind == ThrottleScope.PROJECT:
            return cls(rule.pk, kind, project_id=rule.project_id)
        if kind == ThrottleScope.DATASOURCE:
            return cls(rule.pk, kind, project_id=rule.project_id, text=rule.datasource.name)
        return cls(rule.pk, kind, text=rule.scope_value)

    def q(self) -> Q:
        """The instances this scope covers, as a filter over Instance."""
        if self.kind == ThrottleScope.RESOURCE_GROUP:
            return Q(resource_group_id=self.resource_group_id)
        if self.kind == ThrottleScope.PROJECT:
            return Q(project_id=self.project_id)
        if self.kind == ThrottleScope.NODE_TYPE:
            return Q(node__type=self.text)
        return Q(project_id=self.project_id) & Q(Exact(spec_text("datasource"), Value(self.text)))

    def covers(self, row: dict) -> bool:
        """The same as q() for a row read with row_fields()."""
        if self.kind == ThrottleScope.RESOURCE_GROUP:
            return row["resource_group_id"] == self.resource_group_id
        if self.kind == ThrottleScope.PROJECT:
            return row["project_id"] == self.project_id
        if self.kind == ThrottleScope.NODE_TYPE:
            return row["throttle_type"] == self.text
        return row["project_id"] == self.project_id and row["throttle_datasource"] == self.text


def row_fields(scopes) -> dict:
    """What covers() reads of a candidate for these scopes: a datasource is read from
    the node version's spec only when a datasource rule needs it."""
    kinds = {scope.kind for scope in scopes}
    fields = {"project_id": "project_id", "resource_group_id": "resource_group_id"}
    if ThrottleScope.NODE_TYPE in kinds:
        fields["throttle_type"] = "node__type"
    if ThrottleScope.DATASOURCE in kinds:
        fields["throttle_datasource"] = spec_text("datasource")
    return fields


def rules_in_force(now: datetime.datetime) -> list[ThrottleRule]:
    """Enabled rules whose window is open at `now`, by id."""
    rules = ThrottleRule.objects.filter(enabled=True).select_related("project", "datasource")
    return [rule for rule in rules.order_by("pk") if in_force(rule, now)]


def applies_to(rule: ThrottleRule, instance) -> bool:
    """Whether `rule`'s scope covers `instance` (a loaded Instance)."""
    spec = instance.version.spec or {}
    return Scope.of(rule).covers(
        {
            "project_id": instance.project_id,
            "resource_group_id": instance.resource_group_id,
            "throttle_type": instance.node.type,
            "throttle_datasource": spec.get("datasource") or "",
        }
    )
