"""/api/monitor-rules and /api/on-call (SPEC 12, configuration objects MonitorRule and
OnCall). Members read; a project's admin changes its rules and schedules; superusers
change global schedules. A rule or schedule one may not see answers 404."""

import datetime

from ninja import Field, Query, Router, Schema, Status

from apps.core import clock
from apps.core.pagination import keyset_page
from apps.core.schemas import InputSchema, PageQuery, errors
from apps.projects.models import Project
from apps.projects.schemas import IsoDateTime
from apps.projects.selectors import project_get

from . import oncall, services
from .models import MonitorRule
from .rule_selectors import (
    monitor_rule_get,
    monitor_rules_visible_to,
    on_call_get,
    on_call_visible_to,
)

rules_router = Router(tags=["monitoring rules"])
on_call_router = Router(tags=["on-call"])
SOURCE = "api"


class MonitorConfigQuery(PageQuery):
    project: str = Field("", description="a project's code")


def _page(queryset, query: MonitorConfigQuery) -> dict:
    page = keyset_page(queryset, cursor=query.cursor, limit=query.limit, descending=False)
    return {"items": page.items, "next_cursor": page.next_cursor}


# --- monitoring rules --------------------------------------------------------------------

_SCOPE = (
    'one of {"kind": "nodes", "nodes": [ids]}, {"kind": "owner", "owner": "username"}, '
    '{"kind": "project"}, {"kind": "baseline", "baseline": id}'
)
_TRIGGERS = (
    'each {"type": failure | retries_exhausted | success | running_longer (+ "minutes") | '
    'unfinished_by, not_started_by (+ "time": "HH:MM") | slower_than_usual (+ "factor")}'
)
_RECIPIENTS = '{"owner": bool, "users": [usernames], "groups": [names], "on_call": name or null}'


class MonitorRuleIn(InputSchema):
    project: str = Field(description="the project's code")
    name: str
    scope: dict = Field(description=_SCOPE)
    triggers: list[dict] = Field(description=_TRIGGERS)
    severity: str = Field("", description="critical | warning | info; empty: per trigger")
    recipients: dict = Field(default_factory=dict, description=_RECIPIENTS)
    channels: list[int] = Field(
        default_factory=list, description="channel ids: the project's or global ones"
    )
    dedup_minutes: int = Field(30, description="a repeat is sent again only after this")
    mute_windows: list[dict] = Field(
        default_factory=list, description='[{"start": "HH:MM", "end": "HH:MM"}], may cross midnight'
    )
    escalate_after_minutes: int | None = Field(
        None, description="a firing alert nobody acknowledged by then goes to escalate_to, once"
    )
    escalate_to: dict = Field(default_factory=dict, description=_RECIPIENTS)
    enabled: bool = True


class MonitorRulePatch(InputSchema):
    # Omitted fields are kept; defaults of None are never validated, so null is refused
    # (except escalate_after_minutes, where null turns escalation off).
    project: str = Field(None, description="only the rule's own project: a rule cannot move")
    name: str = None
    scope: dict = None
    triggers: list[dict] = None
    severity: str = None
    recipients: dict = None
    channels: list[int] = None
    dedup_minutes: int = None
    mute_windows: list[dict] = None
    escalate_after_minutes: int | None = None
    escalate_to: dict = None
    enabled: bool = None


class MonitorRuleOut(Schema):
    id: int
    project: str
    name: str
    scope: dict
    triggers: list[dict]
    severity: str
    recipients: dict
    channels: list[int]
    dedup_minutes: int
    mute_windows: list[dict]
    escalate_after_minutes: int | None
    escalate_to: dict
    enabled: bool
    created_at: IsoDateTime
    updated_at: IsoDateTime

    @staticmethod
    def resolve_project(obj) -> str:
        return obj.project.code

    @staticmethod
    def resolve_channels(obj) -> list[int]:
        return sorted(channel.pk for channel in obj.channels.all())

    @staticmethod
    def resolve_created_at(obj):
        return obj.created_at.astimezone(obj.project.tz)

    @staticmethod
    def resolve_updated_at(obj):
        return obj.updated_at.astimezone(obj.project.tz)


class MonitorRuleList(Schema):
    items: list[MonitorRuleOut]
    next_cursor: str | None


def _rule_answer(rule: MonitorRule) -> MonitorRule:
    return (
        MonitorRule.objects.select_related("project").prefetch_related("channels").get(pk=rule.pk)
    )


@rules_router.get(
    "", response={200: MonitorRuleList, **errors(404)}, summary="Monitoring rules, oldest first"
)
def monitor_rule_list(request, query: Query[MonitorConfigQuery]):
    queryset = monitor_rules_visible_to(request.user)
    if query.project:
        queryset = queryset.filter(project=project_get(user=request.user, code=query.project))
    return _page(queryset, query)


@rules_router.post(
    "",
    response={201: MonitorRuleOut, **errors(404)},
    summary="Create a monitoring rule (project admin)",
)
def monitor_rule_create(request, payload: MonitorRuleIn):
    data = payload.dict()
    project = project_get(user=request.user, code=data.pop("project"))
    rule = services.monitor_rule_create(project=project, data=data, by=request.user, source=SOURCE)
    return Status(201, _rule_answer(rule))


@rules_router.get("/{int:rule_id}", response=MonitorRuleOut)
def monitor_rule_detail(request, rule_id: int):
    return monitor_rule_get(user=request.user, rule_id=rule_id)


@rules_router.patch(
    "/{int:rule_id}",
    response=MonitorRuleOut,
    summary="Change a monitoring rule (project admin); the whole rule is checked again",
)
def monitor_rule_update(request, rule_id: int, payload: MonitorRulePatch):
    rule = monitor_rule_get(user=request.user, rule_id=rule_id)
    services.monitor_rule_update(
        rule=rule, data=payload.dict(exclude_unset=True), by=request.user, source=SOURCE
    )
    return _rule_answer(rule)


@rules_router.delete(
    "/{int:rule_id}", response={204: None}, summary="Delete a monitoring rule (project admin)"
)
def monitor_rule_delete(request, rule_id: int):
    rule = monitor_rule_get(user=request.user, rule_id=rule_id)
    services.monitor_rule_delete(rule=rule, by=request.user, source=SOURCE)
    return Status(204, None)


# --- on-call schedules -------------------------------------------------------------------


class OnCallIn(InputSchema):
    name: str
    project: str | None = Field(None, description="the project's code; null: a global schedule")
    users: list[str] = Field(description="usernames, in rotation order")
    period: str = Field("weekly", description="daily | weekly")
    handover: str = Field("09:00", description="HH:MM in the schedule's timezone")
    start_date: datetime.date = Field(description="the first user's first day, YYYY-MM-DD")
    timezone: str | None = Field(
        None, description="IANA timezone; default: the project's, UTC for a global schedule"
    )


class OnCallPatch(InputSchema):
    name: str = None
    project: str | None = Field(None, description="only its own project: a schedule cannot move")
    users: list[str] = None
    period: str = None
    handover: str = None
    start_date: datetime.date = None
    timezone: str = None


class OnCallNextOut(Schema):
    at: IsoDateTime
    user: str


class OnCallOut(Schema):
    id: int
    name: str
    project: str | None
    users: list[str]
    period: str
    handover: str
    start_date: datetime.date
    timezone: str
    current: str | None = Field(description="who is on call now (null: nobody yet)")
    next: OnCallNextOut | None = Field(description="the next handover: when, and to whom")

    @staticmethod
    def resolve_project(obj) -> str | None:
        return obj.project.code if obj.project_id else None

    @staticmethod
    def resolve_handover(obj) -> str:
        return obj.handover.strftime("%H:%M")

    @staticmethod
    def resolve_current(obj) -> str | None:
        return oncall.on_call_at(obj, clock.now())

    @staticmethod
    def resolve_next(obj) -> dict | None:
        handover = oncall.next_handover(obj, clock.now())
        return None if handover is None else {"at": handover[0], "user": handover[1]}


class OnCallList(Schema):
    items: list[OnCallOut]
    next_cursor: str | None


def _schedule_project(request, code: str | None) -> Project | None:
    return None if code is None else project_get(user=request.user, code=code)


@on_call_router.get(
    "", response={200: OnCallList, **errors(404)}, summary="On-call schedules, oldest first"
)
def on_call_list(request, query: Query[MonitorConfigQuery]):
    queryset = on_call_visible_to(request.user)
    if query.project:
        queryset = queryset.filter(project=project_get(user=request.user, code=query.project))
    return _page(queryset, query)


@on_call_router.post(
    "",
    response={201: OnCallOut, **errors(404)},
    summary="Create an on-call schedule (project admin; a global one: superusers)",
)
def on_call_create(request, payload: OnCallIn):
    data = payload.dict()
    project = _schedule_project(request, data.pop("project"))
    if data["timezone"] is None:
        data.pop("timezone")
    schedule = services.on_call_create(project=project, data=data, by=request.user, source=SOURCE)
    return Status(201, on_call_get(user=request.user, schedule_id=schedule.pk))


@on_call_router.get("/{int:schedule_id}", response=OnCallOut)
def on_call_detail(request, schedule_id: int):
    return on_call_get(user=request.user, schedule_id=schedule_id)


@on_call_router.patch(
    "/{int:schedule_id}", response=OnCallOut, summary="Change an on-call schedule"
)
def on_call_update(request, schedule_id: int, payload: OnCallPatch):
    schedule = on_call_get(user=request.user, schedule_id=schedule_id)
    services.on_call_update(
        schedule=schedule, data=payload.dict(exclude_unset=True), by=request.user, source=SOURCE
    )
    return on_call_get(user=request.user, schedule_id=schedule_id)


@on_call_router.delete(
    "/{int:schedule_id}",
    response={204: None, **errors(409)},
    summary="Delete an on-call schedule (refused while a rule names it)",
)
def on_call_delete(request, schedule_id: int):
    schedule = on_call_get(user=request.user, schedule_id=schedule_id)
    services.on_call_delete(schedule=schedule, by=request.user, source=SOURCE)
    return Status(204, None)
