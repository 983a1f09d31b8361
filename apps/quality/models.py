"""Field (data quality) rules of SPEC 7.4 and the result of every check of one."""

from django.db import models

from .choices import CheckStatus, Compare, Metric, Operator, RuleSeverity


class FieldRule(models.Model):
    """A check of a node's output: a metric of `table` (optionally of one `field`, over
    the rows `where` selects) or a custom query's number, against a threshold, run after
    each successful command of the node. apps.quality.services validates it;
    apps.quality.sql builds its statement (identifiers quoted, never spliced raw)."""

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="field_rules"
    )
    node = models.ForeignKey("nodes.Node", on_delete=models.CASCADE, related_name="field_rules")
    # RESTRICT: a datasource a rule reads is not deleted under it (deleting the whole
    # project still takes both).
    datasource = models.ForeignKey(
        "projects.Datasource", on_delete=models.RESTRICT, related_name="field_rules"
    )
    table = models.CharField(max_length=200, blank=True)
    field = models.CharField(max_length=100, blank=True)
    where = models.TextField(blank=True)
    metric = models.CharField(max_length=16, choices=Metric.choices)
    sql = models.TextField(blank=True)
    operator = models.CharField(max_length=8, choices=Operator.choices)
    threshold = models.FloatField()
    threshold_high = models.FloatField(null=True, blank=True)
    compare = models.CharField(max_length=32, choices=Compare.choices, default=Compare.VALUE)
    severity = models.CharField(
        max_length=8, choices=RuleSeverity.choices, default=RuleSeverity.BLOCK
    )
    channels = models.ManyToManyField(
        "notifications.Channel", blank=True, related_name="field_rules"
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # What runs after an attempt: a node's enabled rules.
            models.Index(fields=["node", "enabled"], name="field_rule_node_idx"),
        ]
        ordering = ["project", "node", "id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.describe()}"

    def describe(self) -> str:
        """`null_ratio(email) of public.users where ds = '${bizdate}'`, in a line."""
        if self.metric == Metric.CUSTOM_SQL:
            text = "custom SQL" + (f" on {self.table}" if self.table else "")
        else:
            what = f"{self.metric}({self.field})" if self.field else self.metric
            text = f"{what} of {self.table}"
        if self.where and self.metric != Metric.CUSTOM_SQL:
            text += f" where {' '.join(self.where.split())}"
        return text

    def expectation(self) -> str:
        """`> 1000`, `between 10 and 20`, `change vs previous < 50%`."""
        unit = "" if self.compare == Compare.VALUE else "%"
        if self.operator == Operator.BETWEEN:
            bound = (
                f"between {_number(self.threshold)}{unit} and {_number(self.threshold_high)}{unit}"
            )
        else:
            bound = f"{self.operator} {_number(self.threshold)}{unit}"
        prefix = {
            Compare.CHANGE_PCT_VS_PREVIOUS: "change vs previous ",
            Compare.CHANGE_PCT_VS_AVG7: "change vs mean of last 7 ",
        }.get(self.compare, "")
        return prefix + bound


def _number(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:g}" if abs(value) < 1e15 else f"{value:.6g}"


class FieldRuleResult(models.Model):
    """One check of a rule after one attempt of one instance. `value` is the metric;
    `compared` what was held against the threshold (the value, or its change in percent
    against `baseline`: the previous value or the mean of the last 7)."""

    rule = models.ForeignKey(FieldRule, on_delete=models.CASCADE, related_name="results")
    instance = models.ForeignKey(
        "instances.Instance", on_delete=models.CASCADE, related_name="field_rule_results"
    )
    attempt = models.PositiveIntegerField()
    # The instance's scheduled time: history (previous, last 7) is in this order, so a
    # backfill of an old date compares with the dates before it.
    scheduled_at = models.DateTimeField()
    value = models.FloatField(null=True, blank=True)
    baseline = models.FloatField(null=True, blank=True)
    compared = models.FloatField(null=True, blank=True)
    # The rule's expectation when it was checked ("> 1000").
    expected = models.CharField(max_length=200, blank=True)
    passed = models.BooleanField()
    error = models.TextField(blank=True)
    checked_at = models.DateTimeField()

    class Meta:
        indexes = [
            # A rule's results, newest first (its API and pages, keyset pages).
            models.Index(fields=["rule", "-checked_at", "-id"], name="field_result_rule_idx"),
            # A rule's history before an instance (compare modes).
            models.Index(fields=["rule", "-scheduled_at"], name="field_result_history_idx"),
        ]
        ordering = ["-checked_at", "-id"]

    def __str__(self) -> str:
        return f"rule {self.rule_id} on instance {self.instance_id}: {self.status}"

    @property
    def status(self) -> str:
        if self.error:
            return CheckStatus.ERROR
        return CheckStatus.PASSED if self.passed else CheckStatus.FAILED
