from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError


@dataclass
class Subcommand:
    help: str
    run: Callable[[Any, dict], None]  # (the BaseCommand, parsed options)
    configure: Callable[[Any], None] | None = None  # adds arguments to its argparse parser


def acting_user(username: str = ""):
    """Whom a CLI operation acts as (`--as`), whose roles are checked and who is logged:
    the named active user, else the first superuser."""
    User = get_user_model()
    if username:
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"--as: unknown user {username!r}")
        return user
    user = User.objects.filter(is_superuser=True, is_active=True).order_by("id").first()
    if user is None:
        raise CommandError("no superuser to act as: create one, or name a user with --as")
    return user


def as_user_argument(parser) -> None:
    """`--as USERNAME` (or `--user`): whom the command acts as (see acting_user)."""
    parser.add_argument(
        "--as",
        "--user",
        dest="as_user",
        default="",
        metavar="USERNAME",
        help="act as this user, whose roles are checked (default: the first superuser)",
    )
