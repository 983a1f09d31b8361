from django.conf import settings
from django.db import models

from .choices import BackfillOrder, BackfillState, Downstream


class Backfill(models.Model):
    """A data backfill (PatchData) run: root nodes, optionally their downstream, re-run
    for a range of business dates, date by date or N dates at once (SPEC section 6).

    Its instances (Instance.backfill) carry `backfill_seq`, the position of their biz date
    in the run's order. The dispatcher starts only instances whose seq is below
    `window_start + parallelism`; `window_start` is the first date of the run that still
    has an unfinished instance."""

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="backfills"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The nodes the operator named, and every node the run covers (roots + downstream).
    root_node_ids = models.JSONField(default=list)
    downstream = models.CharField(max_length=8, choices=Downstream.choices, default=Downstream.NONE)
    node_ids = models.JSONField(default=list)
    start_date = models.DateField()
    end_date = models.DateField()
    order = models.CharField(
        max_length=8, choices=BackfillOrder.choices, default=BackfillOrder.SERIAL
    )
    parallelism = models.PositiveIntegerField(default=1)
    descending = models.BooleanField(default=False)
    ignore_schedule_time = models.BooleanField(default=False)
    state = models.CharField(
        max_length=16, choices=BackfillState.choices, default=BackfillState.RUNNING
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    window_start = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0, help_text="instances created")

    class Meta:
        indexes = [models.Index(fields=["state"], name="backfill_state_idx")]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"backfill {self.pk} ({self.start_date}..{self.end_date}, {self.state})"

    @property
    def date_count(self) -> int:
        return (self.end_date - self.start_date).days + 1

    @property
    def is_finished(self) -> bool:
        return self.state != BackfillState.RUNNING
