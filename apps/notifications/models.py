from django.db import models
from django.db.models import Q

from apps.core import crypto

from .choices import ChannelKind, DeliveryState


class Channel(models.Model):
    """Where notifications go (SPEC 8). `config` holds the kind's plain settings (url, to,
    method, headers, body_template); secrets (`secret`, `token`) are kept encrypted in
    `secrets` and never answered again: the API says only which are set."""

    project = models.ForeignKey(
        "projects.Project",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="channels",
        help_text="empty: a global channel, usable by every project",
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    config = models.JSONField(default=dict, blank=True)
    # {"secret": "<encrypted>", ...}
    secrets = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="uniq_channel_name"),
            models.UniqueConstraint(
                fields=["name"], condition=Q(project__isnull=True), name="uniq_global_channel"
            ),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_secret(self, key: str) -> str:
        return crypto.decrypt(self.secrets.get(key, ""))

    def set_secret(self, key: str, value: str | None) -> None:
        """An empty value or None removes the secret."""
        if value:
            self.secrets = {**self.secrets, key: crypto.encrypt(value)}
        else:
            self.secrets = {k: v for k, v in self.secrets.items() if k != key}

    @property
    def secrets_set(self) -> list[str]:
        return sorted(self.secrets)


class Delivery(models.Model):
    """One message to one recipient through one channel, and what became of it."""

    alert = models.ForeignKey(
        "monitoring.Alert",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="deliveries",
    )
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    # Whose it is: the alert's project, else the channel's (a test). Who may see a
    # delivery follows from it, with one indexed condition instead of joins.
    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    # Who it is for, in the channel's terms: an address, a phone number, or the
    # channel itself ("#channel") for robots and webhooks that post to a room.
    recipient = models.CharField(max_length=300, blank=True)
    # What the message announces: fired, repeated, escalated, resolved, test.
    event = models.CharField(max_length=16, default="fired")
    state = models.CharField(
        max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    # What to send, rendered when the delivery was made (title, text, url, fields, and
    # the users to @-mention), so a retry sends the same message.
    payload = models.JSONField(default=dict, blank=True)
    tries = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # The answer of the last try (HTTP status), when there was one.
    last_status = models.IntegerField(null=True, blank=True)
    next_try_at = models.DateTimeField(null=True, blank=True)
    # When a task to send it was last put on the queue: the retry pass re-enqueues only
    # what became due after that (or whose task was lost long ago).
    queued_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="delivery_created_idx"),
            models.Index(fields=["alert", "-id"], name="delivery_alert_idx"),
            models.Index(fields=["channel", "-id"], name="delivery_channel_idx"),
            models.Index(fields=["project", "-id"], name="delivery_project_idx"),
            models.Index(
                fields=["next_try_at"],
                condition=Q(state="pending"),
                name="delivery_pending_idx",
            ),
        ]
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient or self.channel} ({self.state})"
