import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ, Schedule, Task
from django_q.scheduler import scheduler

from apps.instances import generation, tasks
from apps.instances.models import GenerationRun, Instance
from apps.projects.models import Project
from tests.factories import node_create

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
EARLY = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)


def at(year, month, day, hour, minute=0, second=0, tz=SHANGHAI) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, minute, second, tzinfo=tz)


def nightly(code: str = "acme") -> Schedule:
    return Schedule.objects.get(name=f"generate:{code}")


@pytest.fixture(autouse=True)
def only_generation_schedules(db):
    """Migrations also create the dispatcher loop's schedule; these tests are about the
    generation schedules alone (and must not run a minute-long loop in sync mode)."""
    Schedule.objects.exclude(name__startswith="generate:").delete()


@pytest.fixture
def pipeline(project, users):
    """Two daily nodes of `project`, published long ago."""
    a = node_create(project, "a", owner=users["alice"], published_at=EARLY)
    return [a, node_create(project, "b", owner=users["alice"], upstream=[a], published_at=EARLY)]


def test_a_new_project_gets_its_nightly_schedule(db):
    with time_machine.travel(at(2026, 11, 21, 10), tick=False):
        Project.objects.create(code="acme", name="Acme", timezone="Asia/Shanghai")

    schedule = nightly()
    assert schedule.func == "apps.instances.tasks.generate_project"
    assert schedule.kwargs == "{'project': 'acme'}"
    assert (schedule.schedule_type, schedule.repeats) == (Schedule.ONCE, 1)
    assert schedule.intended_date_kwarg == "intended_at"
    # 23:00 in the project's timezone, whatever the server's.
    assert schedule.next_run == at(2026, 11, 21, 23)


def test_schedule_follows_the_project_and_goes_with_it(db):
    with time_machine.travel(at(2026, 11, 21, 10), tick=False):
        project = Project.objects.create(code="acme", name="Acme", timezone="Asia/Shanghai")
        project.generation_time = "01:30"  # as a form would set it
        project.timezone = "Europe/Berlin"
        project.save()

        assert nightly().next_run == at(2026, 11, 22, 1, 30, tz=BERLIN)
        assert Schedule.objects.filter(name__startswith="generate:").count() == 1

        project.delete()

    assert not Schedule.objects.filter(name__startswith="generate:").exists()


def test_generation_time_is_kept_in_the_project_timezone_across_dst(db):
    with time_machine.travel(at(2026, 3, 28, 12, tz=BERLIN), tick=False):
        project = Project.objects.create(code="berlin", name="Berlin", timezone="Europe/Berlin")

    first = generation.next_generation_at(project, at(2026, 3, 28, 12, tz=BERLIN))
    second = generation.next_generation_at(project, first)
    assert first.astimezone(datetime.UTC) == datetime.datetime(2026, 3, 28, 22, tzinfo=datetime.UTC)
    # Summer time began in between: the next night comes 23 hours later, still at 23:00.
    assert second.astimezone(datetime.UTC) == datetime.datetime(
        2026, 3, 29, 21, tzinfo=datetime.UTC
    )
    assert generation.previous_generation_at(project, second) == second
    assert (
        generation.previous_generation_at(project, second - datetime.timedelta(seconds=1)) == first
    )


def test_the_task_generates_the_next_day_and_rearms_the_schedule(
    pipeline, django_capture_on_commit_callbacks
):
    with (
        time_machine.travel(at(2026, 11, 22, 23, 0, 5), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        answer = tasks.generate_project("acme", intended_at=at(2026, 11, 22, 23).isoformat())

    assert answer == {"instances_created": 2, "edges_created": 1}
    assert set(Instance.objects.values_list("biz_date", flat=True)) == {datetime.date(2026, 11, 22)}
    assert Instance.objects.get(node=pipeline[0]).scheduled_at == at(2026, 11, 23, 2)
    run = GenerationRun.objects.get()
    assert (run.run_date, run.trigger, run.cutoff) == (
        datetime.date(2026, 11, 23),
        "schedule",
        at(2026, 11, 22, 23),
    )
    schedule = nightly()
    assert (schedule.repeats, schedule.next_run) == (1, at(2026, 11, 23, 23))


def test_after_missed_nights_the_task_catches_up_only_the_last_one(
    pipeline, django_capture_on_commit_callbacks
):
    # The cluster was down from the 22nd to the morning of the 25th.
    with (
        time_machine.travel(at(2026, 11, 25, 10), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        tasks.generate_project("acme", intended_at=at(2026, 11, 22, 23).isoformat())

    # The night of the 24th is due at once (it makes the 25th); the 23rd is not made.
    assert nightly().next_run == at(2026, 11, 24, 23)
    assert set(GenerationRun.objects.values_list("run_date", flat=True)) == {
        datetime.date(2026, 11, 23)
    }


def test_the_task_of_a_deleted_project_does_nothing(db):
    assert tasks.generate_project("gone", intended_at=at(2026, 11, 22, 23).isoformat()) == {
        "instances_created": 0,
        "edges_created": 0,
    }
    assert not Schedule.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_scheduler_queues_the_task_with_its_intended_time(pipeline):
    Schedule.objects.filter(name="generate:acme").update(next_run=at(2026, 11, 22, 23))

    with time_machine.travel(at(2026, 11, 22, 23, 0, 1), tick=False):
        scheduler(broker=ORM(list_key=Conf.CLUSTER_NAME))
        assert nightly().repeats == 0  # fired; the task re-arms it
        (queued,) = OrmQ.objects.all()
        package = queued.task
        assert package["func"] == "apps.instances.tasks.generate_project"
        assert package["kwargs"]["project"] == "acme"
        assert datetime.datetime.fromisoformat(package["kwargs"]["intended_at"]) == at(
            2026, 11, 22, 23
        )

        # What a worker does with it:
        tasks.generate_project(**package["kwargs"])

    assert Instance.objects.filter(biz_date=datetime.date(2026, 11, 22)).count() == 2
    assert (nightly().repeats, nightly().next_run) == (1, at(2026, 11, 23, 23))


@pytest.mark.django_db(transaction=True)
def test_the_scheduler_in_sync_mode_runs_the_task_and_it_stays_armed(pipeline, monkeypatch):
    # Sync mode runs the task inside the scheduler's transaction, before the scheduler
    # saves its own (stale) copy of the schedule: the re-arm must still win.
    monkeypatch.setattr(Conf, "SYNC", True)
    Schedule.objects.filter(name="generate:acme").update(next_run=at(2026, 11, 22, 23))

    with time_machine.travel(at(2026, 11, 22, 23, 0, 1), tick=False):
        scheduler(broker=ORM(list_key=Conf.CLUSTER_NAME))

    assert Instance.objects.filter(biz_date=datetime.date(2026, 11, 22)).count() == 2
    task = Task.objects.get(func="apps.instances.tasks.generate_project")
    assert task.success
    assert task.result == {"instances_created": 2, "edges_created": 1}
    assert (nightly().repeats, nightly().next_run) == (1, at(2026, 11, 23, 23))


def test_sync_catches_up_a_night_missed_since_the_project_was_created(db):
    with time_machine.travel(at(2026, 11, 21, 10), tick=False):
        project = Project.objects.create(code="acme", name="Acme", timezone="Asia/Shanghai")
    assert nightly().next_run == at(2026, 11, 21, 23)

    # The night of the 21st passed without generating the 22nd.
    with time_machine.travel(at(2026, 11, 22, 10), tick=False):
        generation.generation_schedule_sync(project)
        assert nightly().next_run == at(2026, 11, 21, 23)

        generation.generate(run_date=datetime.date(2026, 11, 22), projects=[project])
        generation.generation_schedule_sync(project)
        assert nightly().next_run == at(2026, 11, 22, 23)


def test_sync_all_creates_missing_and_drops_stale_schedules(project):
    Schedule.objects.filter(name="generate:acme").delete()
    Schedule.objects.create(name="generate:gone", func="apps.instances.tasks.generate_project")
    Schedule.objects.create(name="something-else", func="math.floor")

    generation.generation_schedules_sync_all()

    names = set(Schedule.objects.values_list("name", flat=True))
    assert names == {"generate:acme", "something-else"}
    generation.generation_schedules_sync_all()
    assert Schedule.objects.filter(name="generate:acme").count() == 1
