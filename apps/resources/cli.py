"""`opscenter resource upload FILE --project CODE [--name NAME]` and
`opscenter resource list --project CODE`: a project's resources from a terminal."""

from pathlib import Path

from django.core.management.base import CommandError
from django.template.defaultfilters import filesizeformat

from apps.core.cli import Subcommand, acting_user, as_user_argument
from apps.projects.choices import Role
from apps.projects.permissions import require_role
from apps.projects.selectors import project_get

from .selectors import resources_for_project
from .services import resource_upload

COLUMNS = ("NAME", "VERSION", "SIZE", "VERSIONS", "UPLOADED_AT", "SHA256")


def _configure(parser) -> None:
    actions = parser.add_subparsers(dest="action")
    actions.required = True
    upload = actions.add_parser(
        "upload",
        help="upload FILE as a new version of the project's resource (its file name, or --name)",
    )
    upload.add_argument("file", help="the file to upload")
    upload.add_argument("--project", required=True, help="the project code")
    upload.add_argument("--name", default="", help="the resource's name (default: FILE's name)")
    as_user_argument(upload)
    listing = actions.add_parser("list", help="the project's resources with their latest version")
    listing.add_argument("--project", required=True, help="the project code")
    as_user_argument(listing)


def _run(command, options: dict) -> None:
    user = acting_user(options["as_user"])
    project = project_get(user=user, code=options["project"])
    if options["action"] == "upload":
        require_role(user, project, Role.DEVELOPER)
        _upload(command, project, user, Path(options["file"]), options["name"].strip())
    else:
        require_role(user, project, Role.VIEWER)
        _list(command, project)


def _upload(command, project, user, path: Path, name: str) -> None:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CommandError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise CommandError(f"{path}: cannot be read: {exc}") from None
    with handle:
        version = resource_upload(
            project=project, name=name or path.name, fileobj=handle, user=user, source="cli"
        )
    state = "uploaded" if version.is_new else "unchanged (the same file as its latest version)"
    command.stdout.write(
        f"{project.code}/{version.resource.name} v{version.number}: {state}, "
        f"{version.size_bytes} bytes, sha256 {version.sha256}"
    )


def _list(command, project) -> None:
    rows = []
    for resource in resources_for_project(project).iterator(chunk_size=500):
        latest = resource.versions.all()[0]
        rows.append(
            (
                resource.name,
                f"v{latest.number}",
                filesizeformat(latest.size_bytes).replace("\xa0", " "),
                str(resource.version_count),
                latest.uploaded_at.astimezone(project.tz).isoformat(sep=" ", timespec="seconds"),
                latest.sha256,
            )
        )
    if not rows:
        command.stdout.write(f"no resources in project {project.code}")
        return
    widths = [max(len(row[i]) for row in [COLUMNS, *rows]) for i in range(len(COLUMNS) - 1)]
    for row in [COLUMNS, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        command.stdout.write("  ".join([*cells, row[-1]]).rstrip())


COMMANDS = {
    "resource": Subcommand(
        help="a project's resources: upload FILE --project CODE [--name NAME], list --project CODE",
        configure=_configure,
        run=_run,
    )
}
