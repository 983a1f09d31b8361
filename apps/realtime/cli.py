"""`python manage.py opscenter realtime-supervisor`: runs realtime (streaming) nodes."""

import signal
import threading

from django.core.management.base import CommandError

from apps.core.cli import Subcommand

from .supervisor import POLL_SECONDS, Supervisor


def _configure(parser) -> None:
    parser.add_argument(
        "--poll",
        type=float,
        default=POLL_SECONDS,
        help=f"seconds between passes (default {POLL_SECONDS})",
    )


def _run(command, options: dict) -> None:
    poll = options["poll"]
    if not 0 < poll <= 60:
        raise CommandError("--poll: seconds above 0, at most 60")
    until = threading.Event()

    def ask_to_stop(signum, frame) -> None:
        until.set()

    # SIGTERM/SIGINT end the processes (grace, then kill) and hand their instances back.
    signal.signal(signal.SIGTERM, ask_to_stop)
    signal.signal(signal.SIGINT, ask_to_stop)
    supervisor = Supervisor(poll_seconds=poll)
    command.stdout.write(f"realtime supervisor {supervisor.name} running (poll {poll:g}s)")
    command.stdout.flush()
    supervisor.run(until=until)
    command.stdout.write("realtime supervisor stopped")


COMMANDS = {
    "realtime-supervisor": Subcommand(
        help="run realtime (streaming) nodes: start, supervise, restart and stop their "
        "processes; runs until SIGTERM or Ctrl-C",
        run=_run,
        configure=_configure,
    )
}
