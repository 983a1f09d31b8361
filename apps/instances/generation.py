"""The generator: recurring instances of a day and the dependencies between them.

Once a day, at each project's generation time, the generator makes the NEXT day's
instances (T+1) of every online prod recurring node, each from the node's latest
version published before that generation time (SPEC section 3). A node that already
has instances on a day keeps them: a day's instances of a node come from one version,
and running the generator again adds only what is missing.

Everything is batched (no query per node or instance) and inserted as rows the
database's unique constraints may refuse (ON CONFLICT DO NOTHING, as
bulk_create(ignore_conflicts=True) does), so a second copy of an instance or an edge
can never exist. Generators take one lock (PostgreSQL advisory
lock; SQLite serialises writers itself), so two at once see each other's rows and no
edge between projects generated at the same moment is lost. Deleting a project takes the
same lock (`without_generators`), and a generator skips a project deleted before its turn.
"""

import bisect
import contextlib
import dataclasses
import datetime
import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import psycopg
from django.db import OperationalError, connection, models, transaction
from django.db.models import OuterRef, Subquery

from apps.configuration.models import ResourceGroup
from apps.core import clock
from apps.core.errors import Conflict
from apps.nodes.choices import Env, NodeStatus, ScheduleType
from apps.nodes.models import Node, NodeDependency, NodeVersion
from apps.projects.models import Project

from . import schedules
from .choices import InstanceKind, InstanceState
from .models import GenerationRun, Instance, InstanceDependency

logger = logging.getLogger(__name__)

ONE_DAY = datetime.timedelta(days=1)
# Publishing in "immediate" mode generates today's instances due at least this much later.
IMMEDIATE_LEAD_TIME = datetime.timedelta(minutes=10)
BATCH_SIZE = 5000
# Key of the PostgreSQL advisory lock held by a generator for its transaction.
GENERATION_LOCK_KEY = 0x6F70_7367_656E  # "opsgen"
# How long a write that must not interleave with a generation (deleting a project) waits
# for the one in progress before it is refused.
GENERATION_WAIT_SECONDS = 10.0


@dataclass
class GenerationResult:
    instances_created: int = 0
    edges_created: int = 0
    # Codes of projects deleted between being listed and their turn to generate.
    skipped_projects: list[str] = dataclasses.field(default_factory=list)

    def __add__(self, other: "GenerationResult") -> "GenerationResult":
        return GenerationResult(
            self.instances_created + other.instances_created,
            self.edges_created + other.edges_created,
            self.skipped_projects + other.skipped_projects,
        )


class GenerationRunning(Conflict):
    """A generation held the lock longer than a waiting write would wait."""


# --- dependency alignment (pure) ------------------------------------------------------


def align(
    child_times: Sequence,
    upstream_times: Sequence,
    *,
    child_sub_daily: bool,
    upstream_sub_daily: bool,
) -> list[list[int]]:
    """Which of an upstream node's instances of a biz date each child instance of that
    date depends on (SPEC section 3, rules 2-4), as indexes into `upstream_times`.

    Both sequences hold the scheduled times of one biz date, ascending. A child whose
    cycle is a day or longer, or whose upstream's is, depends on every upstream instance.
    When both are sub-daily, child t depends on the upstream instances in (previous child
    time, t] (from the start of the day for the first child); if none, on the latest
    upstream instance before t; if none, on the earliest one.
    """
    if not upstream_times:
        return [[] for _ in child_times]
    if not (child_sub_daily and upstream_sub_daily):
        every = list(range(len(upstream_times)))
        return [every for _ in child_times]
    aligned = []
    window_start = 0  # index of the first upstream instance after the previous child
    for t in child_times:
        window_end = bisect.bisect_right(upstream_times, t)  # upstream times <= t
        if window_end > window_start:
            aligned.append(list(range(window_start, window_end)))
        elif bisect.bisect_left(upstream_times, t) > 0:
            aligned.append([bisect.bisect_left(upstream_times, t) - 1])
        else:
            aligned.append([0])
        window_start = max(window_start, window_end)
    return aligned


# --- reading what exists ---------------------------------------------------------------


@dataclass
class _Plan:
    """What one node's instances of a day are made from: a version and its spec."""

    node_id: int
    version_id: int
    cron: str
    self_dependent: bool
    priority: int
    resource_group_id: int
    upstream_ids: list[int]


@dataclass
class _DayInstances:
    """One node's recurring instances of one biz date, in scheduled order."""

    times: list[datetime.datetime]
    ids: list[int]
    states: list[str]
    version_id: int


def _chunks(items: Sequence, size: int = BATCH_SIZE) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _version_facts(version_ids: Iterable[int]) -> dict[int, tuple]:
    """version id -> (schedule type, cron, self_dependent, priority, resource group name,
    upstream ids), read from the spec without loading scripts."""
    facts = {}
    version_ids = sorted(set(version_ids))
    for chunk in _chunks(version_ids):
        rows = NodeVersion.objects.filter(id__in=chunk).values_list(
            "id",
            "spec__schedule__type",
            "spec__schedule__cron",
            "spec__self_dependent",
            "spec__priority",
            "spec__resource_group",
            "upstream_ids",
        )
        for version_id, *rest in rows:
            facts[version_id] = tuple(rest)
    return facts


def _plans(
    project: Project, *, cutoff: datetime.datetime | None, node_ids: Iterable[int] | None
) -> list[_Plan]:
    """The online prod nodes of `project` and the version each generates from: the latest
    published before `cutoff`, or the current one when cutoff is None.

    A paused node's instances are generated unpaused: they are frozen because their NODE
    is paused (the dispatcher and the diagnosis look at it), so resuming the node releases
    them all. An instance's own `paused` flag is only ever an operator's pause of it."""
    nodes = Node.objects.filter(project=project, env=Env.PROD, status=NodeStatus.ONLINE)
    if node_ids is not None:
        nodes = nodes.filter(id__in=list(node_ids))
    if cutoff is None:
        rows = nodes.filter(current_version__isnull=False).values_list("id", "current_version_id")
    else:
        latest_before = (
            NodeVersion.objects.filter(node=OuterRef("pk"), published_at__lt=cutoff)
            .order_by("-number")
            .values("id")[:1]
        )
        rows = (
            nodes.annotate(generated_version=Subquery(latest_before))
            .filter(generated_version__isnull=False)
            .values_list("id", "generated_version")
        )
    rows = list(rows)
    facts = _version_facts(version_id for _, version_id in rows)
    groups = dict(ResourceGroup.objects.values_list("name", "id"))
    default_group = groups.get(ResourceGroup.DEFAULT) or ResourceGroup.get_default().id
    plans = []
    for node_id, version_id in rows:
        schedule_type, cron, self_dependent, priority, group, upstream_ids = facts[version_id]
        if schedule_type != ScheduleType.RECURRING or not _valid_cron(cron):
            continue
        plans.append(
            _Plan(
                node_id=node_id,
                version_id=version_id,
                cron=cron,
                self_dependent=bool(self_dependent),
                priority=int(priority or 3),
                resource_group_id=groups.get(group, default_group),
                upstream_ids=[int(u) for u in upstream_ids or []],
            )
        )
    plans.sort(key=lambda plan: plan.node_id)
    return plans


def _day_instances(node_ids: Iterable[int], biz_date: datetime.date) -> dict[int, _DayInstances]:
    """node id -> its recurring instances of `biz_date`."""
    found: dict[int, _DayInstances] = {}
    node_ids = sorted(set(node_ids))
    for chunk in _chunks(node_ids):
        rows = (
            Instance.objects.filter(
                kind=InstanceKind.RECURRING, biz_date=biz_date, node_id__in=chunk
            )
            .order_by("node_id", "scheduled_at")
            .values_list("node_id", "id", "scheduled_at", "state", "version_id")
        )
        for node_id, instance_id, scheduled_at, state, version_id in rows:
            day = found.get(node_id)
            if day is None:
                day = found[node_id] = _DayInstances([], [], [], version_id)
            day.times.append(scheduled_at)
            day.ids.append(instance_id)
            day.states.append(state)
    return found


@functools.lru_cache(maxsize=4096)
def _valid_cron(cron: str | None) -> bool:
    return schedules.cron_error(cron) is None


def _sub_daily(cron: str) -> bool:
    # A version without a valid cron made no recurring instance by itself: treat as daily.
    return _valid_cron(cron) and schedules.is_sub_daily(cron)


def _crons_of(days: dict[int, _DayInstances]) -> dict[int, str]:
    """node id -> the cron of the version its instances of the day were made from."""
    facts = _version_facts(day.version_id for day in days.values())
    return {node_id: facts[day.version_id][1] for node_id, day in days.items()}


# --- writing ---------------------------------------------------------------------------


def _lock() -> None:
    """Serialise generators. Each sees the rows of the ones before it, so an edge between
    projects generated at the same moment is not lost. SQLite needs nothing: its
    transactions begin IMMEDIATE (settings), one writer at a time."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [GENERATION_LOCK_KEY])


@contextlib.contextmanager
def without_generators(*, refusal: str) -> Iterator[None]:
    """A transaction no generator runs during: it waits up to GENERATION_WAIT_SECONDS for
    the generation in progress to commit, else raises GenerationRunning(refusal). For
    writes a generation must not meet half way, such as deleting a project whose nodes it
    is reading."""
    wait_ms = max(1, int(GENERATION_WAIT_SECONDS * 1000))
    if connection.vendor == "postgresql":
        with transaction.atomic():
            try:
                # In a savepoint: a lock timeout aborts only it. The bounded wait is for
                # this lock alone; the statements after it wait as they always do.
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute("SELECT current_setting('lock_timeout')")
                    (before,) = cursor.fetchone()
                    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{wait_ms}ms"])
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [GENERATION_LOCK_KEY])
                    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [before])
            except OperationalError as exc:
                if isinstance(exc.__cause__, psycopg.errors.LockNotAvailable):
                    raise GenerationRunning(refusal) from exc
                raise
            yield
        return
    # SQLite: a generator holds the database's write lock for its whole transaction, and
    # transactions begin IMMEDIATE, so the BEGIN is what waits: for at most wait_ms.
    if connection.in_atomic_block:  # the write lock is already this transaction's
        with transaction.atomic():
            yield
        return
    before = _sqlite_busy_timeout(wait_ms)
    began = False
    try:
        with transaction.atomic():
            began = True
            _sqlite_busy_timeout(before)
            yield
    except OperationalError as exc:
        if not began and "locked" in str(exc):
            raise GenerationRunning(refusal) from exc
        raise
    finally:
        if not began:
            _sqlite_busy_timeout(before)


def _sqlite_busy_timeout(milliseconds: int) -> int:
    """Set how long SQLite waits for another writer; answer the previous value."""
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        (before,) = cursor.fetchone()
        cursor.execute(f"PRAGMA busy_timeout = {int(milliseconds)}")
    return before


class _Rows:
    """Rows of one model as tuples of prepared column values: what
    bulk_create(ignore_conflicts=True) writes, without a model object per row. Every
    column gets the model's own default from one template object; only the `varying`
    ones change from row to row."""

    def __init__(self, model, varying: Sequence[str], **template_values):
        self.model = model
        # Generated columns are the database's to write.
        self.fields = [
            f
            for f in model._meta.concrete_fields
            if not f.primary_key and not getattr(f, "generated", False)
        ]
        template = model(**template_values)
        self.template = [
            f.get_db_prep_save(f.pre_save(template, add=True), connection) for f in self.fields
        ]
        attnames = [f.attname for f in self.fields]
        self.varying = [
            (attnames.index(name), _preparer(self.fields[attnames.index(name)])) for name in varying
        ]

    def row(self, *values) -> tuple:
        row = list(self.template)
        for (position, prepare), value in zip(self.varying, values, strict=True):
            row[position] = prepare(value)
        return tuple(row)

    def insert(self, rows: Iterable[tuple]) -> None:
        """Insert, leaving out every row a unique constraint refuses."""
        quote = connection.ops.quote_name
        table = quote(self.model._meta.db_table)
        columns = ", ".join(quote(f.column) for f in self.fields)
        batch_size = BATCH_SIZE
        if connection.vendor == "postgresql":
            # One array per column: one statement and one parse per batch.
            arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in self.fields)
            sql = f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING"
            batch_size *= 10
        else:
            placeholders = ", ".join(["%s"] * len(self.fields))
            sql = f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({placeholders})"
        if connection.vendor == "postgresql":
            connection.ensure_connection()
            # Server-side parameters: psycopg sends the arrays as they are instead of
            # quoting every element into the statement text.
            with psycopg.Cursor(connection.connection) as cursor:
                for batch in _batches(rows, batch_size):
                    cursor.execute(sql, [list(column) for column in zip(*batch, strict=True)])
        else:
            with connection.cursor() as cursor:
                for batch in _batches(rows, batch_size):
                    cursor.executemany(sql, batch)


def _preparer(field) -> Callable[[object], object]:
    """How a value of the field becomes its column value. Integers and booleans are their
    own, and there are a million of them."""
    if isinstance(field, models.ForeignKey | models.IntegerField | models.BooleanField):
        return lambda value: value
    return functools.partial(field.get_db_prep_save, connection=connection)


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _insert_instances(
    project: Project,
    plans: list[_Plan],
    run_date: datetime.date,
    not_before: datetime.datetime | None,
) -> None:
    rows = _Rows(
        Instance,
        [
            "node_id",
            "version_id",
            "scheduled_at",
            "dry_run",
            "priority",
            "resource_group_id",
        ],
        project=project,
        env=Env.PROD,
        kind=InstanceKind.RECURRING,
        biz_date=run_date - ONE_DAY,
        state=InstanceState.PENDING,
    )

    def instances() -> Iterator[tuple]:
        for plan in plans:
            for scheduled_at, dry_run in schedules.instance_times(plan.cron, run_date, project.tz):
                if not_before is not None and scheduled_at < not_before:
                    continue
                yield rows.row(
                    plan.node_id,
                    plan.version_id,
                    scheduled_at,
                    dry_run,
                    plan.priority,
                    plan.resource_group_id,
                )

    rows.insert(instances())


def _insert_edges(edges: Iterable[tuple[int, int]]) -> int:
    """Insert the edges as they come (a day of 100k nodes has millions: they are never
    all held at once) and answer how many there were."""
    rows = _Rows(InstanceDependency, ["downstream_id", "upstream_id"])
    count = 0

    def counted() -> Iterator[tuple]:
        nonlocal count
        for downstream_id, upstream_id in edges:
            count += 1
            yield rows.row(downstream_id, upstream_id)

    rows.insert(counted())
    return count


def _edges(
    plans: list[_Plan], biz_date: datetime.date, generated: dict[int, _DayInstances]
) -> Iterator[tuple[int, int]]:
    """(downstream, upstream) instance edges for the instances just generated, by SPEC
    section 3: their own upstream and self dependencies, and the dependencies on them of
    pending instances generated earlier (other projects, generated first).

    Each edge comes once. The edges are made node by node and deduplicated per
    downstream node: two downstream nodes never share a downstream instance."""
    by_node = {plan.node_id: plan for plan in plans if plan.node_id in generated}

    # Rules 1-4: upstream instances of the same biz date, in any project.
    upstream_ids = {u for plan in by_node.values() for u in plan.upstream_ids}
    upstream_days = _day_instances(upstream_ids - generated.keys(), biz_date) | generated
    upstream_crons = _crons_of(upstream_days)
    # Rule 5: each instance of a self-dependent node waits for the node's previous one.
    self_dependent = [node_id for node_id, plan in by_node.items() if plan.self_dependent]
    previous_days = _day_instances(self_dependent, biz_date - ONE_DAY)
    for node_id, plan in by_node.items():
        edges: set[tuple[int, int]] = set()
        children = generated[node_id]
        child_sub_daily = schedules.is_sub_daily(plan.cron)
        for upstream_id in plan.upstream_ids:
            parents = upstream_days.get(upstream_id)
            if parents is None:  # no instance that day: not blocked (SPEC section 3)
                continue
            aligned = align(
                children.times,
                parents.times,
                child_sub_daily=child_sub_daily,
                upstream_sub_daily=_sub_daily(upstream_crons[upstream_id]),
            )
            for child_id, indexes in zip(children.ids, aligned, strict=True):
                edges.update((child_id, parents.ids[i]) for i in indexes)
        if plan.self_dependent:
            ids = children.ids
            if node_id in previous_days:
                edges.add((ids[0], previous_days[node_id].ids[-1]))
            edges.update(zip(ids[1:], ids[:-1], strict=True))
        yield from sorted(edges)

    # ... and the next day's first instance, when that day was generated first.
    next_days = _day_instances(by_node, biz_date + ONE_DAY)
    next_facts = _version_facts(day.version_id for day in next_days.values())
    for node_id, day in next_days.items():
        if next_facts[day.version_id][2] and day.states[0] == InstanceState.PENDING:
            yield (day.ids[0], generated[node_id].ids[-1])

    # Pending instances generated before their upstream was (e.g. a downstream project
    # whose generation time comes earlier) now get their edges to the new instances.
    downstream_ids: set[int] = set()
    for chunk in _chunks(sorted(by_node)):
        downstream_ids.update(
            NodeDependency.objects.filter(upstream_id__in=chunk).values_list("node_id", flat=True)
        )
    downstream_ids -= generated.keys()
    waiting = _day_instances(downstream_ids, biz_date)
    waiting = {
        node_id: day for node_id, day in waiting.items() if InstanceState.PENDING in day.states
    }
    waiting_facts = _version_facts(day.version_id for day in waiting.values())
    for children in waiting.values():
        edges = set()
        _, cron, _, _, _, version_upstream = waiting_facts[children.version_id]
        for upstream_id in version_upstream or []:
            if upstream_id not in by_node:
                continue
            parents = generated[upstream_id]
            aligned = align(
                children.times,
                parents.times,
                child_sub_daily=_sub_daily(cron),
                upstream_sub_daily=schedules.is_sub_daily(by_node[upstream_id].cron),
            )
            for child_id, state, indexes in zip(
                children.ids, children.states, aligned, strict=True
            ):
                if state == InstanceState.PENDING:
                    edges.update((child_id, parents.ids[i]) for i in indexes)
        yield from sorted(edges)


def _generate_project(
    project: Project,
    *,
    run_date: datetime.date,
    cutoff: datetime.datetime | None,
    trigger: str,
    node_ids: Iterable[int] | None = None,
    not_before: datetime.datetime | None = None,
) -> GenerationResult:
    """Generate one project's instances scheduled on `run_date` (project timezone), from
    versions published before `cutoff` (None: current versions), skipping times before
    `not_before`."""
    biz_date = run_date - ONE_DAY
    started_at = clock.now()
    with transaction.atomic():
        _lock()
        # Listed before the lock was ours: the project may have been deleted since.
        if not Project.objects.filter(pk=project.pk).exists():
            logger.warning(
                "project %s was deleted before its generation for %s: skipped",
                project.code,
                run_date,
            )
            return GenerationResult(skipped_projects=[project.code])
        plans = _plans(project, cutoff=cutoff, node_ids=node_ids)
        # A node that already has instances that day keeps them, and only them.
        already = _day_instances((plan.node_id for plan in plans), biz_date)
        plans = [plan for plan in plans if plan.node_id not in already]

        _insert_instances(project, plans, run_date, not_before)
        generated = _day_instances((plan.node_id for plan in plans), biz_date)
        edges_created = _insert_edges(_edges(plans, biz_date, generated))
        # The nodes had no instances that day and generators run one at a time, so every
        # instance read back and every edge computed is new.
        result = GenerationResult(
            instances_created=sum(len(day.ids) for day in generated.values()),
            edges_created=edges_created,
        )
        GenerationRun.objects.create(
            project=project,
            run_date=run_date,
            cutoff=cutoff or started_at,
            started_at=started_at,
            finished_at=clock.now(),
            instances_created=result.instances_created,
            edges_created=result.edges_created,
            trigger=trigger,
        )
    logger.info(
        "generated %s instances and %s edges of %s for %s (%s)",
        result.instances_created,
        result.edges_created,
        project.code,
        run_date,
        trigger,
    )
    return result


def default_cutoff(project: Project, run_date: datetime.date) -> datetime.datetime:
    """The T+1 cutoff: the day before `run_date` at the project's generation time."""
    return _generation_at(project, run_date - ONE_DAY)


def generate(
    *,
    run_date: datetime.date,
    cutoff: datetime.datetime | None = None,
    projects: Iterable[Project] | None = None,
    trigger: str = "cli",
) -> GenerationResult:
    """Generate the recurring instances scheduled on `run_date` (each project's timezone)
    of every online prod node, from its latest version published before `cutoff` (None:
    the day before at each project's generation time), with their dependencies.

    Idempotent: nodes that already have instances that day are left as they are."""
    if projects is None:
        projects = Project.objects.order_by("code")
    total = GenerationResult()
    for project in projects:
        total += _generate_project(
            project,
            run_date=run_date,
            cutoff=cutoff or default_cutoff(project, run_date),
            trigger=trigger,
        )
    return total


def generate_rest_of_today(
    *, project: Project, node_ids: Iterable[int] | None = None
) -> GenerationResult:
    """For projects in "immediate" generation mode: today's instances (project timezone)
    of these nodes from their current versions, those due at least 10 minutes from now.
    Nodes that already have instances today keep them."""
    now = clock.now()
    return _generate_project(
        project,
        run_date=now.astimezone(project.tz).date(),
        cutoff=None,
        trigger="publish",
        node_ids=node_ids,
        not_before=now + IMMEDIATE_LEAD_TIME,
    )


# --- the nightly schedule --------------------------------------------------------------

SCHEDULE_FUNC = "apps.instances.tasks.generate_project"
SCHEDULE_PREFIX = "generate:"


def _generation_at(project: Project, day: datetime.date) -> datetime.datetime:
    time = project.generation_time
    if isinstance(time, str):  # assigned but not yet read back from the database
        time = datetime.time.fromisoformat(time)
    return schedules.local_datetime(day, time, project.tz)


def next_generation_at(project: Project, after: datetime.datetime) -> datetime.datetime:
    """The first generation time of `project` strictly after `after`."""
    after = after.astimezone(datetime.UTC)  # compare moments, not wall-clock times
    day = after.astimezone(project.tz).date()
    moment = _generation_at(project, day)
    if moment.astimezone(datetime.UTC) <= after:
        moment = _generation_at(project, day + ONE_DAY)
    return moment


def previous_generation_at(project: Project, at: datetime.datetime) -> datetime.datetime:
    """The last generation time of `project` at or before `at`."""
    at = at.astimezone(datetime.UTC)
    day = at.astimezone(project.tz).date()
    moment = _generation_at(project, day)
    if moment.astimezone(datetime.UTC) > at:
        moment = _generation_at(project, day - ONE_DAY)
    return moment


def _schedule_arm(project: Project, next_run: datetime.datetime) -> None:
    from django_q.models import Schedule

    # django-q2 computes CRON schedules in the server's timezone; a ONCE schedule that
    # the task re-arms fires at the project's own generation time, DST included.
    Schedule.objects.update_or_create(
        name=f"{SCHEDULE_PREFIX}{project.code}",
        defaults={
            "func": SCHEDULE_FUNC,
            "kwargs": repr({"project": project.code}),
            "schedule_type": Schedule.ONCE,
            "repeats": 1,
            "next_run": next_run,
            "intended_date_kwarg": "intended_at",
        },
    )


def generation_schedule_sync(project: Project) -> None:
    """Create or update the project's nightly generation schedule. If the last generation
    time passed since the project was created without generating its day, the schedule is
    due at once (catch up one missed night, not more)."""
    now = clock.now()
    next_run = next_generation_at(project, now)
    missed = previous_generation_at(project, now)
    if (
        project.created_at is not None
        and missed >= project.created_at
        and not GenerationRun.objects.filter(
            project=project, run_date=missed.astimezone(project.tz).date() + ONE_DAY
        ).exists()
    ):
        next_run = missed
    _schedule_arm(project, next_run)


def generation_schedules_sync_all() -> None:
    """Sync every project's schedule and drop the schedules of projects that are gone."""
    from django_q.models import Schedule

    codes = set()
    for project in Project.objects.all():
        generation_schedule_sync(project)
        codes.add(project.code)
    stale = Schedule.objects.filter(name__startswith=SCHEDULE_PREFIX).exclude(
        name__in=[f"{SCHEDULE_PREFIX}{code}" for code in codes]
    )
    stale.delete()


def generation_schedule_delete(project: Project) -> None:
    from django_q.models import Schedule

    Schedule.objects.filter(name=f"{SCHEDULE_PREFIX}{project.code}").delete()


def generate_nightly(*, project_code: str, intended_at: datetime.datetime) -> GenerationResult:
    """The nightly run due at `intended_at`: generate the next day of the project, and
    arm the schedule for the following night."""
    project = Project.objects.filter(code=project_code).first()
    if project is None:
        return GenerationResult()
    # Arm first, so a failing night does not stop the next ones. After commit: the
    # django-q2 scheduler saves its own copy of the schedule when the task returns.
    # A night missed (cluster down) is caught up once, at once; older ones are not.
    next_run = max(
        next_generation_at(project, intended_at).astimezone(datetime.UTC),
        previous_generation_at(project, clock.now()).astimezone(datetime.UTC),
    )
    transaction.on_commit(lambda: _schedule_arm(project, next_run))
    run_date = intended_at.astimezone(project.tz).date() + ONE_DAY
    return generate(run_date=run_date, projects=[project], trigger="schedule")
