"""django-q2 tasks of monitoring. Thin: the loop and the pass call the services."""

from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections

from apps.core import clock, loops
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


# Checks other apps add to the minute pass (apps.baselines: "baselines", every open
# cycle recomputed): name -> check(now=...) answering a count.
MINUTE_CHECKS: dict[str, Callable[..., int]] = {}


def monitor_pass() -> dict:
    """One whole pass, as `opscenter monitor` runs it: the outbox's events, the time
    triggers, the checks other apps add (baselines), escalation, and deliveries whose
    retry time has come."""
    now = clock.now()
    result = {
        "events": events_drain(now=now),
        "time_alerts": timepass.time_triggers_check(now=now),
    }
    for name, check in MINUTE_CHECKS.items():
        result[name] = check(now=now)
    result.update(
        {
            "escalated": len(alerts.alerts_escalate(now=now)),
            "deliveries_retried": notifications.deliveries_retry_due(now=now),
            "events_pruned": events.events_prune(now=now),
        }
    )
    return result


MONITOR_SCHEDULE = "monitor"


def monitor_loop(seconds: float = loops.MAX_SECONDS) -> dict:
    """The "monitor" schedule starts this every minute: one whole pass, then the outbox
    and due deliveries every OPSCENTER_MONITOR_POLL_SECONDS until the next minute's run
    takes over (apps.core.loops: no gap however late the scheduler starts a run), so an
    attempt's end is alerted within seconds. `seconds` bounds a run nothing relieves."""
    totals: dict[str, int] = {}

    def one_pass() -> None:
        if not totals:
            result = monitor_pass()
        else:
            result = {
                "events": events_drain(),
                "deliveries_retried": notifications.deliveries_retry_due(now=clock.now()),
            }
        for name, count in result.items():
            totals[name] = totals.get(name, 0) + count

    try:
        run = loops.loop_run(
            name=MONITOR_SCHEDULE,
            one_pass=one_pass,
            every_seconds=settings.OPSCENTER_MONITOR_POLL_SECONDS,
            max_seconds=seconds,
        )
        return {**totals, "passes": run.passes, "handed_over": run.handed_over}
    finally:
        close_old_connections()
