"""Reads for a node's run history (the grid of its last cycles and its duration trend),
the pipeline grid (nodes × biz dates) and a day's timeline. Each reads its instances in
one query; nothing is read per cell."""

import datetime
import statistics
from dataclasses import dataclass, field

from django.db.models import QuerySet

from apps.core import clock
from apps.core.errors import ValidationFailed
from apps.nodes.models import Node

from .choices import InstanceKind, InstanceState
from .models import Instance

HISTORY_CYCLES = (30, 90)
# Realtime instances are not cycles: they have no biz date run to compare.
_CYCLE_KINDS = (InstanceKind.RECURRING, InstanceKind.BACKFILL, InstanceKind.ONE_TIME)


def history_cycles(raw: str) -> int:
    """The `cycles` query value: 30 (default) or 90."""
    if not raw:
        return HISTORY_CYCLES[0]
    if raw.isdigit() and int(raw) in HISTORY_CYCLES:
        return int(raw)
    raise ValidationFailed(
        "invalid cycles",
        [{"field": "cycles", "message": f"one of {', '.join(map(str, HISTORY_CYCLES))}"}],
    )


@dataclass
class Cycle:
    id: int
    biz_date: datetime.date
    scheduled_at: datetime.datetime
    state: str
    kind: str
    duration: float | None  # seconds run: until it finished, or until now while running
    color: str = ""
    label: str = ""
    height: int = 0  # the duration bar's height, percent of the longest shown


@dataclass
class NodeHistory:
    cycles: list[Cycle]  # oldest first
    median: float | None  # of the finished runs shown
    timeout: int | None  # the node's effective timeout in seconds
    longest: float = 0.0

    def chart(self) -> dict:
        """What the trend chart draws (json_script)."""
        return {
            "labels": [f"{c.biz_date:%Y-%m-%d} #{c.id}" for c in self.cycles],
            "durations": [c.duration for c in self.cycles],
            "colors": [c.color for c in self.cycles],
            "median": self.median,
            "timeout": self.timeout,
        }


def _run_seconds(started, finished, now) -> float | None:
    if started is None:
        return None
    return round(max(((finished or now) - started).total_seconds(), 0.0), 3)


def node_history(*, node: Node, cycles: int, timeout: int | None) -> NodeHistory:
    """The node's last `cycles` instances (by scheduled time, realtime left out), one query."""
    now = clock.now()
    rows = list(
        Instance.objects.filter(node=node, kind__in=_CYCLE_KINDS)
        .order_by("-scheduled_at", "-id")
        .values_list(
            "id", "biz_date", "scheduled_at", "state", "kind", "started_at", "finished_at"
        )[:cycles]
    )
    rows.reverse()
    colors = InstanceState.colors()
    labels = dict(InstanceState.choices)
    found = [
        Cycle(
            id=i,
            biz_date=biz_date,
            scheduled_at=scheduled_at,
            state=state,
            kind=kind,
            duration=_run_seconds(started, finished, now),
            color=colors.get(state, "gray"),
            label=labels.get(state, state),
        )
        for i, biz_date, scheduled_at, state, kind, started, finished in rows
    ]
    finished = [
        c.duration
        for c in found
        if c.duration is not None and c.state in (InstanceState.SUCCEEDED, InstanceState.FAILED)
    ]
    longest = max([c.duration for c in found if c.duration is not None] or [0.0])
    for c in found:
        if c.duration is not None and longest > 0:
            c.height = max(4, round(100 * c.duration / longest))
    return NodeHistory(
        cycles=found,
        median=round(statistics.median(finished), 3) if finished else None,
        timeout=timeout,
        longest=longest,
    )


@dataclass
class PipelineGrid:
    """nodes × biz dates: cells[node index][date index] lists that node's instances of
    that date (an hourly node has 24), each as a Cycle."""

    nodes: list[Node]
    dates: list[datetime.date]
    cells: list[list[list[Cycle]]] = field(default_factory=list)


def pipeline_grid(*, nodes: list[Node], days: int, until: datetime.date) -> PipelineGrid:
    """The instances of `nodes` over the `days` biz dates up to `until`, one query."""
    dates = [until - datetime.timedelta(days=n) for n in range(days - 1, -1, -1)]
    node_index = {n.id: i for i, n in enumerate(nodes)}
    date_index = {d: i for i, d in enumerate(dates)}
    cells: list[list[list[Cycle]]] = [[[] for _ in dates] for _ in nodes]
    now = clock.now()
    colors = InstanceState.colors()
    labels = dict(InstanceState.choices)
    rows = (
        Instance.objects.filter(
            node_id__in=list(node_index),
            kind__in=_CYCLE_KINDS,
            biz_date__gte=dates[0],
            biz_date__lte=dates[-1],
        )
        .order_by("scheduled_at", "id")
        .values_list(
            "id",
            "node_id",
            "biz_date",
            "scheduled_at",
            "state",
            "kind",
            "started_at",
            "finished_at",
        )
    )
    for i, node_id, biz_date, scheduled_at, state, kind, started, finished in rows:
        cells[node_index[node_id]][date_index[biz_date]].append(
            Cycle(
                id=i,
                biz_date=biz_date,
                scheduled_at=scheduled_at,
                state=state,
                kind=kind,
                duration=_run_seconds(started, finished, now),
                color=colors.get(state, "gray"),
                label=labels.get(state, state),
            )
        )
    return PipelineGrid(nodes=nodes, dates=dates, cells=cells)


# --- a day's timeline ------------------------------------------------------------------

TIMELINE_GROUPS = ("resource_group", "node")


@dataclass
class Bar:
    id: int
    node: str
    state: str
    color: str
    label: str
    queued_at: datetime.datetime | None
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None  # or now while it runs


@dataclass
class Lane:
    name: str
    bars: list[Bar]


@dataclass
class Timeline:
    lanes: list[Lane]
    start: datetime.datetime | None
    end: datetime.datetime | None
    live: bool  # something is queued or running


def day_timeline(
    *, instances: QuerySet[Instance], biz_date: datetime.date, group_by: str
) -> Timeline:
    """The biz date's instances that were queued or started, as bars in lanes (by
    resource group or by node), from queue to start to finish; one query."""
    now = clock.now()
    colors = InstanceState.colors()
    labels = dict(InstanceState.choices)
    rows = (
        instances.filter(biz_date=biz_date)
        .exclude(queued_at__isnull=True, started_at__isnull=True)
        .order_by("started_at", "queued_at", "id")
        .values_list(
            "id",
            "node__name",
            "resource_group__name",
            "state",
            "queued_at",
            "started_at",
            "finished_at",
        )
    )
    lanes: dict[str, list[Bar]] = {}
    live = False
    for i, node_name, group_name, state, queued, started, finished in rows:
        running = state in (InstanceState.QUEUED, InstanceState.RUNNING)
        live = live or running
        if finished is None and (started is not None or running):
            finished = now
        bar = Bar(
            id=i,
            node=node_name,
            state=state,
            color=colors.get(state, "gray"),
            label=labels.get(state, state),
            queued_at=queued,
            started_at=started,
            finished_at=finished,
        )
        lane = (group_name or "default") if group_by == "resource_group" else node_name
        lanes.setdefault(lane, []).append(bar)
    times = [
        t
        for bars in lanes.values()
        for b in bars
        for t in (b.queued_at, b.started_at, b.finished_at)
        if t
    ]
    return Timeline(
        lanes=[Lane(name=name, bars=bars) for name, bars in sorted(lanes.items())],
        start=min(times) if times else None,
        end=max(times) if times else None,
        live=live,
    )
