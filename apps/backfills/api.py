"""/api/backfills: list, create (or plan with dry_run), detail with progress, stop, and
rerun of the failed instances (SPEC sections 6 and 12)."""

import datetime

from ninja import Field, Query, Router, Schema, Status

from apps.audit.choices import Source
from apps.core.errors import ValidationFailed
from apps.core.pagination import keyset_page
from apps.core.schemas import InputSchema, ObjectId, PageQuery, errors
from apps.projects.schemas import IsoDateTime

from . import services
from .choices import BackfillState
from .models import Backfill
from .selectors import backfill_get, backfill_progress, backfills_progress, backfills_visible_to

router = Router(tags=["backfills"])


class BackfillIn(InputSchema):
    nodes: list[ObjectId] = Field(description="root node ids (one project)")
    downstream: str | list[ObjectId] = Field(
        "none", description='"none", "all", or a list of downstream node ids'
    )
    start: datetime.date
    end: datetime.date
    order: str = Field("serial", description="serial | parallel")
    parallelism: int | None = Field(None, description="dates at once (parallel)")
    descending: bool = False
    ignore_schedule_time: bool = False
    dry_run: bool = Field(False, description="answer the plan and create nothing")


class PlanDate(Schema):
    biz_date: datetime.date
    instances: int


class PlanNode(Schema):
    id: int
    project: str
    name: str
    cron: str


class PlanEdge(Schema):
    upstream: int
    downstream: int


class PlanOut(Schema):
    dry_run: bool = True
    dates: list[PlanDate]
    total: int
    nodes: list[PlanNode] = Field(description="the DAG of one date: its nodes ...")
    edges: list[PlanEdge] = Field(description="... and their dependencies")


class DateProgress(Schema):
    biz_date: datetime.date
    counts: dict[str, int]


class BackfillOut(Schema):
    id: int
    project: str
    state: str
    nodes: list[int] = Field(description="the root nodes")
    downstream: str
    node_ids: list[int] = Field(description="every node the run covers")
    start: datetime.date
    end: datetime.date
    order: str
    parallelism: int
    descending: bool
    ignore_schedule_time: bool
    created_by: str | None
    created_at: IsoDateTime
    finished_at: IsoDateTime | None
    total: int
    counts: dict[str, int] = Field(description="instances per state")

    @staticmethod
    def resolve_project(obj) -> str:
        return obj.project.code

    @staticmethod
    def resolve_nodes(obj) -> list[int]:
        return obj.root_node_ids

    @staticmethod
    def resolve_start(obj) -> datetime.date:
        return obj.start_date

    @staticmethod
    def resolve_end(obj) -> datetime.date:
        return obj.end_date

    @staticmethod
    def resolve_created_by(obj) -> str | None:
        return obj.created_by.username if obj.created_by_id else None

    @staticmethod
    def resolve_created_at(obj):
        return obj.created_at.astimezone(obj.project.tz)

    @staticmethod
    def resolve_finished_at(obj):
        return obj.finished_at.astimezone(obj.project.tz) if obj.finished_at else None


class BackfillDetail(BackfillOut):
    window_start: int
    dates: list[DateProgress] = Field(description="instances per state of each date, run order")


class BackfillList(Schema):
    items: list[BackfillOut]
    next_cursor: str | None


class BackfillQuery(PageQuery):
    project: str = ""
    state: str = ""


@router.get("", response=BackfillList, summary="Backfill runs, newest first")
def backfill_list(request, query: Query[BackfillQuery]):
    queryset = backfills_visible_to(request.user)
    if query.project:
        queryset = queryset.filter(project__code=query.project)
    if query.state:
        if query.state not in BackfillState.values:
            raise ValidationFailed(
                "invalid state",
                [{"field": "state", "message": f"one of {', '.join(BackfillState.values)}"}],
            )
        queryset = queryset.filter(state=query.state)
    page = keyset_page(queryset, cursor=query.cursor, limit=query.limit)
    counts = backfills_progress(page.items)
    for backfill in page.items:
        backfill.counts = counts[backfill.pk]
    return {"items": page.items, "next_cursor": page.next_cursor}


def _detail(backfill: Backfill) -> Backfill:
    progress = backfill_progress(backfill)
    backfill.counts = progress.counts
    backfill.dates = [{"biz_date": day, "counts": counts} for day, counts in progress.dates]
    return backfill


@router.post(
    "",
    # 404: nodes in a project the caller is not a member of.
    response={200: PlanOut, 201: BackfillDetail, **errors(404)},
    summary="Start a backfill, or answer its plan (dry_run)",
)
def backfill_start(request, payload: BackfillIn):
    # What a plan and a run are both made of.
    shape = dict(
        nodes=payload.nodes,
        downstream=payload.downstream,
        start=payload.start,
        end=payload.end,
        order=payload.order,
        parallelism=payload.parallelism,
        descending=payload.descending,
    )
    if payload.dry_run:
        plan = services.backfill_plan(**shape, by=request.user)
        return Status(
            200,
            {
                "dates": [{"biz_date": d, "instances": n} for d, n in plan.dates],
                "total": plan.total,
                "nodes": [
                    {
                        "id": n.pk,
                        "project": n.project.code,
                        "name": n.name,
                        "cron": n.current_version.spec["schedule"]["cron"],
                    }
                    for n in plan.nodes
                ],
                "edges": [{"upstream": u, "downstream": d} for u, d in plan.edges],
            },
        )
    backfill = services.backfill_create(
        **shape,
        by=request.user,
        source=Source.API,
        ignore_schedule_time=payload.ignore_schedule_time,
    )
    return Status(201, _detail(backfill_get(user=request.user, backfill_id=backfill.pk)))


@router.get("/{int:backfill_id}", response=BackfillDetail)
def backfill_detail(request, backfill_id: int):
    return _detail(backfill_get(user=request.user, backfill_id=backfill_id))


@router.post(
    "/{int:backfill_id}/stop",
    response={200: BackfillDetail, **errors(409)},
    summary="Stop the whole run",
)
def backfill_stop(request, backfill_id: int):
    backfill = backfill_get(user=request.user, backfill_id=backfill_id)
    services.backfill_stop(backfill=backfill, by=request.user, source=Source.API)
    return _detail(backfill_get(user=request.user, backfill_id=backfill_id))


@router.post(
    "/{int:backfill_id}/rerun-failed",
    response={200: BackfillDetail, **errors(409)},
    summary="Rerun the failed instances with their downstream",
)
def backfill_rerun_failed(request, backfill_id: int):
    backfill = backfill_get(user=request.user, backfill_id=backfill_id)
    services.backfill_rerun_failed(backfill=backfill, by=request.user, source=Source.API)
    return _detail(backfill_get(user=request.user, backfill_id=backfill_id))
