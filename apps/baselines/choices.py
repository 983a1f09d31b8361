from django.db import models

from apps.core.choices import colored


class CycleKind(models.TextChoices):
    DAILY = "daily", "Daily"
    HOURLY = "hourly", "Hourly"


@colored(
    {
        "safe": "green",
        "warning": "orange",
        "broken": "red",
        "finished_on_time": "green",
        "finished_late": "orange",
    }
)
class CycleStatus(models.TextChoices):
    """A cycle's status (SPEC 7.3): open while safe, warning or broken; then finished."""

    SAFE = "safe", "Safe"
    WARNING = "warning", "Warning"
    BROKEN = "broken", "Broken"
    FINISHED_ON_TIME = "finished_on_time", "Finished on time"
    FINISHED_LATE = "finished_late", "Finished late"


OPEN_STATUSES = (CycleStatus.SAFE, CycleStatus.WARNING, CycleStatus.BROKEN)
# While a cycle is at risk its baseline lends its priority to the cycle's unfinished path.
AT_RISK = (CycleStatus.WARNING, CycleStatus.BROKEN)
FINISHED_STATUSES = (CycleStatus.FINISHED_ON_TIME, CycleStatus.FINISHED_LATE)
