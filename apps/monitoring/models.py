import datetime
import zoneinfo

from django.conf import settings
from django.db import models
from django.db.models import Q

from .choices import AlertEventKind, AlertSource, AlertState, OnCallPeriod, Severity


class MonitorRule(models.Model):
    """What to watch (scope), what counts (triggers), who hears of it and how (SPEC 7.1).
    `scope`, `triggers`, `recipients`, `mute_windows` and `escalate_to` keep the API's
    JSON shapes; apps.monitoring.rules validates them."""

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="monitor_rules"
    )
    name = models.CharField(max_length=100)
    scope = models.JSONField(default=dict)
    triggers = models.JSONField(default=list)
    # Blank: each trigger's default (apps.monitoring.choices.DEFAULT_SEVERITY).
    severity = models.CharField(max_length=16, choices=Severity.choices, blank=True)
    recipients = models.JSONField(default=dict, blank=True)
    channels = models.ManyToManyField(
        "notifications.Channel", blank=True, related_name="monitor_rules"
    )
    dedup_minutes = models.PositiveIntegerField(default=30)
    mute_windows = models.JSONField(default=list, blank=True)
    escalate_after_minutes = models.PositiveIntegerField(null=True, blank=True)
    escalate_to = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="uniq_monitor_rule_name")
        ]
        ordering = ["project", "name"]

    def __str__(self) -> str:
        return self.name


class OnCallSchedule(models.Model):
    """A rotation: `users` (usernames, in order) take turns, each for one period, handing
    over at `handover` in `timezone`, counting from `start_date`."""

    project = models.ForeignKey(
        "projects.Project",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="on_call_schedules",
    )
    name = models.CharField(max_length=100, unique=True)
    users = models.JSONField(default=list)
    period = models.CharField(
        max_length=8, choices=OnCallPeriod.choices, default=OnCallPeriod.WEEKLY
    )
    handover = models.TimeField(default=datetime.time(9, 0))
    start_date = models.DateField()
    timezone = models.CharField(max_length=64, default="UTC")

    class Meta:
        ordering = ["name"]
        verbose_name = "on-call schedule"

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class Alert(models.Model):
    """An incident: firing -> acknowledged -> resolved (SPEC 7.2). One open alert per
    `dedup_key` (source, rule, trigger, target), held by the database."""

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    source = models.CharField(
        max_length=16, choices=AlertSource.choices, default=AlertSource.MONITOR
    )
    rule = models.ForeignKey(
        MonitorRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="alerts"
    )
    trigger = models.CharField(max_length=32)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    state = models.CharField(max_length=16, choices=AlertState.choices, default=AlertState.FIRING)
    title = models.CharField(max_length=300)
    message = models.TextField(blank=True)
    target_type = models.CharField(max_length=32)
    target_id = models.CharField(max_length=64)
    dedup_key = models.CharField(max_length=200)
    node = models.ForeignKey(
        "nodes.Node", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    instance = models.ForeignKey(
        "instances.Instance",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="alerts",
    )
    # Facts about the target kept for messages and pages (node name, biz date, owner).
    facts = models.JSONField(default=dict, blank=True)
    count = models.PositiveIntegerField(default=1)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    # When it was last sent to its recipients: repeats are sent again only after the
    # rule's dedup interval.
    last_sent_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    # Who was told when it fired (usernames) and through which channels (ids): its
    # resolution is announced to the same people.
    recipients = models.JSONField(default=list, blank=True)
    channel_ids = models.JSONField(default=list, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["dedup_key"],
                condition=Q(state__in=["firing", "acknowledged"]),
                name="uniq_open_alert",
            )
        ]
        indexes = [
            models.Index(fields=["dedup_key"], name="alert_dedup_key_idx"),
            models.Index(fields=["state", "-last_at", "-id"], name="alert_state_last_idx"),
            models.Index(fields=["-last_at", "-id"], name="alert_last_idx"),
            models.Index(fields=["project", "state"], name="alert_project_state_idx"),
            # The overview's alert ranking: alerts raised in a period, per project.
            models.Index(fields=["project", "first_at"], name="alert_project_first_idx"),
            models.Index(
                fields=["instance"],
                condition=Q(state__in=["firing", "acknowledged"]),
                name="alert_open_instance_idx",
            ),
            models.Index(fields=["first_at"], condition=Q(state="firing"), name="alert_firing_idx"),
        ]
        ordering = ["-last_at", "-id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title} ({self.state})"

    @property
    def is_open(self) -> bool:
        return self.state in (AlertState.FIRING, AlertState.ACKNOWLEDGED)


class AlertEvent(models.Model):
    """One line of an alert's timeline: fired, repeated, escalated, acked, resolved."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=AlertEventKind.choices)
    at = models.DateTimeField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    comment = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["alert", "at", "id"]

    def __str__(self) -> str:
        return f"{self.kind} of alert {self.alert_id}"
