"""A baseline's alerts (SPEC 7.2, 7.3): entering `warning` and entering `broken` each fire
one alert per cycle (source "baseline", keyed by baseline, trigger and cycle); the
cycle's finish resolves them, saying on time or late. They go to the baseline's
recipients (`owner`: the key nodes' owners) through its channels, as rule alerts do
(apps.monitoring.alerts)."""

import datetime

from django.db import IntegrityError, transaction

from apps.monitoring.alerts import alert_announce, usernames_for
from apps.monitoring.choices import OPEN_STATES, AlertEventKind, AlertSource, AlertState, Severity
from apps.monitoring.models import Alert, AlertEvent

TRIGGERS = {"warning": Severity.WARNING, "broken": Severity.CRITICAL}
WORDS = {"warning": "is at risk", "broken": "is broken"}


def dedup_key(baseline_id: int, trigger: str, biz_date: datetime.date, hour: int | None) -> str:
    cycle = biz_date.isoformat() + (f"T{hour:02d}" if hour is not None else "")
    return f"{AlertSource.BASELINE}:{baseline_id}:{trigger}:{cycle}"


def _local(computed, value: datetime.datetime | None) -> str:
    if value is None:
        return "unknown"
    return value.astimezone(computed.baseline.project.tz).strftime("%Y-%m-%d %H:%M")


def cycle_label(biz_date: datetime.date, hour: int | None) -> str:
    return f"biz date {biz_date}" + (f", hour {hour:02d}" if hour is not None else "")


def _what(computed, trigger: str, now: datetime.datetime) -> str:
    p = computed.prediction
    committed = _local(computed, computed.committed_at)
    if p.blocked_by:
        names = ", ".join(
            f"{computed.facts[i].state} instance {i} ({computed.facts[i].node_name})"
            + (" paused" if computed.facts[i].paused else "")
            for i in p.blocked_by[:5]
        )
        return f"blocked by {names}: the finish cannot be predicted (committed {committed})"
    predicted = _local(computed, p.predicted_finish)
    path = " -> ".join(step.node_name for step in p.critical_path)
    if trigger == "broken":
        return (
            f"not finished at the committed time {committed}; predicted finish {predicted}"
            f"; critical path: {path}"
        )
    warning = _local(computed, computed.warning_at)
    if now > computed.warning_at:
        return (
            f"not finished at the warning time {warning} (committed {committed}); "
            f"predicted finish {predicted}; critical path: {path}"
        )
    return (
        f"predicted to finish at {predicted}, past the warning time {warning} "
        f"(committed {committed}); critical path: {path}"
    )


def recipients_of(baseline, now: datetime.datetime) -> list[str]:
    """The baseline's recipients as usernames; `owner` means the key nodes' owners."""
    names = usernames_for(baseline.recipients or {}, owner=None, now=now)
    if (baseline.recipients or {}).get("owner"):
        owners = baseline.key_nodes.exclude(owner__isnull=True).values_list(
            "owner__username", flat=True
        )
        names = list(dict.fromkeys([*sorted(owners), *names]))
    return names


def open_keys(*, computed) -> set[str]:
    """The dedup keys of the cycles' open alerts, in one query."""
    keys = [
        dedup_key(c.baseline.pk, trigger, c.biz_date, c.hour)
        for c in computed
        for trigger in TRIGGERS
    ]
    found: set[str] = set()
    for start in range(0, len(keys), 2000):
        found |= set(
            Alert.objects.filter(
                dedup_key__in=keys[start : start + 2000], state__in=OPEN_STATES
            ).values_list("dedup_key", flat=True)
        )
    return found


def baseline_alert_raise(*, computed, trigger: str, now: datetime.datetime) -> Alert | None:
    """Fire the cycle's `trigger` alert (None when another monitor just fired it: the
    database keeps one open alert per key)."""
    baseline = computed.baseline
    key = dedup_key(baseline.pk, trigger, computed.biz_date, computed.hour)
    what = _what(computed, trigger, now)
    project = baseline.project
    alert = Alert(
        project=project,
        source=AlertSource.BASELINE,
        rule=None,
        trigger=trigger,
        severity=TRIGGERS[trigger],
        state=AlertState.FIRING,
        title=(
            f"Baseline {project.code}.{baseline.name} {WORDS[trigger]} "
            f"({cycle_label(computed.biz_date, computed.hour)})"
        )[:300],
        message=what,
        target_type="baseline",
        target_id=str(baseline.pk),
        dedup_key=key,
        first_at=now,
        last_at=now,
        last_sent_at=now,
        recipients=recipients_of(baseline, now),
        channel_ids=sorted(c.pk for c in baseline.channels.all() if c.enabled),
        facts={
            "project_code": project.code,
            "baseline": baseline.pk,
            "baseline_name": baseline.name,
            "biz_date": computed.biz_date.isoformat(),
            "hour": computed.hour,
            "cycle": computed.row.pk if computed.row else None,
            "committed_at": computed.committed_at.isoformat(),
            "predicted_finish": computed.prediction.predicted_finish.isoformat()
            if computed.prediction.predicted_finish
            else None,
            "blocked_by": list(computed.prediction.blocked_by),
        },
    )
    try:
        with transaction.atomic():
            alert.save()
    except IntegrityError:
        return None  # another monitor fired it a moment ago
    AlertEvent.objects.create(
        alert=alert,
        kind=AlertEventKind.FIRED,
        at=now,
        comment=what,
        detail={"cycle": alert.facts["cycle"], "status": trigger},
    )
    alert_announce(alert, event="fired", what=what, now=now)
    return alert


def baseline_alerts_resolve(*, computed, now: datetime.datetime) -> list[int]:
    """The cycle finished: its open alerts resolve themselves, saying on time or late."""
    baseline = computed.baseline
    keys = [dedup_key(baseline.pk, t, computed.biz_date, computed.hour) for t in TRIGGERS]
    finished = computed.prediction.predicted_finish
    late = (finished - computed.committed_at).total_seconds() / 60
    committed = _local(computed, computed.committed_at)
    if late <= 0:
        what = f"finished on time at {_local(computed, finished)} (committed {committed})"
    else:
        what = (
            f"finished late at {_local(computed, finished)} (committed {committed}, "
            f"{late:.0f} minutes late)"
        )
    resolved = []
    for alert in (
        Alert.objects.select_for_update(of=("self",))
        .filter(dedup_key__in=keys, state__in=OPEN_STATES)
        .select_related("project")
    ):
        if not Alert.objects.filter(pk=alert.pk, state__in=OPEN_STATES).update(
            state=AlertState.RESOLVED, resolved_at=now, resolved_by=None
        ):
            continue
        alert.state, alert.resolved_at = AlertState.RESOLVED, now
        AlertEvent.objects.create(alert=alert, kind=AlertEventKind.RESOLVED, at=now, comment=what)
        alert_announce(alert, event="resolved", what=what, now=now)
        resolved.append(alert.pk)
    return resolved
