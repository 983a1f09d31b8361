"""The resource dashboard (SPEC 11): allocated versus measured CPU and memory per node,
project and resource group over a date range, with each node's flag and suggestion.
Shared by the page (/resources/) and GET /api/resources.

Every finished attempt that ran a process has its CPU (user + system core-seconds of the
whole tree) and peak memory (the tree's summed RSS) measured by the executor. Per run:
average cores while running = CPU seconds / wall seconds. Per node, over its runs in the
range: the 95th percentile of the average cores and of the peak memory, compared with
the node's allocation (the `cpu` and `memory_mb` of its current version):

- `under_provisioned`: a run was killed for memory (over its memory_mb), or either 95th
  percentile passes 90% of its allocation;
- `no_data`: otherwise, under 3 runs;
- `over_provisioned`: both 95th percentiles are under half of their allocations (a node
  that allocates only one of them is never over-provisioned: "both" cannot hold);
- `ok`: anything else.

The suggestion is the 95th percentile x 1.25, rounded up (memory to 64 MB, CPU to 0.25
core). The percentiles are computed by the database where it can (PostgreSQL's
percentile_cont, in the same GROUP BY as the sums), else in Python over the runs read in
one query; never a query per node. Percentiles interpolate between ranks the same way.
"""

import datetime
import math
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, models
from django.db.models import (
    Aggregate,
    Count,
    F,
    FloatField,
    Func,
    Max,
    Q,
    Sum,
    Value,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, NullIf

from apps.configuration.models import ResourceGroup
from apps.core import clock
from apps.core.choices import colored
from apps.core.errors import NotFound, ValidationFailed
from apps.instances.models import Attempt
from apps.nodes.models import Node
from apps.projects.models import Project
from apps.projects.selectors import projects_visible_to

DEFAULT_DAYS = 7
MAX_DAYS = 400
MIN_RUNS = 3
PERCENTILE = 0.95
UNDER_SHARE = 0.9  # a p95 past 90% of the allocation
OVER_SHARE = 0.5  # both p95s under half of the allocations
HEADROOM = 1.25
MEMORY_STEP_MB = 64
CPU_STEP = 0.25


@colored({"under_provisioned": "red", "over_provisioned": "yellow", "ok": "green"})
class ResourceFlag(models.TextChoices):
    """A node's allocation against its measured use (SPEC 11), worst first."""

    UNDER = "under_provisioned", "Under-provisioned"
    OVER = "over_provisioned", "Over-provisioned"
    OK = "ok", "OK"
    NO_DATA = "no_data", "No data"


UNDER, OVER, OK, NO_DATA = (f.value for f in ResourceFlag)
FLAGS = tuple(ResourceFlag.values)


# --- the SQL pieces ----------------------------------------------------------------------


class RunSeconds(Func):
    """An attempt's wall time in seconds (finished_at - started_at)."""

    output_field = FloatField()

    def __init__(self, **extra):
        super().__init__(F("finished_at"), F("started_at"), **extra)

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(
            compiler,
            connection,
            template="EXTRACT(EPOCH FROM (%(expressions)s))::float",
            arg_joiner=" - ",
            **extra,
        )

    def as_sql(self, compiler, connection, **extra):
        if "template" not in extra:  # SQLite and others: datetimes as text
            extra.update(
                template="((julianday(%(expressions)s)) * 86400.0)", arg_joiner=") - julianday("
            )
        return super().as_sql(compiler, connection, **extra)


class Percentile(Aggregate):
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, fraction: float, **extra):
        super().__init__(expression, fraction=float(fraction), **extra)


def percentile(values: list[float], fraction: float = PERCENTILE) -> float | None:
    """percentile_cont in Python: the value at rank fraction x (n - 1), interpolated."""
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return None
    rank = fraction * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _cores():
    """A run's average cores while running: CPU seconds over wall seconds."""
    return F("cpu_seconds") / NullIf(RunSeconds(), Value(0.0))


def _allocated_cpu():
    """The run's version's `cpu` (cores), 0 when it allocates none."""
    return Coalesce(
        Cast(KeyTextTransform("cpu", "instance__version__spec"), FloatField()), Value(0.0)
    )


# --- what the dashboard answers ----------------------------------------------------------


@dataclass
class NodeUsage:
    node_id: int
    node_name: str
    project_code: str
    env: str
    resource_group: str
    runs: int
    allocated_cpu: float | None
    allocated_memory_mb: int | None
    cpu_seconds: float
    running_seconds: float
    avg_cores_p95: float | None
    peak_memory_mb_p95: float | None
    peak_memory_mb_max: float | None
    killed_for_memory: int
    flag: str = NO_DATA
    suggested_cpu: float | None = None
    suggested_memory_mb: int | None = None

    @property
    def avg_cores(self) -> float | None:
        """Average cores over all its running time in the range."""
        return round(self.cpu_seconds / self.running_seconds, 3) if self.running_seconds else None

    @property
    def changes(self) -> bool:
        """Whether applying the suggestion would change the allocation."""
        return (
            self.suggested_cpu is not None
            and self.suggested_memory_mb is not None
            and (self.suggested_cpu, self.suggested_memory_mb)
            != (self.allocated_cpu, self.allocated_memory_mb)
        )


@dataclass
class GroupUsage:
    """A project's or a resource group's runs in the range, summed."""

    name: str
    runs: int = 0
    cpu_seconds: float = 0.0
    running_seconds: float = 0.0
    # Core-seconds its runs were allocated: each run's cpu x its wall time.
    allocated_cpu_seconds: float = 0.0
    peak_memory_mb_max: float | None = None
    killed_for_memory: int = 0
    nodes: int = 0
    flags: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FLAGS, 0))

    @property
    def avg_cores(self) -> float | None:
        return round(self.cpu_seconds / self.running_seconds, 3) if self.running_seconds else None

    @property
    def allocated_cores(self) -> float | None:
        """Average cores allocated while its runs ran."""
        if not self.running_seconds:
            return None
        return round(self.allocated_cpu_seconds / self.running_seconds, 3)


@dataclass
class ResourceUsage:
    start: datetime.date
    end: datetime.date
    timezone: str
    nodes: list[NodeUsage]
    projects: list[GroupUsage]
    resource_groups: list[GroupUsage]

    @property
    def flag_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(FLAGS, 0)
        for node in self.nodes:
            counts[node.flag] += 1
        return counts


# --- flags and suggestions (pure) --------------------------------------------------------


def _round_up(value: float, step: float) -> float:
    # round() first: 0.8 x 1.25 / 0.25 is 4.000000000000001 in floating point.
    return math.ceil(round(value / step, 9)) * step


def suggestion(
    avg_cores_p95: float | None, peak_memory_mb_p95: float | None
) -> tuple[float | None, int | None]:
    """(cores, MB): each 95th percentile x 1.25, rounded up to 0.25 core / 64 MB (at
    least one step)."""
    cpu = memory = None
    if avg_cores_p95 is not None:
        cpu = max(CPU_STEP, _round_up(avg_cores_p95 * HEADROOM, CPU_STEP))
    if peak_memory_mb_p95 is not None:
        memory = int(max(MEMORY_STEP_MB, _round_up(peak_memory_mb_p95 * HEADROOM, MEMORY_STEP_MB)))
    return cpu, memory


def flag_of(
    *,
    runs: int,
    killed_for_memory: int,
    avg_cores_p95: float | None,
    peak_memory_mb_p95: float | None,
    allocated_cpu: float | None,
    allocated_memory_mb: float | None,
) -> str:
    """The node's flag as SPEC 11 defines it (see the module's docstring)."""
    if killed_for_memory:
        return UNDER
    if runs < MIN_RUNS:
        return NO_DATA
    cpu_share = (
        avg_cores_p95 / allocated_cpu if allocated_cpu and avg_cores_p95 is not None else None
    )
    memory_share = (
        peak_memory_mb_p95 / allocated_memory_mb
        if allocated_memory_mb and peak_memory_mb_p95 is not None
        else None
    )
    if any(share is not None and share > UNDER_SHARE for share in (cpu_share, memory_share)):
        return UNDER
    if (
        cpu_share is not None
        and memory_share is not None
        and cpu_share < OVER_SHARE
        and memory_share < OVER_SHARE
    ):
        return OVER
    return OK


# --- reading -----------------------------------------------------------------------------


def resources_range(
    start: str | datetime.date | None, end: str | datetime.date | None, *, today: datetime.date
) -> tuple[datetime.date, datetime.date]:
    """The date range asked for (`YYYY-MM-DD`, both ends included); by default the last
    7 days. Wrong input names its field."""
    errors = []

    def parse(value, name: str) -> datetime.date | None:
        if value in (None, ""):
            return None
        if isinstance(value, datetime.date):
            return value
        try:
            return datetime.date.fromisoformat(str(value).strip())
        except ValueError:
            errors.append({"field": name, "message": f"must be a date YYYY-MM-DD, not {value!r}"})
            return None

    first, last = parse(start, "start"), parse(end, "end")
    if errors:
        raise ValidationFailed("invalid date range", errors)
    last = last or (today if first is None else max(first, today))
    first = first or last - datetime.timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise ValidationFailed(
            "invalid date range", [{"field": "start", "message": "must not be after end"}]
        )
    if (last - first).days + 1 > MAX_DAYS:
        raise ValidationFailed(
            "invalid date range",
            [{"field": "start", "message": f"a range of at most {MAX_DAYS} days"}],
        )
    return first, last


@dataclass
class ResourceScope:
    """What the dashboard looks at: projects the viewer may see, narrowed by filters."""

    projects: list[Project]
    resource_group: ResourceGroup | None = None
    node: Node | None = None


def resources_scope(
    *, user, project: Project | None = None, resource_group: str = "", node: str | int = ""
) -> ResourceScope:
    visible = projects_visible_to(user)
    projects = [project] if project is not None else list(visible)
    group = None
    if resource_group:
        group = ResourceGroup.objects.filter(name=resource_group).first()
        if group is None:
            raise NotFound(f"resource group {resource_group!r} not found")
    chosen = None
    if node not in ("", None):
        text = str(node).strip()
        if not text.isdigit() or not 1 <= int(text) < 2**63:
            raise ValidationFailed(
                "invalid node", [{"field": "node", "message": f"must be a node id, not {node!r}"}]
            )
        chosen = Node.objects.filter(pk=int(text), project__in=visible).first()
        if chosen is None:
            raise NotFound(f"node {text} not found")
        if project is not None and chosen.project_id != project.pk:
            raise ValidationFailed(
                "node not in project",
                [
                    {
                        "field": "node",
                        "message": f"node {chosen.pk} is not in project {project.code}",
                    }
                ],
            )
    return ResourceScope(projects=projects, resource_group=group, node=chosen)


def _runs(scope: ResourceScope, start: datetime.datetime, end: datetime.datetime):
    """The measured runs in scope: finished attempts with their CPU and memory, started
    in [start, end)."""
    runs = Attempt.objects.filter(
        started_at__gte=start,
        started_at__lt=end,
        finished_at__isnull=False,
        cpu_seconds__isnull=False,
        peak_memory_mb__isnull=False,
        instance__project__in=[p.pk for p in scope.projects],
    )
    if scope.resource_group is not None:
        runs = runs.filter(instance__resource_group=scope.resource_group)
    if scope.node is not None:
        runs = runs.filter(instance__node=scope.node)
    return runs.order_by()


def _node_rows(runs) -> dict[int, dict]:
    """Per node: runs, sums and both 95th percentiles; one query (two on SQLite)."""
    sums = _sums()
    grouped = runs.values("instance__node_id")
    if connection.vendor == "postgresql":
        rows = grouped.annotate(
            **sums,
            avg_cores_p95=Percentile(_cores(), PERCENTILE),
            peak_memory_mb_p95=Percentile("peak_memory_mb", PERCENTILE),
        )
        return {row["instance__node_id"]: row for row in rows}
    found = {row["instance__node_id"]: row for row in grouped.annotate(**sums)}
    cores: dict[int, list[float]] = defaultdict(list)
    memory: dict[int, list[float]] = defaultdict(list)
    for node_id, run_cores, peak in runs.values_list(
        "instance__node_id", _cores(), "peak_memory_mb"
    ).iterator(chunk_size=5000):
        cores[node_id].append(run_cores)
        memory[node_id].append(peak)
    for node_id, row in found.items():
        row["avg_cores_p95"] = percentile(cores[node_id])
        row["peak_memory_mb_p95"] = percentile(memory[node_id])
    return found


def _group_rows(runs) -> list[dict]:
    """Per (project, resource group) the runs ran in: sums, one query."""
    return list(
        runs.values("instance__project_id", "instance__resource_group_id").annotate(
            **_sums(), allocated_total=Sum(_allocated_cpu() * RunSeconds())
        )
    )


def _sums() -> dict:
    # Named apart from the columns: an annotation named cpu_seconds would be what
    # F("cpu_seconds") means in the percentiles beside it.
    return dict(
        runs=Count("id"),
        cpu_total=Sum("cpu_seconds"),
        wall_total=Sum(RunSeconds()),
        peak_max=Max("peak_memory_mb"),
        killed=Count("id", filter=Q(killed_for="memory")),
    )


def _day_bounds(
    start: datetime.date, end: datetime.date, tz: zoneinfo.ZoneInfo
) -> tuple[datetime.datetime, datetime.datetime]:
    first = datetime.datetime.combine(start, datetime.time(0), tzinfo=tz)
    after = datetime.datetime.combine(end + datetime.timedelta(days=1), datetime.time(0), tzinfo=tz)
    return first, after


def _number(value) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def resources_get(
    *, scope: ResourceScope, start: datetime.date, end: datetime.date
) -> ResourceUsage:
    """The dashboard over runs started from `start` to `end` (dates in the project's
    timezone when one project is in scope, else in settings.TIME_ZONE)."""
    tz = scope.projects[0].tz if len(scope.projects) == 1 else zoneinfo.ZoneInfo(settings.TIME_ZONE)
    first, after = _day_bounds(start, end, tz)
    if not scope.projects:
        return ResourceUsage(start, end, str(tz), [], [], [])
    runs = _runs(scope, first, after)
    node_rows = _node_rows(runs)
    group_rows = _group_rows(runs)
    nodes_info = {
        row["id"]: row
        for row in Node.objects.filter(pk__in=sorted(node_rows)).values(
            "id",
            "name",
            "env",
            "project__code",
            "resource_group__name",
            "current_version__spec__cpu",
            "current_version__spec__memory_mb",
        )
    }
    nodes = []
    for node_id, row in node_rows.items():
        info = nodes_info.get(node_id)
        if info is None:
            continue
        allocated_cpu = _number(info["current_version__spec__cpu"])
        allocated_memory = _number(info["current_version__spec__memory_mb"])
        avg_cores_p95 = _rounded(row["avg_cores_p95"], 3)
        peak_p95 = _rounded(row["peak_memory_mb_p95"], 1)
        usage = NodeUsage(
            node_id=node_id,
            node_name=info["name"],
            project_code=info["project__code"],
            env=info["env"],
            resource_group=info["resource_group__name"],
            runs=row["runs"],
            allocated_cpu=allocated_cpu,
            allocated_memory_mb=int(allocated_memory) if allocated_memory is not None else None,
            cpu_seconds=round(row["cpu_total"] or 0.0, 3),
            running_seconds=round(row["wall_total"] or 0.0, 3),
            avg_cores_p95=avg_cores_p95,
            peak_memory_mb_p95=peak_p95,
            peak_memory_mb_max=row["peak_max"],
            killed_for_memory=row["killed"],
        )
        usage.flag = flag_of(
            runs=usage.runs,
            killed_for_memory=usage.killed_for_memory,
            avg_cores_p95=avg_cores_p95,
            peak_memory_mb_p95=peak_p95,
            allocated_cpu=allocated_cpu,
            allocated_memory_mb=allocated_memory,
        )
        if usage.runs >= MIN_RUNS or usage.killed_for_memory:
            usage.suggested_cpu, usage.suggested_memory_mb = suggestion(avg_cores_p95, peak_p95)
        nodes.append(usage)
    nodes.sort(key=lambda n: (FLAGS.index(n.flag), -n.cpu_seconds, n.project_code, n.node_name))
    projects, groups = _groups(scope, group_rows, nodes)
    return ResourceUsage(start, end, str(tz), nodes, projects, groups)


def _rounded(value, digits: int) -> float | None:
    return round(float(value), digits) if value is not None else None


def _groups(
    scope: ResourceScope, rows: list[dict], nodes: list[NodeUsage]
) -> tuple[list[GroupUsage], list[GroupUsage]]:
    codes = {p.pk: p.code for p in scope.projects}
    group_names = dict(ResourceGroup.objects.values_list("id", "name"))
    by_project: dict[str, GroupUsage] = {}
    by_group: dict[str, GroupUsage] = {}
    for row in rows:
        for key, table in (
            (codes.get(row["instance__project_id"], "?"), by_project),
            (group_names.get(row["instance__resource_group_id"], "?"), by_group),
        ):
            usage = table.setdefault(key, GroupUsage(name=key))
            usage.runs += row["runs"]
            usage.cpu_seconds += row["cpu_total"] or 0.0
            usage.running_seconds += row["wall_total"] or 0.0
            usage.allocated_cpu_seconds += row["allocated_total"] or 0.0
            usage.killed_for_memory += row["killed"]
            peak = row["peak_max"]
            if peak is not None:
                usage.peak_memory_mb_max = max(usage.peak_memory_mb_max or 0.0, peak)
    for node in nodes:
        for key, table in ((node.project_code, by_project), (node.resource_group, by_group)):
            if key in table:
                table[key].nodes += 1
                table[key].flags[node.flag] += 1
    for table in (by_project, by_group):
        for usage in table.values():
            usage.cpu_seconds = round(usage.cpu_seconds, 3)
            usage.running_seconds = round(usage.running_seconds, 3)
            usage.allocated_cpu_seconds = round(usage.allocated_cpu_seconds, 3)
    return (
        sorted(by_project.values(), key=lambda g: g.name),
        sorted(by_group.values(), key=lambda g: g.name),
    )


def resources_today(scope: ResourceScope) -> datetime.date:
    tz = scope.projects[0].tz if len(scope.projects) == 1 else zoneinfo.ZoneInfo(settings.TIME_ZONE)
    return clock.now().astimezone(tz).date()
