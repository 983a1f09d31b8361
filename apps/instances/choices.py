from django.db import models

from apps.core.choices import colored


class InstanceKind(models.TextChoices):
    RECURRING = "recurring", "Recurring"
    BACKFILL = "backfill", "Backfill"
    ONE_TIME = "one_time", "One-time"
    REALTIME = "realtime", "Real-time"


@colored(
    {
        "pending": "gray",
        "queued": "cyan",
        "running": "blue",
        "succeeded": "green",
        "failed": "red",
        "stopped": "orange",
        "skipped": "light",
        "starting": "cyan",
        "stopping": "orange",
    }
)
class InstanceState(models.TextChoices):
    PENDING = "pending", "Pending"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    STOPPED = "stopped", "Stopped"
    SKIPPED = "skipped", "Skipped"
    # realtime only
    STARTING = "starting", "Starting"
    STOPPING = "stopping", "Stopping"


# An upstream in one of these states no longer blocks its downstream.
DONE_FOR_DOWNSTREAM = (InstanceState.SUCCEEDED, InstanceState.SKIPPED)
FINISHED = (
    InstanceState.SUCCEEDED,
    InstanceState.FAILED,
    InstanceState.STOPPED,
    InstanceState.SKIPPED,
)
ACTIVE = (InstanceState.QUEUED, InstanceState.RUNNING)


@colored(
    {
        "frozen": "purple",
        "waiting_upstream": "gray",
        "waiting_time": "gray",
        "throttled": "yellow",
        "waiting_resources": "yellow",
    }
)
class WaitReason(models.TextChoices):
    """Why a pending instance has not started, in the order they are checked."""

    FROZEN = "frozen", "Frozen (paused)"
    WAITING_UPSTREAM = "waiting_upstream", "Waiting for upstream"
    WAITING_TIME = "waiting_time", "Waiting for its time"
    THROTTLED = "throttled", "Throttled"
    WAITING_RESOURCES = "waiting_resources", "Waiting for resources"


@colored({"running": "blue", "succeeded": "green", "failed": "red", "stopped": "orange"})
class AttemptState(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    STOPPED = "stopped", "Stopped"
