from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from apps.core.cli import Subcommand

from .models import ApiToken


def _configure(parser):
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    create = sub.add_parser("create", help="print a new API token for USERNAME")
    create.add_argument("username")
    create.add_argument("--name", default="cli", help="a label for the token")
    listing = sub.add_parser("list", help="USERNAME's tokens (never the secret)")
    listing.add_argument("username")
    revoke = sub.add_parser("revoke", help="delete USERNAME's token(s) with this prefix")
    revoke.add_argument("username")
    revoke.add_argument("prefix", help="the first characters shown by `token list`")


def _user(username: str):
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"unknown user {username!r}")
    if not user.is_active:
        raise CommandError(f"user {username!r} is inactive: a token would not work")
    return user


def _run(command, options):
    user = _user(options["username"])
    if options["action"] == "create":
        _, key = ApiToken.issue(user=user, name=options["name"])
        # Only the token on stdout, so `TOKEN=$(... token create alice)` works.
        command.stdout.write(key)
    elif options["action"] == "list":
        for token in ApiToken.objects.filter(user=user):
            used = token.last_used_at.isoformat() if token.last_used_at else "never"
            command.stdout.write(
                f"{token.prefix}  {token.name or '-'}  created {token.created_at.isoformat()}  used {used}"
            )
    else:
        if len(options["prefix"]) < 6:
            raise CommandError("give at least 6 characters of the prefix `token list` shows")
        tokens = ApiToken.objects.filter(user=user, prefix__startswith=options["prefix"])
        if not tokens.exists():
            raise CommandError(f"{user.username} has no token starting with {options['prefix']!r}")
        count, _ = tokens.delete()
        command.stdout.write(f"revoked {count} token(s)")


COMMANDS = {
    "token": Subcommand(
        help="token create|list|revoke USERNAME: API tokens for the JSON API",
        run=_run,
        configure=_configure,
    )
}
