"""`opscenter publish FILE --project CODE [--env prod] [--as USERNAME] [--note TEXT]`."""

import json
from pathlib import Path

import yaml
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from apps.core.cli import Subcommand
from apps.projects.models import Project

from .services import nodes_publish


def _configure(parser):
    parser.add_argument("file", help="a YAML or JSON file: a list of NodeSpecs, or {nodes: [...]}")
    parser.add_argument("--project", required=True, help="the project code")
    parser.add_argument("--env", default="prod", choices=["prod", "dev"])
    parser.add_argument(
        "--as",
        dest="as_user",
        default="",
        help="publish as this user (default: the first superuser)",
    )
    parser.add_argument("--note", default="", help="a note kept with the new versions")


def read_specs(path: Path) -> list:
    """The NodeSpecs of a YAML or JSON file; CommandError with the reason when unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CommandError(f"{path}: is a directory, not a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path}: cannot be read: {exc}") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)  # YAML also reads JSON
    except json.JSONDecodeError as exc:
        raise CommandError(f"{path}: not valid JSON: {exc}") from None
    except yaml.YAMLError as exc:
        raise CommandError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict):
        unknown = set(data) - {"nodes"}
        if "nodes" not in data or unknown:
            raise CommandError(
                f"{path}: expected a list of NodeSpecs or an object with one key, nodes"
            )
        data = data["nodes"]
    if not isinstance(data, list):
        raise CommandError(f"{path}: expected a list of NodeSpecs or {{nodes: [...]}}")
    return data


def _publisher(username: str):
    User = get_user_model()
    if username:
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"unknown user {username!r}")
        return user
    user = User.objects.filter(is_superuser=True, is_active=True).order_by("id").first()
    if user is None:
        raise CommandError("no superuser to publish as: create one, or name a user with --as")
    return user


def _run(command, options):
    specs = read_specs(Path(options["file"]))
    project = Project.objects.filter(code=options["project"]).first()
    if project is None:
        raise CommandError(f"unknown project {options['project']!r}")
    result = nodes_publish(
        project=project,
        env=options["env"],
        specs=specs,
        user=_publisher(options["as_user"]),
        note=options["note"],
        source="cli",
    )
    for label, names in (
        ("created", result.created),
        ("updated", result.updated),
        ("unchanged", result.unchanged),
    ):
        command.stdout.write(f"{label} {len(names)}: {', '.join(names)}".rstrip(": "))


COMMANDS = {
    "publish": Subcommand(
        help="publish FILE --project CODE [--env prod]: publish a YAML or JSON file of NodeSpecs",
        run=_run,
        configure=_configure,
    )
}
