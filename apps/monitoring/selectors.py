"""Reads for the O&M overview, shared by the page and GET /api/overview.

Every number is one aggregate query (GROUP BY in the database); the overview costs the
same handful of queries whether a project has ten instances or ten million.

"Today" is a business day: today's instances are those whose biz date is yesterday in
their project's timezone, i.e. the recurring instances scheduled today (SPEC: biz date
is the scheduled date minus one day), plus one-time runs and backfills of that date.
The run trend and the failure ranking are per biz date too, so every number links to
an instance list filtered by that biz date.

Alerts are incidents with a time, not a biz date: the open ones are counted by severity
(with the latest few), and the alert ranking counts the alerts raised in the period's
last `days` days per node.
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db.models import (
    Avg,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Max,
    Q,
    QuerySet,
    Sum,
)
from django.db.models.functions import Coalesce

from apps.core import clock
from apps.core.errors import ValidationFailed
from apps.instances.choices import AttemptState, InstanceKind, InstanceState, WaitReason
from apps.instances.models import Instance
from apps.projects.models import Project
from apps.projects.selectors import projects_visible_to

from .choices import OPEN_STATES, AlertState, Severity
from .models import Alert

# What other apps add to the overview, read for the projects in scope: name ->
# read(projects=[...], now=...) -> a list (apps.baselines adds "baselines_at_risk").
OVERVIEW_EXTRAS: dict[str, Callable[..., list]] = {}

TREND_PERIODS = (7, 30)
DEFAULT_PERIOD = 7
# How many rows the ranking and the two "longest" lists show.
LIST_LIMIT = 10
# How many of the newest open alerts the overview lists.
OPEN_ALERTS_SHOWN = 5


@dataclass
class TodaySummary:
    """Instances of today's business day, counted by kind and state."""

    biz_dates: list[datetime.date]  # one per timezone in scope; usually one
    counts: dict[str, dict[str, int]]  # kind -> state -> count (every kind and state)
    kind_totals: dict[str, int]
    state_totals: dict[str, int]
    waiting: dict[str, int]  # pending instances by wait reason
    total: int = 0

    @property
    def biz_date(self) -> datetime.date | None:
        """The biz date every project in scope shares, or None when timezones differ."""
        return self.biz_dates[0] if len(self.biz_dates) == 1 else None


@dataclass
class TrendDay:
    biz_date: datetime.date
    succeeded: int = 0
    failed: int = 0
    avg_duration_seconds: float | None = None
    # Attempts that failed, retried ones included: a day whose retries all rescued their
    # instances still shows its failures here.
    failed_attempts: int = 0


@dataclass
class FailureRank:
    node_id: int
    node_name: str
    project_code: str
    project_timezone: str
    failures: int  # failed instances
    last_failed_at: datetime.datetime | None
    failed_attempts: int = 0  # failed attempts, those a retry rescued included


@dataclass
class FlakyRank:
    """A node whose attempts failed although its instances then succeeded on a retry."""

    node_id: int
    node_name: str
    project_code: str
    project_timezone: str
    flaky_instances: int  # succeeded instances with at least one failed attempt
    failed_attempts: int  # their failed attempts
    last_failed_at: datetime.datetime | None


@dataclass
class OpenAlerts:
    """Alerts still open (firing or acknowledged), by severity, and the newest few."""

    by_severity: dict[str, int] = field(default_factory=lambda: dict.fromkeys(Severity.values, 0))
    firing: int = 0
    acknowledged: int = 0
    latest: list[Alert] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.firing + self.acknowledged


@dataclass
class AlertRank:
    node_id: int
    node_name: str
    project_code: str
    project_timezone: str
    alerts: int  # alerts raised in the period
    occurrences: int  # with their repeats
    open: int  # of them still open
    last_at: datetime.datetime | None


@dataclass
class Overview:
    now: datetime.datetime
    projects: list[Project]
    days: int
    start: datetime.date  # first biz date of the trend period
    end: datetime.date  # last biz date of the trend period (today's biz date)
    today: TodaySummary
    trend: list[TrendDay]
    failure_ranking: list[FailureRank]
    flaky_ranking: list[FlakyRank] = field(default_factory=list)
    longest_running: list[Instance] = field(default_factory=list)
    waiting_longest: list[Instance] = field(default_factory=list)
    open_alerts: OpenAlerts = field(default_factory=OpenAlerts)
    alert_ranking: list[AlertRank] = field(default_factory=list)
    # Alerts raised since this moment are ranked: the last `days` days.
    alerts_since: datetime.datetime | None = None
    # OVERVIEW_EXTRAS' answers by name.
    extras: dict[str, list] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Something is queued or running: the live part of the page keeps refreshing."""
        states = self.today.state_totals
        return bool(
            self.longest_running
            or states.get(InstanceState.QUEUED)
            or states.get(InstanceState.RUNNING)
        )


def overview_days(value: str | int | None) -> int:
    """The trend period asked for: 7 or 30 days (7 when not given)."""
    if value in (None, ""):
        return DEFAULT_PERIOD
    try:
        days = int(value)
    except (TypeError, ValueError):
        days = 0
    if days not in TREND_PERIODS:
        raise ValidationFailed(
            "invalid days",
            [{"field": "days", "message": f"one of {', '.join(map(str, TREND_PERIODS))}"}],
        )
    return days


def today_biz_date(project: Project, now: datetime.datetime) -> datetime.date:
    """Today's business day in the project's timezone: yesterday there."""
    return now.astimezone(project.tz).date() - datetime.timedelta(days=1)


def overview_get(
    *,
    user,
    project: Project | None = None,
    days: int = DEFAULT_PERIOD,
    now: datetime.datetime | None = None,
) -> Overview:
    """The overview of `project`, or of every project `user` can see when it is None."""
    now = now or clock.now()
    if project is not None:
        projects = [project]
    else:
        projects = list(projects_visible_to(user).order_by("code"))
    today_by_project = {p.id: today_biz_date(p, now) for p in projects}
    end = max(today_by_project.values(), default=now.date() - datetime.timedelta(days=1))
    start = end - datetime.timedelta(days=days - 1)
    overview = Overview(
        now=now,
        projects=projects,
        days=days,
        start=start,
        end=end,
        today=_today([], {}),
        trend=_fill_trend(start, end, {}),
        failure_ranking=[],
        alerts_since=now - datetime.timedelta(days=days),
    )
    if not projects:
        overview.extras = {name: [] for name in OVERVIEW_EXTRAS}
        return overview
    scope = Instance.objects.filter(project_id__in=list(today_by_project))
    overview.today = _today(scope, today_by_project)
    overview.trend = _fill_trend(
        start, end, _trend_rows(scope, start, end), _failed_attempt_rows(scope, start, end)
    )
    overview.failure_ranking = _failure_ranking(scope, start, end)
    overview.flaky_ranking = _flaky_ranking(scope, start, end)
    listed = scope.select_related("node", "project", "resource_group")
    overview.longest_running = list(
        listed.filter(state=InstanceState.RUNNING).order_by("started_at", "id")[:LIST_LIMIT]
    )
    # Waiting: pending although its time has come, so the wait is the operator's concern.
    overview.waiting_longest = list(
        listed.filter(state=InstanceState.PENDING, scheduled_at__lte=now).order_by(
            "scheduled_at", "id"
        )[:LIST_LIMIT]
    )
    in_scope = Q(project_id__in=list(today_by_project))
    if project is None and getattr(user, "is_superuser", False):
        in_scope |= Q(project__isnull=True)  # system alerts: a superuser's
    alerts = Alert.objects.filter(in_scope)
    overview.open_alerts = _open_alerts(alerts)
    overview.alert_ranking = _alert_ranking(alerts, overview.alerts_since)
    overview.extras = {
        name: read(projects=projects, now=now) for name, read in OVERVIEW_EXTRAS.items()
    }
    return overview


def _today(scope: QuerySet[Instance] | list, today_by_project: dict[int, datetime.date]):
    counts = {kind: dict.fromkeys(InstanceState.values, 0) for kind in InstanceKind.values}
    waiting = dict.fromkeys(WaitReason.values, 0)
    rows = []
    if today_by_project:
        # Projects sharing a biz date are one condition; one per distinct timezone date.
        by_date: dict[datetime.date, list[int]] = {}
        for project_id, day in today_by_project.items():
            by_date.setdefault(day, []).append(project_id)
        condition = Q()
        for day, ids in by_date.items():
            condition |= Q(project_id__in=ids, biz_date=day)
        rows = (
            scope.filter(condition)
            .values("kind", "state", "wait_reason")
            .annotate(n=Count("id"))
            .order_by()
        )
    for row in rows:
        kind_counts = counts.setdefault(row["kind"], dict.fromkeys(InstanceState.values, 0))
        kind_counts[row["state"]] = kind_counts.get(row["state"], 0) + row["n"]
        if row["state"] == InstanceState.PENDING and row["wait_reason"]:
            waiting[row["wait_reason"]] = waiting.get(row["wait_reason"], 0) + row["n"]
    state_totals = dict.fromkeys(InstanceState.values, 0)
    for kind_counts in counts.values():
        for state, n in kind_counts.items():
            state_totals[state] = state_totals.get(state, 0) + n
    kind_totals = {kind: sum(kind_counts.values()) for kind, kind_counts in counts.items()}
    return TodaySummary(
        biz_dates=sorted(set(today_by_project.values())),
        counts=counts,
        kind_totals=kind_totals,
        state_totals=state_totals,
        waiting=waiting,
        total=sum(kind_totals.values()),
    )


def _trend_rows(scope: QuerySet[Instance], start: datetime.date, end: datetime.date):
    ran = Q(started_at__isnull=False, finished_at__isnull=False)
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    return (
        scope.filter(
            biz_date__range=(start, end),
            state__in=[InstanceState.SUCCEEDED, InstanceState.FAILED],
        )
        .values("biz_date")
        .annotate(
            succeeded=Count("id", filter=Q(state=InstanceState.SUCCEEDED)),
            failed=Count("id", filter=Q(state=InstanceState.FAILED)),
            avg_duration=Avg(duration, filter=ran),
        )
        .order_by()
    )


def _failed_attempt_rows(scope: QuerySet[Instance], start: datetime.date, end: datetime.date):
    """Failed attempts per biz date, whatever their instance became."""
    return (
        scope.filter(biz_date__range=(start, end), attempts__state=AttemptState.FAILED)
        .values("biz_date")
        .annotate(failed_attempts=Count("attempts__id"))
        .order_by()
    )


def _fill_trend(start: datetime.date, end: datetime.date, rows, attempt_rows=()) -> list[TrendDay]:
    """One entry per biz date of the period, zeros where nothing finished."""
    found = {}
    for row in rows:
        avg = row["avg_duration"]
        found[row["biz_date"]] = TrendDay(
            biz_date=row["biz_date"],
            succeeded=row["succeeded"],
            failed=row["failed"],
            avg_duration_seconds=round(_seconds(avg), 3) if avg is not None else None,
        )
    for row in attempt_rows:
        trend_day = found.setdefault(row["biz_date"], TrendDay(biz_date=row["biz_date"]))
        trend_day.failed_attempts = row["failed_attempts"]
    days = (end - start).days + 1
    dates = [start + datetime.timedelta(days=i) for i in range(days)]
    return [found.get(day) or TrendDay(biz_date=day) for day in dates]


def _seconds(value) -> float:
    # PostgreSQL answers an interval; SQLite's average of a duration is in microseconds.
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return float(value) / 1_000_000


def _failure_ranking(
    scope: QuerySet[Instance], start: datetime.date, end: datetime.date
) -> list[FailureRank]:
    """Nodes by failed instances, then failed attempts, in one aggregate: instances that
    failed or had a failed attempt, joined to those attempts, grouped by node. A node whose
    retries rescued every instance is there too, ranked by the attempts that failed, after
    the nodes whose instances still failed (those need the operator first)."""
    failed_attempt = Q(attempts__state=AttemptState.FAILED)
    failed = Q(state=InstanceState.FAILED)
    rows = (
        scope.filter(biz_date__range=(start, end))
        .filter(failed | failed_attempt)
        .values("node_id", "node__name", "project__code", "project__timezone")
        .annotate(
            failures=Count("id", distinct=True, filter=failed),
            failed_attempts=Count("attempts__id", filter=failed_attempt),
            last_failed_at=Coalesce(
                Max("attempts__finished_at", filter=failed_attempt),
                Max("finished_at", filter=failed),
            ),
        )
        .order_by("-failures", "-failed_attempts", "node__name", "node_id")[:LIST_LIMIT]
    )
    return [
        FailureRank(
            node_id=row["node_id"],
            node_name=row["node__name"],
            project_code=row["project__code"],
            project_timezone=row["project__timezone"],
            failures=row["failures"],
            last_failed_at=row["last_failed_at"],
            failed_attempts=row["failed_attempts"],
        )
        for row in rows
    ]


def _flaky_ranking(
    scope: QuerySet[Instance], start: datetime.date, end: datetime.date
) -> list[FlakyRank]:
    """Nodes whose instances succeeded after failed attempts, one aggregate by node."""
    rows = (
        scope.filter(
            biz_date__range=(start, end),
            state=InstanceState.SUCCEEDED,
            attempts__state=AttemptState.FAILED,
        )
        .values("node_id", "node__name", "project__code", "project__timezone")
        .annotate(
            flaky_instances=Count("id", distinct=True),
            failed_attempts=Count("attempts__id"),
            last_failed_at=Max("attempts__finished_at"),
        )
        .order_by("-flaky_instances", "-failed_attempts", "node__name", "node_id")[:LIST_LIMIT]
    )
    return [
        FlakyRank(
            node_id=row["node_id"],
            node_name=row["node__name"],
            project_code=row["project__code"],
            project_timezone=row["project__timezone"],
            flaky_instances=row["flaky_instances"],
            failed_attempts=row["failed_attempts"],
            last_failed_at=row["last_failed_at"],
        )
        for row in rows
    ]


def _open_alerts(alerts: QuerySet[Alert]) -> OpenAlerts:
    summary = OpenAlerts()
    open_alerts = alerts.filter(state__in=OPEN_STATES)
    for row in open_alerts.values("severity", "state").annotate(n=Count("id")).order_by():
        summary.by_severity[row["severity"]] = (
            summary.by_severity.get(row["severity"], 0) + row["n"]
        )
        if row["state"] == AlertState.FIRING:
            summary.firing += row["n"]
        else:
            summary.acknowledged += row["n"]
    if summary.total:
        summary.latest = list(
            open_alerts.select_related("project", "node").order_by("-last_at", "-id")[
                :OPEN_ALERTS_SHOWN
            ]
        )
    return summary


def _alert_ranking(alerts: QuerySet[Alert], since: datetime.datetime) -> list[AlertRank]:
    rows = (
        alerts.filter(first_at__gte=since, node__isnull=False)
        .values("node_id", "node__name", "project__code", "project__timezone")
        .annotate(
            alerts=Count("id"),
            occurrences=Sum("count"),
            open=Count("id", filter=Q(state__in=OPEN_STATES)),
            last_at=Max("last_at"),
        )
        .order_by("-alerts", "-occurrences", "node__name", "node_id")[:LIST_LIMIT]
    )
    return [
        AlertRank(
            node_id=row["node_id"],
            node_name=row["node__name"],
            project_code=row["project__code"],
            project_timezone=row["project__timezone"],
            alerts=row["alerts"],
            occurrences=row["occurrences"] or 0,
            open=row["open"],
            last_at=row["last_at"],
        )
        for row in rows
    ]
