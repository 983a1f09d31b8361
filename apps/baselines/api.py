"""/api/baselines (SPEC 12): list, create, read, change, delete; a cycle's status with its
prediction and critical path; the history of past cycles. Members read; a project's
admin changes its baselines. A baseline one may not see answers 404. Times are in the
baseline's project timezone."""

import datetime

from ninja import Field, Query, Router, Schema, Status

from apps.core import clock
from apps.core.pagination import keyset_page
from apps.core.schemas import InputSchema, PageQuery, errors
from apps.projects.schemas import IsoDateTime
from apps.projects.selectors import project_get

from . import services
from .models import Baseline
from .selectors import baseline_get, baselines_visible_to, cycle_of, cycle_status, cycles_history

router = Router(tags=["baselines"])
SOURCE = "api"

_RECIPIENTS = (
    '{"owner": bool (the key nodes\' owners), "users": [usernames], "groups": [names], '
    '"on_call": name or null}'
)


class BaselineIn(InputSchema):
    project: str = Field(description="the project's code")
    name: str
    cycle: str = Field("daily", description="daily | hourly")
    committed_time: str = Field(
        description="HH:MM of the scheduled day (daily) or MM of each hour (hourly), in "
        "the project's timezone"
    )
    margin_minutes: int = Field(30, description="the warning time is this much earlier")
    priority: int = Field(5, description="1 (lowest) to 8: lent to the path while at risk")
    key_nodes: list[int] = Field(description="ids of the project's production nodes")
    recipients: dict = Field(default_factory=dict, description=_RECIPIENTS)
    channels: list[int] = Field(default_factory=list, description="channel ids")
    enabled: bool = True


class BaselinePatch(InputSchema):
    # Omitted fields are kept; null is refused.
    project: str = Field(None, description="only the baseline's own project: it cannot move")
    name: str = None
    cycle: str = None
    committed_time: str = None
    margin_minutes: int = None
    priority: int = None
    key_nodes: list[int] = None
    recipients: dict = None
    channels: list[int] = None
    enabled: bool = None


class BaselineOut(Schema):
    id: int
    project: str
    name: str
    cycle: str
    committed_time: str
    margin_minutes: int
    priority: int
    key_nodes: list[int]
    recipients: dict
    channels: list[int]
    enabled: bool
    created_at: IsoDateTime
    updated_at: IsoDateTime

    @staticmethod
    def resolve_project(obj) -> str:
        return obj.project.code

    @staticmethod
    def resolve_key_nodes(obj) -> list[int]:
        return sorted(node.pk for node in obj.key_nodes.all())

    @staticmethod
    def resolve_channels(obj) -> list[int]:
        return sorted(channel.pk for channel in obj.channels.all())

    @staticmethod
    def resolve_created_at(obj):
        return obj.created_at.astimezone(obj.project.tz)

    @staticmethod
    def resolve_updated_at(obj):
        return obj.updated_at.astimezone(obj.project.tz)


class BaselineList(Schema):
    items: list[BaselineOut]
    next_cursor: str | None


class BaselineQuery(PageQuery):
    project: str = Field("", description="a project's code")


class CriticalStepOut(Schema):
    instance: int
    node: int
    node_name: str
    state: str
    start: IsoDateTime = Field(description="predicted, or real for a started instance")
    finish: IsoDateTime = Field(description="predicted, or real for a finished instance")
    expected_seconds: float | None = Field(
        description="the median of the node's last 10 successful runs (its timeout, or 300, "
        "without history)"
    )


class BaselineBlockerOut(Schema):
    instance: int
    node: int
    node_name: str
    state: str
    paused: bool


class CycleStatusOut(Schema):
    baseline: int
    biz_date: datetime.date
    hour: int | None = Field(description="the hour of the scheduled day (hourly baselines)")
    committed_at: IsoDateTime
    warning_at: IsoDateTime
    predicted_finish: IsoDateTime | None = Field(
        description="the latest predicted finish of the key instances (the real one once "
        "finished); null while blocked"
    )
    estimated: bool = Field(description="false when a duration on the way had no history")
    status: str = Field(description="safe | warning | broken | finished_on_time | finished_late")
    blocked_by: list[BaselineBlockerOut] = Field(
        description="failed, stopped or paused instances that make the finish unknown; the "
        "critical path then assumes they are rerun now"
    )
    critical_path: list[CriticalStepOut]
    key_instances: list[int]


class StatusQuery(Schema):
    biz_date: str = Field("", description="YYYY-MM-DD; default: today's biz date")
    hour: str = Field("", description="0-23, hourly baselines; default: the current hour")


class HistoryRowOut(Schema):
    biz_date: datetime.date
    hour: int | None
    status: str
    finished_at: IsoDateTime | None
    committed_at: IsoDateTime
    predicted_finish: IsoDateTime | None

    @staticmethod
    def resolve_finished_at(obj):
        return obj.finished_at and obj.finished_at.astimezone(obj.baseline.project.tz)

    @staticmethod
    def resolve_committed_at(obj):
        return obj.committed_at.astimezone(obj.baseline.project.tz)

    @staticmethod
    def resolve_predicted_finish(obj):
        return obj.predicted_finish and obj.predicted_finish.astimezone(obj.baseline.project.tz)


class BaselineHistory(Schema):
    items: list[HistoryRowOut]
    next_cursor: str | None


def _answer(baseline: Baseline) -> Baseline:
    return (
        Baseline.objects.select_related("project")
        .prefetch_related("key_nodes", "channels")
        .get(pk=baseline.pk)
    )


@router.get("", response={200: BaselineList, **errors(404)}, summary="Baselines, oldest first")
def baseline_list(request, query: Query[BaselineQuery]):
    queryset = baselines_visible_to(request.user)
    if query.project:
        queryset = queryset.filter(project=project_get(user=request.user, code=query.project))
    page = keyset_page(queryset, cursor=query.cursor, limit=query.limit, descending=False)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.post(
    "", response={201: BaselineOut, **errors(404)}, summary="Create a baseline (project admin)"
)
def baseline_create(request, payload: BaselineIn):
    data = payload.dict()
    project = project_get(user=request.user, code=data.pop("project"))
    baseline = services.baseline_create(project=project, data=data, by=request.user, source=SOURCE)
    return Status(201, _answer(baseline))


@router.get("/{int:baseline_id}", response=BaselineOut)
def baseline_detail(request, baseline_id: int):
    return baseline_get(user=request.user, baseline_id=baseline_id)


@router.patch(
    "/{int:baseline_id}",
    response=BaselineOut,
    summary="Change a baseline (project admin); the whole baseline is checked again",
)
def baseline_update(request, baseline_id: int, payload: BaselinePatch):
    baseline = baseline_get(user=request.user, baseline_id=baseline_id)
    services.baseline_update(
        baseline=baseline, data=payload.dict(exclude_unset=True), by=request.user, source=SOURCE
    )
    return _answer(baseline)


@router.delete(
    "/{int:baseline_id}", response={204: None}, summary="Delete a baseline (project admin)"
)
def baseline_delete(request, baseline_id: int):
    baseline = baseline_get(user=request.user, baseline_id=baseline_id)
    services.baseline_delete(baseline=baseline, by=request.user, source=SOURCE)
    return Status(204, None)


@router.get(
    "/{int:baseline_id}/status",
    response=CycleStatusOut,
    summary="A cycle's status, prediction and critical path (computed now while it is open)",
)
def baseline_status(request, baseline_id: int, query: Query[StatusQuery]):
    baseline = baseline_get(user=request.user, baseline_id=baseline_id)
    now = clock.now()
    biz_date, hour = cycle_of(baseline, biz_date=query.biz_date, hour=query.hour, now=now)
    return cycle_status(baseline=baseline, biz_date=biz_date, hour=hour, now=now).as_api()


@router.get(
    "/{int:baseline_id}/history",
    response=BaselineHistory,
    summary="The baseline's cycles, newest first: status and finish of each",
)
def baseline_history(request, baseline_id: int, query: Query[PageQuery]):
    baseline = baseline_get(user=request.user, baseline_id=baseline_id)
    queryset = cycles_history(baseline).select_related("baseline__project")
    page = keyset_page(queryset, cursor=query.cursor, limit=query.limit, descending=True)
    return {"items": page.items, "next_cursor": page.next_cursor}
