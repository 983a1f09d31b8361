"""Running instances: the django-q2 task body, and `drain` for running without a cluster.

A worker claims its instance (queued -> running, new attempt), builds the attempt's
request from the instance's node version (never the live node), runs it through the
executors, streams the log into the database while it runs, heartbeats, and notices
when an operator stops the instance. A command that succeeded passes the registered
checks (apps.instances.checks: data quality rules) before the attempt is recorded, so a
failing one holds the children back. When it finishes, the instance's ready children
are dispatched at once rather than at the next periodic pass, and one of its own
resource group is run by the same worker straight away (see run_attempt). Virtual
instances, which run nothing, are run in batches in one transaction (run_instances).
"""

import logging
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from django.conf import settings
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)

from apps.configuration.choices import TimeoutAction
from apps.configuration.runtime import Runtime, runtime_for, runtime_of_attempt
from apps.core import clock
from apps.nodes.specs import NodeSpec
from apps.projects.models import Datasource, Variable

from . import admission, checks, dispatcher, preparations, states
from .choices import AttemptState, InstanceState
from .executors import RunAsRefused, RunRequest, RunResult, execute, run_as
from .executors.process import Command, note, run_command
from .models import Attempt, AttemptLogChunk, Instance, InstanceDependency
from .params import ParamContext, UnknownParameter, render, render_value

logger = logging.getLogger(__name__)

LOG_FLUSH_SECONDS = 1.0
T = TypeVar("T")


class AttemptLog:
    """Collects an attempt's output and writes it to the database in chunks: at most
    once a second while the attempt runs, and the rest with the attempt's end. What a
    flush could not write (the database was away) is kept and written by the next one."""

    def __init__(self, attempt: Attempt):
        self.attempt = attempt
        self.offset = 0
        self._buffer: list[str] = []
        self._unsent: tuple[int, str] | None = None
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        if text:
            with self._lock:
                self._buffer.append(text)

    def line(self, text: str) -> None:
        stamp = clock.now().strftime("%Y-%m-%d %H:%M:%S")
        self.write(f"[{stamp}] {text}\n")

    def take(self) -> tuple[int, str]:
        """(offset, text) of everything not stored yet."""
        with self._lock:
            text = "".join(self._buffer)
            self._buffer.clear()
            unsent, self._unsent = self._unsent, None
        offset = self.offset
        self.offset += len(text)
        if unsent:
            return unsent[0], unsent[1] + text
        return offset, text

    def flush(self) -> None:
        offset, text = self.take()
        if not text:
            return
        try:
            # A chunk the database took before the connection broke is not written twice.
            AttemptLogChunk.objects.bulk_create(
                [AttemptLogChunk(attempt=self.attempt, offset=offset, text=text)],
                ignore_conflicts=True,
            )
            Attempt.objects.filter(pk=self.attempt.pk).update(log_size=self.offset)
        except BaseException:
            with self._lock:
                self._unsent = (offset, text)
            raise


# The database errors a worker rides out: a restarted or unreachable server, a lost or
# broken connection, a locked SQLite file. Anything else is a bug and surfaces.
DATABASE_AWAY = (OperationalError, InterfaceError)


def _reconnect() -> None:
    """Drop a broken connection; the next query opens a new one."""
    try:
        connection.close()
    except DATABASE_AWAY:
        pass


def with_database(operation: Callable[[], T], *, what: str, log: "AttemptLog | None" = None) -> T:
    """`operation()`, tried again with backoff while the database is away, for up to twice
    the heartbeat timeout (by then the attempt has been declared lost anyway). Only for
    operations that are safe to repeat (conditional updates, whole transactions)."""
    deadline = time.monotonic() + 2 * settings.OPSCENTER_HEARTBEAT_TIMEOUT
    delay = 0.2
    while True:
        try:
            return operation()
        except DATABASE_AWAY as exc:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning("database away while %s (%s); trying again", what, exc)
            if log is not None:
                log.write(note(f"database away while {what}; trying again: {_first_line(exc)}"))
            log = None  # said once
            _reconnect()
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class AttemptWatch:
    """The executor's `tick`: flushes the log, heartbeats, and says when to stop.

    While the database is away (restarted, unreachable) the command goes on: the log is
    kept, the connection reopened with backoff, and the attempt keeps its place. Only when
    no heartbeat got through for nearly the heartbeat timeout (the reaper may then declare
    the attempt lost and start another) does it stop the command, so two attempts never
    run at once."""

    def __init__(self, attempt: Attempt, log: AttemptLog):
        self.attempt = attempt
        self.log = log
        self.next_check = time.monotonic() + LOG_FLUSH_SECONDS
        self.last_heartbeat = time.monotonic()
        self.stop_reason = ""
        self.away_since: float | None = None
        self.failures = 0

    @staticmethod
    def fence_seconds() -> float:
        """How long without a heartbeat before the attempt stops itself: early enough that
        its processes are dead before the heartbeat timeout makes it lost."""
        heartbeat = settings.OPSCENTER_HEARTBEAT_SECONDS
        timeout = settings.OPSCENTER_HEARTBEAT_TIMEOUT
        return max(heartbeat, timeout - heartbeat - settings.OPSCENTER_KILL_GRACE_SECONDS)

    def __call__(self) -> bool:
        if self.stop_reason:
            return True
        moment = time.monotonic()
        if moment < self.next_check:
            return False
        try:
            stop = self._check(moment)
        except DATABASE_AWAY as exc:
            self._database_away(exc, moment)
            return bool(self.stop_reason)
        if self.away_since is not None:
            self.log.write(
                note(f"database back after {moment - self.away_since:.1f}s; attempt goes on")
            )
            self.away_since, self.failures = None, 0
        self.next_check = moment + LOG_FLUSH_SECONDS
        return stop

    def _check(self, moment: float) -> bool:
        self.log.flush()
        if moment - self.last_heartbeat >= settings.OPSCENTER_HEARTBEAT_SECONDS:
            alive = Attempt.objects.filter(pk=self.attempt.pk, state=AttemptState.RUNNING).update(
                heartbeat_at=clock.now()
            )
            if not alive:
                self.stop_reason = "this attempt was declared lost; another attempt takes over"
                return True
            self.last_heartbeat = moment
        state = Instance.objects.filter(pk=self.attempt.instance_id).values_list("state", flat=True)
        if state.first() != InstanceState.RUNNING:
            self.stop_reason = f"instance is now {state.first()}: stopping"
            return True
        return False

    def _database_away(self, exc: BaseException, moment: float) -> None:
        if self.away_since is None:
            self.away_since = moment
            self.log.write(note(f"database away, the command goes on: {_first_line(exc)}"))
            logger.warning("attempt %s: database away (%s)", self.attempt.pk, exc)
        _reconnect()
        self.failures += 1
        self.next_check = moment + min(0.25 * 2**self.failures, 5.0)
        silent = moment - self.last_heartbeat
        if silent >= self.fence_seconds():
            self.stop_reason = (
                f"no heartbeat reached the database for {silent:.0f}s: stopping, as the "
                "attempt may be declared lost and run again"
            )


def _param_context(instance: Instance) -> ParamContext:
    spec = instance.version.spec
    params = {str(k): str(v) for k, v in (spec.get("params") or {}).items()}
    params.update({str(k): str(v) for k, v in (instance.params or {}).items()})
    return ParamContext(
        biz_date=instance.biz_date,
        cyctime=instance.scheduled_at.astimezone(instance.project.tz),
        variables=dict(
            Variable.objects.filter(project=instance.project_id).values_list("name", "value")
        ),
        params=params,
    )


class ConfigurationError(Exception):
    """The attempt cannot run as configured; another attempt would fail the same way."""


def _datasource(instance: Instance, name: str | None) -> dict:
    if not name:
        raise ConfigurationError("this SQL node names no datasource")
    datasource = Datasource.objects.filter(project=instance.project_id, name=name).first()
    if datasource is None:
        raise ConfigurationError(f"datasource {name!r} does not exist in this project")
    return datasource.connection_settings()


# The node types whose processes are held to the node's memory_mb (a SQL or HTTP
# runner's own memory is opscenter's, not the node's).
MEMORY_LIMITED_TYPES = ("shell", "python")


def build_request(
    instance: Instance, attempt: Attempt, workdir: Path, runtime: Runtime | None = None
) -> RunRequest:
    spec = NodeSpec.from_spec(instance.version.spec)
    runtime = runtime or runtime_of_attempt(attempt, instance=instance)
    ctx = _param_context(instance)
    content = spec.content or ""
    content = render_value(content, ctx) if isinstance(content, dict) else render(content, ctx)
    datasource = _datasource(instance, spec.datasource) if spec.type == "sql" else None
    return RunRequest(
        node_type=spec.type,
        content=content,
        timeout_seconds=runtime.timeout,
        # alert_only: the attempt runs on past its timeout; the monitor raises the alert.
        timeout_kills=runtime.timeout_action != TimeoutAction.ALERT_ONLY,
        memory_limit_mb=spec.memory_mb if spec.type in MEMORY_LIMITED_TYPES else None,
        datasource=datasource,
        env={
            "OPSCENTER_PROJECT": instance.project.code,
            "OPSCENTER_NODE": instance.node.name,
            "OPSCENTER_INSTANCE_ID": str(instance.pk),
            "OPSCENTER_ATTEMPT": str(attempt.number),
            "OPSCENTER_BIZDATE": ctx.biz_date.strftime("%Y%m%d"),
            "OPSCENTER_CYCTIME": ctx.cyctime.strftime("%Y%m%d%H%M%S"),
        },
        workdir=workdir,
    )


# A worker runs at most this many ready children inline, one after another, before it
# hands the next one to the queue: a long chain must not capture one worker for good.
INLINE_CHAIN_LIMIT = 100


def run_attempt(
    instance_id: int,
    *,
    enqueue: dispatcher.Enqueue | None = None,
    on_inline: Callable[[int], None] | None = None,
) -> str | None:
    """Run one attempt of a queued instance. Returns the instance's new state, or None when
    there was nothing to do (already taken, or stopped while queued).

    When the instance succeeds, its ready children are dispatched at once; one child of
    the same resource group is then run by this worker itself instead of going through
    the queue (it is claimed like any start, within the group's limit: the slot this
    instance held is free again). A chain then moves at database speed, not at the
    broker's polling interval. `on_inline(child_id)` is told of each child run so."""
    enqueue = enqueue or dispatcher.enqueue_on_cluster
    first_state = None
    next_id: int | None = instance_id
    for hop in range(INLINE_CHAIN_LIMIT + 1):
        if hop and on_inline:
            on_inline(next_id)
        new_state, next_id = _run_one(next_id, enqueue=enqueue, inline=hop < INLINE_CHAIN_LIMIT)
        if hop == 0:
            first_state = new_state
        if next_id is None:
            break
    return first_state


def _start(instance_id: int) -> tuple[Attempt, Instance, Runtime, list[int]] | None:
    """One transaction starts the attempt and reads all the attempt needs, with the
    runtime settings in force now, which the attempt keeps (they hold to its end)."""
    with transaction.atomic():
        attempt = states.attempt_start(instance_id=instance_id, now=clock.now())
        if attempt is None:
            return None
        instance = Instance.objects.select_related(
            "project", "node", "version", "resource_group"
        ).get(pk=instance_id)
        runtime = runtime_for(instance)
        attempt.runtime = runtime.as_dict()
        attempt.timeout_alert_at = runtime.timeout_alert_at(attempt.started_at)
        Attempt.objects.filter(pk=attempt.pk).update(
            runtime=attempt.runtime, timeout_alert_at=attempt.timeout_alert_at
        )
        children = list(
            InstanceDependency.objects.filter(upstream_id=instance_id).values_list(
                "downstream_id", flat=True
            )
        )
    return attempt, instance, runtime, children


def _run_one(
    instance_id: int, *, enqueue: dispatcher.Enqueue, inline: bool
) -> tuple[str | None, int | None]:
    """One attempt; answers (the instance's new state, a claimed child to run inline)."""
    started = with_database(lambda: _start(instance_id), what="starting the attempt")
    if started is None:
        return None, None
    attempt, instance, runtime, children = started
    spec = NodeSpec.from_spec(instance.version.spec)
    log = AttemptLog(attempt)
    log.line(
        f"attempt {attempt.number} of {instance.project.code}.{instance.node.name} "
        f"v{instance.version.number} ({spec.type}), biz date {instance.biz_date}, "
        f"on {attempt.worker}"
    )
    if spec.type == "virtual":
        # Nothing runs: no parameters, work directory, log flushes or heartbeats.
        outcome = _execute_virtual(log)
    else:
        log.line(runtime_summary(runtime, spec))
        outcome = _execute_in_workdir(instance, attempt, runtime, log)
    if outcome.killed_for == "timeout":
        if runtime.timeout_action == TimeoutAction.KILL_AND_RETRY:
            outcome.reason += " (timeout_action kill_and_retry)"
        else:
            # `fail` ends the instance: only kill_and_retry spends retries on a timeout.
            outcome.reason += " (timeout_action fail: no retry)"
            outcome.retryable = False
    log.line(
        f"attempt {attempt.number} {outcome.outcome}"
        + (f": {outcome.reason}" if outcome.reason else "")
    )
    new_state = _finish(attempt, outcome, runtime, log)
    inline_id = _after_finish(
        succeeded=new_state in (InstanceState.SUCCEEDED, InstanceState.SKIPPED),
        children=children,
        group_names={instance.resource_group.name},
        finished=[{"id": instance.pk, "backfill_id": instance.backfill_id}],
        enqueue=enqueue,
        inline=inline,
    )
    return new_state, inline_id


def runtime_summary(runtime: Runtime, spec: NodeSpec) -> str:
    """The settings an attempt runs with, with their levels, for its log."""
    timeout = (
        f"timeout {runtime.timeout}s, {runtime.timeout_action}" if runtime.timeout else "no timeout"
    )
    retries = f"retries {runtime.retries}"
    if runtime.retries:
        retries += f" every {runtime.retry_interval_seconds}s"
    memory = ""
    if spec.memory_mb and spec.type in MEMORY_LIMITED_TYPES:
        memory = f"; memory limit {spec.memory_mb} MB"
    return (
        f"runtime: {timeout} ({runtime.source('timeout_seconds')}/"
        f"{runtime.source('timeout_action')}); {retries} ({runtime.source('retries')})"
        f"{memory}"
    )


def _finish(
    attempt: Attempt, outcome: states.AttemptOutcome, runtime: Runtime, log: AttemptLog
) -> str | None:
    """Record the attempt's end, riding out a database that is away. A try whose commit
    got through unacknowledged leaves the next one nothing to do: the instance's state
    then says how it ended."""
    log_tail = log.take()
    tries = 0

    def finish() -> str | None:
        nonlocal tries
        tries += 1
        new_state = states.attempt_finish(
            attempt=attempt,
            result=outcome,
            retries=runtime.retries,
            retry_interval_seconds=float(runtime.retry_interval_seconds),
            now=clock.now(),
            log_tail=log_tail,
        )
        if new_state is None and tries > 1:
            recorded = Attempt.objects.filter(pk=attempt.pk).values_list("state", flat=True)
            if recorded.first() == AttemptState.SUCCEEDED:
                return InstanceState.SUCCEEDED
        return new_state

    return with_database(finish, what="recording the attempt's end")


def _after_finish(
    *,
    succeeded: bool,
    children: list[int],
    group_names: set[str],
    finished: list[dict],
    enqueue: dispatcher.Enqueue,
    inline: bool,
) -> int | None:
    """Start what finished instances unblocked: their ready children, and what the
    admission gates let in now (the dates that entered a backfill's window). Answers one
    claimed child of the finished instances' group for this worker to run inline (when
    `inline`), handing the rest to the queue."""
    inline_id: int | None = None

    def hand_off(group_name: str, ids: list[int]) -> None:
        nonlocal inline_id
        if inline and inline_id is None and group_name in group_names:
            inline_id, ids = ids[0], ids[1:]
        if ids:
            enqueue(group_name, ids)

    if succeeded and children:
        dispatcher.tick(only_ids=children, enqueue=hand_off)
    dispatcher.tick(only_ids=admission.released(finished=finished), enqueue=enqueue)
    return inline_id


def run_instances(
    instance_ids: list[int],
    *,
    enqueue: dispatcher.Enqueue | None = None,
    on_inline: Callable[[int], None] | None = None,
) -> None:
    """Run one hand-off of the dispatcher (see dispatcher.handoff_batches): a batch of
    virtual instances together, any other instance alone (run_attempt)."""
    enqueue = enqueue or dispatcher.enqueue_on_cluster
    ids = list(instance_ids)
    done: set[int] = set()
    inline_id = None
    if len(ids) > 1:
        done, inline_id = _run_virtual_batch(ids, enqueue=enqueue)
    # What the batch did not take runs alone: another type, or one taken or stopped
    # meanwhile (which run_attempt then leaves alone too).
    for instance_id in ids:
        if instance_id not in done:
            run_attempt(instance_id, enqueue=enqueue, on_inline=on_inline)
    if inline_id is not None:
        if on_inline:
            on_inline(inline_id)
        run_attempt(inline_id, enqueue=enqueue, on_inline=on_inline)


def _virtual_log(row: dict, number: int) -> str:
    stamp = clock.now().strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"[{stamp}] attempt {number} of {row['project__code']}.{row['node__name']} "
        f"v{row['version__number']} (virtual), biz date {row['biz_date']}, "
        f"on {states.worker_name()}\n"
        f"{note('virtual node: nothing to run')}"
        f"[{stamp}] attempt {number} succeeded\n"
    )


def _run_virtual_batch(
    ids: list[int], *, enqueue: dispatcher.Enqueue
) -> tuple[set[int], int | None]:
    """The virtual ones of `ids` succeed together (one transaction); then what they
    unblocked starts. Answers the ids done and a claimed child to run inline, as
    _run_one does."""
    done = states.virtual_attempts_run(ids=ids, now=clock.now(), log_text=_virtual_log)
    if not done:
        return set(), None
    children = list(
        InstanceDependency.objects.filter(upstream_id__in=[row["id"] for row in done])
        .order_by()
        .values_list("downstream_id", flat=True)
        .distinct()
    )
    inline_id = _after_finish(
        succeeded=True,
        children=children,
        group_names={row["resource_group__name"] for row in done},
        finished=done,
        enqueue=enqueue,
        inline=True,
    )
    return {row["id"] for row in done}, inline_id


def _execute_virtual(log: AttemptLog) -> states.AttemptOutcome:
    request = RunRequest(
        node_type="virtual",
        content="",
        timeout_seconds=None,
        datasource=None,
        env={},
        workdir=Path(settings.VAR_DIR),
    )
    result = execute(request, log=log.write, tick=lambda: False)
    return states.AttemptOutcome(outcome=result.outcome, reason=result.reason)


def _execute_in_workdir(
    instance: Instance, attempt: Attempt, runtime: Runtime, log: AttemptLog
) -> states.AttemptOutcome:
    workdir = Path(settings.VAR_DIR) / "work" / str(instance.pk) / str(attempt.number)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            # An attempt that cannot run as OPSCENTER_RUN_AS fails at once, not retried.
            run_as()
            request = build_request(instance, attempt, workdir, runtime)
        except (UnknownParameter, ConfigurationError, RunAsRefused) as exc:
            log.line(f"cannot run: {exc}")
            return states.AttemptOutcome(outcome="failed", reason=str(exc), retryable=False)
        watch = AttemptWatch(attempt, log)
        try:
            preparations.prepare(
                preparations.PrepareContext(
                    instance=instance, attempt=attempt, workdir=workdir, line=log.line, tick=watch
                )
            )
        except preparations.PreparationFailed as exc:
            reason = watch.stop_reason or exc.reason
            log.line(f"cannot run: {reason}")
            return states.AttemptOutcome(
                outcome=exc.outcome, reason=reason, retryable=exc.retryable
            )
        outcome = _execute(request, attempt, log)
        if outcome.outcome == "succeeded" and checks.registered():
            outcome = after_success(instance, attempt, runtime, log, workdir, outcome)
        return outcome
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def after_success(
    instance: Instance,
    attempt: Attempt,
    runtime: Runtime,
    log: AttemptLog,
    workdir: Path,
    outcome: states.AttemptOutcome,
) -> states.AttemptOutcome:
    """The registered checks (apps.instances.checks) of a command that succeeded, before
    the attempt is recorded: a failing one fails the attempt, so no child is released.
    What they run is held to what is left of the attempt's timeout, and stops with it."""
    watch = AttemptWatch(attempt, log)
    rendering: list[ParamContext] = []

    def render_text(text: str) -> str:
        if not rendering:
            rendering.append(_param_context(instance))
        return render(text, rendering[0])

    def run(command: Command, output: Callable[[str], None]) -> RunResult:
        left = None
        if runtime.timeout:
            spent = (clock.now() - attempt.started_at).total_seconds()
            left = max(runtime.timeout - spent, 0.001)
        return run_command(
            command,
            timeout_seconds=left,
            timeout_kills=runtime.timeout_action != TimeoutAction.ALERT_ONLY,
            log=output,
            tick=watch,
            on_start=lambda pid: _record_pid(attempt, pid),
            user=run_as(),
            tag=f"attempt-{attempt.pk}",
        )

    failure = checks.run_checks(
        checks.CheckContext(
            instance=instance,
            attempt=attempt,
            workdir=workdir,
            line=log.line,
            write=log.write,
            render=render_text,
            run=run,
        )
    )
    if failure is None:
        return outcome
    reason = failure.reason
    if failure.outcome == "stopped" and watch.stop_reason:
        reason = watch.stop_reason
    return states.AttemptOutcome(
        outcome=failure.outcome,
        exit_code=outcome.exit_code,
        cpu_seconds=outcome.cpu_seconds,
        peak_memory_mb=outcome.peak_memory_mb,
        reason=reason,
        retryable=failure.retryable,
        killed_for=failure.killed_for,
    )


def _record_pid(attempt: Attempt, pid: int) -> None:
    try:
        Attempt.objects.filter(pk=attempt.pk).update(pid=pid)
    except DATABASE_AWAY:  # the pid only speeds up the reaper; the command goes on
        _reconnect()


def _execute(request: RunRequest, attempt: Attempt, log: AttemptLog) -> states.AttemptOutcome:
    watch = AttemptWatch(attempt, log)

    try:
        result = execute(
            request,
            log=log.write,
            tick=watch,
            on_start=lambda pid: _record_pid(attempt, pid),
            tag=f"attempt-{attempt.pk}",
        )
    except Exception as exc:  # an executor bug must not leave the instance running
        logger.exception("executor failed for attempt %s", attempt.pk)
        return states.AttemptOutcome(outcome="failed", reason=f"executor error: {exc}")
    reason = result.reason
    if result.outcome == "stopped" and watch.stop_reason:
        reason = watch.stop_reason
    return states.AttemptOutcome(
        outcome=result.outcome,
        exit_code=result.exit_code,
        cpu_seconds=result.cpu_seconds,
        peak_memory_mb=result.peak_memory_mb,
        reason=reason,
        killed_for=result.killed_for,
    )


# --- drain: the dispatcher and executors in one process --------------------------------


@dataclass
class DrainResult:
    executed: int
    seconds: float


def drain(*, timeout: float, max_workers: int = 4, log=None) -> DrainResult:
    """Dispatch and execute in this process until nothing runs and nothing can start
    within `timeout` seconds (waiting for retry intervals and scheduled times inside it).
    For tests and demos without a cluster; resource-group limits hold as usual."""
    started = time.monotonic()
    deadline = started + timeout
    pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="drain")
    futures: set[Future] = set()
    lock = threading.Lock()
    executed = 0

    def run_in_thread(instance_ids: list[int]) -> None:
        close_old_connections()
        try:
            run_instances(instance_ids, enqueue=enqueue, on_inline=count_inline)
        finally:
            connection.close()

    def count_inline(instance_id: int) -> None:
        nonlocal executed
        with lock:
            executed += 1

    def enqueue(group_name: str, instance_ids: list[int]) -> None:
        nonlocal executed
        batches = dispatcher.handoff_batches(instance_ids)
        with lock:
            for batch in batches:
                futures.add(pool.submit(run_in_thread, batch))
                executed += len(batch)

    # Instances queued for a cluster that is not running are run here instead; if a
    # cluster picks the same task up later, it finds the instance taken and does nothing.
    enqueue(
        "", list(Instance.objects.filter(state=InstanceState.QUEUED).values_list("id", flat=True))
    )
    try:
        while True:
            dispatcher.tick(enqueue=enqueue, sweep=True)
            with lock:
                running = {f for f in futures if not f.done()}
                for done in futures - running:
                    done.result()  # surface bugs in tests instead of hiding them
                futures.intersection_update(running)
            if running:
                wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                continue
            remaining = deadline - time.monotonic()
            wake = dispatcher.next_wake()
            if wake is None or remaining <= 0:
                break
            until_wake = (wake - clock.now()).total_seconds()
            if until_wake > remaining:
                break
            time.sleep(max(0.05, min(until_wake, 1.0)))
    finally:
        pool.shutdown(wait=True)
    if log:
        log(f"drain: executed {executed} attempt(s) in {time.monotonic() - started:.1f}s")
    return DrainResult(executed=executed, seconds=time.monotonic() - started)
