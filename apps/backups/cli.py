"""`python manage.py opscenter backup` and `restore FILE --project CODE`."""

import json
from pathlib import Path

from django.core.files.storage import default_storage
from django.core.management.base import CommandError

from apps.core.cli import Subcommand, acting_user, as_user_argument
from apps.projects.models import Project

from . import restore, services
from .choices import Trigger
from .diff import DIFF_KINDS
from .models import Backup


def _backup_run(command, options: dict) -> None:
    backup = services.backup_create(
        trigger=Trigger.MANUAL, user=acting_user(options["as_user"]), source="cli"
    )
    location = backup.path
    try:
        location = default_storage.path(backup.path)
    except NotImplementedError:  # a remote storage (S3): its name there
        pass
    command.stdout.write(f"backup {backup.pk}")
    command.stdout.write(f"path    {location}")
    command.stdout.write(f"sha256  {backup.sha256}")
    command.stdout.write(f"size    {backup.size_bytes} bytes, {len(backup.projects)} project(s)")


def _restore_configure(parser) -> None:
    parser.add_argument("file", metavar="FILE", help="a backup archive (.tar.gz), or a backup's id")
    parser.add_argument("--project", required=True, help="the project to restore into")
    parser.add_argument(
        "--source-project",
        default=None,
        help="the archive's project to restore from (default: its only one, or --project)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the diff and change nothing")
    parser.add_argument(
        "--remove-missing",
        action="store_true",
        help="take the nodes the archive lacks offline, delete the variables it lacks",
    )
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    as_user_argument(parser)


def _restore_run(command, options: dict) -> None:
    user = acting_user(options["as_user"])
    project = Project.objects.filter(code=options["project"]).first()
    if project is None:
        raise CommandError(f"--project: no project {options['project']!r}")
    arguments = dict(
        project=project,
        user=user,
        source_project=options["source_project"],
        dry_run=options["dry_run"],
        remove_missing=options["remove_missing"],
        source="cli",
    )
    path = Path(options["file"])
    if path.is_file():
        with path.open("rb") as archive:
            result = restore.restore_archive(fileobj=archive, size=path.stat().st_size, **arguments)
    elif options["file"].isdigit() and (
        backup := Backup.objects.filter(pk=options["file"]).first()
    ):
        result = restore.restore_backup(backup=backup, **arguments)
    else:
        raise CommandError(f"FILE: no archive {options['file']!r} (nor a backup of that id)")
    if options["json"]:
        command.stdout.write(json.dumps(result.as_dict(), indent=2))
        return
    for line in restore_summary(result.as_dict()):
        command.stdout.write(line)


def restore_summary(answer: dict) -> list[str]:
    """The restore's answer as lines for a terminal."""
    verb = "would restore" if answer["dry_run"] else "restored"
    lines = [f"{answer['source_project']} {verb} into {answer['project']}"]
    for kind in DIFF_KINDS:
        parts = answer[kind]
        counts = ", ".join(
            f"{len(parts[p])} {p}" for p in ("added", "changed", "removed", "unchanged")
        )
        lines.append(f"{kind}: {counts}")
        for part in ("added", "changed", "removed"):
            for name in parts[part]:
                lines.append(f"  {'+~-'[('added', 'changed', 'removed').index(part)]} {name}")
    for warning in answer["warnings"]:
        lines.append(f"warning: {warning}")
    for name in answer["restored_without_secret"]:
        lines.append(f"datasource {name}: restored without its password; set it again")
    if answer["offline"]:
        lines.append(f"taken offline: {', '.join(answer['offline'])}")
    if answer["errors"]:
        lines.append(f"a real restore would be refused: {len(answer['errors'])} error(s)")
        for error in answer["errors"]:
            where = ": ".join(str(error[k]) for k in ("node", "field") if error.get(k))
            lines.append(f"  {where}: {error['message']}" if where else f"  {error['message']}")
    return lines


COMMANDS = {
    "backup": Subcommand(
        help="back up every project now and print the backup's id, path and SHA-256",
        run=_backup_run,
        configure=as_user_argument,
    ),
    "restore": Subcommand(
        help="restore a project of a backup archive (checked first) into --project and print "
        "the diff; --dry-run changes nothing",
        run=_restore_run,
        configure=_restore_configure,
    ),
}
