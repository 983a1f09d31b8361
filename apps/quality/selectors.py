"""Reads of field rules and their results: members of a project read its rules and
every result of them (a rule of a project one may not see does not exist)."""

from django.db.models import OuterRef, QuerySet, Subquery

from apps.core.errors import NotFound
from apps.projects.selectors import projects_visible_to

from .models import FieldRule, FieldRuleResult

# How many results a sparkline draws.
SPARK_POINTS = 30


def field_rules_visible_to(user) -> QuerySet[FieldRule]:
    queryset = FieldRule.objects.select_related("project", "node", "datasource").prefetch_related(
        "channels"
    )
    if not user.is_authenticated:
        return queryset.none()
    if user.is_superuser:
        return queryset
    return queryset.filter(project__in=projects_visible_to(user))


def field_rule_get(*, user, rule_id: int) -> FieldRule:
    rule = field_rules_visible_to(user).filter(pk=rule_id).first()
    if rule is None:
        raise NotFound(f"field rule {rule_id} not found")
    return rule


def with_last_result(queryset: QuerySet[FieldRule]) -> QuerySet[FieldRule]:
    """Each rule with its newest result's value, pass and error (one query)."""
    newest = FieldRuleResult.objects.filter(rule=OuterRef("pk")).order_by("-checked_at", "-id")
    return queryset.annotate(
        last_value=Subquery(newest.values("value")[:1]),
        last_passed=Subquery(newest.values("passed")[:1]),
        last_error=Subquery(newest.values("error")[:1]),
        last_checked_at=Subquery(newest.values("checked_at")[:1]),
        last_instance=Subquery(newest.values("instance_id")[:1]),
    )


def field_rule_results(*, rule: FieldRule, instance_id: int | None = None) -> QuerySet:
    """A rule's results (newest first once paged: keyset on checked_at, id)."""
    queryset = FieldRuleResult.objects.filter(rule=rule)
    if instance_id is not None:
        queryset = queryset.filter(instance_id=instance_id)
    return queryset


def spark_values(rule_ids: list[int], points: int = SPARK_POINTS) -> dict[int, list[dict]]:
    """The last `points` results of each rule, oldest first: {value, passed, error,
    instance, checked_at} — what a sparkline of the metric draws."""
    series: dict[int, list[dict]] = {}
    for rule_id in rule_ids:
        rows = list(
            FieldRuleResult.objects.filter(rule_id=rule_id)
            .order_by("-checked_at", "-id")
            .values("value", "passed", "error", "instance_id", "checked_at")[:points]
        )
        series[rule_id] = rows[::-1]
    return series


def instance_results(instance_id: int) -> list[FieldRuleResult]:
    """Every check made after the instance's attempts, newest attempt first."""
    return list(
        FieldRuleResult.objects.filter(instance_id=instance_id)
        .select_related("rule", "rule__datasource")
        .order_by("-attempt", "rule_id", "-id")
    )
