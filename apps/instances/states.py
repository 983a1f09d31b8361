"""The instance state machine: the ONE place that writes `Instance.state`.

Every transition is one conditional update, `filter(pk=x, state=old).update(state=new)`:
only the caller that changed a row goes on. This makes two dispatchers, a redelivered
task, a stop racing a finish, or a reaper racing a slow worker harmless. Each change
also writes an InstanceEvent (from, to, attempt, cause, time) in the same transaction:
the record of every change and the outbox that monitoring reads.

    pending -> queued -> running -> succeeded | failed | stopped
    queued -> pending (no worker took its task in time: handed out again)
    pending (dry run, node offline) -> skipped
    queued -> succeeded (a virtual instance: nothing to run)
    running -> pending (retry after its interval)
    pending | queued | running -> stopped (operator, backfill stopped)
    succeeded | failed | stopped | skipped -> pending (rerun)
    pending | failed | stopped -> succeeded (set success, `forced`)
  realtime:
    stopped | failed -> starting -> running -> stopping -> stopped
    starting -> stopped; running -> starting (restart elsewhere); running | stopping -> failed
"""

import datetime
import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce

from apps.core import times

from .choices import AttemptState, InstanceState, WaitReason
from .models import Attempt, AttemptLogChunk, Instance, InstanceEvent

S = InstanceState
FINISHED_STATES = (S.SUCCEEDED, S.FAILED, S.STOPPED, S.SKIPPED)

# Every change a caller may ask for: (from, to). Anything else is a bug, refused loudly.
TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    [
        (S.PENDING, S.QUEUED),
        (S.PENDING, S.SKIPPED),
        (S.QUEUED, S.RUNNING),
        (S.QUEUED, S.PENDING),
        (S.QUEUED, S.SUCCEEDED),
        (S.RUNNING, S.SUCCEEDED),
        (S.RUNNING, S.FAILED),
        (S.RUNNING, S.STOPPED),
        (S.RUNNING, S.PENDING),
        (S.PENDING, S.STOPPED),
        (S.QUEUED, S.STOPPED),
        *[(old, S.PENDING) for old in FINISHED_STATES],
        (S.PENDING, S.SUCCEEDED),
        (S.FAILED, S.SUCCEEDED),
        (S.STOPPED, S.SUCCEEDED),
        # realtime
        (S.STOPPED, S.STARTING),
        (S.FAILED, S.STARTING),
        (S.STARTING, S.RUNNING),
        (S.STARTING, S.STOPPED),
        (S.RUNNING, S.STOPPING),
        (S.RUNNING, S.STARTING),
        (S.STOPPING, S.STOPPED),
        (S.STOPPING, S.FAILED),
    ]
)


class IllegalTransition(ValueError):
    pass


def _check(from_states: Iterable[str], to_state: str) -> tuple[str, ...]:
    from_states = tuple(from_states)
    for old in from_states:
        if (old, to_state) not in TRANSITIONS:
            raise IllegalTransition(f"no transition {old} -> {to_state}")
    return from_states


def move(
    *,
    ids: Iterable[int],
    from_states: Iterable[str],
    to_state: str,
    now: datetime.datetime,
    cause: str = "",
    attempt: int | None = None,
    where: Q | None = None,
    **changes,
) -> list[int]:
    """Move the instances among `ids` that are in one of `from_states` to `to_state`,
    with `changes` to other fields, and record an event for each. Returns the ids moved;
    the others (in another state by now, or not matching `where`) are left alone.

    One instance from one state is one conditional update. Otherwise the rows are locked
    first (SELECT ... FOR UPDATE; SQLite's write transactions are exclusive anyway), so
    the events name exactly the rows changed and the state each came from."""
    from_states = _check(from_states, to_state)
    ids = list(ids)
    if not ids:
        return []
    rows = Instance.objects.filter(where) if where is not None else Instance.objects.all()
    with transaction.atomic(savepoint=False):
        if len(ids) == 1 and len(from_states) == 1:
            moved = [(ids[0], from_states[0])]
            if not rows.filter(pk=ids[0], state=from_states[0]).update(state=to_state, **changes):
                return []
        else:
            moved = list(
                rows.select_for_update()
                .filter(pk__in=ids, state__in=from_states)
                .order_by("pk")
                .values_list("pk", "state")
            )
            for old in {state for _, state in moved}:
                Instance.objects.filter(
                    pk__in=[pk for pk, state in moved if state == old], state=old
                ).update(state=to_state, **changes)
        InstanceEvent.objects.bulk_create(
            InstanceEvent(
                instance_id=pk,
                from_state=old,
                to_state=to_state,
                attempt=attempt,
                cause=cause,
                at=now,
            )
            for pk, old in moved
        )
    return [pk for pk, _ in moved]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def instances_queue(*, ids: list[int], now: datetime.datetime) -> int:
    """pending -> queued for the instances the dispatcher chose (others are left alone)."""
    return len(
        move(
            ids=ids,
            from_states=[S.PENDING],
            to_state=S.QUEUED,
            now=now,
            cause="dispatch",
            queued_at=now,
            wait_reason="",
        )
    )


def queued_overdue_requeue(*, before: datetime.datetime, now: datetime.datetime) -> list[int]:
    """queued -> pending for the instances queued before `before` that no worker has taken:
    their task was lost (a cluster killed after taking it from the broker), so the
    dispatcher hands them out again. The condition on queued_at makes it once: a second
    dispatcher finds them queued anew. Should the lost task still reach a worker, it and
    the new one race for attempt_start, which only one of them wins."""
    overdue = Instance.objects.filter(state=S.QUEUED, queued_at__lt=before)
    return move(
        ids=list(overdue.values_list("pk", flat=True)),
        from_states=[S.QUEUED],
        to_state=S.PENDING,
        now=now,
        cause="requeue",
        where=Q(queued_at__lt=before),
        queued_at=None,
    )


def dry_runs_skip(*, ids: list[int], now: datetime.datetime) -> int:
    """A weekly/monthly/yearly node's off-day instance is skipped once its upstream is done."""
    return len(
        move(
            ids=ids,
            where=Q(dry_run=True),
            from_states=[S.PENDING],
            to_state=S.SKIPPED,
            now=now,
            cause="dry_run",
            finished_at=now,
            wait_reason="",
        )
    )


def instances_cancel(*, ids: list[int], now: datetime.datetime, cause: str) -> list[int]:
    """pending -> skipped: the instance will not run (its node was taken offline)."""
    return move(
        ids=ids,
        from_states=[S.PENDING],
        to_state=S.SKIPPED,
        now=now,
        cause=cause,
        finished_at=now,
        wait_reason="",
    )


def _attempt_started(now: datetime.datetime) -> dict:
    """What starting an attempt changes on its instance, besides the state."""
    return {
        "attempt_count": F("attempt_count") + 1,
        "next_attempt_at": None,
        "wait_reason": "",
        "run_now": False,
        # started_at marks the start of this run (first attempt); retries keep it.
        "started_at": Coalesce("started_at", Value(now)),
    }


def attempt_start(*, instance_id: int, now: datetime.datetime) -> Attempt | None:
    """queued -> running, with a new attempt. None when someone else got there first
    (the task was delivered twice) or the instance was stopped while queued. Inside a
    caller's transaction it joins it (no savepoint): the worker reads what it needs to
    run the attempt in the same transaction."""
    with transaction.atomic(savepoint=False):
        number = (
            Instance.objects.filter(pk=instance_id).values_list("attempt_count", flat=True).first()
        )
        if number is None:
            return None
        if not move(
            ids=[instance_id],
            from_states=[S.QUEUED],
            to_state=S.RUNNING,
            now=now,
            cause="start",
            attempt=number + 1,
            where=Q(attempt_count=number),
            **_attempt_started(now),
        ):
            return None
        return Attempt.objects.create(
            instance_id=instance_id,
            number=number + 1,
            state=AttemptState.RUNNING,
            started_at=now,
            heartbeat_at=now,
            worker=worker_name(),
        )


def virtual_attempts_run(
    *, ids: list[int], now: datetime.datetime, log_text: Callable[[dict, int], str]
) -> list[dict]:
    """queued -> succeeded for virtual instances, each with an attempt that starts and ends
    at `now` and a log of `log_text(row, attempt_number)`, in one transaction (a virtual
    node runs nothing, so no one could see it running). Returns a row per instance that
    was still queued (with id, backfill_id and resource_group__name); the others (taken
    or stopped meanwhile, or of a node version that is not virtual) are left alone."""
    with transaction.atomic():
        rows = list(
            Instance.objects.select_for_update(of=("self",))
            .filter(pk__in=ids, state=S.QUEUED, version__spec__type="virtual")
            .order_by("id")
            .values(
                "id",
                "attempt_count",
                "biz_date",
                "backfill_id",
                "project__code",
                "node__name",
                "version__number",
                "resource_group__name",
            )
        )
        if not rows:
            return []
        # Locked above: every row moves. Their attempt numbers differ, so the events name
        # theirs afterwards.
        move(
            ids=[row["id"] for row in rows],
            from_states=[S.QUEUED],
            to_state=S.SUCCEEDED,
            now=now,
            cause="virtual",
            finished_at=now,
            **_attempt_started(now),
        )
        worker = worker_name()
        texts = [log_text(row, row["attempt_count"] + 1) for row in rows]
        attempts = Attempt.objects.bulk_create(
            Attempt(
                instance_id=row["id"],
                number=row["attempt_count"] + 1,
                state=AttemptState.SUCCEEDED,
                started_at=now,
                finished_at=now,
                heartbeat_at=now,
                worker=worker,
                log_size=len(text),
            )
            for row, text in zip(rows, texts, strict=True)
        )
        AttemptLogChunk.objects.bulk_create(
            AttemptLogChunk(attempt_id=attempt.pk, offset=0, text=text)
            for attempt, text in zip(attempts, texts, strict=True)
        )
        return rows


@dataclass
class AttemptOutcome:
    outcome: str  # succeeded | failed | timed_out | stopped | lost
    exit_code: int | None = None
    cpu_seconds: float | None = None
    peak_memory_mb: float | None = None
    reason: str = ""
    # False for failures that another attempt cannot fix (an unknown parameter).
    retryable: bool = True
    # Why the executor killed it, if it did: "timeout" or "memory".
    killed_for: str = ""


def attempt_finish(
    *,
    attempt: Attempt,
    result: AttemptOutcome,
    retries: int,
    retry_interval_seconds: float,
    now: datetime.datetime,
    log_tail: tuple[int, str] | None = None,
) -> str | None:
    """Record how an attempt ended and move its instance on. Returns the instance's new
    state, or None when the instance had already left `running` (stopped by an operator,
    reaped as lost) and only the attempt was recorded."""
    attempt_state = {
        "succeeded": AttemptState.SUCCEEDED,
        "stopped": AttemptState.STOPPED,
    }.get(result.outcome, AttemptState.FAILED)
    with transaction.atomic():
        if log_tail and log_tail[1]:
            AttemptLogChunk.objects.create(attempt=attempt, offset=log_tail[0], text=log_tail[1])
        recorded = Attempt.objects.filter(pk=attempt.pk, state=AttemptState.RUNNING).update(
            state=attempt_state,
            finished_at=now,
            exit_code=result.exit_code,
            cpu_seconds=result.cpu_seconds,
            peak_memory_mb=result.peak_memory_mb,
            reason=result.reason[:500],
            killed_for=result.killed_for,
            log_size=log_tail[0] + len(log_tail[1]) if log_tail else F("log_size"),
        )
        if not recorded:
            return None  # the reaper declared this attempt lost; it has moved on
        ended = dict(ids=[attempt.instance_id], from_states=[S.RUNNING], now=now)
        if attempt_state == AttemptState.SUCCEEDED:
            new_state = S.SUCCEEDED
            changed = move(**ended, to_state=new_state, attempt=attempt.number, finished_at=now)
        elif attempt_state == AttemptState.STOPPED:
            new_state = S.STOPPED
            changed = move(**ended, to_state=new_state, attempt=attempt.number, finished_at=now)
        elif (
            result.retryable
            and Instance.objects.filter(pk=attempt.instance_id, retries_used__lt=retries).exists()
        ):
            new_state = S.PENDING
            changed = move(
                **ended,
                to_state=new_state,
                attempt=attempt.number,
                cause="retry",
                retries_used=F("retries_used") + 1,
                next_attempt_at=now + datetime.timedelta(seconds=retry_interval_seconds),
                wait_reason=WaitReason.WAITING_TIME,
            )
        else:
            new_state = S.FAILED
            changed = move(
                **ended,
                to_state=new_state,
                attempt=attempt.number,
                cause=result.outcome,
                finished_at=now,
            )
        return new_state if changed else None


def instances_stop(*, ids: list[int], now: datetime.datetime, cause: str = "stop") -> list[int]:
    """pending | queued | running -> stopped. A running attempt's worker notices at its
    next check and kills the process tree."""
    return move(
        ids=ids,
        from_states=[S.PENDING, S.QUEUED, S.RUNNING],
        to_state=S.STOPPED,
        now=now,
        cause=cause,
        finished_at=now,
        wait_reason="",
    )


def instance_stop_running(*, instance_id: int, now: datetime.datetime) -> bool:
    return bool(instances_stop(ids=[instance_id], now=now))


def attempt_lost(
    *,
    attempt: Attempt,
    retries: int,
    retry_interval_seconds: float,
    now: datetime.datetime,
    reason: str = "",
) -> str | None:
    """The reaper's transition for an attempt whose worker is gone (stopped heartbeating,
    or its process died): the attempt failed ("worker lost"); the instance retries or
    fails like any failure."""
    seen = attempt.heartbeat_at
    with transaction.atomic():
        # Claim the attempt only if its heartbeat did not move since we looked.
        claimed = Attempt.objects.filter(
            pk=attempt.pk, state=AttemptState.RUNNING, heartbeat_at=seen
        ).update(state=AttemptState.RUNNING, heartbeat_at=now)
        if not claimed:
            return None
    return attempt_finish(
        attempt=attempt,
        result=AttemptOutcome(
            outcome="lost",
            reason=reason
            or f"worker {attempt.worker or '?'} lost: no heartbeat since "
            f"{times.format_when(seen) if seen else 'the start'}",
        ),
        retries=retries,
        retry_interval_seconds=retry_interval_seconds,
        now=now,
    )


# A rerun makes a finished instance pending again as if it had never run; its attempts
# stay (the next one is numbered after them).
RERUN_RESET = dict(
    forced=False,
    paused=False,
    run_now=False,
    retries_used=0,
    queued_at=None,
    started_at=None,
    finished_at=None,
    next_attempt_at=None,
    wait_reason="",
)


def instances_rerun(*, ids: list[int], now: datetime.datetime, cause: str = "rerun") -> list[int]:
    """finished -> pending, with a clean slate (see RERUN_RESET)."""
    return move(
        ids=ids,
        from_states=FINISHED_STATES,
        to_state=S.PENDING,
        now=now,
        cause=cause,
        **RERUN_RESET,
    )


SET_SUCCESS_FROM = (S.PENDING, S.FAILED, S.STOPPED)


def instance_set_success(*, instance_id: int, now: datetime.datetime) -> bool:
    """pending | failed | stopped -> succeeded, marked forced (an operator said so)."""
    return bool(
        move(
            ids=[instance_id],
            from_states=SET_SUCCESS_FROM,
            to_state=S.SUCCEEDED,
            now=now,
            cause="set_success",
            forced=True,
            finished_at=now,
            next_attempt_at=None,
            run_now=False,
            wait_reason="",
        )
    )
