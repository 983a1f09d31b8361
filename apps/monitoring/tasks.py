"""django-q2 tasks of monitoring. Thin: the loop and the pass call the services."""

import time

from django.conf import settings
from django.db import close_old_connections

from apps.core import clock
from apps.notifications import services as notifications

from . import alerts, events, timepass


def events_drain(*, now=None) -> int:
    """Handle every unprocessed instance event (batch by batch)."""
    handled = 0
    while True:
        count = events.events_consume(now=now or clock.now())
        handled += count
        if not count:
            return handled


def monitor_pass() -> dict:
    """One whole pass, as `opscenter monitor` runs it: the outbox's events, the time
    triggers, escalation, and deliveries whose retry time has come."""
    now = clock.now()
    return {
        "events": events_drain(now=now),
        "time_alerts": timepass.time_triggers_check(now=now),
        "escalated": len(alerts.alerts_escalate(now=now)),
        "deliveries_retried": notifications.deliveries_retry_due(now=now),
        "events_pruned": events.events_prune(now=now),
    }


def monitor_loop(seconds: float = 55.0) -> dict:
    """The "monitor" schedule starts this every minute: one whole pass, then for about a
    minute the outbox and due deliveries every OPSCENTER_MONITOR_POLL_SECONDS, so an
    attempt's end is alerted within seconds."""
    deadline = time.monotonic() + seconds
    totals = monitor_pass()
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(settings.OPSCENTER_MONITOR_POLL_SECONDS, remaining))
            totals["events"] += events_drain()
            totals["deliveries_retried"] += notifications.deliveries_retry_due(now=clock.now())
        return totals
    finally:
        close_old_connections()
