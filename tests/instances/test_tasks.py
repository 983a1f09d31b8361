import datetime

import pytest
from django.core.management import CommandError, call_command
from django_q.models import OrmQ, Schedule

from apps.core import loops
from apps.instances import tasks
from apps.instances.models import Attempt, Instance
from tests.factories import instance_create, node_create

PAST = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)


def test_schedules_ensure_creates_the_loops_and_generation_schedules(project):
    Schedule.objects.all().delete()
    tasks.schedules_ensure()
    tasks.schedules_ensure()  # idempotent

    names = sorted(Schedule.objects.values_list("name", flat=True))
    # The daily backup follows its settings (apps.backups), on by default.
    assert names == ["backup", "dispatcher", "generate:acme", "monitor"]
    loop = Schedule.objects.get(name="dispatcher")
    assert (loop.func, loop.schedule_type, loop.minutes, loop.repeats) == (
        "apps.instances.tasks.dispatcher_loop",
        Schedule.MINUTES,
        1,
        -1,
    )


@pytest.mark.django_db(transaction=True)
def test_dispatcher_loop_hands_due_instances_to_their_group_queue(project, users, settings):
    settings.OPSCENTER_TICK_SECONDS = 0.05
    node = node_create(project, "a", owner=users["alice"])
    instance = instance_create(node, PAST)

    totals = tasks.dispatcher_loop(seconds=0)

    assert totals["passes"] == 1
    assert totals["queued"] == 1
    assert Instance.objects.get(pk=instance.pk).state == "queued"
    # A django-q2 task on the "default" queue (the ORM broker's table).
    queued = [task for task in OrmQ.objects.all() if task.task["func"].endswith("run_instance")]
    assert [(t.key, t.task["args"]) for t in queued] == [("default", (instance.pk,))]


def test_dispatcher_loop_passes_every_tick_seconds_until_its_time_is_up(monkeypatch, settings, db):
    """A fake clock: each pass and each sleep advance it, so the count is exact."""
    settings.OPSCENTER_TICK_SECONDS = 2
    moments = {"now": 0.0}
    passes = []

    def fake_tick():
        passes.append(moments["now"])
        return type("R", (), {"started": 0, "skipped": 0, "reaped": 0})()

    monkeypatch.setattr(tasks.dispatcher, "tick", fake_tick)
    monkeypatch.setattr(loops.time, "monotonic", lambda: moments["now"])
    monkeypatch.setattr(loops.time, "sleep", lambda s: moments.update(now=moments["now"] + s))

    totals = tasks.dispatcher_loop(seconds=7)

    assert passes == [0, 2, 4, 6, 7]
    assert (totals["passes"], totals["handed_over"]) == (5, False)


def test_dispatcher_loop_runs_until_the_next_run_takes_over(monkeypatch, settings, db):
    settings.OPSCENTER_TICK_SECONDS = 2
    moments = {"now": 0.0}
    passes = []

    def fake_tick():
        passes.append(moments["now"])
        if moments["now"] == 80:  # the next minute's run starts, late
            loops.turn_take(name=tasks.DISPATCHER_SCHEDULE)
        return type("R", (), {"started": 0, "skipped": 0, "reaped": 0})()

    monkeypatch.setattr(tasks.dispatcher, "tick", fake_tick)
    monkeypatch.setattr(loops.time, "monotonic", lambda: moments["now"])
    monkeypatch.setattr(loops.time, "sleep", lambda s: moments.update(now=moments["now"] + s))

    totals = tasks.dispatcher_loop()

    # Past the minute, until the run that relieves it has started; not a pass more.
    assert passes == [float(t) for t in range(0, 81, 2)]
    assert (totals["passes"], totals["handed_over"]) == (41, True)


@pytest.mark.django_db(transaction=True)
def test_run_instance_task_runs_one_attempt_and_is_idempotent(project, users):
    node = node_create(project, "a", owner=users["alice"], type="shell", content="echo hi")
    instance = instance_create(node, PAST, state="queued")

    assert tasks.run_instance(instance.pk) == "succeeded"
    # A redelivered task finds the instance taken and does nothing.
    assert tasks.run_instance(instance.pk) is None
    assert Attempt.objects.filter(instance=instance).count() == 1


def test_cli_tick_queues_due_instances(project, users, capsys):
    node = node_create(project, "a", owner=users["alice"])
    instance = instance_create(node, PAST)
    call_command("opscenter", "tick")
    assert "queued 1 instance(s)" in capsys.readouterr().out
    assert Instance.objects.get(pk=instance.pk).state == "queued"


@pytest.mark.django_db(transaction=True)
def test_cli_drain_runs_everything_that_can_start(project, users, capsys):
    a = node_create(project, "a", owner=users["alice"], type="shell", content="echo a")
    b = node_create(project, "b", owner=users["alice"], upstream=[a])
    ia = instance_create(a, PAST)
    ib = instance_create(b, PAST, upstream=[ia])
    later = instance_create(a, datetime.datetime(2099, 1, 1, tzinfo=datetime.UTC))

    call_command("opscenter", "drain", "--timeout", "5")

    assert "executed 2 attempt(s)" in capsys.readouterr().out
    states = dict(Instance.objects.values_list("pk", "state"))
    assert (states[ia.pk], states[ib.pk], states[later.pk]) == ("succeeded", "succeeded", "pending")


def test_cli_drain_refuses_bad_options(db):
    with pytest.raises(CommandError, match="--timeout"):
        call_command("opscenter", "drain", "--timeout", "-1")
    with pytest.raises(CommandError, match="--workers"):
        call_command("opscenter", "drain", "--workers", "0")
