"""Periodic loops that hand over from one run to the next without a gap.

A django-q2 schedule starts its task at most once a minute, and only when the cluster's
scheduler looks, which it does every 30 s or so: the run due at 12:00:00 may start at
12:00:29, the next one on time at 12:01:00. A loop that passes for a fixed 55 s then
leaves the world unwatched for up to half a minute (the demo's 5 s retry waited 38 s).

So a run does not stop at a fixed time: it takes the loop's turn when it starts (one
row per loop name), passes every `every_seconds`, and ends at the first pass after a
newer run took the turn, which then goes on. Two runs overlap by at most one pass;
`max_seconds` only bounds a run that no successor relieves (the schedule stopped) and
must exceed the schedule's minute plus the scheduler's worst start latency.
"""

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from . import clock
from .models import LoopTurn

# One minute between runs, up to ~30 s of start latency (plus the scheduler's drift),
# and a margin: a run is relieved well before this.
MAX_SECONDS = 120.0


def turn_take(*, name: str) -> str:
    """Make the calling run the one whose turn it is; returns its token."""
    token = uuid.uuid4().hex
    fields = {"holder": token, "taken_at": clock.now()}
    if not LoopTurn.objects.filter(name=name).update(**fields):
        try:
            with transaction.atomic():
                LoopTurn.objects.create(name=name, **fields)
        except IntegrityError:  # another run created it a moment ago: ours is newer
            LoopTurn.objects.filter(name=name).update(**fields)
    return token


def turn_held(*, name: str, token: str) -> bool:
    return LoopTurn.objects.filter(name=name, holder=token).exists()


@dataclass
class LoopRun:
    passes: int = 0
    handed_over: bool = False


def loop_run(
    *,
    name: str,
    one_pass: Callable[[], None],
    every_seconds: float,
    max_seconds: float = MAX_SECONDS,
) -> LoopRun:
    """Call `one_pass` every `every_seconds` until a newer run of loop `name` takes the
    turn, or for `max_seconds` at most (0: one pass)."""
    token = turn_take(name=name)
    deadline = time.monotonic() + max_seconds
    run = LoopRun()
    while True:
        one_pass()
        run.passes += 1
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return run
        time.sleep(min(every_seconds, remaining))
        if not turn_held(name=name, token=token):
            run.handed_over = True
            return run
