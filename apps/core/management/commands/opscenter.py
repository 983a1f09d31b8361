"""`python manage.py opscenter <command>`: every app contributes its commands in cli.py.

An app's cli.py defines COMMANDS = {"name": Subcommand(help, configure, run)}; `run`
gets the parsed options and returns nothing or raises CommandError with a clear message.
"""

import importlib

from django.core.management.base import BaseCommand, CommandError

from apps.core.cli import Subcommand
from apps.core.errors import OpscenterError

CLI_MODULES = [
    "apps.core.encryption_cli",
    "apps.nodes.cli",
    "apps.instances.cli",
    "apps.monitoring.cli",
    "apps.realtime.cli",
    "apps.accounts.cli",
    "apps.demo.cli",
    "apps.backups.cli",
    "apps.resources.cli",
]


def _subcommands() -> dict[str, Subcommand]:
    found: dict[str, Subcommand] = {}
    for module_name in CLI_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # that app has no commands (yet)
                continue
            raise
        found.update(module.COMMANDS)
    return found


class Command(BaseCommand):
    help = "opscenter operations: publish, generate, tick, drain, demo, token, backup..."

    def add_arguments(self, parser):
        subparsers = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
        subparsers.required = True
        for name, sub in sorted(_subcommands().items()):
            sub_parser = subparsers.add_parser(name, help=sub.help, description=sub.help)
            if sub.configure:
                sub.configure(sub_parser)

    def handle(self, *args, **options):
        sub = _subcommands()[options["subcommand"]]
        try:
            sub.run(self, options)
        except OpscenterError as exc:
            lines = [exc.detail] + [
                "  " + ": ".join(str(e.get(k)) for k in ("node", "field", "message") if e.get(k))
                for e in exc.errors
            ]
            raise CommandError("\n".join(lines)) from exc
