from django.db import models


class RealtimeSettings(models.Model):
    """A realtime node's one instance, the resources its next start gets, its restart
    policy, and which supervisor runs it now (with that supervisor's heartbeat)."""

    node = models.OneToOneField("nodes.Node", on_delete=models.CASCADE, related_name="realtime")
    instance = models.OneToOneField(
        "instances.Instance", on_delete=models.CASCADE, related_name="realtime"
    )
    # Operator overrides of the spec's cpu / memory_mb; read at each start.
    cpu = models.FloatField(null=True, blank=True)
    memory_mb = models.PositiveIntegerField(null=True, blank=True)
    # What the running process was started with, to show a change waiting for a restart.
    applied_cpu = models.FloatField(null=True, blank=True)
    applied_memory_mb = models.PositiveIntegerField(null=True, blank=True)
    # Unexpected exits within the window that are restarted; one more fails the instance.
    restart_limit = models.PositiveSmallIntegerField(default=3)
    restart_window_seconds = models.PositiveIntegerField(default=600)
    supervisor = models.CharField(max_length=200, blank=True, help_text="host:pid running it")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "realtime settings"

    def __str__(self) -> str:
        return f"realtime settings of node {self.node_id}"
