"""django-q2 tasks of the instances app. Thin: parse, call a service."""

import datetime

from django.conf import settings
from django.db import close_old_connections

from apps.core import clock, loops

from . import dispatcher, generation, worker


def generate_project(project: str, intended_at: str | None = None) -> dict:
    """The nightly generation schedule "generate:<project>" fires this at the project's
    generation time; django-q2 passes the time it was due as `intended_at` (ISO 8601)."""
    due = datetime.datetime.fromisoformat(intended_at) if intended_at else clock.now()
    result = generation.generate_nightly(project_code=project, intended_at=due)
    return {"instances_created": result.instances_created, "edges_created": result.edges_created}


def run_instance(instance_id: int) -> str | None:
    """One attempt of a queued instance, on a worker of its resource group's cluster."""
    return worker.run_attempt(instance_id)


def run_instances(instance_ids: list[int]) -> None:
    """A batch of queued virtual instances (see dispatcher.handoff_batches)."""
    worker.run_instances(instance_ids)


DISPATCHER_SCHEDULE = "dispatcher"


def dispatcher_loop(seconds: float = loops.MAX_SECONDS) -> dict:
    """The "dispatcher" schedule starts this every minute: it passes over the instances
    every OPSCENTER_TICK_SECONDS until the next minute's run has started and takes over
    (apps.core.loops), so passes never pause however late the scheduler starts a run, and
    instances whose time (scheduled or retry) comes start within a tick. Finishing
    instances start their children themselves; this loop is for time, retries, operator
    actions and lost workers. `seconds` bounds a run that nothing relieves."""
    totals = {"passes": 0, "queued": 0, "skipped": 0, "reaped": 0}

    def one_pass() -> None:
        result = dispatcher.tick()
        totals["queued"] += result.started
        totals["skipped"] += result.skipped
        totals["reaped"] += result.reaped

    try:
        run = loops.loop_run(
            name=DISPATCHER_SCHEDULE,
            one_pass=one_pass,
            every_seconds=settings.OPSCENTER_TICK_SECONDS,
            max_seconds=seconds,
        )
        totals["passes"] = run.passes
        totals["handed_over"] = run.handed_over
        return totals
    finally:
        close_old_connections()


def schedules_ensure() -> None:
    """The one idempotent place that creates opscenter's django-q2 schedules: the
    periodic loops the apps declare (apps.core.schedules: the dispatcher here, the
    monitor, ...), the schedules that follow settings (the daily backup) and each
    project's nightly generation. Runs after every migrate."""
    from django.utils.module_loading import import_string
    from django_q.models import Schedule

    from apps.core.schedules import PERIODIC, SYNCED

    for periodic in PERIODIC.values():
        Schedule.objects.update_or_create(
            name=periodic.name,
            defaults={
                "func": periodic.func,
                "schedule_type": Schedule.MINUTES,
                "minutes": periodic.minutes,
                "repeats": -1,
            },
        )
    for sync in SYNCED:
        import_string(sync)()
    generation.generation_schedules_sync_all()
