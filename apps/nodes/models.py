from django.conf import settings
from django.db import models

from .choices import Env, NodeStatus, NodeType, ScheduleType


class Node(models.Model):
    """A published unit of work. Its columns mirror the current version for filtering;
    instances always run a NodeVersion snapshot, never this live row."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="nodes")
    env = models.CharField(max_length=8, choices=Env.choices, default=Env.PROD)
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=16, choices=NodeType.choices)
    schedule_type = models.CharField(max_length=16, choices=ScheduleType.choices)
    cron = models.CharField(max_length=100, blank=True)
    self_dependent = models.BooleanField(default=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_nodes"
    )
    priority = models.PositiveSmallIntegerField(default=3)
    resource_group = models.ForeignKey(
        "configuration.ResourceGroup", on_delete=models.PROTECT, related_name="nodes"
    )
    paused = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=NodeStatus.choices, default=NodeStatus.ONLINE)
    description = models.TextField(blank=True)
    # The node group it was published with (its pipeline file, or the spec's `group`).
    group = models.CharField(max_length=100, blank=True, default="")
    current_version = models.ForeignKey(
        "nodes.NodeVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "env", "name"], name="uniq_node_name")
        ]
        indexes = [
            models.Index(fields=["project", "env", "schedule_type"], name="node_schedule_idx"),
            models.Index(fields=["owner"], name="node_owner_idx"),
            models.Index(fields=["project", "group", "name"], name="node_group_idx"),
        ]
        ordering = ["project", "env", "name"]

    def __str__(self) -> str:
        return (
            f"{self.project.code}.{self.name}"
            if self.env == Env.PROD
            else f"{self.project.code}.{self.name} (dev)"
        )

    @property
    def version(self) -> int | None:
        return self.current_version.number if self.current_version_id else None


class NodeVersion(models.Model):
    """An immutable snapshot made at each publish that changed the node."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    spec = models.JSONField()
    spec_hash = models.CharField(max_length=64)
    # Upstream node ids resolved at publish time, in the order of spec["upstream"].
    upstream_ids = models.JSONField(default=list)
    published_at = models.DateTimeField()
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    note = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["node", "number"], name="uniq_node_version")]
        indexes = [models.Index(fields=["published_at"], name="nodeversion_published_idx")]
        ordering = ["node", "-number"]

    def __str__(self) -> str:
        return f"{self.node} v{self.number}"

    def save(self, *args, **kwargs):
        if self.pk and not kwargs.pop("allow_update", False):
            raise ValueError("node versions are immutable")
        super().save(*args, **kwargs)


class NodeDependency(models.Model):
    """The current (latest version's) dependency graph between nodes, also across projects."""

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="upstream_links")
    upstream = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="downstream_links")

    class Meta:
        verbose_name_plural = "node dependencies"
        constraints = [
            models.UniqueConstraint(fields=["node", "upstream"], name="uniq_node_dependency")
        ]
        indexes = [models.Index(fields=["upstream"], name="nodedep_upstream_idx")]

    def __str__(self) -> str:
        return f"{self.upstream} -> {self.node}"
