"""Reads of baselines for the pages and the API: which baselines one may see, a cycle's
status (computed now while it is open, as stored once finished), the list's today,
history and on-time rate, the Gantt chart of a critical path, the instances on today's
paths, the baselines an instance is on, and the baselines a backfill would compete
with. Members of a project read its baselines."""

import datetime
from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef, Q, QuerySet

from apps.core import clock
from apps.core.errors import NotFound, ValidationFailed
from apps.instances.choices import FINISHED
from apps.monitoring.choices import AlertSource
from apps.monitoring.models import Alert
from apps.projects.selectors import projects_visible_to

from .choices import AT_RISK, FINISHED_STATUSES, OPEN_STATUSES, CycleStatus
from .cycles import OPEN_DAYS, Computed, blocked_json, cycle_compute, path_json, today_biz_date
from .models import Baseline, BaselineCycle, BaselineCycleInstance

HISTORY_CYCLES = 30  # the on-time rate's window
ALERTS_SHOWN = 20
# At-risk first: the order the list and the overview show statuses in.
STATUS_RANK = {
    CycleStatus.BROKEN: 0,
    CycleStatus.WARNING: 1,
    CycleStatus.SAFE: 2,
    CycleStatus.FINISHED_LATE: 3,
    CycleStatus.FINISHED_ON_TIME: 4,
}


def baselines_visible_to(user) -> QuerySet[Baseline]:
    queryset = Baseline.objects.select_related("project").prefetch_related("key_nodes", "channels")
    if not user.is_authenticated:
        return queryset.none()
    if user.is_superuser:
        return queryset
    return queryset.filter(project__in=projects_visible_to(user))


def baseline_get(*, user, baseline_id: int) -> Baseline:
    baseline = baselines_visible_to(user).filter(pk=baseline_id).first()
    if baseline is None:
        raise NotFound(f"baseline {baseline_id} not found")
    return baseline


# --- one cycle ------------------------------------------------------------------------------


def _refuse(field_name: str, message: str):
    raise ValidationFailed(f"invalid {field_name}", [{"field": field_name, "message": message}])


def cycle_of(
    baseline: Baseline, *, biz_date: str | datetime.date | None, hour, now: datetime.datetime
) -> tuple[datetime.date, int | None]:
    """The cycle asked for: `biz_date` (default: today's) and, for an hourly baseline,
    `hour` of the scheduled day (default: the current hour of today's)."""
    today = today_biz_date(baseline, now)
    if biz_date in (None, ""):
        day = today
    elif isinstance(biz_date, datetime.date):
        day = biz_date
    else:
        try:
            day = datetime.date.fromisoformat(str(biz_date))
        except ValueError:
            _refuse("biz_date", "a date as YYYY-MM-DD")
    if hour in (None, ""):
        if not baseline.is_hourly:
            return day, None
        if day != today:
            _refuse("hour", "an hour 0-23 of the scheduled day: the baseline is hourly")
        return day, now.astimezone(baseline.project.tz).hour
    if not baseline.is_hourly:
        _refuse("hour", "a daily baseline's cycle has no hour")
    try:
        number = int(str(hour))
    except ValueError:
        number = -1
    if not 0 <= number <= 23:
        _refuse("hour", "an hour from 0 to 23")
    return day, number


@dataclass
class CycleView:
    """A cycle as the status answer and the baseline's page show it."""

    baseline: Baseline
    biz_date: datetime.date
    hour: int | None
    committed_at: datetime.datetime
    warning_at: datetime.datetime
    status: str
    predicted_finish: datetime.datetime | None
    estimated: bool
    blocked_by: list[dict]
    critical_path: list[dict]
    key_instances: list[int]
    finished_at: datetime.datetime | None = None
    # When the status was computed (now, for an open cycle).
    as_of: datetime.datetime | None = None
    stored: BaselineCycle | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def as_api(self) -> dict:
        tz = self.baseline.project.tz

        def local(value):
            return None if value is None else value.astimezone(tz)

        return {
            "baseline": self.baseline.pk,
            "biz_date": self.biz_date,
            "hour": self.hour,
            "committed_at": local(self.committed_at),
            "warning_at": local(self.warning_at),
            "predicted_finish": local(self.predicted_finish),
            "estimated": self.estimated,
            "status": self.status,
            "blocked_by": self.blocked_by,
            "critical_path": [
                {
                    "instance": step["instance"],
                    "node": step["node"],
                    "node_name": step["node_name"],
                    "state": step["state"],
                    "start": local(step["start"]),
                    "finish": local(step["finish"]),
                    "expected_seconds": step["expected_seconds"],
                }
                for step in self.critical_path
            ],
            "key_instances": self.key_instances,
        }


def _steps(path: list[dict]) -> list[dict]:
    """Path steps with their times as datetimes (stored rows keep ISO strings)."""
    return [
        {**step, "start": _parse(step["start"]), "finish": _parse(step["finish"])} for step in path
    ]


def _from_computed(c: Computed, now: datetime.datetime) -> CycleView:
    p = c.prediction
    return CycleView(
        baseline=c.baseline,
        biz_date=c.biz_date,
        hour=c.hour,
        committed_at=c.committed_at,
        warning_at=c.warning_at,
        status=c.status,
        predicted_finish=p.predicted_finish,
        estimated=p.estimated,
        blocked_by=blocked_json(c),
        critical_path=_steps(path_json(c)),
        key_instances=p.keys,
        finished_at=p.predicted_finish if p.finished else None,
        as_of=now,
    )


def _from_row(row: BaselineCycle) -> CycleView:
    return CycleView(
        baseline=row.baseline,
        biz_date=row.biz_date,
        hour=row.hour,
        committed_at=row.committed_at,
        warning_at=row.warning_at,
        status=row.status,
        predicted_finish=row.predicted_finish,
        estimated=row.estimated,
        blocked_by=row.blocked_by,
        critical_path=_steps(row.critical_path),
        key_instances=row.key_instances,
        finished_at=row.finished_at,
        as_of=row.computed_at,
        stored=row,
    )


def cycle_status(
    *,
    baseline: Baseline,
    biz_date: datetime.date,
    hour: int | None,
    now: datetime.datetime | None = None,
) -> CycleView:
    """The cycle's status: as stored once it finished (its history stands), computed now
    otherwise. NotFound when the cycle has no key instance."""
    now = now or clock.now()
    row = BaselineCycle.objects.filter(baseline=baseline, biz_date=biz_date, hour=hour).first()
    if row is not None and not row.is_open:
        row.baseline = baseline
        return _from_row(row)
    computed = cycle_compute(baseline, biz_date, hour, now=now)
    if computed is None:
        cycle = f"biz date {biz_date}" + (f" hour {hour}" if hour is not None else "")
        raise NotFound(
            f"baseline {baseline.pk} has no key instance for {cycle}",
            [{"field": "biz_date", "message": "no instance of the key nodes in this cycle"}],
        )
    view = _from_computed(computed, now)
    view.stored = row
    return view


# --- the list, history, on-time rate -------------------------------------------------------


@dataclass
class BaselineRow:
    baseline: Baseline
    biz_date: datetime.date
    hour: int | None
    cycle: BaselineCycle | None

    @property
    def status(self) -> str:
        return self.cycle.status if self.cycle else ""

    @property
    def rank(self) -> int:
        return STATUS_RANK.get(self.status, 5)

    @property
    def late_seconds(self) -> float | None:
        """How far the predicted (or real) finish is past the committed time (negative:
        before it)."""
        if self.cycle is None or self.cycle.predicted_finish is None:
            return None
        return (self.cycle.predicted_finish - self.cycle.committed_at).total_seconds()

    @property
    def spare_seconds(self) -> float | None:
        late = self.late_seconds
        return None if late is None else -late


def baseline_rows(*, user, project=None, now: datetime.datetime | None = None) -> list[BaselineRow]:
    """Every visible baseline with today's cycle (the current hour's for an hourly one) as
    the monitor last computed it; at-risk first, then by committed time."""
    now = now or clock.now()
    baselines = baselines_visible_to(user)
    if project is not None:
        baselines = baselines.filter(project=project)
    baselines = list(baselines)
    wanted = {}
    for b in baselines:
        biz_date = today_biz_date(b, now)
        hour = now.astimezone(b.project.tz).hour if b.is_hourly else None
        wanted[b.pk] = (biz_date, hour)
    cycles = {}
    if wanted:
        dates = {d for d, _ in wanted.values()}
        for row in BaselineCycle.objects.filter(baseline_id__in=list(wanted), biz_date__in=dates):
            if (row.biz_date, row.hour) == wanted[row.baseline_id]:
                cycles[row.baseline_id] = row
    rows = [BaselineRow(b, wanted[b.pk][0], wanted[b.pk][1], cycles.get(b.pk)) for b in baselines]
    far = datetime.datetime.max.replace(tzinfo=datetime.UTC)
    rows.sort(
        key=lambda r: (
            r.rank,
            r.cycle.committed_at if r.cycle else far,
            r.baseline.project.code,
            r.baseline.name,
        )
    )
    return rows


def cycles_history(baseline: Baseline) -> QuerySet[BaselineCycle]:
    """The baseline's cycles, newest first."""
    return BaselineCycle.objects.filter(baseline=baseline).order_by("-biz_date", "-hour", "-id")


@dataclass
class OnTime:
    finished: int = 0
    on_time: int = 0

    @property
    def rate(self) -> float | None:
        return self.on_time / self.finished if self.finished else None

    @property
    def percent(self) -> str:
        return "—" if self.rate is None else f"{self.rate * 100:.0f}%"


def on_time_rate(baseline: Baseline, cycles: int = HISTORY_CYCLES) -> OnTime:
    """Of the baseline's last `cycles` finished cycles, how many finished on time."""
    statuses = list(
        cycles_history(baseline)
        .filter(status__in=FINISHED_STATUSES)
        .values_list("status", flat=True)[:cycles]
    )
    return OnTime(
        finished=len(statuses),
        on_time=sum(1 for s in statuses if s == CycleStatus.FINISHED_ON_TIME),
    )


def baseline_alerts(baseline: Baseline, limit: int = ALERTS_SHOWN) -> list[Alert]:
    return list(
        Alert.objects.filter(
            source=AlertSource.BASELINE, target_type="baseline", target_id=str(baseline.pk)
        ).order_by("-last_at", "-id")[:limit]
    )


# --- the Gantt chart ------------------------------------------------------------------------


@dataclass
class GanttBar:
    step: dict
    y: float
    # The real part (finished, or started) and the predicted part: (x, width) in chart
    # units.
    real: tuple[float, float] | None
    predicted: tuple[float, float] | None


@dataclass
class GanttLine:
    name: str
    label: str
    x: float
    at: datetime.datetime
    label_y: float = 0
    anchor: str = "middle"


@dataclass
class Gantt:
    width: int
    height: int
    left: int  # where the time axis starts (labels on the left)
    bars: list[GanttBar] = field(default_factory=list)
    lines: list[GanttLine] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)
    row: int = 30
    bars_end: int = 0


def _parse(value) -> datetime.datetime | None:
    if value is None or isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.fromisoformat(value)


def gantt(
    view: CycleView, *, now: datetime.datetime, width: int = 960, tz: datetime.tzinfo | None = None
) -> Gantt | None:
    """The critical path as bars on a time axis (real and predicted parts), with the
    committed and warning times and now as lines; None without a path."""
    steps = view.critical_path
    if not steps:
        return None
    tz = tz or view.baseline.project.tz
    times = [t for s in steps for t in (s["start"], s["finish"])]
    times += [view.committed_at, view.warning_at, now]
    low, high = min(times), max(times)
    span = max((high - low).total_seconds(), 60.0)
    low -= datetime.timedelta(seconds=span * 0.03)
    high += datetime.timedelta(seconds=span * 0.03)
    span = (high - low).total_seconds()
    row, top, left = 30, 24, 220
    bars_end = top + row * len(steps)
    # Below the bars, one row per line's label, so that close lines never overlap.
    chart = Gantt(width=width, height=bars_end + 3 * 14 + 6, left=left, row=row)
    chart.bars_end = bars_end
    usable = width - left - 10

    def x(at: datetime.datetime) -> float:
        return round(left + usable * (at - low).total_seconds() / span, 1)

    def span_of(a: datetime.datetime, b: datetime.datetime) -> tuple[float, float]:
        return (x(a), max(round(x(b) - x(a), 1), 1.0))

    for n, step in enumerate(steps):
        start, finish = step["start"], step["finish"]
        real = predicted = None
        if step.get("real_finish"):
            real = span_of(start, finish)
        elif step.get("real_start"):
            split = min(max(now, start), finish)
            real = span_of(start, split)
            predicted = span_of(split, finish)
        else:
            predicted = span_of(start, finish)
        chart.bars.append(GanttBar(step=step, y=top + row * n, real=real, predicted=predicted))
    for n, (name, at) in enumerate(
        (("warning", view.warning_at), ("committed", view.committed_at), ("now", now))
    ):
        line = GanttLine(name=name, label=f"{name} {at.astimezone(tz):%H:%M}", x=x(at), at=at)
        line.label_y = bars_end + 14 * (n + 1)
        # A label near an edge is anchored on its inner side.
        line.anchor = "start" if line.x < left + 60 else "end" if line.x > width - 60 else "middle"
        chart.lines.append(line)
    chart.ticks = _ticks(low, high, tz, x)
    return chart


# Tick spacings the time axis picks from, in minutes: the first giving at most MAX_TICKS.
TICK_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)
MAX_TICKS = 8


def _ticks(low, high, tz, x) -> list[tuple[float, str]]:
    """Round local times (every 5, 10, 15, 30 minutes, hours...) across [low, high]."""
    minutes = (high - low).total_seconds() / 60
    step = next((m for m in TICK_MINUTES if minutes / m <= MAX_TICKS), TICK_MINUTES[-1])
    local = low.astimezone(tz)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = (local - midnight).total_seconds() / 60
    at = midnight + datetime.timedelta(minutes=(elapsed // step + 1) * step)
    ticks = []
    while at < high:
        label = f"{at:%H:%M}" if step < 1440 else f"{at:%m-%d}"
        ticks.append((x(at), label))
        at += datetime.timedelta(minutes=step)
    return ticks


# --- instances and baselines ----------------------------------------------------------------


def _today_cycles(baselines: QuerySet[Baseline] | list[Baseline], now) -> Q:
    """Today's cycles of `baselines` (each in its project's timezone)."""
    by_date: dict[datetime.date, list[int]] = {}
    for b in baselines:
        by_date.setdefault(today_biz_date(b, now), []).append(b.pk)
    condition = Q(pk__in=[])
    for day, ids in by_date.items():
        condition |= Q(baseline_id__in=ids, biz_date=day)
    return condition


def instances_on_baselines(queryset, value: str, *, now: datetime.datetime | None = None):
    """The instances of `queryset` on today's path of any baseline (`any`) or of the
    baseline whose id `value` is."""
    now = now or clock.now()
    baselines = Baseline.objects.select_related("project")
    if value != "any":
        if not value.isdigit() or not 0 < int(value) < 2**63:
            _refuse("baseline", "any, or a baseline's id")
        baselines = baselines.filter(pk=int(value))
    cycles = BaselineCycle.objects.filter(_today_cycles(list(baselines), now))
    on_path = BaselineCycleInstance.objects.filter(instance=OuterRef("pk"), cycle__in=cycles)
    return queryset.filter(Exists(on_path))


@dataclass
class Membership:
    cycle: BaselineCycle
    key: bool

    @property
    def baseline(self) -> Baseline:
        return self.cycle.baseline


def instance_baselines(instance, *, user) -> list[Membership]:
    """The cycles (of baselines `user` may see) whose path the instance is on: open ones
    and those of the last OPEN_DAYS days, at-risk first."""
    since = instance.biz_date - datetime.timedelta(days=OPEN_DAYS)
    found = (
        BaselineCycleInstance.objects.filter(instance=instance, cycle__biz_date__gte=since)
        .filter(cycle__baseline__in=baselines_visible_to(user))
        .select_related("cycle__baseline__project")
    )
    rows = [Membership(cycle=m.cycle, key=m.key) for m in found]
    rows.sort(key=lambda m: (STATUS_RANK.get(m.cycle.status, 5), m.cycle.committed_at))
    return rows


def baselines_at_risk(*, projects, now: datetime.datetime) -> list[dict]:
    """Open cycles in warning or broken of the projects' baselines (of the last OPEN_DAYS
    days), broken first, then by committed time."""
    since = now.date() - datetime.timedelta(days=OPEN_DAYS + 1)
    rows = (
        BaselineCycle.objects.filter(
            status__in=AT_RISK,
            biz_date__gte=since,
            baseline__project__in=[p.pk for p in projects],
            baseline__enabled=True,
        )
        .select_related("baseline__project")
        .order_by("committed_at", "id")
    )
    found = [
        {
            "id": row.baseline_id,
            "name": row.baseline.name,
            "project": row.baseline.project.code,
            "timezone": row.baseline.project.timezone,
            "biz_date": row.biz_date,
            "hour": row.hour,
            "status": row.status,
            "committed_at": row.committed_at,
            "predicted_finish": row.predicted_finish,
            "blocked": bool(row.blocked_by),
        }
        for row in rows
    ]
    found.sort(key=lambda r: STATUS_RANK[r["status"]])
    return found


@dataclass
class Competition:
    baseline: Baseline
    cycle: BaselineCycle
    resource_groups: list[str]
    instances: int


def baselines_competing(
    *, user, resource_group_ids, now: datetime.datetime | None = None
) -> list[Competition]:
    """Today's open cycles (of baselines `user` may see) not yet past their committed
    time whose unfinished path runs in one of `resource_group_ids`: what new work in
    those groups would compete with for slots."""
    now = now or clock.now()
    groups = sorted(set(resource_group_ids))
    if not groups:
        return []
    baselines = list(baselines_visible_to(user).filter(enabled=True))
    cycles = BaselineCycle.objects.filter(
        _today_cycles(baselines, now), status__in=OPEN_STATUSES, committed_at__gt=now
    )
    rows = (
        BaselineCycleInstance.objects.filter(
            cycle__in=cycles, instance__resource_group_id__in=groups
        )
        .exclude(instance__state__in=FINISHED)
        .values_list("cycle_id", "instance__resource_group__name")
    )
    by_cycle: dict[int, dict] = {}
    for cycle_id, group in rows:
        entry = by_cycle.setdefault(cycle_id, {"groups": set(), "instances": 0})
        entry["groups"].add(group)
        entry["instances"] += 1
    if not by_cycle:
        return []
    found = []
    for cycle in BaselineCycle.objects.filter(pk__in=list(by_cycle)).select_related(
        "baseline__project"
    ):
        entry = by_cycle[cycle.pk]
        found.append(
            Competition(
                baseline=cycle.baseline,
                cycle=cycle,
                resource_groups=sorted(entry["groups"]),
                instances=entry["instances"],
            )
        )
    found.sort(key=lambda c: (STATUS_RANK.get(c.cycle.status, 5), c.cycle.committed_at))
    return found
