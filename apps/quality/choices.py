from django.db import models

from apps.core.choices import colored


class Metric(models.TextChoices):
    ROW_COUNT = "row_count", "Row count"
    NULL_COUNT = "null_count", "Null count"
    NULL_RATIO = "null_ratio", "Null ratio (0 to 1)"
    DISTINCT_COUNT = "distinct_count", "Distinct count"
    MIN = "min", "Minimum"
    MAX = "max", "Maximum"
    SUM = "sum", "Sum"
    AVG = "avg", "Average"
    CUSTOM_SQL = "custom_sql", "Custom SQL (one number)"


# The metrics measured over one column: they need a `field`.
FIELD_METRICS = (
    Metric.NULL_COUNT,
    Metric.NULL_RATIO,
    Metric.DISTINCT_COUNT,
    Metric.MIN,
    Metric.MAX,
    Metric.SUM,
    Metric.AVG,
)


class Operator(models.TextChoices):
    LT = "<", "<"
    LE = "<=", "<="
    GT = ">", ">"
    GE = ">=", ">="
    EQ = "==", "=="
    NE = "!=", "!="
    BETWEEN = "between", "between"


class Compare(models.TextChoices):
    VALUE = "value", "The value itself"
    CHANGE_PCT_VS_PREVIOUS = "change_pct_vs_previous", "Change in % against the previous result"
    CHANGE_PCT_VS_AVG7 = "change_pct_vs_avg7", "Change in % against the mean of the last 7"


@colored({"block": "red", "warn": "orange"})
class RuleSeverity(models.TextChoices):
    BLOCK = "block", "Block"
    WARN = "warn", "Warn"


@colored({"passed": "green", "failed": "red", "error": "orange"})
class CheckStatus(models.TextChoices):
    """How one check of a rule ended, as pages show it."""

    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    ERROR = "error", "Error"
