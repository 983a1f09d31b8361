from django.conf import settings
from django.db import models
from django.db.models import Value
from django.db.models.functions import Coalesce

from .choices import RerunPolicy, TimeoutAction


class ResourceGroup(models.Model):
    """A pool of execution capacity; also the name of the django-q2 queue its workers serve."""

    DEFAULT = "default"

    name = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    max_concurrency = models.PositiveIntegerField(default=10)
    cpu_capacity = models.FloatField(null=True, blank=True, help_text="cores; empty: unlimited")
    memory_capacity_mb = models.PositiveIntegerField(
        null=True, blank=True, help_text="MiB; empty: unlimited"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        return self.name

    @classmethod
    def get_default(cls) -> "ResourceGroup":
        group, _ = cls.objects.get_or_create(name=cls.DEFAULT)
        return group


class RuntimeConfig(models.Model):
    """Runtime settings of one level (SPEC 9): the global row (no project) or a project's.
    An empty field sets nothing at its level: a project's inherits the global value, the
    global one the built-in default. apps.configuration.runtime resolves them with the
    node's own NodeSpec values, the nearest level winning."""

    project = models.OneToOneField(
        "projects.Project",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="runtime_config",
    )
    timeout_seconds = models.PositiveIntegerField(null=True, blank=True, help_text="0: none")
    timeout_action = models.CharField(max_length=16, choices=TimeoutAction.choices, blank=True)
    retries = models.PositiveSmallIntegerField(null=True, blank=True)
    retry_interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    rerun_policy = models.CharField(max_length=16, choices=RerunPolicy.choices, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            # One global row: the project's column, NULL for it, counts as 0 here.
            models.UniqueConstraint(
                Coalesce("project", Value(0)), name="uniq_runtime_config_level"
            ),
        ]
        verbose_name = "runtime configuration"
        verbose_name_plural = "runtime configuration"

    def __str__(self) -> str:
        return f"runtime configuration of {self.project or 'every project (global)'}"
