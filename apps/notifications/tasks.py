"""django-q2 tasks of notifications: thin, idempotent (a duplicate task's claim fails)."""

from apps.core import clock
from apps.core.errors import NotFound


def deliver(delivery_id: int) -> str | None:
    """One try of one delivery; answers its state after the try."""
    from .services import delivery_send

    try:
        return delivery_send(delivery_id=delivery_id, now=clock.now()).state
    except NotFound:
        return None  # deleted with its channel meanwhile
