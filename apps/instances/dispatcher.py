"""The dispatcher: which pending instances may start now, and starting them.

An instance starts only when all of SPEC section 4 hold: every upstream instance is
succeeded or skipped (removed edges aside), its time (scheduled or next attempt) has
come, neither it nor its node is paused, and every admission gate lets it through
(apps.instances.admission: the backfill window, its resource group's slots and
CPU/memory, the throttling rules that apply to it). Higher priority starts first, then
earlier scheduled time (admission.START_ORDER).

A pass claims in one transaction in which every capacity gate locks the rows that
count its capacity (the groups' rows, then the rules' rows, each by id) before
counting, so two dispatchers never overfill a group or a rule; the candidates of all
groups are then taken in one start order, so a rule shared by several groups frees its
slots to the highest priority first. Each instance moves pending -> queued by a
conditional update, so two dispatchers never start one instance twice. Queued
instances are handed to their group's django-q2 queue after the transaction commits.
"""

import contextlib
import datetime
import heapq
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psutil
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Coalesce
from django.db.models.lookups import LessThanOrEqual

from apps.configuration.runtime import runtime_of_attempt
from apps.core import clock, times

from . import admission, states
from .choices import DONE_FOR_DOWNSTREAM, InstanceState, WaitReason
from .executors.process import SUBREAPER
from .executors.subreaper import WORKER_GONE_SIGNAL
from .models import Attempt, Instance, InstanceDependency

logger = logging.getLogger(__name__)

# enqueue(resource_group_name, instance_ids): hands queued instances to workers.
Enqueue = Callable[[str, list[int]], None]


def runs_nothing(instance_ids: Iterable[int]) -> set[int]:
    """Those of `instance_ids` whose node version is virtual."""
    return set(
        Instance.objects.filter(pk__in=list(instance_ids), version__spec__type="virtual")
        .order_by()
        .values_list("id", flat=True)
    )


def handoff_batches(instance_ids: list[int]) -> list[list[int]]:
    """How queued instances go to workers. Virtual instances run nothing: they take no
    time, so a batch of them never holds back work another worker could do, and one task
    and one transaction serve the batch. They go first, in batches of up to
    OPSCENTER_VIRTUAL_BATCH; every other instance goes alone, in the order given."""
    size = settings.OPSCENTER_VIRTUAL_BATCH
    virtual = runs_nothing(instance_ids) if len(instance_ids) > 1 and size > 1 else set()
    batched = [i for i in instance_ids if i in virtual]
    batches = [batched[k : k + size] for k in range(0, len(batched), size)]
    return batches + [[i] for i in instance_ids if i not in virtual]


def enqueue_on_cluster(group_name: str, instance_ids: list[int]) -> None:
    """The production hand-off: django-q2 tasks on the group's queue (the queue of its
    own name unless OPSCENTER_GROUP_QUEUES maps it onto a shared one), one per instance
    or per batch of virtual instances."""
    from django_q.tasks import async_task

    queue = settings.OPSCENTER_GROUP_QUEUES.get(group_name, group_name)
    for batch in handoff_batches(instance_ids):
        # Results are recorded on the instance and its attempt; django-q2 need not keep them.
        if len(batch) == 1:
            func, args, name = "run_instance", batch[0], f"instance-{batch[0]}"
        else:
            func, args, name = "run_instances", batch, f"instances-{batch[0]}+{len(batch) - 1}"
        async_task(f"apps.instances.tasks.{func}", args, cluster=queue, task_name=name, save=False)


@dataclass
class TickResult:
    queued: list[int] = field(default_factory=list)
    skipped: int = 0
    reaped: int = 0
    requeued: int = 0

    @property
    def started(self) -> int:
        return len(self.queued)


# --- what may start --------------------------------------------------------------------


def blocking_upstream() -> QuerySet[InstanceDependency]:
    """Edges into OuterRef("pk") whose upstream is not done yet."""
    return InstanceDependency.objects.filter(downstream=OuterRef("pk"), removed=False).exclude(
        upstream__state__in=DONE_FOR_DOWNSTREAM
    )


def frozen_q() -> Q:
    return Q(paused=True) | Q(node__paused=True)


def due_at() -> Coalesce:
    """When a pending instance may start: its next attempt's time, else its scheduled time
    (instance_pending_due_idx indexes exactly this expression)."""
    return Coalesce("next_attempt_at", "scheduled_at")


def due_q(now: datetime.datetime) -> Q:
    return Q(LessThanOrEqual(due_at(), Value(now))) | Q(run_now=True)


def upstream_blocks_q() -> Q:
    """Waiting for an upstream instance (an instance to run without dependencies waits
    for none)."""
    return Q(run_now=False) & Exists(blocking_upstream())


def unblocked_pending(scope: QuerySet[Instance]) -> QuerySet[Instance]:
    """Pending instances of `scope` that are neither frozen nor waiting for upstream, and
    that every filter gate admits (the backfill window: see admission)."""
    return (
        scope.filter(state=InstanceState.PENDING)
        .exclude(frozen_q())
        .exclude(upstream_blocks_q())
        .filter(admission.admitted_q())
    )


def ready_now(scope: QuerySet[Instance], now: datetime.datetime) -> QuerySet[Instance]:
    """What competes for slots now: unblocked, due, and to be run (not a dry run)."""
    return unblocked_pending(scope).filter(dry_run=False).filter(due_q(now))


def next_wake(*, scope: QuerySet[Instance] | None = None) -> datetime.datetime | None:
    """The earliest time an unblocked pending instance becomes due (None when none is)."""
    scope = scope if scope is not None else Instance.objects.all()
    return (
        unblocked_pending(scope)
        .filter(dry_run=False)
        .annotate(at=Coalesce("next_attempt_at", "scheduled_at"))
        .order_by("at")
        .values_list("at", flat=True)
        .first()
    )


# --- one pass ------------------------------------------------------------------------


def tick(
    *,
    now: datetime.datetime | None = None,
    only_ids: Iterable[int] | None = None,
    enqueue: Enqueue | None = None,
    sweep: bool = False,
) -> TickResult:
    """One dispatcher pass. `only_ids` limits it to those instances (used when an instance
    finishes, to start its ready children at once).

    A pass over everything looks only at the pending instances whose time has come (read
    first through instance_pending_due_idx): a large installation holds a whole day of
    pending instances (1.5M for 100k nodes), and whether each waits for upstream cannot
    be asked of all of them every few seconds. The wait reasons of the others are kept
    by a rolling sweep, SWEEP_CHUNK of them per pass; `sweep` refreshes them all at once
    (`opscenter tick`, drain)."""
    now = now or clock.now()
    enqueue = enqueue or enqueue_on_cluster
    result = TickResult()
    scope = Instance.objects.all()
    if only_ids is not None:
        only_ids = list(only_ids)
        if not only_ids:
            return result
        scope = scope.filter(pk__in=only_ids)
    else:
        result.reaped = len(reap_lost_attempts(now=now))
        result.requeued = len(requeue_overdue(now=now))
        # The gates bring their state up to date (backfills move their windows on).
        admission.before_pass(now=now)
        if not sweep:
            pending = Instance.objects.filter(state=InstanceState.PENDING)
            # Two plain reads, each along its own index (an OR of the two, or a LIMIT
            # over it, sends the planner through every pending row instead).
            due_ids = list(
                pending.filter(LessThanOrEqual(due_at(), Value(now)))
                .order_by(due_at())
                .values_list("id", flat=True)[: HOT_MAX + 1]
            )
            due_ids += pending.filter(run_now=True).values_list("id", flat=True)[: HOT_MAX + 1]
            # A bigger backlog than that is worked on as a whole: the pass then costs
            # in proportion to the work waiting anyway.
            if len(due_ids) <= HOT_MAX:
                scope = scope.filter(pk__in=due_ids)

    result.skipped = _skip_ready_dry_runs(scope=scope, now=now)

    due = ready_now(scope, now)
    # order_by(): the model's default ordering would make DISTINCT one row per instance.
    groups = list(
        due.order_by().values_list("resource_group_id", "resource_group__name").distinct()
    )
    if groups:
        prepared = {
            gate.name: gate.prepare(due=due, now=now) for gate in admission.capacity_gates()
        }
        result.queued.extend(
            _claim(groups=dict(groups), due=due, now=now, prepared=prepared, enqueue=enqueue)
        )

    wait_reasons_refresh(scope=scope, now=now)
    if only_ids is None and not sweep:
        _sweep_step(now=now)
    return result


# Pending instances whose time has come, at most, that a pass looks at one by one.
HOT_MAX = 10_000
# Pending instances whose wait reason the rolling sweep refreshes per pass.
SWEEP_CHUNK = 20_000
# Where this process's rolling sweep goes on: the last pending id it covered.
_sweep_after = 0


def _sweep_step(*, now: datetime.datetime) -> None:
    """Refresh the wait reasons of the next SWEEP_CHUNK pending instances in id order,
    starting again from the first after the last: every pending instance is explained
    within (pending / SWEEP_CHUNK) passes, new ones included."""
    global _sweep_after
    pending = Instance.objects.filter(state=InstanceState.PENDING, pk__gt=_sweep_after)
    bound = pending.order_by("pk").values_list("pk", flat=True)[SWEEP_CHUNK - 1 : SWEEP_CHUNK]
    upper = next(iter(bound), None)
    if upper is None:
        wait_reasons_refresh(scope=pending, now=now)
        _sweep_after = 0
    else:
        wait_reasons_refresh(scope=pending.filter(pk__lte=upper), now=now)
        _sweep_after = upper


def _skip_ready_dry_runs(*, scope: QuerySet[Instance], now: datetime.datetime) -> int:
    """Skip dry runs whose upstream is done, then their dry-run children, and so on."""
    total = 0
    while True:
        ids = list(unblocked_pending(scope).filter(dry_run=True).values_list("id", flat=True))
        if not ids:
            return total
        skipped = states.dry_runs_skip(ids=ids, now=now)
        total += skipped
        if not skipped:
            return total
        # Children of what was skipped may now be ready too.
        children = InstanceDependency.objects.filter(upstream_id__in=ids).values_list(
            "downstream_id", flat=True
        )
        scope = Instance.objects.filter(pk__in=list(children))


def _claim(
    *,
    groups: dict[int, str],
    due: QuerySet[Instance],
    now: datetime.datetime,
    prepared: dict,
    enqueue: Enqueue,
) -> list[int]:
    """Claim what may start among `due`, in the resource groups `groups` (id -> name)."""
    group_ids = sorted(groups)
    with transaction.atomic():
        holds = []
        # Each gate locks its rows in turn, in registration order: the same order in
        # every claim of every dispatcher.
        for gate in admission.capacity_gates():
            hold = gate.hold(
                group_ids=group_ids, candidates=due, now=now, prepared=prepared[gate.name]
            )
            if hold is not None:
                holds.append(hold)
        chosen = choose(candidates=due, group_ids=group_ids, holds=holds)
        if not chosen:
            return []
        # Lock the chosen rows, passing over any an operator is changing right now; the
        # conditional update then moves exactly these to queued.
        locked = set(
            Instance.objects.select_for_update(skip_locked=True)
            .filter(pk__in=[row["id"] for row in chosen], state=InstanceState.PENDING)
            .values_list("id", flat=True)
        )
        states.instances_queue(ids=sorted(locked), now=now)
        by_group: dict[int, list[int]] = {}
        for row in chosen:
            if row["id"] in locked:
                by_group.setdefault(row["resource_group_id"], []).append(row["id"])
        for group_id, ids in by_group.items():
            transaction.on_commit(lambda name=groups[group_id], ids=ids: enqueue(name, ids))
        return [row["id"] for row in chosen if row["id"] in locked]


# While holds judge candidates one by one, a group's first read takes as many as it
# has free slots (enough unless a rule fills mid-claim); each further read, for what a
# full rule passed over, takes CHUNK_PER_SLOT times that; at most MAX_CHUNKS reads.
CHUNK_PER_SLOT = 4
MAX_CHUNKS = 8
# What every candidate row carries: its id, its group, and its place in START_ORDER.
ROW_FIELDS = ("id", "resource_group_id", *admission.START_FIELDS)


def choose(
    *, candidates: QuerySet[Instance], group_ids: list[int], holds: list[admission.Hold]
) -> list[dict]:
    """The candidates to start (rows of ROW_FIELDS), in start order across the groups,
    as far as every hold admits them.

    Each group's candidates are read in start order (along instance_pending_group_idx),
    the first `limit` of them when no hold judges rows one by one, else a chunk at a
    time, and the groups' reads are merged lazily into one start order. Each candidate
    is judged by every hold: one that some hold SKIPs is passed over (a full throttling
    rule holds back only its own); one that some hold STOPs ends its group's turn (it
    keeps its place: a big instance is not starved by smaller ones behind it)."""
    judging = [h for h in holds if h.judges]
    names, expressions = set(ROW_FIELDS), {}
    for hold in judging:
        for name, value in hold.fields.items():
            if value == name:
                names.add(name)
            else:
                expressions[name] = F(value) if isinstance(value, str) else value
    limits = {}
    for group_id in group_ids:
        bounds = [h.limit(group_id) for h in holds]
        bounds = [b for b in bounds if b is not None]
        limits[group_id] = min(bounds) if bounds else None
    done: set[int] = {g for g, limit in limits.items() if limit is not None and limit <= 0}
    ordered = candidates.order_by(*admission.START_ORDER)

    def rows_of(group_id: int):
        limit = limits[group_id]
        chunk = limit
        seen: list[int] = []
        for turn in range(MAX_CHUNKS if judging else 1):
            if turn and chunk is not None:
                chunk = max(limit * CHUNK_PER_SLOT, 16)
            if group_id in done:
                return
            page = ordered.filter(resource_group_id=group_id)
            for hold in holds:
                if hold.exclude is not None:
                    page = page.exclude(hold.exclude)
            if seen:
                page = page.exclude(pk__in=seen)
            page = page.values(*sorted(names), **expressions)
            rows = list(page[:chunk] if chunk is not None else page)
            yield from rows
            if chunk is None or len(rows) < chunk:
                return
            seen.extend(row["id"] for row in rows)

    streams = [rows_of(g) for g in group_ids if g not in done]
    chosen: list[dict] = []
    taken: dict[int, int] = dict.fromkeys(group_ids, 0)
    for row in heapq.merge(*streams, key=admission.start_key):
        group_id = row["resource_group_id"]
        if group_id in done:
            continue
        verdicts = {hold.judge(row) for hold in judging}
        if admission.Verdict.SKIP in verdicts:
            continue
        if admission.Verdict.STOP in verdicts:
            done.add(group_id)
            continue
        for hold in judging:
            hold.take(row)
        chosen.append(row)
        taken[group_id] += 1
        if limits[group_id] is not None and taken[group_id] >= limits[group_id]:
            done.add(group_id)
        if len(done) == len(group_ids):
            break
    return chosen


def wait_reasons_refresh(*, scope: QuerySet[Instance], now: datetime.datetime) -> None:
    """Store why each pending instance waits, in SPEC order, in a few bulk updates that
    touch only rows whose reason changed: frozen; waiting for upstream or held back by a
    filter gate (each gate's own reason); waiting for its time; then, for what is due,
    the first capacity gate that holds it back now (throttled), and waiting_resources
    for the rest (its group is full, or the next pass starts it)."""
    pending = scope.filter(state=InstanceState.PENDING)
    held: dict[str, Q] = {WaitReason.WAITING_UPSTREAM: upstream_blocks_q()}
    for gate in admission.filter_gates():
        not_admitted = ~gate.admits()
        reason = gate.wait_reason
        held[reason] = held[reason] | not_admitted if reason in held else not_admitted
    updates = [(pending.filter(frozen_q()), WaitReason.FROZEN)]
    rest = pending.exclude(frozen_q())
    for reason in sorted(held, key=admission.REASON_ORDER.index):
        updates.append((rest.filter(held[reason]), reason))
        rest = rest.exclude(held[reason])
    updates.append((rest.exclude(due_q(now)), WaitReason.WAITING_TIME))
    due = rest.filter(due_q(now), dry_run=False)
    for gate in admission.by_reason(admission.capacity_gates()):
        waiting = gate.waiting(now=now)
        if waiting is not None:
            updates.append((due.filter(waiting), gate.wait_reason))
            due = due.exclude(waiting)
    updates.append((due, WaitReason.WAITING_RESOURCES))
    # Rows another transaction holds (a claim, another dispatcher's refresh) are passed
    # over, not waited for: two passes updating the same rows in different orders would
    # deadlock, and the next pass explains what this one skipped.
    with transaction.atomic():
        for queryset, reason in updates:
            changing = (
                queryset.exclude(wait_reason=reason)
                .order_by()
                .select_for_update(skip_locked=True, of=("self",))
                .values("pk")
            )
            Instance.objects.filter(pk__in=changing).update(wait_reason=reason)


# --- lost tasks ------------------------------------------------------------------------


def requeue_overdue(*, now: datetime.datetime) -> list[int]:
    """Queued instances that no worker has taken within OPSCENTER_QUEUED_TIMEOUT_SECONDS go
    back to pending, and this pass queues them again (with a new task). Their task was
    lost: a cluster killed with tasks taken from the broker leaves no attempt whose
    heartbeat could expire, and the broker keeps the task locked for a day."""
    before = now - datetime.timedelta(seconds=settings.OPSCENTER_QUEUED_TIMEOUT_SECONDS)
    requeued = states.queued_overdue_requeue(before=before, now=now)
    if requeued:
        logger.warning("queued instances no worker took handed out again: %s", requeued)
    return requeued


# --- lost workers ---------------------------------------------------------------------


def _on_this_host(attempt: Attempt) -> bool:
    return attempt.worker.rsplit(":", 1)[0] == socket.gethostname()


def worker_alive(attempt: Attempt) -> bool:
    """Whether the worker process of `attempt`, on this machine, still lives (a process
    that took its pid after the attempt started is not it)."""
    try:
        proc = psutil.Process(int(attempt.worker.rsplit(":", 1)[1]))
        return (
            proc.status() != psutil.STATUS_ZOMBIE
            and proc.create_time() <= attempt.started_at.timestamp() + 1
        )
    except (psutil.Error, ValueError, IndexError):
        return False


def _subreaper_of(attempt: Attempt) -> psutil.Process | None:
    """The living subreaper of `attempt` on this machine (see executors/subreaper.py), or
    None: it exits only when no process of the attempt is left."""
    if not attempt.pid:
        return None
    try:
        proc = psutil.Process(attempt.pid)
        cmdline = proc.cmdline()
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.Error:
        return None
    if str(SUBREAPER) in cmdline and f"attempt-{attempt.pk}" in cmdline:
        return proc
    return None  # the pid is another process's now


def kill_orphaned_tree(attempt: Attempt, *, wait_seconds: float = 2.0) -> bool:
    """Make sure nothing of `attempt` runs on this machine any more. Its subreaper is told
    that its worker is gone (it SIGKILLs every process of the attempt and exits); one that
    does not within `wait_seconds` is killed from here, its descendants first. True once
    nothing is left; False while something may still live, and for an attempt of another
    machine, which its own subreaper cleans up when its worker dies."""
    if not _on_this_host(attempt):
        return False
    proc = _subreaper_of(attempt)
    if proc is None:
        return True
    try:
        proc.send_signal(WORKER_GONE_SIGNAL)
        proc.wait(timeout=wait_seconds)
    except psutil.TimeoutExpired:
        try:
            tree = [*proc.children(recursive=True), proc]
        except psutil.Error:
            tree = [proc]
        for member in tree:
            with contextlib.suppress(psutil.Error):
                member.kill()
        psutil.wait_procs(tree, timeout=wait_seconds)
    except psutil.Error:
        pass
    return _subreaper_of(attempt) is None


def reap_lost_attempts(*, now: datetime.datetime, only_here: bool = False) -> list[int]:
    """Attempts whose worker is gone are failed and their instances retried or failed
    (answers those instances): never left running, and never retried while a process of
    theirs may still live.

    A worker on this machine is known gone as soon as its process is: every dispatcher
    pass looks, and so does every worker a cluster (re)starts (`only_here`, see
    signals.worker_spawned), a fraction of a second after a worker is killed. Its attempt
    is declared lost once its subreaper, and so every process of it, is gone. A worker
    elsewhere is known gone when its heartbeat is OPSCENTER_HEARTBEAT_TIMEOUT old: by then
    its subreaper has killed the attempt's processes (they die with their worker), and a
    worker that could not reach the database that long has stopped them itself
    (worker.AttemptWatch)."""
    limit = now - datetime.timedelta(seconds=settings.OPSCENTER_HEARTBEAT_TIMEOUT)
    here = Q(worker__startswith=f"{socket.gethostname()}:")
    lost = (
        Attempt.objects.filter(state="running")
        .filter(here if only_here else here | Q(heartbeat_at__lt=limit))
        # Realtime attempts belong to the realtime supervisor, which takes over its own.
        .exclude(instance__kind="realtime")
        # Every running attempt of this machine is looked at in every pass: only what
        # the look needs (the instance's spec is read for the lost ones alone).
        .only("id", "instance_id", "number", "worker", "pid", "started_at", "heartbeat_at")
    )
    reaped = []
    for attempt in lost:
        stale = attempt.heartbeat_at is None or attempt.heartbeat_at < limit
        if _on_this_host(attempt):
            if worker_alive(attempt) and not stale:
                continue
            if not kill_orphaned_tree(attempt):
                continue  # still dying: the next look declares it
            reason = (
                f"worker {attempt.worker} lost: no heartbeat since {_iso(attempt.heartbeat_at)}"
                if stale
                else f"worker {attempt.worker} lost: its process died"
            )
        elif stale:
            reason = f"worker {attempt.worker or '?'} lost: no heartbeat since {_iso(attempt.heartbeat_at)}"
        else:
            continue
        # The retries the attempt started with (apps.configuration.runtime).
        runtime = runtime_of_attempt(attempt)
        new_state = states.attempt_lost(
            attempt=attempt,
            retries=runtime.retries,
            retry_interval_seconds=float(runtime.retry_interval_seconds),
            now=now,
            reason=reason,
        )
        if new_state is not None:
            reaped.append(attempt.instance_id)
            logger.warning(
                "attempt %s of instance %s: %s; instance now %s",
                attempt.number,
                attempt.instance_id,
                reason,
                new_state,
            )
    return reaped


def _iso(moment: datetime.datetime | None) -> str:
    # Read by people on the attempt's row: the zone named, never microseconds.
    return times.format_when(moment) if moment else "the start"
