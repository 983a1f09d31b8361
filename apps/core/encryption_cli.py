"""`opscenter encryption rotate`: re-encrypt every stored secret with the newest key."""

from django.core.management.base import CommandError

from .cli import Subcommand
from .encryption import secrets_rotate


def _configure(parser) -> None:
    parser.add_argument(
        "action",
        choices=["rotate"],
        help="rotate: re-encrypt every stored secret with the first OPSCENTER_ENCRYPTION_KEY",
    )


def _run(command, options: dict) -> None:
    result = secrets_rotate()
    for kind, count in result.rotated.items():
        command.stdout.write(f"re-encrypted {count} {kind}")
    if result.undecryptable:
        lines = [f"  {kind} {name}: {field}" for kind, name, field in result.undecryptable]
        raise CommandError(
            f"{len(result.undecryptable)} secret(s) no key decrypts were left as they are "
            "(add the key they were encrypted with to OPSCENTER_ENCRYPTION_KEY, or set them "
            "again):\n" + "\n".join(lines)
        )
    command.stdout.write(
        "every secret is now encrypted with the first key of OPSCENTER_ENCRYPTION_KEY; "
        "the other keys may be removed"
    )


COMMANDS = {
    "encryption": Subcommand(
        help="encryption rotate: re-encrypt every stored secret with the newest key",
        run=_run,
        configure=_configure,
    ),
}
