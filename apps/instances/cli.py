"""`python manage.py opscenter <command>` subcommands of the instances app."""

import datetime

from django.core.management.base import CommandError
from django.utils import timezone

from apps.core import clock
from apps.core.cli import Subcommand, acting_user
from apps.core.errors import OpscenterError
from apps.projects.models import Project

from . import dispatcher, generation, operations, worker
from .selectors import instance_get


def _generate_configure(parser) -> None:
    parser.add_argument(
        "--date",
        help="run date YYYY-MM-DD: the day the instances are scheduled on (their biz date "
        "is the day before); default: tomorrow, by the server's date",
    )
    parser.add_argument(
        "--cutoff",
        help="ISO 8601 time: only versions published before it are used (a time without "
        "offset is read in the server's timezone); 'now' for every current version; "
        "default: the day before the run date at each project's generation time",
    )
    parser.add_argument("--project", help="only this project (its code); default: all")


def _parse_date(value: str | None) -> datetime.date:
    if value is None:
        return timezone.localdate(clock.now()) + datetime.timedelta(days=1)
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--date: {value!r} is not a date (YYYY-MM-DD)") from None


def _parse_cutoff(value: str | None) -> datetime.datetime | None:
    if value is None:
        return None
    if value.strip().lower() == "now":
        return clock.now()
    try:
        cutoff = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"--cutoff: {value!r} is not an ISO 8601 time (e.g. 2026-11-21T23:00+08:00) or 'now'"
        ) from None
    if timezone.is_naive(cutoff):
        cutoff = timezone.make_aware(cutoff)
    return cutoff


def _generate_run(command, options: dict) -> None:
    run_date = _parse_date(options.get("date"))
    cutoff = _parse_cutoff(options.get("cutoff"))
    projects = Project.objects.order_by("code")
    if options.get("project"):
        projects = projects.filter(code=options["project"])
        if not projects.exists():
            raise CommandError(f"--project: unknown project {options['project']!r}")
    total = generation.GenerationResult()
    for project in projects:
        result = generation.generate(
            run_date=run_date, cutoff=cutoff, projects=[project], trigger="cli"
        )
        total += result
        if result.skipped_projects:
            command.stdout.write(f"{project.code}: skipped, the project was deleted")
            continue
        command.stdout.write(
            f"{project.code}: {result.instances_created} instances, "
            f"{result.edges_created} dependencies"
        )
    command.stdout.write(
        f"generated {total.instances_created} instances and {total.edges_created} "
        f"dependencies for run date {run_date} (biz date {run_date - datetime.timedelta(days=1)})"
    )


def _tick_run(command, options: dict) -> None:
    result = dispatcher.tick(sweep=True)
    command.stdout.write(
        f"queued {result.started} instance(s), skipped {result.skipped} dry run(s), "
        f"reaped {result.reaped} lost attempt(s)"
    )


def _drain_configure(parser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for instances that can start within it (retry intervals, "
        "scheduled times); default 60",
    )
    parser.add_argument("--workers", type=int, default=4, help="parallel attempts; default 4")


def _drain_run(command, options: dict) -> None:
    if options["timeout"] < 0:
        raise CommandError("--timeout: must be 0 or more seconds")
    if options["workers"] < 1:
        raise CommandError("--workers: must be at least 1")
    worker.drain(
        timeout=options["timeout"], max_workers=options["workers"], log=command.stdout.write
    )


INSTANCE_ACTIONS = {
    "rerun": operations.instance_rerun,
    "set-success": operations.instance_set_success,
    "stop": operations.instance_stop,
    "pause": operations.instance_pause,
    "resume": operations.instance_resume,
    "run-now": operations.instance_run_now,
}


def _instance_configure(parser) -> None:
    parser.add_argument("action", choices=sorted(INSTANCE_ACTIONS))
    parser.add_argument("ids", nargs="+", type=int, metavar="ID", help="instance ids")
    parser.add_argument(
        "--downstream",
        action="store_true",
        help="rerun: also reset every finished downstream instance",
    )
    parser.add_argument(
        "--as",
        dest="as_user",
        default="",
        help="act as this user, whose role is checked (default: the first superuser)",
    )


def _instance_run(command, options: dict) -> None:
    if options["downstream"] and options["action"] != "rerun":
        raise CommandError("--downstream: only for rerun")
    user = acting_user(options["as_user"])
    operation = INSTANCE_ACTIONS[options["action"]]
    extra = {"downstream": True} if options["downstream"] else {}
    refused = 0
    # Each instance on its own, as a batch on the pages: one refusal does not stop the rest.
    for instance_id in dict.fromkeys(options["ids"]):
        try:
            instance = instance_get(user=user, instance_id=instance_id)
            instance = operation(instance=instance, by=user, source="cli", **extra)
        except OpscenterError as exc:
            refused += 1
            command.stdout.write(f"instance {instance_id}: refused: {exc.detail}")
        else:
            command.stdout.write(
                f"instance {instance_id}: {options['action']}: now {instance.state}"
            )
    if refused:
        raise CommandError(f"{refused} of {len(set(options['ids']))} refused")


COMMANDS = {
    "tick": Subcommand(
        help="one dispatcher pass: start every instance that may start (hands them to the "
        "worker clusters)",
        run=_tick_run,
    ),
    "drain": Subcommand(
        help="dispatch and execute instances in this process until nothing runs and nothing "
        "can start within --timeout (for tests and demos without a cluster)",
        run=_drain_run,
        configure=_drain_configure,
    ),
    "instance": Subcommand(
        help="an operation on instances: rerun [--downstream], set-success, stop, pause, "
        "resume, run-now",
        run=_instance_run,
        configure=_instance_configure,
    ),
    "generate": Subcommand(
        help="generate recurring instances for a run date (default tomorrow)",
        run=_generate_run,
        configure=_generate_configure,
    ),
}
