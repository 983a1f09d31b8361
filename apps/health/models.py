from django.db import models


class ClusterSeen(models.Model):
    """A django-q2 cluster as last seen in the broker. django-q2 keeps a cluster's status
    for seconds only, so a cluster that dies simply vanishes from it; this row remembers
    it, with its last heartbeat, so the health page can show it as dead."""

    cluster_id = models.CharField(max_length=64, unique=True)
    host = models.CharField(max_length=255)
    pid = models.IntegerField()
    queue = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=32, blank=True)
    workers = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField()
    first_seen_at = models.DateTimeField()

    class Meta:
        ordering = ["queue", "host", "pid"]
        verbose_name_plural = "clusters seen"

    def __str__(self) -> str:
        return f"cluster {self.queue or '?'} on {self.host}:{self.pid}"
