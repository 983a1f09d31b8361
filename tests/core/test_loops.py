"""Periodic loops hand over from one run to the next: the turn, and a run's end."""

import threading

import pytest
from django.db import connection

from apps.core import loops
from apps.core.models import LoopTurn


@pytest.fixture
def fake_time(monkeypatch):
    moments = {"now": 0.0}
    monkeypatch.setattr(loops.time, "monotonic", lambda: moments["now"])
    monkeypatch.setattr(loops.time, "sleep", lambda s: moments.update(now=moments["now"] + s))
    return moments


def test_the_newest_run_holds_the_turn(db):
    first = loops.turn_take(name="dispatcher")
    assert loops.turn_held(name="dispatcher", token=first)
    second = loops.turn_take(name="dispatcher")
    assert not loops.turn_held(name="dispatcher", token=first)
    assert loops.turn_held(name="dispatcher", token=second)
    # Each loop has its own turn.
    other = loops.turn_take(name="monitor")
    assert loops.turn_held(name="dispatcher", token=second)
    assert loops.turn_held(name="monitor", token=other)
    assert LoopTurn.objects.count() == 2


def test_a_run_ends_at_the_first_pass_after_it_was_relieved(db, fake_time):
    seen = []

    def one_pass():
        seen.append(fake_time["now"])
        if fake_time["now"] == 6:
            loops.turn_take(name="loop")

    run = loops.loop_run(name="loop", one_pass=one_pass, every_seconds=2, max_seconds=60)
    assert seen == [0, 2, 4, 6]
    assert (run.passes, run.handed_over) == (4, True)


def test_a_run_nobody_relieves_ends_at_its_maximum(db, fake_time):
    seen = []
    run = loops.loop_run(
        name="loop", one_pass=lambda: seen.append(fake_time["now"]), every_seconds=30
    )
    assert seen == [0, 30, 60, 90, 120]
    assert (run.passes, run.handed_over) == (5, False)
    # Long enough for the next minute's run to start however late django-q2's scheduler
    # (which looks every 30 s) starts it.
    assert loops.MAX_SECONDS > 60 + 30


def test_max_seconds_zero_is_one_pass(db):
    seen = []
    run = loops.loop_run(
        name="loop", one_pass=lambda: seen.append(1), every_seconds=2, max_seconds=0
    )
    assert (seen, run.passes) == ([1], 1)


@pytest.mark.django_db(transaction=True)
def test_runs_starting_at_once_each_take_the_turn_and_one_holds_it():
    tokens, errors = [], []
    barrier = threading.Barrier(4)

    def start():
        try:
            barrier.wait()
            tokens.append(loops.turn_take(name="dispatcher"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and len(tokens) == 4
    held = [t for t in tokens if loops.turn_held(name="dispatcher", token=t)]
    assert len(held) == 1
