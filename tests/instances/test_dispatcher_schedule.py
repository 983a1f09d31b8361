"""The dispatcher loop as django-q2's once-a-minute schedule runs it, on a simulated
clock: runs start late (the scheduler looks only every 30 s or so), and yet passes must
follow each other every OPSCENTER_TICK_SECONDS, so a retry due at any moment starts
within one tick of it."""

import threading

import pytest
from django.db import connection

from apps.instances import tasks

TICK = 2.0
# django-q2 starts the schedule's run of each minute when its scheduler next looks: at
# once, or up to ~30 s late. The worst for a loop is a run on time followed by a late one.
STARTS = [0.0, 60.0 + 29.5, 120.0, 180.0 + 29.5, 240.0, 300.0 + 29.5]


class SimulatedClock:
    """time.monotonic and time.sleep for loop threads: a sleeper wakes when the simulation
    moves the time past its wake-up; the time moves only when every loop is asleep, so
    each run is exact and nothing depends on the machine's speed."""

    def __init__(self):
        self.now = 0.0
        self.cond = threading.Condition()
        self.wake: dict[int, float] = {}  # sleeping thread -> its wake-up time
        self.live: set[int] = set()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        me = threading.get_ident()
        with self.cond:
            self.wake[me] = self.now + max(seconds, 0.0)
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.now >= self.wake[me])
            del self.wake[me]

    def _quiet(self) -> bool:
        return all(t in self.wake and self.wake[t] > self.now for t in self.live)

    def run(self, starts: list[float], loop) -> None:
        """Start `loop` in a thread at each of `starts`; return when every run ended."""
        starts = list(starts)
        threads = []

        def body(ready: threading.Event):
            me = threading.get_ident()
            with self.cond:
                self.live.add(me)
            ready.set()
            try:
                loop()
            finally:
                connection.close()
                with self.cond:
                    self.live.discard(me)
                    self.cond.notify_all()

        while True:
            with self.cond:
                assert self.cond.wait_for(self._quiet, timeout=30), "a loop never slept"
                wakes = sorted(self.wake[t] for t in self.live)
                if not starts and not wakes:
                    break
                if starts and (not wakes or starts[0] <= wakes[0]):
                    self.now = starts.pop(0)
                    start = True
                else:
                    self.now = wakes[0]
                    start = False
                    self.cond.notify_all()
            if start:
                ready = threading.Event()
                thread = threading.Thread(target=body, args=(ready,), daemon=True)
                thread.start()
                ready.wait()
                threads.append(thread)
        for thread in threads:
            thread.join(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_the_schedules_runs_pass_every_tick_without_a_gap(monkeypatch, settings):
    settings.OPSCENTER_TICK_SECONDS = TICK
    clock = SimulatedClock()
    passes: list[float] = []

    def fake_tick():
        passes.append(clock.now)
        return type("Result", (), {"started": 0, "skipped": 0, "reaped": 0})()

    monkeypatch.setattr(tasks.dispatcher, "tick", fake_tick)
    monkeypatch.setattr("time.monotonic", clock.monotonic)
    monkeypatch.setattr("time.sleep", clock.sleep)

    clock.run(STARTS, tasks.dispatcher_loop)

    passes.sort()
    covered_until = STARTS[-1] + 60  # the last run goes on at least until the next minute
    gaps = [(b - a, a) for a, b in zip(passes, passes[1:], strict=False) if a < covered_until]
    longest, at = max(gaps)
    # A retry due at any moment t is picked up by a pass in [t, t + TICK].
    assert longest <= TICK, f"no pass for {longest:.1f}s after t={at:.1f}s"
    assert passes[0] == 0 and passes[-1] >= covered_until
    # Runs hand over: never more than two at once, and not for long.
    overlap = sum(1 for a, b in zip(passes, passes[1:], strict=False) if b - a < TICK / 2)
    assert overlap <= 2 * len(STARTS)
