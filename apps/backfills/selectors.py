"""Reads of backfill runs, shared by the pages and the API."""

import datetime
from dataclasses import dataclass, field

from django.db.models import Count, QuerySet

from apps.core.errors import NotFound
from apps.instances.choices import FINISHED, InstanceState
from apps.instances.models import Instance
from apps.nodes.models import Node
from apps.projects.selectors import projects_visible_to

from .models import Backfill


def backfills_visible_to(user) -> QuerySet[Backfill]:
    qs = Backfill.objects.select_related("project", "created_by")
    if user.is_superuser:
        return qs
    return qs.filter(project__in=projects_visible_to(user))


def backfill_get(*, user, backfill_id: int) -> Backfill:
    backfill = backfills_visible_to(user).filter(pk=backfill_id).first()
    if backfill is None:
        raise NotFound(f"backfill {backfill_id} not found")
    return backfill


def _empty_counts() -> dict[str, int]:
    return {state: 0 for state in InstanceState.values if state not in ("starting", "stopping")}


@dataclass
class BackfillProgress:
    """Counts of the run's instances per state, overall and per biz date (run order)."""

    total: int = 0
    counts: dict[str, int] = field(default_factory=_empty_counts)
    dates: list[tuple[datetime.date, dict[str, int]]] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return sum(self.counts.get(s, 0) for s in FINISHED)


def backfill_progress(backfill: Backfill) -> BackfillProgress:
    """One grouped query: instances per (date, state)."""
    rows = (
        Instance.objects.filter(backfill=backfill)
        .values_list("backfill_seq", "biz_date", "state")
        .annotate(n=Count("id"))
        .order_by("backfill_seq")
    )
    progress = BackfillProgress()
    per_date: dict[int, tuple[datetime.date, dict[str, int]]] = {}
    for seq, biz_date, state, n in rows:
        day = per_date.setdefault(seq, (biz_date, _empty_counts()))
        day[1][state] = day[1].get(state, 0) + n
        progress.counts[state] = progress.counts.get(state, 0) + n
        progress.total += n
    progress.dates = [per_date[seq] for seq in sorted(per_date)]
    return progress


# Bar segments in this order, left to right: what is done first, what waits last.
BAR_STATES = ["succeeded", "skipped", "failed", "stopped", "running", "queued", "pending"]
# A bar draws each state in its badge's colour, except where that colour reads as the
# empty track: skipped (light) is done, so it is drawn as a paler, striped green.
BAR_COLORS = {InstanceState.SKIPPED: "green-light"}


@dataclass
class BarSegment:
    state: str
    label: str
    color: str
    count: int
    percent: float  # of the bar's width
    done: bool  # finished: drawn as the filled part of the bar


@dataclass
class ProgressBar:
    total: int
    finished: int
    segments: list[BarSegment]

    @property
    def percent_done(self) -> int:
        return round(100 * self.finished / self.total) if self.total else 100


def progress_bar(counts: dict[str, int]) -> ProgressBar:
    """A progress bar of instances counted per state: a segment per state with instances,
    finished ones (succeeded, skipped, failed, stopped) first and drawn as done."""
    total = sum(counts.values())
    segments = []
    for state in BAR_STATES + [s for s in counts if s not in BAR_STATES]:
        count = counts.get(state, 0)
        if not count:
            continue
        choice = InstanceState(state)
        segments.append(
            BarSegment(
                state=state,
                label=choice.label,
                color=BAR_COLORS.get(choice, choice.color),
                count=count,
                percent=round(100 * count / total, 3),
                done=state in FINISHED,
            )
        )
    finished = sum(segment.count for segment in segments if segment.done)
    return ProgressBar(total=total, finished=finished, segments=segments)


def backfills_progress(backfills: list[Backfill]) -> dict[int, dict[str, int]]:
    """backfill id -> counts per state, for a page of runs in one query."""
    found = {b.pk: _empty_counts() for b in backfills}
    rows = (
        Instance.objects.filter(backfill__in=list(found))
        .values_list("backfill_id", "state")
        .annotate(n=Count("id"))
        .order_by()
    )
    for backfill_id, state, n in rows:
        found[backfill_id][state] = n
    return found


@dataclass
class Grid:
    """dates × nodes: cells[date index][node index] is a list of (instance id, state),
    one per instance of that node on that date (an hourly node has 24)."""

    dates: list[datetime.date]
    nodes: list[Node]
    cells: list[list[list[tuple[int, str]]]]


def grid(backfill: Backfill) -> Grid:
    """The run's dates (run order) × its nodes (id order) with each instance's state."""
    nodes = list(
        Node.objects.select_related("project").filter(pk__in=backfill.node_ids).order_by("id")
    )
    node_index = {node.pk: i for i, node in enumerate(nodes)}
    rows = (
        Instance.objects.filter(backfill=backfill)
        .order_by("backfill_seq", "node_id", "scheduled_at", "id")
        .values_list("id", "backfill_seq", "biz_date", "node_id", "state")
    )
    dates: list[datetime.date] = []
    cells: list[list[list[tuple[int, str]]]] = []
    seqs: dict[int, int] = {}
    for instance_id, seq, biz_date, node_id, state in rows:
        if seq not in seqs:
            seqs[seq] = len(dates)
            dates.append(biz_date)
            cells.append([[] for _ in nodes])
        if node_id in node_index:
            cells[seqs[seq]][node_index[node_id]].append((instance_id, state))
    return Grid(dates=dates, nodes=nodes, cells=cells)
