import datetime

from django.db import models
from django.db.models import Q

from .choices import OPEN_STATUSES, CycleKind, CycleStatus


class Baseline(models.Model):
    """A promise (SPEC 7.3): the key nodes finish by the committed time every cycle. The
    committed time is `HH:MM` of the scheduled day for a daily baseline, minute `MM` of
    each hour for an hourly one, in the project's timezone; the warning time is
    `margin_minutes` before it. apps.baselines.services validates every field."""

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="baselines"
    )
    name = models.CharField(max_length=100)
    cycle = models.CharField(max_length=8, choices=CycleKind.choices, default=CycleKind.DAILY)
    committed_time = models.CharField(max_length=5, help_text="HH:MM (daily) or MM (hourly)")
    margin_minutes = models.PositiveIntegerField(default=30)
    priority = models.PositiveSmallIntegerField(
        default=5, help_text="1-8: lent to the cycle's unfinished path while it is at risk"
    )
    key_nodes = models.ManyToManyField("nodes.Node", related_name="baselines")
    recipients = models.JSONField(default=dict, blank=True)
    channels = models.ManyToManyField("notifications.Channel", blank=True, related_name="baselines")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="uniq_baseline_name")
        ]
        ordering = ["project", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_hourly(self) -> bool:
        return self.cycle == CycleKind.HOURLY

    def committed_at(self, biz_date: datetime.date, hour: int | None) -> datetime.datetime:
        """When the cycle (biz date, hour) is promised: on the scheduled day (biz date + 1)
        at HH:MM, or at hour:MM for an hourly cycle, in the project's timezone."""
        day = biz_date + datetime.timedelta(days=1)
        if self.is_hourly:
            at = datetime.time(hour or 0, int(self.committed_time))
        else:
            hh, mm = self.committed_time.split(":")
            at = datetime.time(int(hh), int(mm))
        return datetime.datetime.combine(day, at, tzinfo=self.project.tz)

    def warning_at(self, committed_at: datetime.datetime) -> datetime.datetime:
        return committed_at - datetime.timedelta(minutes=self.margin_minutes)


class BaselineCycle(models.Model):
    """One cycle of a baseline (a biz date; for an hourly baseline also an hour of the
    scheduled day) as the monitor last computed it: the status, the prediction and its
    critical path while open; the finish once finished (its history)."""

    baseline = models.ForeignKey(Baseline, on_delete=models.CASCADE, related_name="cycles")
    biz_date = models.DateField()
    hour = models.PositiveSmallIntegerField(null=True, blank=True)
    committed_at = models.DateTimeField()
    warning_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=CycleStatus.choices, default=CycleStatus.SAFE)
    # When the status last changed.
    status_since = models.DateTimeField()
    # The latest predicted (or, once finished, real) finish of the key instances; null
    # while an ancestor blocks it (blocked_by names them).
    predicted_finish = models.DateTimeField(null=True, blank=True)
    # False when some duration on the way had no history to go by.
    estimated = models.BooleanField(default=True)
    blocked_by = models.JSONField(default=list, blank=True)
    key_instances = models.JSONField(default=list, blank=True)
    critical_path = models.JSONField(default=list, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When the monitor last wrote a change of it (an unchanged prediction is not written).
    computed_at = models.DateTimeField()
    # A digest of the instances on the cycle's path: its members are written again only
    # when it changes.
    path_digest = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["baseline", "biz_date", "hour"],
                condition=Q(hour__isnull=False),
                name="uniq_baseline_cycle_hour",
            ),
            models.UniqueConstraint(
                fields=["baseline", "biz_date"],
                condition=Q(hour__isnull=True),
                name="uniq_baseline_cycle_day",
            ),
        ]
        indexes = [
            # The monitor's pass: the open cycles.
            models.Index(
                fields=["biz_date"],
                condition=Q(status__in=[s.value for s in OPEN_STATUSES]),
                name="baseline_cycle_open_idx",
            ),
            # A baseline's history, newest first.
            models.Index(fields=["baseline", "-biz_date", "-hour"], name="baseline_cycle_hist_idx"),
        ]
        ordering = ["-biz_date", "-hour"]

    def __str__(self) -> str:
        hour = f" {self.hour:02d}:00" if self.hour is not None else ""
        return f"{self.baseline} {self.biz_date}{hour} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class BaselineCycleInstance(models.Model):
    """An instance on a cycle's path: a key instance or one of its ancestors. Kept so a
    page asks "which baselines is this instance on" and "which instances are on a
    baseline's path today" in SQL, and the event hook finds the cycles to recompute."""

    cycle = models.ForeignKey(BaselineCycle, on_delete=models.CASCADE, related_name="members")
    instance = models.ForeignKey(
        "instances.Instance", on_delete=models.CASCADE, related_name="baseline_memberships"
    )
    key = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cycle", "instance"], name="uniq_cycle_instance")
        ]
        indexes = [models.Index(fields=["instance"], name="cycle_instance_idx")]

    def __str__(self) -> str:
        return f"instance {self.instance_id} on cycle {self.cycle_id}"
