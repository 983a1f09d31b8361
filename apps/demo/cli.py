from apps.core.cli import Subcommand

from . import services


def _configure(parser):
    parser.add_argument(
        "--days",
        type=int,
        default=3,
        help="days of history to make by really running the pipelines (default 3)",
    )


def _run(command, options):
    days = options["days"]
    result = services.demo_run(days=days, log=command.stdout.write)
    project = result.project
    command.stdout.write(
        f"\nDemo project {project.code!r} ({project.timezone}) is ready: "
        f"{result.instances_created} instances generated for "
        f"{result.days[0] if result.days else '-'} .. tomorrow."
    )
    command.stdout.write(f"Warehouse (SQLite): {result.warehouse_path}")
    command.stdout.write("Demo users (username / password):")
    for username, role, password in services.DEMO_USERS:
        command.stdout.write(f"  {username} / {password}  ({role} of {project.code})")


COMMANDS = {
    "demo": Subcommand(
        help="creates a demo project with real pipelines and a few days of history",
        run=_run,
        configure=_configure,
    )
}
