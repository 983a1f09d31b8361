"""The instance state machine.

Every transition is one conditional update, `filter(pk=x, state=old).update(state=new)`:
only the caller that changed a row goes on. This makes two dispatchers, a redelivered
task, a stop racing a finish, or a reaper racing a slow worker harmless.

    pending -> queued -> running -> succeeded | failed | stopped
    pending (dry run) -> skipped
    running -> pending (retry after its interval)
    pending | queued | running -> stopped (operator)
"""

import datetime
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce

from .choices import AttemptState, InstanceState, WaitReason
from .models import Attempt, AttemptLogChunk, Instance


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def instances_queue(*, ids: list[int], now: datetime.datetime) -> int:
    """pending -> queued for the instances the dispatcher chose (others are left alone)."""
    return Instance.objects.filter(pk__in=ids, state=InstanceState.PENDING).update(
        state=InstanceState.QUEUED, queued_at=now, wait_reason=""
    )


def dry_runs_skip(*, ids: list[int], now: datetime.datetime) -> int:
    """A weekly/monthly/yearly node's off-day instance is skipped once its upstream is done."""
    return Instance.objects.filter(pk__in=ids, state=InstanceState.PENDING, dry_run=True).update(
        state=InstanceState.SKIPPED, finished_at=now, wait_reason=""
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
        changed = Instance.objects.filter(pk=instance_id, state=InstanceState.QUEUED).update(
            state=InstanceState.RUNNING, **_attempt_started(now)
        )
        if not changed:
            return None
        number = Instance.objects.values_list("attempt_count", flat=True).get(pk=instance_id)
        return Attempt.objects.create(
            instance_id=instance_id,
            number=number,
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
            .filter(pk__in=ids, state=InstanceState.QUEUED, version__spec__type="virtual")
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
        Instance.objects.filter(pk__in=[row["id"] for row in rows]).update(
            state=InstanceState.SUCCEEDED, finished_at=now, **_attempt_started(now)
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
            log_size=log_tail[0] + len(log_tail[1]) if log_tail else F("log_size"),
        )
        if not recorded:
            return None  # the reaper declared this attempt lost; it has moved on
        running = Instance.objects.filter(pk=attempt.instance_id, state=InstanceState.RUNNING)
        if attempt_state == AttemptState.SUCCEEDED:
            new_state = InstanceState.SUCCEEDED
            changed = running.update(state=new_state, finished_at=now)
        elif attempt_state == AttemptState.STOPPED:
            new_state = InstanceState.STOPPED
            changed = running.update(state=new_state, finished_at=now)
        elif result.retryable and running.filter(retries_used__lt=retries).exists():
            new_state = InstanceState.PENDING
            changed = running.update(
                state=new_state,
                retries_used=F("retries_used") + 1,
                next_attempt_at=now + datetime.timedelta(seconds=retry_interval_seconds),
                wait_reason=WaitReason.WAITING_TIME,
            )
        else:
            new_state = InstanceState.FAILED
            changed = running.update(state=new_state, finished_at=now)
        return new_state if changed else None


def instance_stop_running(*, instance_id: int, now: datetime.datetime) -> bool:
    """pending | queued | running -> stopped. A running attempt's worker notices at its
    next check and kills the process tree."""
    return bool(
        Instance.objects.filter(
            pk=instance_id,
            state__in=[InstanceState.PENDING, InstanceState.QUEUED, InstanceState.RUNNING],
        ).update(state=InstanceState.STOPPED, finished_at=now, wait_reason="")
    )


def attempt_lost(
    *, attempt: Attempt, retries: int, retry_interval_seconds: float, now: datetime.datetime
) -> str | None:
    """The reaper's transition for an attempt whose worker stopped heartbeating: the
    attempt failed ("worker lost"); the instance retries or fails like any failure."""
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
            reason=f"worker {attempt.worker or '?'} lost: no heartbeat since "
            f"{seen.isoformat() if seen else 'the start'}",
        ),
        retries=retries,
        retry_interval_seconds=retry_interval_seconds,
        now=now,
    )
