from django.conf import settings
from django.db import models

from .choices import Result, Source


class OperationLog(models.Model):
    """Who did what, when, to which object, through which door, and how it ended."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    username = models.CharField(max_length=150, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=32)
    object_id = models.CharField(max_length=64, blank=True)
    project = models.ForeignKey(
        "projects.Project", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    detail = models.JSONField(default=dict, blank=True)
    result = models.CharField(max_length=16, choices=Result.choices, default=Result.OK)
    message = models.TextField(blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="oplog_object_idx"),
            models.Index(fields=["project", "created_at"], name="oplog_project_idx"),
            models.Index(fields=["-created_at", "-id"], name="oplog_created_id_idx"),
        ]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.username or 'system'} {self.action} {self.object_type} {self.object_id}"
