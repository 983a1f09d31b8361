"""GET /api/overview: the O&M overview's numbers, as the page shows them."""

import datetime
import zoneinfo

from ninja import Field, Router, Schema

from apps.core.schemas import errors
from apps.projects.selectors import project_get

from .selectors import Overview, overview_days, overview_get

router = Router(tags=["overview"])


class TodayOut(Schema):
    biz_dates: list[datetime.date]
    total: int
    by_kind: dict[str, dict[str, int]]
    kind_totals: dict[str, int]
    state_totals: dict[str, int]
    waiting: dict[str, int]


class TrendDayOut(Schema):
    biz_date: datetime.date
    succeeded: int
    failed: int
    avg_duration_seconds: float | None
    failed_attempts: int = Field(0, description="failed attempts, retried ones included")


class FailureRankOut(Schema):
    node: int
    node_name: str
    project: str
    failures: int
    last_failed_at: datetime.datetime | None
    failed_attempts: int = Field(0, description="failed attempts, retried ones included")


class FlakyRankOut(Schema):
    node: int
    node_name: str
    project: str
    flaky_instances: int = Field(description="succeeded instances with a failed attempt")
    failed_attempts: int
    last_failed_at: datetime.datetime | None


class RunningOut(Schema):
    id: int
    project: str
    node: int
    node_name: str
    kind: str
    biz_date: datetime.date
    resource_group: str
    started_at: datetime.datetime | None
    running_seconds: float


class WaitingOut(Schema):
    id: int
    project: str
    node: int
    node_name: str
    kind: str
    biz_date: datetime.date
    scheduled_at: datetime.datetime
    wait_reason: str
    paused: bool
    waiting_seconds: float


class OpenAlertOut(Schema):
    id: int
    project: str | None
    severity: str
    state: str
    title: str
    node: int | None
    instance: int | None
    count: int
    last_at: datetime.datetime


class OpenAlertsOut(Schema):
    total: int
    firing: int
    acknowledged: int
    by_severity: dict[str, int]
    latest: list[OpenAlertOut]


class AlertRankOut(Schema):
    node: int
    node_name: str
    project: str
    alerts: int
    occurrences: int
    open: int
    last_at: datetime.datetime | None


class BaselineAtRiskOut(Schema):
    id: int = Field(description="the baseline's id")
    name: str
    project: str
    biz_date: datetime.date
    hour: int | None
    status: str = Field(description="warning | broken")
    committed_at: datetime.datetime
    predicted_finish: datetime.datetime | None = Field(description="null while blocked")
    blocked: bool


class OverviewOut(Schema):
    generated_at: datetime.datetime
    projects: list[str]
    days: int
    start: datetime.date
    end: datetime.date
    today: TodayOut
    trend: list[TrendDayOut]
    failure_ranking: list[FailureRankOut]
    flaky_ranking: list[FlakyRankOut] = Field(
        default_factory=list, description="nodes whose instances succeeded after failed attempts"
    )
    longest_running: list[RunningOut]
    waiting_longest: list[WaitingOut]
    open_alerts: OpenAlertsOut
    alert_ranking: list[AlertRankOut]
    alerts_since: datetime.datetime | None
    baselines_at_risk: list[BaselineAtRiskOut] = Field(
        default_factory=list, description="open baseline cycles in warning or broken"
    )


def _local(moment: datetime.datetime | None, timezone: str) -> datetime.datetime | None:
    return moment.astimezone(zoneinfo.ZoneInfo(timezone)) if moment else None


def overview_out(overview: Overview) -> dict:
    now = overview.now
    tz = {p.id: p.tz for p in overview.projects}
    return {
        "generated_at": now,
        "projects": [p.code for p in overview.projects],
        "days": overview.days,
        "start": overview.start,
        "end": overview.end,
        "today": {
            "biz_dates": overview.today.biz_dates,
            "total": overview.today.total,
            "by_kind": overview.today.counts,
            "kind_totals": overview.today.kind_totals,
            "state_totals": overview.today.state_totals,
            "waiting": overview.today.waiting,
        },
        "trend": [
            {
                "biz_date": day.biz_date,
                "succeeded": day.succeeded,
                "failed": day.failed,
                "avg_duration_seconds": day.avg_duration_seconds,
                "failed_attempts": day.failed_attempts,
            }
            for day in overview.trend
        ],
        "failure_ranking": [
            {
                "node": rank.node_id,
                "node_name": rank.node_name,
                "project": rank.project_code,
                "failures": rank.failures,
                "last_failed_at": _local(rank.last_failed_at, rank.project_timezone),
                "failed_attempts": rank.failed_attempts,
            }
            for rank in overview.failure_ranking
        ],
        "flaky_ranking": [
            {
                "node": rank.node_id,
                "node_name": rank.node_name,
                "project": rank.project_code,
                "flaky_instances": rank.flaky_instances,
                "failed_attempts": rank.failed_attempts,
                "last_failed_at": _local(rank.last_failed_at, rank.project_timezone),
            }
            for rank in overview.flaky_ranking
        ],
        "longest_running": [
            {
                "id": i.id,
                "project": i.project.code,
                "node": i.node_id,
                "node_name": i.node.name,
                "kind": i.kind,
                "biz_date": i.biz_date,
                "resource_group": i.resource_group.name,
                "started_at": i.started_at.astimezone(tz[i.project_id]) if i.started_at else None,
                "running_seconds": _since(now, i.started_at),
            }
            for i in overview.longest_running
        ],
        "waiting_longest": [
            {
                "id": i.id,
                "project": i.project.code,
                "node": i.node_id,
                "node_name": i.node.name,
                "kind": i.kind,
                "biz_date": i.biz_date,
                "scheduled_at": i.scheduled_at.astimezone(tz[i.project_id]),
                "wait_reason": i.wait_reason,
                "paused": i.paused,
                "waiting_seconds": _since(now, i.scheduled_at),
            }
            for i in overview.waiting_longest
        ],
        **_alerts_out(overview),
        "baselines_at_risk": [
            {
                **row,
                "committed_at": row["committed_at"].astimezone(zoneinfo.ZoneInfo(row["timezone"])),
                "predicted_finish": row["predicted_finish"]
                and row["predicted_finish"].astimezone(zoneinfo.ZoneInfo(row["timezone"])),
            }
            for row in overview.extras.get("baselines_at_risk", [])
        ],
    }


def _alerts_out(overview: Overview) -> dict:
    """The open alerts and the alert ranking, times in each project's timezone."""
    open_alerts = overview.open_alerts
    return {
        "open_alerts": {
            "total": open_alerts.total,
            "firing": open_alerts.firing,
            "acknowledged": open_alerts.acknowledged,
            "by_severity": open_alerts.by_severity,
            "latest": [
                {
                    "id": alert.pk,
                    "project": alert.project.code if alert.project_id else None,
                    "severity": alert.severity,
                    "state": alert.state,
                    "title": alert.title,
                    "node": alert.node_id,
                    "instance": alert.instance_id,
                    "count": alert.count,
                    "last_at": alert.last_at.astimezone(
                        alert.project.tz if alert.project_id else datetime.UTC
                    ),
                }
                for alert in open_alerts.latest
            ],
        },
        "alert_ranking": [
            {
                "node": rank.node_id,
                "node_name": rank.node_name,
                "project": rank.project_code,
                "alerts": rank.alerts,
                "occurrences": rank.occurrences,
                "open": rank.open,
                "last_at": rank.last_at.astimezone(zoneinfo.ZoneInfo(rank.project_timezone))
                if rank.last_at
                else None,
            }
            for rank in overview.alert_ranking
        ],
        "alerts_since": overview.alerts_since,
    }


def _since(now: datetime.datetime, then: datetime.datetime | None) -> float:
    return round(max((now - then).total_seconds(), 0.0), 3) if then else 0.0


@router.get("", response={200: OverviewOut, **errors(404)}, summary="The O&M overview's numbers")
def overview(request, project: str = "", days: str = ""):
    """Today's instances (biz date = yesterday in each project's timezone) by kind and
    state, the run trend per biz date over `days` (7 or 30), the failure ranking over the
    same period, the longest running and the longest waiting instances; the open alerts
    by severity with the newest few, and the nodes ranked by the alerts raised since
    `alerts_since` (the last `days` days). `project` (a code) narrows it to one project;
    without it, every project you can see."""
    chosen = project_get(user=request.auth, code=project.strip()) if project.strip() else None
    return overview_out(overview_get(user=request.auth, project=chosen, days=overview_days(days)))
