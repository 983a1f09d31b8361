"""A warn rule that fails raises an alert (source "field", severity warning), one per
rule and instance: a later failing check of the same rule on the same instance counts a
repeat on the open alert (sent again at most every DEDUP_MINUTES); a later passing one
resolves it. It goes to the node's owner through the rule's channels."""

import datetime

from django.db import IntegrityError, transaction
from django.db.models import F

from apps.monitoring.alerts import alert_announce
from apps.monitoring.choices import OPEN_STATES, AlertEventKind, AlertSource, AlertState, Severity
from apps.monitoring.models import Alert, AlertEvent

from .models import FieldRule

TRIGGER = "field_rule"
DEDUP_MINUTES = 30


def dedup_key(rule_id: int, instance_id: int) -> str:
    return f"{AlertSource.FIELD}:{rule_id}:instance:{instance_id}"


def field_alert_raise(
    *, rule: FieldRule, instance, attempt: int, what: str, now: datetime.datetime
) -> Alert:
    """Fire the alert of `rule` on `instance`, or count a repeat on the open one."""
    key = dedup_key(rule.pk, instance.pk)
    detail = {"attempt": attempt, "field_rule": rule.pk}
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update(of=("self",))
            .filter(dedup_key=key, state__in=OPEN_STATES)
            .select_related("project")
            .first()
        )
        if alert is None:
            alert = _fire(rule=rule, instance=instance, key=key, what=what, detail=detail, now=now)
        else:
            _repeat(alert, what=what, detail=detail, now=now)
    return alert


def _fire(*, rule: FieldRule, instance, key: str, what: str, detail: dict, now) -> Alert:
    node = instance.node
    owner = node.owner.get_username() if node.owner_id else None
    alert = Alert(
        project_id=instance.project_id,
        source=AlertSource.FIELD,
        rule=None,
        trigger=TRIGGER,
        severity=Severity.WARNING,
        state=AlertState.FIRING,
        title=(
            f"{instance.project.code}.{node.name}: field rule #{rule.pk} failed "
            f"(biz date {instance.biz_date})"
        )[:300],
        message=what,
        target_type="instance",
        target_id=str(instance.pk),
        dedup_key=key,
        node_id=node.pk,
        instance_id=instance.pk,
        first_at=now,
        last_at=now,
        last_sent_at=now,
        recipients=[owner] if owner else [],
        channel_ids=sorted(c.pk for c in rule.channels.all() if c.enabled),
        facts={
            "owner": owner,
            "node_name": node.name,
            "biz_date": str(instance.biz_date),
            "project_code": instance.project.code,
            "field_rule": rule.pk,
        },
    )
    try:
        with transaction.atomic():
            alert.save()
    except IntegrityError:
        # Raised a moment ago by another attempt's check: count a repeat on that one.
        existing = Alert.objects.select_for_update(of=("self",)).get(
            dedup_key=key, state__in=OPEN_STATES
        )
        _repeat(existing, what=what, detail=detail, now=now)
        return existing
    alert.project = instance.project
    AlertEvent.objects.create(
        alert=alert, kind=AlertEventKind.FIRED, at=now, comment=what, detail=detail
    )
    alert_announce(alert, event="fired", what=what, now=now)
    return alert


def _repeat(alert: Alert, *, what: str, detail: dict, now) -> None:
    due = (
        alert.last_sent_at is None
        or alert.last_sent_at + datetime.timedelta(minutes=DEDUP_MINUTES) <= now
    )
    Alert.objects.filter(pk=alert.pk).update(
        count=F("count") + 1, last_at=now, message=what, **({"last_sent_at": now} if due else {})
    )
    alert.count += 1
    alert.last_at = now
    alert.message = what
    AlertEvent.objects.create(
        alert=alert,
        kind=AlertEventKind.REPEATED,
        at=now,
        comment=what,
        detail={**detail, "sent": due},
    )
    if due:
        alert.last_sent_at = now
        alert_announce(alert, event="repeated", what=what, now=now)


def field_alert_resolve(
    *, rule: FieldRule, instance, what: str, now: datetime.datetime
) -> Alert | None:
    """The rule passed on the instance again: its open alert resolves itself."""
    with transaction.atomic():
        alert = (
            Alert.objects.select_for_update(of=("self",))
            .filter(dedup_key=dedup_key(rule.pk, instance.pk), state__in=OPEN_STATES)
            .select_related("project")
            .first()
        )
        if alert is None:
            return None
        Alert.objects.filter(pk=alert.pk).update(
            state=AlertState.RESOLVED, resolved_at=now, resolved_by=None
        )
        alert.state = AlertState.RESOLVED
        alert.resolved_at = now
        AlertEvent.objects.create(alert=alert, kind=AlertEventKind.RESOLVED, at=now, comment=what)
        alert_announce(alert, event="resolved", what=what, now=now)
    return alert
