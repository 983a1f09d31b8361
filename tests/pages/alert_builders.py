"""Alerts, their timelines and deliveries, built directly for the page tests."""

import datetime

from apps.monitoring.models import Alert, AlertEvent, MonitorRule
from apps.notifications.models import Channel, Delivery
from tests.factories import instance_create, node_create

# 10:00 on 2026-11-22 in Asia/Shanghai (the `project` fixture's timezone).
NOW = datetime.datetime(2026, 11, 22, 2, 0, tzinfo=datetime.UTC)
T0 = datetime.datetime(2026, 11, 21, 18, 0, tzinfo=datetime.UTC)


def rule_create(project, name="failures", **fields) -> MonitorRule:
    values = dict(
        scope={"kind": "project"},
        triggers=[{"type": "failure"}],
        recipients={"owner": True, "users": [], "groups": [], "on_call": None},
    )
    values.update(fields)
    return MonitorRule.objects.create(project=project, name=name, **values)


def alert_create(
    rule,
    instance,
    *,
    trigger="failure",
    severity="critical",
    state="firing",
    at=None,
    count=1,
    **fields,
) -> Alert:
    at = at or NOW - datetime.timedelta(minutes=30)
    node = instance.node
    values = dict(
        project=rule.project,
        rule=rule,
        trigger=trigger,
        severity=severity,
        state=state,
        title=f"{rule.project.code}.{node.name} failed (biz date {instance.biz_date})",
        message="attempt 1 failed (exit code 3)",
        target_type="instance",
        target_id=str(instance.pk),
        dedup_key=f"monitor:{rule.pk}:{trigger}:instance:{instance.pk}",
        node=node,
        instance=instance,
        first_at=at,
        last_at=at,
        last_sent_at=at,
        count=count,
        recipients=["alice"],
        facts={"node_name": node.name, "biz_date": str(instance.biz_date), "owner": "alice"},
    )
    if state == "resolved":
        values.setdefault("resolved_at", at)
    values.update(fields)
    alert = Alert.objects.create(**values)
    AlertEvent.objects.create(alert=alert, kind="fired", at=at, comment=values["message"])
    return alert


def failed_instance(project, owner, name="load_orders", scheduled_at=T0):
    node = node_of(project, name, owner)
    return instance_create(
        node, scheduled_at, state="failed", attempt_count=1, started_at=scheduled_at
    )


def node_of(project, name, owner):
    """The project's node of that name, made (a shell node) the first time."""
    from apps.nodes.models import Node

    node = Node.objects.filter(project=project, name=name).first()
    return node or node_create(project, name, owner=owner, type="shell")


def channel_create(project, name="ops-hook", kind="webhook", **fields) -> Channel:
    values = dict(config={"url": "http://127.0.0.1:9/hook"})
    values.update(fields)
    return Channel.objects.create(project=project, name=name, kind=kind, **values)


def delivery_create(alert, channel, *, at, state="sent", **fields) -> Delivery:
    values = dict(
        alert=alert,
        channel=channel,
        project=alert.project,
        kind=channel.kind,
        recipient="#channel",
        event="fired",
        state=state,
        tries=1,
        created_at=at,
        sent_at=at if state == "sent" else None,
    )
    values.update(fields)
    return Delivery.objects.create(**values)
