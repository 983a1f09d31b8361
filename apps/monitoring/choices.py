from django.db import models

from apps.core.choices import colored


class TriggerType(models.TextChoices):
    FAILURE = "failure", "An attempt fails"
    RETRIES_EXHAUSTED = "retries_exhausted", "Fails with no retry left"
    SUCCESS = "success", "Succeeds"
    RUNNING_LONGER = "running_longer", "Runs longer than N minutes"
    UNFINISHED_BY = "unfinished_by", "Not finished by HH:MM"
    NOT_STARTED_BY = "not_started_by", "Not started by HH:MM"
    SLOWER_THAN_USUAL = "slower_than_usual", "Slower than usual"


# Triggers that react to a state change (read from the instance event outbox); the
# others are found by the minute pass over the clock.
EVENT_TRIGGERS = (TriggerType.FAILURE, TriggerType.RETRIES_EXHAUSTED, TriggerType.SUCCESS)
TIME_TRIGGERS = (
    TriggerType.RUNNING_LONGER,
    TriggerType.UNFINISHED_BY,
    TriggerType.NOT_STARTED_BY,
    TriggerType.SLOWER_THAN_USUAL,
)


class ScopeKind(models.TextChoices):
    NODES = "nodes", "Chosen nodes"
    OWNER = "owner", "Nodes of an owner"
    PROJECT = "project", "Every node of the project"
    BASELINE = "baseline", "A baseline's nodes and their ancestors"


@colored({"critical": "red", "warning": "orange", "info": "blue"})
class Severity(models.TextChoices):
    CRITICAL = "critical", "Critical"
    WARNING = "warning", "Warning"
    INFO = "info", "Info"


# A rule without its own severity raises each trigger at this one.
DEFAULT_SEVERITY = {
    TriggerType.FAILURE: Severity.CRITICAL,
    TriggerType.RETRIES_EXHAUSTED: Severity.CRITICAL,
    TriggerType.SUCCESS: Severity.INFO,
    TriggerType.RUNNING_LONGER: Severity.WARNING,
    TriggerType.UNFINISHED_BY: Severity.WARNING,
    TriggerType.NOT_STARTED_BY: Severity.WARNING,
    TriggerType.SLOWER_THAN_USUAL: Severity.WARNING,
}


@colored({"firing": "red", "acknowledged": "yellow", "resolved": "green"})
class AlertState(models.TextChoices):
    FIRING = "firing", "Firing"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


OPEN_STATES = (AlertState.FIRING, AlertState.ACKNOWLEDGED)


class AlertSource(models.TextChoices):
    MONITOR = "monitor", "Monitoring rule"
    BASELINE = "baseline", "Baseline"
    FIELD = "field", "Field rule"
    SYSTEM = "system", "System"


class AlertEventKind(models.TextChoices):
    """The lines of an alert's timeline."""

    FIRED = "fired", "Fired"
    REPEATED = "repeated", "Repeated"
    ESCALATED = "escalated", "Escalated"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class OnCallPeriod(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
