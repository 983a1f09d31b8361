from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from apps.core.cli import Subcommand

from .models import ApiToken


def _configure(parser):
    parser.add_argument("action", choices=["create"])
    parser.add_argument("username")
    parser.add_argument("--name", default="cli", help="a label for the token")


def _run(command, options):
    user = get_user_model().objects.filter(username=options["username"]).first()
    if user is None:
        raise CommandError(f"unknown user {options['username']!r}")
    _, key = ApiToken.issue(user=user, name=options["name"])
    command.stdout.write(key)


COMMANDS = {"token": Subcommand(help="token create USERNAME: print a new API token", run=_run, configure=_configure)}
