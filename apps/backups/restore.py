"""Restoring one project of an archive into a project (the same or another).

The archive is read once, as a stream, and checked whole (apps.backups.archive) before
anything is used. While it is read, each restorable kind's records of the source project
are fingerprinted (apps.backups.kinds) and only those that differ from the target are
kept, so a restore that changes little holds little. Then:

- the diff (apps.backups.diff, pure) says what is added, changed, removed, unchanged;
- a real restore applies it in one transaction, kind by kind in registry order, through
  the normal services: datasources and variables (apps.projects.services), resources
  (apps.resources.services.resource_upload: a new version), nodes (nodes_publish: new
  versions, validated as any publish, history untouched), then baselines, monitoring
  rules, field rules and the project's runtime configuration (their apps' services,
  naming nodes, baselines and channels by name) and, only with `remove_missing`, the
  nodes the archive lacks go offline (node_offline) and the variables, baselines and
  rules it lacks are deleted. Any error rolls everything back (files stored on the
  way are removed) and the answer names every error;
- a dry run applies the same inside a transaction that is always rolled back, without
  storing a file, so its `errors` are exactly what the real restore would refuse.

Node names: a node's upstream names of its own project are stored without the project
code, so they follow the restore into the target project; names of other projects'
nodes (`proj.node`) keep naming those projects' nodes, which must be online and visible
to whoever restores.
"""

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from django.db import transaction

from apps.audit.choices import Result
from apps.audit.services import operation_record
from apps.core.errors import Conflict, OpscenterError, PermissionDenied, ValidationFailed
from apps.projects.choices import EnvMode, Role
from apps.projects.models import Project
from apps.projects.permissions import require_role
from apps.projects.selectors import has_role

from . import kinds
from .archive import ArchiveRefused, Limits, Manifest, ManifestMember, MemberStream, archive_read
from .choices import BackupState
from .diff import DIFF_KINDS, KindDiff, NodeChange, diff_kind, node_change
from .models import Backup

# Changed nodes whose script and field changes a dry run shows (the page, the API).
MAX_NODE_CHANGES = 200


@dataclass
class RestoreResult:
    dry_run: bool
    project: str
    source_project: str
    diffs: dict[str, KindDiff]
    node_changes: list[NodeChange] = field(default_factory=list)
    # Dry run: what the real restore would refuse (empty: it would go through).
    errors: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    published: dict[str, list[str]] = field(default_factory=dict)
    offline: list[str] = field(default_factory=list)
    restored_without_secret: list[str] = field(default_factory=list)
    backup: int | None = None
    archived_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {name: self.diffs[name].as_dict() for name in DIFF_KINDS}
        answer.update(
            dry_run=self.dry_run,
            project=self.project,
            source_project=self.source_project,
            backup=self.backup,
            archived_at=self.archived_at,
            errors=self.errors,
            warnings=self.warnings,
            node_changes=[change.as_dict() for change in self.node_changes],
            published=self.published,
            offline=self.offline,
            restored_without_secret=self.restored_without_secret,
        )
        return answer


@dataclass
class RestoreRun:
    """What the kinds' apply hooks share while a restore is applied."""

    project: Project
    user: Any
    source: str
    dry_run: bool
    remove_missing: bool
    diffs: dict[str, KindDiff]
    records: dict[str, dict[str, dict]]  # kind -> key -> record, for what is written
    files: dict[str, Path]  # SHA-256 -> the archived file, spooled
    note: str
    errors: list[dict] = field(default_factory=list)
    stored_files: list[str] = field(default_factory=list)  # removed again on a rollback
    published: dict[str, list[str]] = field(default_factory=dict)
    offline: list[str] = field(default_factory=list)
    restored_without_secret: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. a channel left out

    def refused(self, exc: OpscenterError, *, prefix: str) -> None:
        for error in exc.errors or [{"field": "", "message": exc.detail}]:
            item = dict(error)
            item["field"] = ".".join(p for p in (prefix, str(error.get("field") or "")) if p)
            self.errors.append(item)


class _Rollback(Exception):
    pass


class _Collector:
    """The archive consumer: keeps the source project's records that a restore needs."""

    def __init__(
        self,
        *,
        target: Project,
        source: str | None,
        user,
        current: dict[str, dict[str, str | None]],
        spool: Path | None,
    ):
        self.target = target
        self.source = source
        self.user = user
        self.current = current
        self.spool = spool
        self.restorable = {kind.name: kind for kind in kinds.restorable_kinds()}
        self.archived: dict[str, dict[str, str]] = {name: {} for name in self.restorable}
        self.records: dict[str, dict[str, dict]] = {name: {} for name in self.restorable}
        self.deferred: dict[str, dict[str, dict]] = {name: {} for name in self.restorable}
        self.read: set[str] = set()
        self.files: dict[str, Path] = {}
        self.manifest: Manifest | None = None
        self.skipped_dev = 0

    def on_manifest(self, manifest: Manifest) -> None:
        self.manifest = manifest
        if self.source is None:
            if len(manifest.projects) == 1:
                self.source = manifest.projects[0]
            elif self.target.code in manifest.projects:
                self.source = self.target.code
            else:
                raise ValidationFailed(
                    "choose the project to restore from: source_project",
                    [
                        {
                            "field": "source_project",
                            "message": "this backup holds "
                            + (", ".join(manifest.projects) or "no project"),
                        }
                    ],
                )
        if self.source not in manifest.projects:
            raise ValidationFailed(
                f"project {self.source!r} is not in this backup",
                [
                    {
                        "field": "source_project",
                        "message": f"not in this backup, which holds "
                        f"{', '.join(manifest.projects) or 'no project'}",
                    }
                ],
            )
        _authorize_source(self.user, self.source)

    def __call__(self, entry: ManifestMember, stream: MemberStream) -> None:
        prefix = f"projects/{self.source}/"
        if not entry.path.startswith(prefix):
            return
        rest = entry.path[len(prefix) :]
        if rest.startswith("files/"):
            self._file(entry, rest.removeprefix("files/"), stream)
            return
        kind = self.restorable.get(rest.removesuffix(".jsonl"))
        if kind is None or not rest.endswith(".jsonl"):
            return  # archived for the record, or a kind this opscenter does not know
        self._records(kind, entry, stream)
        self.read.add(kind.name)

    def _waits_for(self, kind: kinds.Kind) -> bool:
        """Whether `kind`'s fingerprints need a kind not read yet (nodes need resources)."""
        if kind.name != "nodes" or "resources" in self.read:
            return False
        return self.manifest.member(kind="resources", project=self.source) is not None

    def _records(self, kind: kinds.Kind, entry: ManifestMember, stream: MemberStream) -> None:
        current = self.current[kind.name]
        wait = self._waits_for(kind)
        prod_only = self.target.env_mode != EnvMode.DEV_PROD
        for number, record in enumerate(stream.records(), start=1):
            try:
                key = kind.key(record)
            except (KeyError, TypeError, ValueError) as exc:
                raise ArchiveRefused(
                    f"member {entry.path!r} line {number}: a record without its name"
                ) from exc
            if kind.name == "nodes":
                if not isinstance(record.get("spec"), dict):
                    raise ArchiveRefused(
                        f"member {entry.path!r} line {number}: a node without its spec"
                    )
                if prod_only and record.get("env", "prod") != "prod":
                    self.skipped_dev += 1
                    continue
            if key in self.archived[kind.name] or key in self.deferred[kind.name]:
                raise ArchiveRefused(f"member {entry.path!r} line {number}: {key!r} appears twice")
            if wait:
                self.deferred[kind.name][key] = record
                continue
            self._keep(kind, key, record, current)

    def _keep(self, kind: kinds.Kind, key: str, record: dict, current: dict) -> None:
        fingerprint = kind.fingerprint(record, self.archived)
        self.archived[kind.name][key] = fingerprint
        if current.get(key) != fingerprint:  # to write: added, changed or brought back
            self.records[kind.name][key] = record

    def finish(self) -> None:
        for name, deferred in self.deferred.items():
            kind = self.restorable[name]
            for key, record in deferred.items():
                self._keep(kind, key, record, self.current[name])
            deferred.clear()

    def _file(self, entry: ManifestMember, sha256: str, stream: MemberStream) -> None:
        if sha256 != entry.sha256:
            raise ArchiveRefused(
                f"member {entry.path!r} is named after another SHA-256 than manifest.json gives"
            )
        if self.spool is None:
            return
        if "resources" in self.read:
            wanted = {r.get("sha256") for r in self.records["resources"].values()}
            if sha256 not in wanted:
                return
        target = self.spool / sha256
        with target.open("wb") as out:
            shutil.copyfileobj(stream, out, 1024 * 1024)
        self.files[sha256] = target


def _authorize_source(user, source_code: str) -> None:
    """Restoring a project's objects shows them (the diff) and copies them: the restorer
    must be able to see that project, or be a superuser when it no longer exists."""
    if user.is_superuser:
        return
    source = Project.objects.filter(code=source_code).first()
    if source is None or not has_role(user, source, Role.VIEWER):
        raise PermissionDenied(
            f"restoring project {source_code!r} from a backup needs a role in that project "
            "(or a superuser)"
        )


def _current(project: Project) -> dict[str, dict[str, str | None]]:
    return {kind.name: dict(kind.current(project)) for kind in kinds.restorable_kinds()}


def _node_changes(project: Project, diff: KindDiff, records: dict[str, dict]) -> list[NodeChange]:
    from apps.nodes.choices import NodeStatus
    from apps.nodes.models import Node

    keys = diff.changed[:MAX_NODE_CHANGES]
    if not keys:
        return []
    wanted = {(r.get("env") or "prod", r["name"]) for k in keys for r in [records[k]]}
    rows = Node.objects.filter(
        project=project, name__in={name for _, name in wanted}, current_version__isnull=False
    ).values_list("env", "name", "status", "current_version__number", "current_version__spec")
    current = {
        (env, name): (status, number, spec)
        for env, name, status, number, spec in rows
        if (env, name) in wanted
    }
    changes = []
    for key in keys:
        record = records[key]
        status, number, spec = current.get(
            (record.get("env") or "prod", record["name"]), (None, None, {})
        )
        changes.append(
            node_change(
                name=key,
                current_spec=spec or {},
                archived_spec=record["spec"],
                current_version=number,
                archived_version=record.get("version"),
                offline=status is not None and status != NodeStatus.ONLINE,
            )
        )
    return changes


def restore_archive(
    *,
    fileobj: IO[bytes],
    size: int,
    project: Project,
    user,
    source_project: str | None = None,
    dry_run: bool = True,
    remove_missing: bool = False,
    source: str = "api",
    expected_sha256: str | None = None,
    limits: Limits | None = None,
    backup: Backup | None = None,
) -> RestoreResult:
    """Restore `source_project` of the archive in `fileobj` into `project` (see the module
    docstring). The restorer needs the admin role in `project` and a role in the source
    project. Raises ArchiveRefused for an archive that fails a check, ValidationFailed
    naming every error for a restore that would fail; then nothing changed."""
    require_role(user, project, Role.ADMIN)
    limits = limits or Limits.from_settings()
    what = f"backup #{backup.pk}" if backup else "an archive"
    detail = {
        "backup": backup.pk if backup else None,
        "source_project": source_project,
        "dry_run": dry_run,
        "remove_missing": remove_missing,
    }
    try:
        result = _restore(
            fileobj=fileobj,
            size=size,
            project=project,
            user=user,
            source_project=source_project,
            dry_run=dry_run,
            remove_missing=remove_missing,
            source=source,
            expected_sha256=expected_sha256,
            limits=limits,
            note=f"restored from {what}",
        )
    except OpscenterError as exc:
        operation_record(
            user=user,
            source=source,
            action="backup.restore",
            object_type="project",
            object_id=project.code,
            project=project,
            detail={**detail, "errors": exc.errors[:50]},
            result=Result.REFUSED,
            message=exc.detail,
        )
        raise
    result.backup = backup.pk if backup else None
    if not dry_run:
        operation_record(
            user=user,
            source=source,
            action="backup.restore",
            object_type="project",
            object_id=project.code,
            project=project,
            detail={
                **detail,
                "source_project": result.source_project,
                **{
                    name: {part: len(keys) for part, keys in result.diffs[name].as_dict().items()}
                    for name in DIFF_KINDS
                },
                "offline": result.offline[:100],
            },
        )
    return result


def _restore(
    *,
    fileobj,
    size,
    project,
    user,
    source_project,
    dry_run,
    remove_missing,
    source,
    expected_sha256,
    limits,
    note,
) -> RestoreResult:
    with tempfile.TemporaryDirectory(prefix="opscenter-restore-") as spool:
        collector = _Collector(
            target=project,
            source=source_project,
            user=user,
            current=_current(project),
            spool=None if dry_run else Path(spool),
        )
        manifest, _ = archive_read(
            fileobj,
            size=size,
            limits=limits,
            consume=collector,
            expected_sha256=expected_sha256,
            on_manifest=collector.on_manifest,
        )
        collector.finish()
        diffs = {
            name: diff_kind(collector.current[name], collector.archived[name])
            for name in collector.restorable
        }
        result = RestoreResult(
            dry_run=dry_run,
            project=project.code,
            source_project=collector.source,
            diffs=diffs,
            archived_at=manifest.created_at.isoformat(),
        )
        if collector.skipped_dev:
            result.warnings.append(
                f"{collector.skipped_dev} dev node(s) left out: project {project.code!r} is "
                "prod only"
            )
        records = {
            name: {key: collector.records[name][key] for key in diffs[name].to_write}
            for name in collector.restorable
        }
        if dry_run:
            result.node_changes = _node_changes(project, diffs["nodes"], records["nodes"])
        missing = [
            f"resource {key!r}: its file is not in the archive"
            for key, record in records.get("resources", {}).items()
            if not dry_run and record.get("sha256") not in collector.files
        ]
        if missing:
            raise ArchiveRefused("; ".join(missing[:10]))
        run = RestoreRun(
            project=project,
            user=user,
            source=source,
            dry_run=dry_run,
            remove_missing=remove_missing,
            diffs=diffs,
            records=records,
            files=collector.files,
            note=note,
        )
        _apply(run)
    result.errors = run.errors
    result.published = run.published
    result.offline = run.offline
    result.restored_without_secret = run.restored_without_secret
    result.warnings.extend(run.warnings)
    if run.errors and not dry_run:
        count = len(run.errors)
        raise ValidationFailed(
            f"nothing was restored: {count} error{'s' if count != 1 else ''}", run.errors
        )
    return result


def _apply(run: RestoreRun) -> None:
    """Every kind's changes in one transaction: kept when all went through and this is no
    dry run, else rolled back, with the files stored on the way."""
    committed = False
    try:
        with transaction.atomic():
            for kind in kinds.restorable_kinds():
                kind.apply(run)
            if run.errors or run.dry_run:
                raise _Rollback
        committed = True
    except _Rollback:
        pass
    finally:
        if not committed and run.stored_files:
            from django.core.files.storage import default_storage

            for name in run.stored_files:
                default_storage.delete(name)


def restore_backup(
    *,
    backup: Backup,
    project: Project,
    user,
    source_project: str | None = None,
    dry_run: bool = True,
    remove_missing: bool = False,
    source: str = "api",
) -> RestoreResult:
    """Restore from a stored backup, whose file must still have its recorded SHA-256."""
    if backup.state != BackupState.READY:
        raise Conflict(f"backup #{backup.pk} is {backup.state}: there is no archive to restore")
    from django.core.files.storage import default_storage

    limits = Limits.from_settings().admitting(backup.size_bytes or 0)
    try:
        stored = default_storage.open(backup.path, "rb")
    except FileNotFoundError as exc:
        raise Conflict(f"backup #{backup.pk}: its archive {backup.path} is missing") from exc
    with stored:
        return restore_archive(
            fileobj=stored,
            size=backup.size_bytes or 0,
            project=project,
            user=user,
            source_project=source_project,
            dry_run=dry_run,
            remove_missing=remove_missing,
            source=source,
            expected_sha256=backup.sha256,
            limits=limits,
            backup=backup,
        )
