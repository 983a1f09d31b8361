from django.conf import settings
from django.db import models
from django.db.models import Value
from django.db.models.functions import Coalesce

from .choices import RerunPolicy, ThrottleScope, TimeoutAction


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


class ThrottleRule(models.Model):
    """At most `max_concurrency` instances of its scope queued or running at once, while
    its window (if any) is open (SPEC 9). apps.configuration.gates enforces it.

    `scope_value` is the scope as given (a group's name, a project's code, a node type,
    `project_code.datasource_name`); the object it names is kept too, so a rule follows
    it and is removed with its project or datasource, and a group a rule names cannot be
    deleted. A project- or datasource-scoped rule belongs to that project (its admins
    change it; its window is in the project's timezone); others are global."""

    name = models.CharField(max_length=100, unique=True)
    scope_kind = models.CharField(max_length=16, choices=ThrottleScope.choices)
    scope_value = models.CharField(max_length=200)
    max_concurrency = models.PositiveIntegerField()
    window_start = models.TimeField(null=True, blank=True)
    window_end = models.TimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    resource_group = models.ForeignKey(
        ResourceGroup,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="throttle_rules",
    )
    project = models.ForeignKey(
        "projects.Project",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="throttle_rules",
    )
    datasource = models.ForeignKey(
        "projects.Datasource",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="throttle_rules",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(max_concurrency__gte=1),
                name="throttle_rule_max_concurrency_gte_1",
            ),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.scope_kind} {self.scope_value}: max {self.max_concurrency})"


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
