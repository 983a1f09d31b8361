import datetime
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from apps.core import crypto

from .choices import DatasourceKind, EnvMode, GenerationMode, Role


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"unknown timezone {value!r}") from exc


class Project(models.Model):
    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    env_mode = models.CharField(max_length=16, choices=EnvMode.choices, default=EnvMode.BASIC)
    generation_time = models.TimeField(default=datetime.time(23, 0))
    generation_mode = models.CharField(
        max_length=16, choices=GenerationMode.choices, default=GenerationMode.T_PLUS_1
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="uniq_project_member")
        ]
        ordering = ["project", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} as {self.role}"


class Datasource(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="datasources")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=DatasourceKind.choices)
    # PostgreSQL: a libpq DSN or URL without the password. SQLite: a file path.
    dsn = models.CharField(max_length=500, blank=True)
    path = models.CharField(max_length=500, blank=True)
    password_encrypted = models.TextField(blank=True, editable=False)
    # Restored from a backup, which keeps no secrets, after it had a password: its SQL
    # nodes cannot connect until someone sets the password again (which clears this).
    restored_without_secret = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="uniq_project_datasource")
        ]
        ordering = ["project", "name"]

    def __str__(self) -> str:
        return f"{self.project}.{self.name}"

    def save(self, *args, **kwargs):
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "password_encrypted" in update_fields:
            # A new password clears the restore's flag in the same write.
            kwargs["update_fields"] = {*update_fields, "restored_without_secret"}
        super().save(*args, **kwargs)

    def set_password(self, password: str) -> None:
        self.password_encrypted = crypto.encrypt(password)
        if password:
            self.restored_without_secret = False

    def get_password(self) -> str:
        return crypto.decrypt(self.password_encrypted)

    @property
    def has_password(self) -> bool:
        return bool(self.password_encrypted)

    def connection_settings(self) -> dict:
        """What the SQL runners connect with (apps.instances.executors.sql_runner.connect),
        the password decrypted: for a runner's stdin only, never a log or an answer."""
        return {
            "kind": self.kind,
            "dsn": self.dsn,
            "path": self.path,
            "password": self.get_password(),
        }


class Variable(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="variables")
    name = models.CharField(max_length=100)
    value = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="uniq_project_variable")
        ]
        ordering = ["project", "name"]

    def __str__(self) -> str:
        return f"{self.project}.{self.name}"
