"""Shared pieces of the notification tests: a fixed time, a secret to look for, a
message like the monitoring app's, and one try of deliveries as the queue would."""

import datetime

from apps.notifications import services
from apps.notifications.models import Delivery
from apps.notifications.services import Message

NOW = datetime.datetime(2026, 11, 22, 2, 0, tzinfo=datetime.UTC)
SECRET = "SEC-very-secret-0123456789abcdef"


def message(**fields) -> Message:
    values = dict(
        event="fired",
        title="[CRITICAL] load failed",
        text="Node load failed in project acme.\nSince: 2026-11-22T02:00:00+00:00\nCount: 3",
        url="http://ops.example.com/monitoring/alerts/7/",
        severity="critical",
        fields={"node": "load", "count": 3},
    )
    values.update(fields)
    return Message(**values)


def deliver_all(deliveries: list[Delivery], *, now=NOW) -> list[Delivery]:
    """One try of each pending delivery, as the queue's tasks would."""
    return [
        services.delivery_send(delivery_id=d.pk, now=now) if d.state == "pending" else d
        for d in deliveries
    ]


def send_one(channel, *, recipients=(), now=NOW, **message_fields) -> Delivery:
    (delivery,) = services.notify(
        alert_id=None,
        message=message(**message_fields),
        channels=[channel],
        recipients=list(recipients),
        now=now,
    )
    return services.delivery_send(delivery_id=delivery.pk, now=now)
