import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Coalesce, Greatest

from apps.nodes.choices import Env

from .choices import AttemptState, InstanceKind, InstanceState, WaitReason


def duration_seconds(
    started_at: datetime.datetime | None, finished_at: datetime.datetime | None
) -> float | None:
    """How long a run took, once it has finished (None before)."""
    if started_at and finished_at:
        return round((finished_at - started_at).total_seconds(), 3)
    return None


class Instance(models.Model):
    """One run of one node version for one business date and scheduled time."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    node = models.ForeignKey("nodes.Node", on_delete=models.CASCADE, related_name="instances")
    version = models.ForeignKey("nodes.NodeVersion", on_delete=models.PROTECT, related_name="+")
    env = models.CharField(max_length=8, choices=Env.choices, default=Env.PROD)
    kind = models.CharField(max_length=16, choices=InstanceKind.choices)
    biz_date = models.DateField()
    scheduled_at = models.DateTimeField()
    state = models.CharField(
        max_length=16, choices=InstanceState.choices, default=InstanceState.PENDING
    )
    wait_reason = models.CharField(max_length=24, choices=WaitReason.choices, blank=True)
    # A weekly/monthly/yearly node's instance on a day its cron does not fire.
    dry_run = models.BooleanField(default=False)
    paused = models.BooleanField(default=False)
    forced = models.BooleanField(default=False)
    # "Run without dependencies": start as soon as resources allow, ignoring upstream
    # and time. Cleared when the instance starts.
    run_now = models.BooleanField(default=False)
    priority = models.PositiveSmallIntegerField(default=3)
    # While a baseline's cycle is at risk (SPEC 7.3), the baseline lends its priority to
    # the unfinished instances on the cycle's path: what it lends and which baseline.
    lent_priority = models.PositiveSmallIntegerField(null=True, blank=True)
    lent_by = models.ForeignKey(
        "baselines.Baseline",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # instance_lent_idx: only the few lent instances are indexed
    )
    # The priority it is dispatched at: its own or the lent one, the greater. Kept by the
    # database (a stored generated column), so every way an instance is written agrees.
    dispatch_priority = models.GeneratedField(
        expression=Greatest(
            "priority",
            Coalesce("lent_priority", Value(0), output_field=models.PositiveSmallIntegerField()),
        ),
        output_field=models.PositiveSmallIntegerField(),
        db_persist=True,
    )
    resource_group = models.ForeignKey(
        "configuration.ResourceGroup", on_delete=models.PROTECT, related_name="+"
    )
    # Parameter values given for a manual run; they override the node's defaults.
    params = models.JSONField(default=dict, blank=True)
    attempt_count = models.PositiveIntegerField(default=0)
    # Automatic retries used since the instance was last (re)started by an operator.
    retries_used = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # A backfill instance's run, and the position of its biz date in the run's order
    # (0 for the first date run): the dispatcher starts it only inside the run's window.
    backfill = models.ForeignKey(
        "backfills.Backfill",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="instances",
    )
    backfill_seq = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            # Generation is idempotent because the database refuses a second copy.
            models.UniqueConstraint(
                fields=["node", "scheduled_at"],
                condition=Q(kind="recurring"),
                name="uniq_recurring_instance",
            ),
        ]
        indexes = [
            models.Index(fields=["biz_date", "state"], name="instance_bizdate_state_idx"),
            models.Index(fields=["project", "biz_date"], name="instance_project_bizdate_idx"),
            models.Index(fields=["node", "biz_date"], name="instance_node_bizdate_idx"),
            models.Index(fields=["state", "kind"], name="instance_state_kind_idx"),
            models.Index(fields=["backfill", "backfill_seq"], name="instance_backfill_seq_idx"),
            # The instance list's keyset order (newest scheduled first), unfiltered and
            # under its most used filters: page 10,000 reads what page 1 reads.
            models.Index(fields=["scheduled_at", "id"], name="instance_scheduled_idx"),
            models.Index(fields=["state", "scheduled_at", "id"], name="instance_state_sched_idx"),
            models.Index(
                fields=["biz_date", "scheduled_at", "id"], name="instance_bizdate_sched_idx"
            ),
            models.Index(fields=["node", "scheduled_at", "id"], name="instance_node_sched_idx"),
            # The dispatcher's candidates: small, because few instances are pending.
            # The dispatcher's pass: pending instances whose time has come (due_at()),
            # those to run at once, and the rolling wait-reason sweep over the rest.
            models.Index(
                Coalesce("next_attempt_at", "scheduled_at"),
                condition=Q(state="pending"),
                name="instance_pending_due_idx",
            ),
            models.Index(
                fields=["id"],
                condition=Q(state="pending", run_now=True),
                name="instance_pending_run_now_idx",
            ),
            models.Index(
                fields=["id"], condition=Q(state="pending"), name="instance_pending_id_idx"
            ),
            # The dispatcher's claim: a group's pending instances in start order.
            models.Index(
                fields=["resource_group", "-dispatch_priority", "scheduled_at", "id"],
                condition=Q(state="pending"),
                name="instance_pending_group_idx",
            ),
            models.Index(
                fields=["resource_group"],
                condition=Q(state__in=["queued", "running"]),
                name="instance_active_group_idx",
            ),
            # The instances a baseline lends its priority to (few at any time).
            models.Index(
                fields=["lent_by"],
                condition=Q(lent_by__isnull=False),
                name="instance_lent_idx",
            ),
        ]
        ordering = ["-scheduled_at", "-id"]

    def __str__(self) -> str:
        return f"{self.node.name} @ {self.scheduled_at:%Y-%m-%d %H:%M} ({self.state})"

    @property
    def duration_seconds(self) -> float | None:
        return duration_seconds(self.started_at, self.finished_at)

    @property
    def is_finished(self) -> bool:
        return self.state in {
            InstanceState.SUCCEEDED,
            InstanceState.FAILED,
            InstanceState.STOPPED,
            InstanceState.SKIPPED,
        }


class InstanceDependency(models.Model):
    """An edge fixed at generation: `downstream` may start only after `upstream` is done."""

    downstream = models.ForeignKey(
        Instance, on_delete=models.CASCADE, related_name="upstream_edges"
    )
    upstream = models.ForeignKey(
        Instance, on_delete=models.CASCADE, related_name="downstream_edges"
    )
    # Set by the "remove dependency" operation: the edge is kept for the record but no
    # longer blocks.
    removed = models.BooleanField(default=False)

    class Meta:
        verbose_name_plural = "instance dependencies"
        constraints = [
            models.UniqueConstraint(
                fields=["downstream", "upstream"], name="uniq_instance_dependency"
            )
        ]
        indexes = [models.Index(fields=["upstream"], name="instancedep_upstream_idx")]

    def __str__(self) -> str:
        return f"{self.upstream_id} -> {self.downstream_id}"


class Attempt(models.Model):
    """One execution of an instance: first run, retry or rerun."""

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    state = models.CharField(
        max_length=16, choices=AttemptState.choices, default=AttemptState.RUNNING
    )
    # Why it ended the way it did, in the operator's words ("timed out after 60s").
    reason = models.CharField(max_length=500, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    cpu_seconds = models.FloatField(null=True, blank=True)
    peak_memory_mb = models.FloatField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="host:pid of the worker")
    pid = models.IntegerField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    log_size = models.PositiveIntegerField(default=0)
    # The runtime settings in force when it started, each with its level
    # (apps.configuration.runtime.Runtime.as_dict): its timeout, action and retries.
    runtime = models.JSONField(default=dict, blank=True)
    # With timeout_action alert_only: when it passes its timeout (it keeps running and the
    # monitor's minute pass raises a running_longer alert).
    timeout_alert_at = models.DateTimeField(null=True, blank=True)
    # Why opscenter killed it, if it did: "timeout" or "memory" (over its memory_mb).
    killed_for = models.CharField(max_length=16, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["instance", "number"], name="uniq_attempt_number")
        ]
        indexes = [
            models.Index(
                fields=["heartbeat_at"],
                condition=Q(state="running"),
                name="attempt_running_heartbeat_idx",
            ),
            # The monitor's running_longer rules: the running attempts started before a
            # time, without reading every running attempt's row.
            models.Index(
                fields=["started_at"],
                condition=Q(state="running"),
                name="attempt_running_started_idx",
            ),
            # The monitor's timeout alerts: running attempts past an alert_only timeout.
            models.Index(
                fields=["timeout_alert_at"],
                condition=Q(state="running", timeout_alert_at__isnull=False),
                name="attempt_running_overtime_idx",
            ),
            # The resource dashboard: a date range of finished attempts.
            models.Index(fields=["started_at"], name="attempt_started_idx"),
        ]
        ordering = ["instance", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of instance {self.instance_id}"

    @property
    def duration_seconds(self) -> float | None:
        return duration_seconds(self.started_at, self.finished_at)


class AttemptLogChunk(models.Model):
    """A piece of an attempt's log, written by the worker while it runs, so any web
    server can read a log from any worker machine."""

    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="log_chunks")
    offset = models.PositiveIntegerField(help_text="characters before this chunk")
    text = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["attempt", "offset"], name="uniq_log_chunk")]
        ordering = ["attempt", "offset"]

    def __str__(self) -> str:
        return f"log of attempt {self.attempt_id} from {self.offset}"


class GenerationRun(models.Model):
    """A record of each run of the generator, for operators and for the schedule."""

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="generation_runs"
    )
    run_date = models.DateField()
    cutoff = models.DateTimeField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    instances_created = models.PositiveIntegerField(default=0)
    edges_created = models.PositiveIntegerField(default=0)
    trigger = models.CharField(max_length=32, default="schedule")

    class Meta:
        indexes = [models.Index(fields=["project", "run_date"], name="genrun_project_date_idx")]
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"generation of {self.project_id} for {self.run_date}"


class InstanceEvent(models.Model):
    """One change of an instance's state, written by apps.instances.states in the same
    transaction as the change: the record of every change and the outbox that monitoring
    reads. Unprocessed rows are few (a partial index finds them); a consumer claims them
    with SELECT ... FOR UPDATE SKIP LOCKED and marks them processed in the transaction
    that acts on them, so two consumers never handle one twice and a crash loses none."""

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="events")
    from_state = models.CharField(max_length=16, choices=InstanceState.choices)
    to_state = models.CharField(max_length=16, choices=InstanceState.choices)
    # The attempt whose start or end this is (its number), when there is one.
    attempt = models.PositiveIntegerField(null=True, blank=True)
    # What caused it, in a word: retry, rerun, set_success, stop, lost, offline, ...
    cause = models.CharField(max_length=32, blank=True)
    at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["id"],
                condition=Q(processed_at__isnull=True),
                name="instevent_unprocessed_idx",
            ),
            models.Index(fields=["instance", "id"], name="instevent_instance_idx"),
        ]
        ordering = ["id"]

    def __str__(self) -> str:
        return f"instance {self.instance_id}: {self.from_state} -> {self.to_state}"
