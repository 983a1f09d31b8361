"""Alerts, rules and channels built directly as rows, for the API and CLI tests."""

import datetime
import itertools

from apps.monitoring.models import Alert, AlertEvent, MonitorRule
from apps.notifications.models import Channel

T0 = datetime.datetime(2026, 11, 22, 2, 0, tzinfo=datetime.UTC)
_keys = itertools.count(1)


def channel_make(project, name: str = "hook", kind: str = "webhook") -> Channel:
    return Channel.objects.create(
        project=project, name=name, kind=kind, config={"url": "http://127.0.0.1:9/hook"}
    )


def rule_make(project, name: str = "failures", **fields) -> MonitorRule:
    fields.setdefault("scope", {"kind": "project"})
    fields.setdefault("triggers", [{"type": "failure"}])
    return MonitorRule.objects.create(project=project, name=name, **fields)


def alert_make(
    project,
    *,
    title: str = "acme.report failed",
    state: str = "firing",
    severity: str = "critical",
    last_at: datetime.datetime = T0,
    minutes_before: int = 0,
    rule=None,
    node=None,
    instance=None,
    trigger: str = "failure",
    count: int = 1,
) -> Alert:
    last = last_at - datetime.timedelta(minutes=minutes_before)
    target = instance.pk if instance else next(_keys)
    alert = Alert.objects.create(
        project=project,
        rule=rule,
        trigger=trigger,
        severity=severity,
        state=state,
        title=title,
        message="attempt 1 failed: exit code 3",
        target_type="instance",
        target_id=str(target),
        dedup_key=f"test:{next(_keys)}:{trigger}:instance:{target}",
        node=node,
        instance=instance,
        count=count,
        first_at=last - datetime.timedelta(minutes=30),
        last_at=last,
        resolved_at=last if state == "resolved" else None,
    )
    AlertEvent.objects.create(alert=alert, kind="fired", at=alert.first_at, comment=alert.message)
    return alert
