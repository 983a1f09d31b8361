"""/api/alerts (SPEC 12): the alerts one may see, newest activity first in cursor pages;
one alert with its timeline and deliveries; acknowledge and resolve (role operator, in
the operation log), one or many. Times are in the alert's project timezone."""

import datetime
from dataclasses import asdict, fields
from typing import Literal

from ninja import Field, Query, Router, Schema

from apps.core.schemas import InputSchema, PageQuery, errors
from apps.instances.operations import BATCH_MAX
from apps.projects.schemas import IsoDateTime

from . import services
from .alert_selectors import (
    AlertFilters,
    alert_filter,
    alert_get,
    alert_history,
    alerts_page,
    alerts_visible_to,
)
from .alerts import alert_ack, alert_resolve
from .models import Alert

router = Router(tags=["alerts"])
SOURCE = "api"
# The newest this many timeline lines and deliveries are answered with an alert.


def _local(alert: Alert, value: datetime.datetime | None) -> datetime.datetime | None:
    if value is None:
        return None
    return value.astimezone(alert.project.tz if alert.project_id else datetime.UTC)


class AlertOut(Schema):
    id: int
    project: str | None
    rule: int | None
    source: str = Field(description="monitor, baseline, field (or system)")
    trigger: str
    severity: str
    state: str
    title: str
    message: str
    target_type: str
    target_id: str
    node: int | None
    instance: int | None
    baseline: int | None
    count: int
    first_at: IsoDateTime
    last_at: IsoDateTime
    acknowledged_by: str | None
    acknowledged_at: IsoDateTime | None
    resolved_at: IsoDateTime | None
    resolved_by: str | None = Field(description="null on a resolved alert: it resolved itself")

    @staticmethod
    def resolve_project(obj) -> str | None:
        return obj.project.code if obj.project_id else None

    @staticmethod
    def resolve_rule(obj) -> int | None:
        return obj.rule_id

    @staticmethod
    def resolve_node(obj) -> int | None:
        return obj.node_id

    @staticmethod
    def resolve_instance(obj) -> int | None:
        return obj.instance_id

    @staticmethod
    def resolve_baseline(obj) -> int | None:
        if obj.target_type == "baseline" and obj.target_id.isdigit():
            return int(obj.target_id)
        return None

    @staticmethod
    def resolve_first_at(obj):
        return _local(obj, obj.first_at)

    @staticmethod
    def resolve_last_at(obj):
        return _local(obj, obj.last_at)

    @staticmethod
    def resolve_acknowledged_by(obj) -> str | None:
        return obj.acknowledged_by.username if obj.acknowledged_by_id else None

    @staticmethod
    def resolve_acknowledged_at(obj):
        return _local(obj, obj.acknowledged_at)

    @staticmethod
    def resolve_resolved_at(obj):
        return _local(obj, obj.resolved_at)

    @staticmethod
    def resolve_resolved_by(obj) -> str | None:
        return obj.resolved_by.username if obj.resolved_by_id else None


class AlertList(Schema):
    items: list[AlertOut]
    next_cursor: str | None


class AlertEventOut(Schema):
    kind: str = Field(description="fired, repeated, escalated, acknowledged, resolved")
    at: IsoDateTime
    user: str | None
    comment: str
    detail: dict


class AlertDeliveryOut(Schema):
    id: int
    channel: int
    channel_name: str
    kind: str
    recipient: str
    event: str
    state: str
    tries: int
    last_error: str
    created_at: IsoDateTime
    sent_at: IsoDateTime | None


class AlertDetailOut(AlertOut):
    events: list[AlertEventOut] = Field(description="the timeline, oldest first (the newest 200)")
    deliveries: list[AlertDeliveryOut] = Field(description="newest first (the newest 200)")

    # Prepared by alert_detail_of.
    @staticmethod
    def resolve_events(obj) -> list[dict]:
        return obj.events_out

    @staticmethod
    def resolve_deliveries(obj) -> list[dict]:
        return obj.deliveries_out


class AlertQuery(PageQuery):
    project: str = ""
    state: str = Field("", description="firing, acknowledged, resolved, or open (not resolved)")
    severity: str = ""
    rule: str = Field("", description="a monitoring rule's id")
    node: str = Field("", description="a node's id")
    instance: str = Field("", description="an instance's id")


class AlertCommentIn(InputSchema):
    comment: str = Field("", max_length=2000)


class AlertBatchIn(InputSchema):
    ids: list[int] = Field(max_length=BATCH_MAX)
    action: Literal["ack", "resolve"]
    comment: str = Field("", max_length=2000)


class AlertBatchItemOut(Schema):
    id: int
    ok: bool
    state: str | None
    message: str


class AlertBatchOut(Schema):
    results: list[AlertBatchItemOut]


def alert_detail_of(alert: Alert) -> Alert:
    """The alert with the rows its detail answers (as attributes the schema reads)."""
    tz = alert.project.tz if alert.project_id else datetime.UTC
    events, deliveries, _ = alert_history(alert)
    alert.events_out = [
        {
            "kind": event.kind,
            "at": event.at.astimezone(tz),
            "user": event.user.username if event.user_id else None,
            "comment": event.comment,
            "detail": event.detail,
        }
        for event in reversed(events)
    ]
    alert.deliveries_out = [
        {
            "id": delivery.pk,
            "channel": delivery.channel_id,
            "channel_name": delivery.channel.name,
            "kind": delivery.kind,
            "recipient": delivery.recipient,
            "event": delivery.event,
            "state": delivery.state,
            "tries": delivery.tries,
            "last_error": delivery.last_error,
            "created_at": delivery.created_at.astimezone(tz),
            "sent_at": delivery.sent_at.astimezone(tz) if delivery.sent_at else None,
        }
        for delivery in deliveries
    ]
    return alert


@router.get("", response=AlertList, summary="Alerts, the most recently active first")
def alert_list(request, query: Query[AlertQuery]):
    filters = AlertFilters(**{f.name: getattr(query, f.name).strip() for f in fields(AlertFilters)})
    queryset = alert_filter(alerts_visible_to(request.user), filters)
    page = alerts_page(queryset, cursor=query.cursor, limit=query.limit)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.post(
    "/batch",
    response=AlertBatchOut,
    summary="Acknowledge or resolve many alerts, each on its own",
)
def alerts_batch(request, payload: AlertBatchIn):
    results = services.alerts_batch(
        ids=payload.ids,
        action=payload.action,
        comment=payload.comment,
        by=request.user,
        source=SOURCE,
    )
    return {"results": [asdict(item) for item in results]}


@router.get("/{int:alert_id}", response=AlertDetailOut)
def alert_detail(request, alert_id: int):
    return alert_detail_of(alert_get(user=request.user, alert_id=alert_id))


def _operated(request, alert_id: int, operation, payload: AlertCommentIn | None):
    alert = alert_get(user=request.user, alert_id=alert_id)
    operation(
        alert=alert, by=request.user, source=SOURCE, comment=payload.comment if payload else ""
    )
    return alert_detail_of(alert_get(user=request.user, alert_id=alert_id))


@router.post(
    "/{int:alert_id}/ack",
    response={200: AlertDetailOut, **errors(409)},
    summary="Acknowledge a firing alert: someone is on it; escalation stops (operator)",
)
def alert_ack_endpoint(request, alert_id: int, payload: AlertCommentIn | None = None):
    return _operated(request, alert_id, alert_ack, payload)


@router.post(
    "/{int:alert_id}/resolve",
    response={200: AlertDetailOut, **errors(409)},
    summary="Resolve a firing or acknowledged alert (operator)",
)
def alert_resolve_endpoint(request, alert_id: int, payload: AlertCommentIn | None = None):
    return _operated(request, alert_id, alert_resolve, payload)
