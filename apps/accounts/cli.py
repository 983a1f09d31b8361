from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from apps.core import clock
from apps.core.cli import Subcommand

from .selectors import tokens_of
from .services import token_create, token_revoke


def _configure(parser):
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    create = sub.add_parser("create", help="print a new API token for USERNAME")
    create.add_argument("username")
    create.add_argument("--name", default="cli", help="a label for the token")
    create.add_argument(
        "--days",
        type=int,
        default=None,
        help="days until it expires (default OPSCENTER_TOKEN_DAYS, "
        f"now {settings.OPSCENTER_TOKEN_DAYS}); 0: never",
    )
    listing = sub.add_parser("list", help="USERNAME's tokens (never the secret)")
    listing.add_argument("username")
    revoke = sub.add_parser("revoke", help="revoke USERNAME's token(s) with this prefix")
    revoke.add_argument("username")
    revoke.add_argument("prefix", help="the first characters shown by `token list`")


def _user(username: str, *, active: bool = True):
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"unknown user {username!r}")
    if active and not user.is_active:
        raise CommandError(f"user {username!r} is inactive: a token would not work")
    return user


def _when(moment, empty: str) -> str:
    return moment.isoformat(timespec="seconds") if moment else empty


def _run(command, options):
    action = options["action"]
    # Listing and revoking work for an inactive user too: cleaning up after someone left.
    user = _user(options["username"], active=action == "create")
    if action == "create":
        _, key = token_create(
            user=user, name=options["name"], days=options["days"], by=None, source="cli"
        )
        # Only the token on stdout, so `TOKEN=$(... token create alice)` works.
        command.stdout.write(key)
    elif action == "list":
        now = clock.now()
        for token in tokens_of(user=user):
            command.stdout.write(
                f"{token.prefix}  {token.name or '-'}  {token.state(now).value}"
                f"  created {_when(token.created_at, '-')}"
                f"  used {_when(token.last_used_at, 'never')}"
                f"  expires {_when(token.expires_at, 'never')}"
                + (f"  revoked {_when(token.revoked_at, '')}" if token.revoked_at else "")
            )
    else:
        prefix = options["prefix"]
        if len(prefix) < 6:
            raise CommandError("give at least 6 characters of the prefix `token list` shows")
        tokens = tokens_of(user=user).filter(prefix__startswith=prefix, revoked_at__isnull=True)
        revoked = sum(token_revoke(token=token, by=None, source="cli") for token in tokens)
        if not revoked:
            raise CommandError(
                f"{user.username} has no token starting with {prefix!r} left to revoke"
            )
        command.stdout.write(f"revoked {revoked} token(s)")


COMMANDS = {
    "token": Subcommand(
        help="token create|list|revoke USERNAME: API tokens for the JSON API",
        run=_run,
        configure=_configure,
    )
}
