from django.db import models

from apps.core.choices import colored


@colored({"scheduled": "blue", "manual": "purple", "uploaded": "cyan"})
class Trigger(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    MANUAL = "manual", "Manual"
    # An archive brought in through the upload form or API (checked before it was kept).
    UPLOADED = "uploaded", "Uploaded"


@colored({"running": "blue", "ready": "green", "failed": "red"})
class BackupState(models.TextChoices):
    RUNNING = "running", "Running"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
