"""`opscenter publish FILE --project CODE [--env prod] [--group NAME] [--as USERNAME]
[--note TEXT]` and `opscenter group pause|resume GROUP --project CODE` / `group list`."""

import json
from pathlib import Path

import yaml
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from apps.core.cli import Subcommand, acting_user
from apps.projects.models import Project
from apps.projects.selectors import project_get

from . import operations
from .choices import Env
from .selectors import node_groups, nodes_visible_to
from .services import nodes_publish
from .validation import group_default, group_error


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
    parser.add_argument(
        "--group",
        default=None,
        help="the node group of the specs that name none (default: the file's name without "
        'its extension, e.g. sales_daily for sales_daily.yaml; "" for no group)',
    )


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


def _file_group(path: Path, given: str | None) -> str:
    """The group the file's nodes are published in unless a spec names its own."""
    if given is not None:
        problem = group_error(given)
        if problem:
            raise CommandError(f"--group: {problem}")
        return given.strip()
    problem = group_error(path.stem)
    if problem:
        raise CommandError(
            f"{path}: its name cannot be the group of its nodes: {problem}; give one with "
            "--group NAME (or --group '' for none), or a group: in each spec"
        )
    return path.stem


def _run(command, options):
    path = Path(options["file"])
    specs = read_specs(path)
    if any(isinstance(spec, dict) and spec.get("group") is None for spec in specs):
        specs = group_default(specs, _file_group(path, options["group"]))
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


def _group_configure(parser) -> None:
    parser.add_argument("action", choices=["pause", "resume", "list"])
    parser.add_argument("group", nargs="?", default="", help="the group (pause, resume)")
    parser.add_argument("--project", default="", help="the project code (list: optional)")
    parser.add_argument("--env", default="", choices=["", *Env.values], help="only this env")
    parser.add_argument(
        "--as",
        dest="as_user",
        default="",
        help="act as this user, whose role is checked (default: the first superuser)",
    )


def _group_run(command, options: dict) -> None:
    user = acting_user(options["as_user"])
    if options["action"] == "list":
        queryset = nodes_visible_to(user)
        if options["project"]:
            queryset = queryset.filter(project=project_get(user=user, code=options["project"]))
        rows = list(node_groups(queryset))
        for row in rows:
            command.stdout.write(
                f"{row['project__code']}/{row['group']}: {row['nodes']} nodes, "
                f"{row['paused']} paused, {row['offline']} offline"
            )
        command.stdout.write(f"{len(rows)} group{'s' if len(rows) != 1 else ''}")
        return
    if not options["group"] or not options["project"]:
        raise CommandError(f"group {options['action']}: name the GROUP and its --project")
    project = project_get(user=user, code=options["project"])
    operation = operations.group_pause if options["action"] == "pause" else operations.group_resume
    results = operation(
        project=project, group=options["group"], by=user, source="cli", env=options["env"]
    )
    names = dict(
        nodes_visible_to(user).filter(pk__in=[r.id for r in results]).values_list("pk", "name")
    )
    for item in results:
        outcome = item.message if item.ok else f"refused: {item.message}"
        command.stdout.write(f"{names.get(item.id, item.id)}: {outcome}")
    done = f"{options['action']}d"
    changed = sum(1 for item in results if item.ok and item.message == done)
    refused = sum(1 for item in results if not item.ok)
    command.stdout.write(
        f"group {options['group']} of {project.code}: {changed} {done}, "
        f"{len(results) - changed - refused} left as they were, {refused} refused"
    )
    if refused:
        raise CommandError(f"{refused} node(s) refused")


COMMANDS = {
    "publish": Subcommand(
        help="publish FILE --project CODE [--env prod] [--group NAME]: publish a YAML or JSON "
        "file of NodeSpecs, in the group named after the file unless told",
        run=_run,
        configure=_configure,
    ),
    "group": Subcommand(
        help="group pause|resume GROUP --project CODE [--env ENV]: pause or resume every "
        "node of a node group; group list [--project CODE]: the groups and their nodes",
        run=_group_run,
        configure=_group_configure,
    ),
}
