"""The realtime supervisor: `python manage.py opscenter realtime-supervisor`.

A long-running process, apart from the batch workers and their time limits. Every
POLL_SECONDS it heartbeats the instances it runs, takes over instances whose supervisor
stopped heartbeating, and claims `starting` instances (starting -> running). Each claimed
instance gets a thread that runs its process through the executors' process machinery
(apps.instances.executors: one process tree, its log streamed to the database, SIGTERM
then SIGKILL after the grace period) with no timeout, one Attempt per process start.

A process that exits while its instance should run is restarted after a short backoff,
up to the node's restart limit within its window; one more exit fails the instance.
`stopping` (or an operator's instance stop) ends the process tree and the instance is
`stopped`.

A supervisor that shuts down cleanly (SIGTERM/SIGINT) ends its processes and hands their
instances back as `starting`, so the next supervisor starts them again. A supervisor that
dies takes its processes with it (they die with their parent); another supervisor (or the
next one started) finds its instances by their stale heartbeat, fails their attempts
("supervisor lost"), kills any leftover process group on the same machine, and starts
`running` ones again (`stopping` ones become `stopped`). Processes are never adopted:
their output pipe belonged to the dead supervisor.
"""

import dataclasses
import datetime
import logging
import shutil
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import F, Q

from apps.core import clock
from apps.instances import states
from apps.instances.choices import AttemptState, InstanceKind, InstanceState
from apps.instances.dispatcher import kill_orphaned_tree
from apps.instances.executors import execute
from apps.instances.models import Attempt, AttemptLogChunk, Instance
from apps.instances.params import UnknownParameter
from apps.instances.worker import (
    MEMORY_LIMITED_TYPES,
    AttemptLog,
    ConfigurationError,
    build_request,
)

from .models import RealtimeSettings
from .services import effective_resources

S = InstanceState


def _restart_or_stop(
    instance_id: int, *, now: datetime.datetime, restart: bool, cause: str
) -> None:
    """Its process is gone: stopping -> stopped; with `restart`, running -> starting, so a
    supervisor starts it again."""
    states.move(
        ids=[instance_id],
        from_states=[S.STOPPING],
        to_state=S.STOPPED,
        now=now,
        cause=cause,
        finished_at=now,
    )
    if restart:
        states.move(
            ids=[instance_id], from_states=[S.RUNNING], to_state=S.STARTING, now=now, cause=cause
        )


def _realtime_fail(instance_id: int, *, from_states: list[str], cause: str) -> bool:
    now = clock.now()
    return bool(
        states.move(
            ids=[instance_id],
            from_states=from_states,
            to_state=S.FAILED,
            now=now,
            cause=cause,
            finished_at=now,
        )
    )


logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
# How often a running process's thread flushes its log and looks at its instance's state.
CHECK_SECONDS = 0.5
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0


def backoff_seconds(exits: int) -> float:
    """The wait before restart number `exits` (1, 2, ...): 0.5 s doubling, at most 30 s."""
    return min(BACKOFF_FIRST_SECONDS * 2 ** max(exits - 1, 0), BACKOFF_MAX_SECONDS)


class ProcessWatch:
    """The executor's `tick` for one realtime process: flushes the log, heartbeats the
    attempt, and says when to stop (operator stop, supervisor shutdown)."""

    def __init__(self, attempt: Attempt, log: AttemptLog, shutdown: threading.Event):
        self.attempt = attempt
        self.log = log
        self.shutdown = shutdown
        self.last_check = 0.0
        self.last_heartbeat = time.monotonic()
        self.stop_reason = ""

    def __call__(self) -> bool:
        if self.shutdown.is_set() and not self.stop_reason:
            self.stop_reason = "the supervisor is shutting down"
        moment = time.monotonic()
        if moment - self.last_check < CHECK_SECONDS:
            return bool(self.stop_reason)
        self.last_check = moment
        # Also while stopping: the log of the grace period stays live.
        self.log.flush()
        if moment - self.last_heartbeat >= settings.OPSCENTER_HEARTBEAT_SECONDS:
            self.last_heartbeat = moment
            Attempt.objects.filter(pk=self.attempt.pk).update(heartbeat_at=clock.now())
        if self.stop_reason:
            return True
        state = (
            Instance.objects.filter(pk=self.attempt.instance_id)
            .values_list("state", flat=True)
            .first()
        )
        if state != InstanceState.RUNNING:
            self.stop_reason = (
                "stopped by an operator"
                if state in (InstanceState.STOPPING, InstanceState.STOPPED)
                else f"instance is now {state}: stopping"
            )
            return True
        return False


class Supervisor:
    def __init__(self, *, poll_seconds: float = POLL_SECONDS):
        self.name = states.worker_name()
        self.poll_seconds = poll_seconds
        self.shutdown = threading.Event()
        self.threads: dict[int, threading.Thread] = {}

    # --- the loop -------------------------------------------------------------------

    def run(self, *, until: threading.Event | None = None) -> None:
        """Pass every poll interval until `until` is set (or forever), then shut down."""
        until = until or threading.Event()
        try:
            while not until.is_set() and not self.shutdown.is_set():
                try:
                    self.pass_once()
                except Exception:  # a database hiccup must not end the supervisor
                    logger.exception("realtime supervisor pass failed")
                    close_old_connections()
                until.wait(self.poll_seconds)
        finally:
            self.stop()
            connection.close()

    def pass_once(self) -> None:
        if self.shutdown.is_set():
            return  # shutting down: take nothing new
        self.threads = {pk: t for pk, t in self.threads.items() if t.is_alive()}
        now = clock.now()
        if self.threads:
            RealtimeSettings.objects.filter(
                instance_id__in=list(self.threads), supervisor=self.name
            ).update(heartbeat_at=now)
        self.take_over_lost(now=now)
        self.claim_starting(now=now)

    def stop(self) -> None:
        """End every process (grace, then kill) and hand their instances back."""
        self.shutdown.set()
        for thread in list(self.threads.values()):
            thread.join()
        self.threads.clear()

    # --- claiming -------------------------------------------------------------------

    def claim_starting(self, *, now: datetime.datetime) -> list[int]:
        ids = Instance.objects.filter(
            kind=InstanceKind.REALTIME, state=InstanceState.STARTING
        ).values_list("pk", flat=True)
        claimed = []
        for instance_id in list(ids):
            if instance_id in self.threads:
                continue  # its thread is still ending its previous run
            with transaction.atomic():
                if not states.move(
                    ids=[instance_id],
                    from_states=[S.STARTING],
                    to_state=S.RUNNING,
                    now=now,
                    cause="realtime_claim",
                ):
                    continue  # another supervisor, or an operator's stop, was first
                RealtimeSettings.objects.filter(instance_id=instance_id).update(
                    supervisor=self.name, heartbeat_at=now
                )
            thread = threading.Thread(
                target=self._run_instance,
                args=(instance_id,),
                name=f"realtime-{instance_id}",
                daemon=True,
            )
            self.threads[instance_id] = thread
            thread.start()
            claimed.append(instance_id)
        return claimed

    def take_over_lost(self, *, now: datetime.datetime) -> int:
        """Instances whose supervisor stopped heartbeating: their attempts failed, running
        ones start again, stopping ones are stopped."""
        limit = now - datetime.timedelta(seconds=settings.OPSCENTER_HEARTBEAT_TIMEOUT)
        lost = (
            RealtimeSettings.objects.filter(
                instance__state__in=[InstanceState.RUNNING, InstanceState.STOPPING]
            )
            .filter(Q(heartbeat_at__lt=limit) | Q(heartbeat_at__isnull=True))
            .exclude(instance_id__in=list(self.threads))
        )
        taken = 0
        for row in lost:
            with transaction.atomic():
                # Take it only if its heartbeat did not move since we looked.
                if not RealtimeSettings.objects.filter(
                    pk=row.pk, heartbeat_at=row.heartbeat_at, supervisor=row.supervisor
                ).update(supervisor=self.name, heartbeat_at=now):
                    continue
                reason = f"supervisor {row.supervisor or '?'} lost: no heartbeat"
                for attempt in Attempt.objects.filter(
                    instance_id=row.instance_id, state=AttemptState.RUNNING
                ):
                    kill_orphaned_tree(attempt)
                    Attempt.objects.filter(pk=attempt.pk, state=AttemptState.RUNNING).update(
                        state=AttemptState.FAILED, finished_at=now, reason=reason
                    )
                _restart_or_stop(row.instance_id, now=now, restart=True, cause="takeover")
            logger.warning("realtime instance %s taken over: %s", row.instance_id, reason)
            taken += 1
        return taken

    # --- one instance ---------------------------------------------------------------

    def _run_instance(self, instance_id: int) -> None:
        close_old_connections()
        try:
            exits = 0
            while True:
                ended = self._run_process(instance_id)
                if ended != "exited":
                    return
                exits = self._failures_in_window(instance_id)
                row = RealtimeSettings.objects.get(instance_id=instance_id)
                if exits > row.restart_limit:
                    self._fail(instance_id, exits=exits, row=row)
                    return
                if not self._wait_backoff(instance_id, backoff_seconds(exits)):
                    return
        except Exception:
            logger.exception("realtime instance %s: supervisor thread failed", instance_id)
            _realtime_fail(instance_id, from_states=[S.RUNNING, S.STOPPING], cause="error")
        finally:
            connection.close()

    def _attempt_begin(self, instance_id: int) -> Attempt | None:
        now = clock.now()
        with transaction.atomic():
            if not Instance.objects.filter(pk=instance_id, state=InstanceState.RUNNING).update(
                attempt_count=F("attempt_count") + 1
            ):
                return None
            number = Instance.objects.values_list("attempt_count", flat=True).get(pk=instance_id)
            return Attempt.objects.create(
                instance_id=instance_id,
                number=number,
                state=AttemptState.RUNNING,
                started_at=now,
                heartbeat_at=now,
                worker=self.name,
            )

    def _run_process(self, instance_id: int) -> str:
        """One process start to its end. Returns "exited" (it ended by itself while it
        should run: restart per policy) or "done" (stopped, shut down, not runnable)."""
        attempt = self._attempt_begin(instance_id)
        if attempt is None:
            self._settle(instance_id)
            return "done"
        instance = Instance.objects.select_related("project", "node", "version").get(pk=instance_id)
        row = RealtimeSettings.objects.get(instance_id=instance_id)
        spec = instance.version.spec
        cpu, memory_mb = effective_resources(row, spec)
        RealtimeSettings.objects.filter(pk=row.pk).update(
            applied_cpu=cpu, applied_memory_mb=memory_mb
        )
        log = AttemptLog(attempt)
        log.line(
            f"realtime process start {attempt.number} of {instance.project.code}."
            f"{instance.node.name} v{instance.version.number} ({spec['type']}) on "
            f"{attempt.worker}; cpu {cpu if cpu is not None else '-'}, "
            f"memory {f'{memory_mb} MB' if memory_mb is not None else '-'}"
        )
        workdir = Path(settings.VAR_DIR) / "realtime" / str(instance.pk) / str(attempt.number)
        watch = ProcessWatch(attempt, log, self.shutdown)
        try:
            workdir.mkdir(parents=True, exist_ok=True)
            request = build_request(instance, attempt, workdir)
        except (UnknownParameter, ConfigurationError) as exc:
            log.line(f"cannot run: {exc}")
            self._attempt_end(attempt, log, state=AttemptState.FAILED, reason=str(exc))
            _realtime_fail(instance_id, from_states=[S.RUNNING], cause="cannot_run")
            self._settle(instance_id)
            return "done"
        # A streaming process runs until it is stopped: no timeout. Its resources reach
        # it in its environment (for frameworks that size themselves from them).
        resources = {}
        if cpu is not None:
            resources["OPSCENTER_CPU"] = f"{cpu:g}"
        if memory_mb is not None:
            resources["OPSCENTER_MEMORY_MB"] = str(memory_mb)
        request = dataclasses.replace(
            request,
            timeout_seconds=None,
            env={**request.env, **resources},
            # The memory it runs with is the one it is held to (scripts only).
            memory_limit_mb=memory_mb if spec["type"] in MEMORY_LIMITED_TYPES else None,
        )

        def on_start(pid: int) -> None:
            Attempt.objects.filter(pk=attempt.pk).update(pid=pid)

        try:
            result = execute(
                request, log=log.write, tick=watch, on_start=on_start, tag=f"attempt-{attempt.pk}"
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if watch.stop_reason:
            log.line(f"process stopped: {watch.stop_reason}")
            self._attempt_end(
                attempt, log, state=AttemptState.STOPPED, reason=watch.stop_reason, result=result
            )
            self._settle(instance_id)
            return "done"
        reason = f"process ended while it should run ({result.reason or 'exit code 0'})"
        log.line(reason)
        self._attempt_end(attempt, log, state=AttemptState.FAILED, reason=reason, result=result)
        return "exited"

    def _attempt_end(self, attempt, log, *, state: str, reason: str, result=None) -> None:
        offset, text = log.take()
        with transaction.atomic():
            if text:
                AttemptLogChunk.objects.create(attempt=attempt, offset=offset, text=text)
            Attempt.objects.filter(pk=attempt.pk, state=AttemptState.RUNNING).update(
                state=state,
                finished_at=clock.now(),
                reason=reason[:500],
                exit_code=result.exit_code if result else None,
                cpu_seconds=result.cpu_seconds if result else None,
                peak_memory_mb=result.peak_memory_mb if result else None,
                log_size=offset + len(text),
            )

    def _settle(self, instance_id: int) -> None:
        """After the process ended for good: stopping -> stopped; on shutdown, running ->
        starting so the next supervisor starts it again."""
        _restart_or_stop(
            instance_id, now=clock.now(), restart=self.shutdown.is_set(), cause="shutdown"
        )
        RealtimeSettings.objects.filter(instance_id=instance_id, supervisor=self.name).update(
            supervisor=""
        )

    def _failures_in_window(self, instance_id: int) -> int:
        row = RealtimeSettings.objects.select_related("instance").get(instance_id=instance_id)
        since = clock.now() - datetime.timedelta(seconds=row.restart_window_seconds)
        if row.instance.started_at and row.instance.started_at > since:
            since = row.instance.started_at  # an operator's start begins a new count
        return Attempt.objects.filter(
            instance_id=instance_id, state=AttemptState.FAILED, finished_at__gte=since
        ).count()

    def _fail(self, instance_id: int, *, exits: int, row: RealtimeSettings) -> None:
        failed = _realtime_fail(instance_id, from_states=[S.RUNNING], cause="restart_limit")
        if failed:
            logger.warning(
                "realtime instance %s failed: %s exits, restart limit %s within %ss",
                instance_id,
                exits,
                row.restart_limit,
                row.restart_window_seconds,
            )
        self._settle(instance_id)

    def _wait_backoff(self, instance_id: int, seconds: float) -> bool:
        """Wait before a restart; False when it was stopped (or the supervisor is
        shutting down) meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            state = Instance.objects.values_list("state", flat=True).get(pk=instance_id)
            if state != InstanceState.RUNNING or self.shutdown.is_set():
                self._settle(instance_id)
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            self.shutdown.wait(min(remaining, 0.1))
