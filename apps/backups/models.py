import datetime

from django.conf import settings
from django.db import models

from .choices import BackupState, Trigger


class Backup(models.Model):
    """One archive (apps.backups.archive) in Django's default storage at `path`, with the
    SHA-256 and size of the whole file as it was stored."""

    created_at = models.DateTimeField()
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    state = models.CharField(
        max_length=16, choices=BackupState.choices, default=BackupState.RUNNING
    )
    error = models.TextField(blank=True)
    path = models.CharField(max_length=500, blank=True, help_text="name in the default storage")
    size_bytes = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    # Codes of the projects the archive holds, in its manifest's order.
    projects = models.JSONField(default=list, blank=True)
    # When the archive itself was made: its manifest's time (an upload may be older).
    archived_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="backup_expires_idx")]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"backup #{self.pk} ({self.created_at:%Y-%m-%d %H:%M})"

    @property
    def filename(self) -> str:
        return self.path.rpartition("/")[2] or f"opscenter-backup-{self.pk}.tar.gz"


class BackupProject(models.Model):
    """A project a backup holds, by code: what lets a project's members find the backups
    of their projects without reading every archive's manifest."""

    backup = models.ForeignKey(Backup, on_delete=models.CASCADE, related_name="project_rows")
    code = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["backup", "code"], name="uniq_backup_project")
        ]
        indexes = [models.Index(fields=["code", "backup"], name="backup_project_code_idx")]

    def __str__(self) -> str:
        return f"{self.code} in backup #{self.backup_id}"


class BackupSettings(models.Model):
    """The one row of backup settings (SPEC 10): the daily backup's time (the server's
    TIME_ZONE), how many days a backup is kept, and whether the daily backup runs."""

    SINGLETON_ID = 1

    time = models.TimeField(default=datetime.time(2, 0))
    retention_days = models.PositiveIntegerField(default=7)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = "backup settings"
        verbose_name_plural = "backup settings"

    def __str__(self) -> str:
        state = "on" if self.enabled else "off"
        return f"daily at {self.time:%H:%M}, kept {self.retention_days} days ({state})"

    @classmethod
    def get(cls) -> "BackupSettings":
        row, _ = cls.objects.get_or_create(pk=cls.SINGLETON_ID)
        return row
