from django.db import models

from apps.core.choices import colored


@colored({"running": "blue", "succeeded": "green", "failed": "red", "stopped": "orange"})
class BackfillState(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    STOPPED = "stopped", "Stopped"


class BackfillOrder(models.TextChoices):
    SERIAL = "serial", "Serial (date by date)"
    PARALLEL = "parallel", "Parallel (N dates at once)"


class Downstream(models.TextChoices):
    NONE = "none", "None"
    ALL = "all", "All"
    SUBSET = "subset", "Chosen ones"
