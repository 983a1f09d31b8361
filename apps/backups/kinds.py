"""What a backup holds, one entry per kind of object.

A kind exports its records (plain JSON objects, streamed from the database with
`.iterator()`), per project or once for the whole installation. Kinds that a restore
brings back also say how a record is named (`key`), what makes two of them the same
(`fingerprint`) and what the target project holds now (`current`); the restore
(apps.backups.restore) diffs those and applies the differences in registry order.

A new kind is one class registered here: the archive format needs no change (a
reader skips members of kinds it does not know; a kind missing from an older archive
reads as empty).

Secrets never enter a record: datasources keep their DSN without its secret
parameters and say only whether they had a password.
"""

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from apps.nodes.choices import Env, NodeStatus
from apps.nodes.specs import SPEC_DEFAULTS
from apps.projects.models import Project

PROJECT = "project"
GLOBAL = "global"
CHUNK_SIZE = 1000


def _digest(*values: Any) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class ArchivedFile:
    """A file a record names, archived once per content at `projects/<code>/files/<sha256>`."""

    sha256: str
    size: int
    open: Callable[[], IO[bytes]]
    label: str


class Kind:
    name: str = ""
    label: str = ""
    scope: str = PROJECT
    # Brought back by a restore (diffed and applied); others are archived for the record.
    restorable: bool = False

    def export(self, project: Project | None) -> Iterator[dict]:
        raise NotImplementedError

    def files(self, project: Project) -> Iterator[ArchivedFile]:
        return iter(())

    # Restorable kinds: ----------------------------------------------------------------

    def key(self, record: dict) -> str:
        return str(record["name"])

    def fingerprint(self, record: dict, archived: dict[str, dict[str, str]]) -> str:
        """What makes two records the same. `archived`: kind -> key -> fingerprint of the
        kinds read before this one (a node's fingerprint counts its resources' content)."""
        raise NotImplementedError

    def current(self, project: Project) -> Iterator[tuple[str, str | None]]:
        """(key, fingerprint) of what `project` holds; None: it is there but inactive (an
        offline node), so a record of that key brings it back."""
        raise NotImplementedError

    def apply(self, run) -> None:
        """Write the records of run.diffs[name].to_write (in run.records[name]) into
        run.project through the normal services; add every refusal to run.errors and go on,
        so one restore names all of them (apps.backups.restore.RestoreRun)."""
        raise NotImplementedError


# In the order a backup writes them and a restore applies them.
KINDS: list[Kind] = []


def register(kind: Kind) -> Kind:
    if any((k.scope, k.name) == (kind.scope, kind.name) for k in KINDS):
        raise ValueError(f"backup kind {kind.scope}/{kind.name} registered twice")
    KINDS.append(kind)
    return kind


def project_kinds() -> list[Kind]:
    return [k for k in KINDS if k.scope == PROJECT]


def global_kinds() -> list[Kind]:
    return [k for k in KINDS if k.scope == GLOBAL]


def restorable_kinds() -> list[Kind]:
    return [k for k in KINDS if k.restorable]


# --- restorable kinds, in the order a restore applies them ------------------------------
# Datasources and variables first (node specs name them), resources next (specs list
# them and pin their latest versions), then nodes, then what names nodes: baselines,
# monitoring rules (a rule may watch a baseline), field rules, runtime configuration.


class Datasources(Kind):
    name = "datasources"
    label = "Datasources"
    restorable = True

    def export(self, project):
        from apps.projects.models import Datasource

        rows = (
            Datasource.objects.filter(project=project)
            .order_by("name")
            .values_list("name", "kind", "dsn", "path", "password_encrypted")
        )
        for name, kind, dsn, path, password in rows.iterator(chunk_size=CHUNK_SIZE):
            yield {
                "name": name,
                "kind": kind,
                "dsn": dsn_without_secrets(dsn),
                "path": path,
                # Whether it had one; the password itself stays behind.
                "has_password": bool(password),
            }

    def fingerprint(self, record, archived=None):
        return _digest(record.get("kind"), record.get("dsn") or "", record.get("path") or "")

    def current(self, project):
        for record in self.export(project):
            yield record["name"], self.fingerprint(record)

    def apply(self, run):
        from apps.core.errors import ValidationFailed
        from apps.projects import services
        from apps.projects.models import Datasource

        names = run.diffs[self.name].to_write
        existing = {
            datasource.name: datasource
            for datasource in Datasource.objects.filter(project=run.project, name__in=names)
        }
        for name in names:
            record = run.records[self.name][name]
            fields = {
                "kind": record.get("kind") or "",
                "dsn": record.get("dsn") or "",
                "path": record.get("path") or "",
            }
            try:
                if name in existing:
                    datasource = services.datasource_update(
                        datasource=existing[name], fields=fields, user=run.user, source=run.source
                    )
                else:
                    datasource = services.datasource_create(
                        project=run.project, name=name, user=run.user, source=run.source, **fields
                    )
            except ValidationFailed as exc:
                run.refused(exc, prefix=f"datasources.{name}")
                continue
            if record.get("has_password") is True and not datasource.has_password:
                # Its secret stayed out of the archive: someone must set it again.
                Datasource.objects.filter(pk=datasource.pk).update(restored_without_secret=True)
                run.restored_without_secret.append(name)


def dsn_without_secrets(dsn: str) -> str:
    """The DSN with every secret parameter (password, sslpassword, ...) taken out. A
    datasource's DSN holds none (the services refuse one that does), but rows written
    before that rule, or by hand, may: a backup must not carry them either way."""
    if not dsn:
        return dsn
    import psycopg.conninfo

    from apps.projects.services import SECRET_DSN_PARAMETERS

    try:
        parts = psycopg.conninfo.conninfo_to_dict(dsn)
    except Exception:  # unreadable: it cannot be told apart from a secret, so it stays out
        return ""
    if not SECRET_DSN_PARAMETERS.intersection(parts):
        return dsn
    return psycopg.conninfo.make_conninfo(
        **{k: v for k, v in parts.items() if k not in SECRET_DSN_PARAMETERS}
    )


class Variables(Kind):
    name = "variables"
    label = "Variables"
    restorable = True

    def export(self, project):
        from apps.projects.models import Variable

        rows = (
            Variable.objects.filter(project=project).order_by("name").values_list("name", "value")
        )
        for name, value in rows.iterator(chunk_size=CHUNK_SIZE):
            yield {"name": name, "value": value}

    def fingerprint(self, record, archived=None):
        return _digest(record.get("value"))

    def current(self, project):
        for record in self.export(project):
            yield record["name"], self.fingerprint(record)

    def apply(self, run):
        from apps.core.errors import ValidationFailed
        from apps.projects import services
        from apps.projects.models import Variable

        diff = run.diffs[self.name]
        for name in diff.to_write:
            try:
                services.variable_set(
                    project=run.project,
                    name=name,
                    value=run.records[self.name][name].get("value"),
                    user=run.user,
                    source=run.source,
                )
            except ValidationFailed as exc:
                run.refused(exc, prefix=f"variables.{name}")
        if run.remove_missing:
            for variable in Variable.objects.filter(project=run.project, name__in=diff.removed):
                services.variable_delete(variable=variable, user=run.user, source=run.source)


class Resources(Kind):
    """Each resource's latest version: a record with its SHA-256, and the file itself
    (once per content). A restore uploads what differs as a new version."""

    name = "resources"
    label = "Resources"
    restorable = True

    def _latest(self, project):
        from django.db.models import OuterRef, Subquery

        from apps.resources.models import ResourceVersion

        newest = ResourceVersion.objects.filter(resource=OuterRef("resource")).order_by("-number")
        return (
            ResourceVersion.objects.filter(
                resource__project=project, number=Subquery(newest.values("number")[:1])
            )
            .select_related("resource")
            .order_by("resource__name")
        )

    def export(self, project):
        for version in self._latest(project).iterator(chunk_size=CHUNK_SIZE):
            yield {
                "name": version.resource.name,
                "version": version.number,
                "sha256": version.sha256,
                "size": version.size_bytes,
                "uploaded_at": version.uploaded_at,
            }

    def files(self, project):
        from apps.resources.selectors import resource_version_open

        for version in self._latest(project).iterator(chunk_size=CHUNK_SIZE):
            yield ArchivedFile(
                sha256=version.sha256,
                size=version.size_bytes,
                open=lambda version=version: resource_version_open(version),
                label=f"resource {version.resource.name!r} v{version.number}",
            )

    def fingerprint(self, record, archived=None):
        return str(record.get("sha256") or "")

    def current(self, project):
        yield from self._latest(project).values_list("resource__name", "sha256")

    def apply(self, run):
        from django.core.files import File

        from apps.core.errors import ValidationFailed
        from apps.resources.services import resource_name_problem, resource_upload

        for name in run.diffs[self.name].to_write:
            record = run.records[self.name][name]
            if run.dry_run:
                if problem := resource_name_problem(name):
                    run.errors.append({"field": f"resources.{name}.name", "message": problem})
                else:
                    self._stand_in(run.project, name, record)
                continue
            with run.files[record["sha256"]].open("rb") as data:
                try:
                    version = resource_upload(
                        project=run.project,
                        name=name,
                        fileobj=File(data, name=name),
                        user=run.user,
                        source=run.source,
                    )
                except ValidationFailed as exc:
                    run.refused(exc, prefix=f"resources.{name}")
                    continue
            if version.is_new:  # an existing version's file is never removed on rollback
                run.stored_files.append(version.file.name)

    def _stand_in(self, project, name: str, record: dict) -> None:
        """A dry run stores no file: a version row without one lets the nodes that name
        the resource be validated and pinned as the real restore would (rolled back)."""
        from apps.core import clock
        from apps.resources.models import Resource, ResourceVersion

        resource, _ = Resource.objects.get_or_create(project=project, name=name)
        latest = resource.versions.order_by("-number").values_list("number", flat=True).first()
        ResourceVersion.objects.create(
            resource=resource,
            number=(latest or 0) + 1,
            file=f"dry-run/{record.get('sha256')}",
            size_bytes=record.get("size") or 0,
            sha256=str(record.get("sha256") or ""),
            uploaded_at=clock.now(),
        )


def normalized_spec(spec: dict) -> dict:
    """A stored spec as it compares: keys a newer opscenter added filled in with their
    defaults, and optional keys (held only when given, like `resources`) left out when
    empty, so specs written by different versions compare by what they say."""
    given = {
        key: value
        for key, value in (spec or {}).items()
        if key in SPEC_DEFAULTS or value not in (None, "", [], {})
    }
    return {**SPEC_DEFAULTS, **given}


def node_key(env: str, name: str) -> str:
    """How the diff names a node: its name, and "name (dev)" for a dev node."""
    return name if env == Env.PROD else f"{name} ({env})"


def node_fingerprint(spec: dict, resources: dict[str, str | None]) -> str:
    """A node is the same when its spec is and the resource files it runs with are: a
    restored node runs the latest archived content of each resource it names."""
    spec = normalized_spec(spec)
    names = spec.get("resources") or []
    return _digest(spec, [(name, resources.get(name)) for name in names])


class Nodes(Kind):
    """Each online node's latest published version: its spec, which is what publishing
    takes (apps.nodes.specs), with the script in `content`, and the SHA-256 of each
    resource file that version pinned."""

    name = "nodes"
    label = "Nodes"
    restorable = True

    def _pins(self, project) -> dict[int, dict[str, str | None]]:
        """node id -> resource name -> SHA-256 its current version runs with."""
        from django.db.models import F

        from apps.resources.models import ResourcePin

        pins: dict[int, dict[str, str | None]] = {}
        rows = ResourcePin.objects.filter(
            node_version__node__project=project,
            node_version__node__current_version=F("node_version"),
        ).values_list("node_version__node_id", "name", "resource_version__sha256")
        for node_id, name, sha256 in rows.iterator(chunk_size=CHUNK_SIZE):
            pins.setdefault(node_id, {})[name] = sha256
        return pins

    def export(self, project):
        from apps.nodes.models import Node

        pins = self._pins(project)
        rows = (
            Node.objects.filter(
                project=project, status=NodeStatus.ONLINE, current_version__isnull=False
            )
            .order_by("env", "name")
            .values_list(
                "id",
                "env",
                "name",
                "current_version__number",
                "current_version__published_at",
                "current_version__spec",
            )
        )
        for node_id, env, name, number, published_at, spec in rows.iterator(chunk_size=CHUNK_SIZE):
            yield {
                "env": env,
                "name": name,
                "version": number,
                "published_at": published_at,
                "spec": spec,
                "resources": pins.get(node_id, {}),
            }

    def key(self, record):
        return node_key(record.get("env") or Env.PROD, str(record["name"]))

    def fingerprint(self, record, archived=None):
        resources = (archived or {}).get("resources", {})
        return node_fingerprint(record.get("spec") or {}, resources)

    def current(self, project):
        from apps.nodes.models import Node

        pins = self._pins(project)
        rows = (
            Node.objects.filter(project=project, current_version__isnull=False)
            .order_by()
            .values_list("id", "env", "name", "status", "current_version__spec")
        )
        for node_id, env, name, status, spec in rows.iterator(chunk_size=CHUNK_SIZE):
            online = status == NodeStatus.ONLINE
            fingerprint = node_fingerprint(spec, pins.get(node_id, {})) if online else None
            yield node_key(env, name), fingerprint

    def apply(self, run):
        from apps.core.errors import ValidationFailed
        from apps.nodes.services import nodes_publish

        diff = run.diffs[self.name]
        by_env: dict[str, list[dict]] = {}
        for key in diff.to_write:
            record = run.records[self.name][key]
            by_env.setdefault(record.get("env") or Env.PROD, []).append(
                {**record["spec"], "name": record["name"]}
            )
        for env, specs in sorted(by_env.items(), key=lambda item: item[0] != Env.PROD):
            try:
                result = nodes_publish(
                    project=run.project,
                    env=env,
                    specs=specs,
                    user=run.user,
                    note=run.note,
                    source=run.source,
                )
            except ValidationFailed as exc:
                for error in exc.errors:
                    node = error.get("node")
                    run.errors.append({**error, "node": node_key(env, node) if node else node})
                continue
            for part in ("created", "updated", "unchanged"):
                run.published.setdefault(part, []).extend(
                    node_key(env, name) for name in getattr(result, part)
                )
        if run.remove_missing and diff.removed and not run.errors:
            self._offline(run, diff.removed)

    def _offline(self, run, keys: list[str]) -> None:
        """Take the nodes the archive lacks offline through the normal service, each after
        the removed nodes that depend on it, so only dependents that stay block one."""
        from apps.core.errors import Conflict
        from apps.nodes.models import Node, NodeDependency
        from apps.nodes.operations import node_offline

        wanted = set(keys)
        nodes = {
            node.pk: node
            for node in Node.objects.filter(project=run.project, status=NodeStatus.ONLINE)
            .select_related("project")
            .order_by("env", "name")
            if node_key(node.env, node.name) in wanted
        }
        upstream_of: dict[int, list[int]] = {pk: [] for pk in nodes}
        dependents = dict.fromkeys(nodes, 0)
        for node_id, upstream_id in NodeDependency.objects.filter(
            node_id__in=list(nodes), upstream_id__in=list(nodes)
        ).values_list("node_id", "upstream_id"):
            upstream_of[node_id].append(upstream_id)
            dependents[upstream_id] += 1
        ready = sorted((pk for pk, count in dependents.items() if count == 0), reverse=True)
        while ready:
            pk = ready.pop()
            node = nodes[pk]
            try:
                node_offline(node=node, by=run.user, source=run.source)
                run.offline.append(node_key(node.env, node.name))
            except Conflict as exc:
                run.errors.append(
                    {
                        "node": node_key(node.env, node.name),
                        "field": "remove_missing",
                        "message": exc.detail,
                    }
                )
            for upstream in upstream_of[pk]:
                dependents[upstream] -= 1
                if dependents[upstream] == 0:
                    ready.append(upstream)


# --- monitoring and runtime configuration, restored after the nodes they name -----------
# Their records name nodes, baselines and channels by name (ids mean nothing in another
# database); a restore maps the names to the target project's objects once its nodes are
# published, and writes through the apps' own services. A node, baseline, user or on-call
# schedule that does not resolve is an error naming the record and field. Channels are
# not archived (they hold secrets): one the target lacks (by name, its own or a global
# one) is left out of the restored object with a warning.


def _node_keys(project) -> dict[int, str]:
    """node id -> node key of every node of `project`."""
    from apps.nodes.models import Node

    rows = Node.objects.filter(project=project).values_list("pk", "env", "name")
    return {pk: node_key(env, name) for pk, env, name in rows.iterator(chunk_size=CHUNK_SIZE)}


def _online_nodes(project) -> dict[str, int]:
    """node key -> id of the online nodes of `project`."""
    from apps.nodes.models import Node

    rows = Node.objects.filter(project=project, status=NodeStatus.ONLINE).values_list(
        "pk", "env", "name"
    )
    return {node_key(env, name): pk for pk, env, name in rows.iterator(chunk_size=CHUNK_SIZE)}


def _channel_ids(run, what: str, names) -> list[int]:
    """The ids of the target's channels of these names, its own before a global one; a
    name it lacks is left out with a warning."""
    from django.db.models import Q

    from apps.notifications.models import Channel

    names = [name for name in names or [] if isinstance(name, str)]
    found: dict[str, int] = {}
    rows = Channel.objects.filter(
        Q(project=run.project) | Q(project__isnull=True), name__in=names
    ).values_list("name", "pk", "project_id")
    for name, pk, project_id in rows:
        if name not in found or project_id is not None:
            found[name] = pk
    missing = [name for name in names if name not in found]
    if missing:
        run.warnings.append(
            f"{what}: channel{'s' if len(missing) != 1 else ''} {', '.join(missing)} left out: "
            f"no channel of that name in project {run.project.code} or global (backups "
            "carry no channels)"
        )
    return [found[name] for name in names if name in found]


def _usable_recipients(run, what: str, recipients):
    """Recipients as archived, but an on-call schedule the target may not name (another
    project's, or none of that name) left out with a warning: backups carry no on-call
    schedules, and a rule may name only a global one or its own project's."""
    from django.db.models import Q

    from apps.monitoring.models import OnCallSchedule

    if not isinstance(recipients, dict) or not isinstance(recipients.get("on_call"), str):
        return recipients
    name = recipients["on_call"]
    usable = OnCallSchedule.objects.filter(
        Q(project=run.project) | Q(project__isnull=True), name=name
    ).exists()
    if usable:
        return recipients
    run.warnings.append(
        f"{what}: on-call schedule {name} left out: no schedule of that name in project "
        f"{run.project.code} or global (backups carry no on-call schedules)"
    )
    return {**recipients, "on_call": None}


def _unresolved(run, prefix: str, problems: list[tuple[str, str]]) -> bool:
    run.errors.extend({"field": f"{prefix}.{field}", "message": m} for field, m in problems)
    return bool(problems)


def _nodes_named(project, names, nodes: dict[str, int], field: str):
    """The ids of the nodes `names` (node keys) says, and a problem for each it lacks."""
    ids, problems = [], []
    if not isinstance(names, list):
        return ids, [(field, "the backup names no nodes")]
    for name in names:
        if name in nodes:
            ids.append(nodes[name])
        else:
            problems.append((field, f"no node {name!r} in project {project.code}"))
    return ids, problems


def _recipients(value) -> dict:
    """Recipients as the services store them (rows written another way may leave keys
    out), so the same recipients compare the same."""
    if not isinstance(value, dict) or not value:
        return {}
    return {
        "owner": bool(value.get("owner", False)),
        "users": list(value.get("users") or []),
        "groups": list(value.get("groups") or []),
        "on_call": value.get("on_call"),
    }


class _Configuration(Kind):
    """A restorable kind whose records compare as exported, but for `not_compared`."""

    restorable = True
    not_compared: tuple[str, ...] = ()

    def fingerprint(self, record, archived=None):
        return _digest({k: v for k, v in record.items() if k not in self.not_compared})

    def current(self, project):
        for record in self.export(project):
            yield self.key(record), self.fingerprint(record)

    def _save(self, run, prefix: str, current, data: dict, *, create, update) -> None:
        """Update `current` (the target's object of the record's key) or, when None,
        create one, through the app's services; a refusal goes to run.errors."""
        from apps.core.errors import ValidationFailed

        try:
            if current is not None:
                update(current, data=data, by=run.user, source=run.source)
            else:
                create(project=run.project, data=data, by=run.user, source=run.source)
        except ValidationFailed as exc:
            run.refused(exc, prefix=prefix)


class Baselines(_Configuration):
    """Key nodes by name; restored before the monitoring rules that watch a baseline."""

    name = "baselines"
    label = "Baselines"

    def fingerprint(self, record, archived=None):
        return _digest({**record, "recipients": _recipients(record.get("recipients"))})

    def export(self, project):
        from apps.baselines.models import Baseline

        baselines = (
            Baseline.objects.filter(project=project)
            .order_by("name")
            .prefetch_related("key_nodes", "channels")
        )
        for baseline in baselines.iterator(chunk_size=CHUNK_SIZE):
            yield {
                "name": baseline.name,
                "cycle": baseline.cycle,
                "committed_time": baseline.committed_time,
                "margin_minutes": baseline.margin_minutes,
                "priority": baseline.priority,
                "key_nodes": sorted(node.name for node in baseline.key_nodes.all()),
                "recipients": baseline.recipients,
                "channels": sorted(c.name for c in baseline.channels.all()),
                "enabled": baseline.enabled,
            }

    def apply(self, run):
        from apps.baselines import services
        from apps.baselines.models import Baseline

        diff = run.diffs[self.name]
        nodes = _online_nodes(run.project)
        existing = {
            baseline.name: baseline
            for baseline in Baseline.objects.filter(project=run.project, name__in=diff.to_write)
        }
        for name in diff.to_write:
            record, prefix = run.records[self.name][name], f"{self.name}.{name}"
            key_nodes, problems = _nodes_named(
                run.project, record.get("key_nodes"), nodes, "key_nodes"
            )
            if _unresolved(run, prefix, problems):
                continue
            data = {field: record[field] for field in services.FIELDS if field in record}
            data.update(
                name=name,
                key_nodes=key_nodes,
                channels=_channel_ids(run, f"baseline {name!r}", record.get("channels")),
            )
            if "recipients" in data:
                data["recipients"] = _usable_recipients(
                    run, f"baseline {name!r}", data["recipients"]
                )
            self._save(
                run,
                prefix,
                existing.get(name),
                data,
                create=services.baseline_create,
                update=lambda baseline, **kw: services.baseline_update(baseline=baseline, **kw),
            )
        if run.remove_missing:
            for baseline in Baseline.objects.filter(project=run.project, name__in=diff.removed):
                services.baseline_delete(baseline=baseline, by=run.user, source=run.source)


class MonitorRules(_Configuration):
    """A scope's nodes as `node_names` (node keys) and its baseline as `baseline_name`
    beside the ids, which are kept for the record and not compared."""

    name = "monitor_rules"
    label = "Monitoring rules"

    def fingerprint(self, record, archived=None):
        scope = record.get("scope") if isinstance(record.get("scope"), dict) else {}
        named = {k: v for k, v in scope.items() if k not in ("nodes", "baseline")}
        return _digest(
            {
                **record,
                "scope": named,
                "recipients": _recipients(record.get("recipients")),
                "escalate_to": _recipients(record.get("escalate_to")) or {},
            }
        )

    def export(self, project):
        from apps.baselines.models import Baseline
        from apps.monitoring.models import MonitorRule

        nodes = _node_keys(project)
        baselines = dict(Baseline.objects.filter(project=project).values_list("pk", "name"))
        rules = (
            MonitorRule.objects.filter(project=project)
            .order_by("name")
            .prefetch_related("channels")
        )
        for rule in rules.iterator(chunk_size=CHUNK_SIZE):
            scope = dict(rule.scope or {})
            if isinstance(scope.get("nodes"), list):  # ids mean nothing in another database
                scope["node_names"] = [nodes.get(i) for i in scope["nodes"]]
            if "baseline" in scope:
                scope["baseline_name"] = baselines.get(scope["baseline"])
            yield {
                "name": rule.name,
                "scope": scope,
                "triggers": rule.triggers,
                "severity": rule.severity,
                "recipients": rule.recipients,
                "channels": sorted(c.name for c in rule.channels.all()),
                "dedup_minutes": rule.dedup_minutes,
                "mute_windows": rule.mute_windows,
                "escalate_after_minutes": rule.escalate_after_minutes,
                "escalate_to": rule.escalate_to,
                "enabled": rule.enabled,
            }

    def _scope(self, project, scope, nodes, baselines):
        """The archived scope with the target's ids, and what does not resolve."""
        scope = dict(scope) if isinstance(scope, dict) else {}
        names = scope.pop("node_names", None)
        baseline = scope.pop("baseline_name", None)
        problems: list[tuple[str, str]] = []
        if scope.get("kind") == "nodes":
            scope["nodes"], problems = _nodes_named(project, names, nodes, "scope.nodes")
        elif scope.get("kind") == "baseline":
            if baseline in baselines:
                scope["baseline"] = baselines[baseline]
            else:
                problems.append(
                    ("scope.baseline", f"no baseline {baseline!r} in project {project.code}")
                )
        return scope, problems

    def apply(self, run):
        from apps.baselines.models import Baseline
        from apps.monitoring import services
        from apps.monitoring.models import MonitorRule

        diff = run.diffs[self.name]
        nodes = _online_nodes(run.project)
        baselines = dict(Baseline.objects.filter(project=run.project).values_list("name", "pk"))
        existing = {
            rule.name: rule
            for rule in MonitorRule.objects.filter(project=run.project, name__in=diff.to_write)
        }
        for name in diff.to_write:
            record, prefix = run.records[self.name][name], f"{self.name}.{name}"
            scope, problems = self._scope(run.project, record.get("scope"), nodes, baselines)
            if _unresolved(run, prefix, problems):
                continue
            data = {field: record[field] for field in services.RULE_FIELDS if field in record}
            data.update(
                name=name,
                scope=scope,
                channels=_channel_ids(run, f"monitoring rule {name!r}", record.get("channels")),
            )
            for field in ("recipients", "escalate_to"):
                if field in data:
                    data[field] = _usable_recipients(run, f"monitoring rule {name!r}", data[field])
            self._save(
                run,
                prefix,
                existing.get(name),
                data,
                create=services.monitor_rule_create,
                update=lambda rule, **kw: services.monitor_rule_update(rule=rule, **kw),
            )
        if run.remove_missing:
            for rule in MonitorRule.objects.filter(project=run.project, name__in=diff.removed):
                services.monitor_rule_delete(rule=rule, by=run.user, source=run.source)


def field_rule_key(record: dict) -> str:
    """A field rule has no name: its node and what it checks name it, e.g.
    `load_orders: null_count(email) of public.orders where ds = '${bizdate}'`."""
    node = node_key(record.get("node_env") or Env.PROD, str(record["node"]))
    metric = str(record.get("metric") or "")
    text = f"{node}: {metric}({record['field']})" if record.get("field") else f"{node}: {metric}"
    if record.get("table"):
        text += f" of {record['table']}"
    if record.get("where"):
        text += f" where {' '.join(str(record['where']).split())}"
    if record.get("sql"):
        text += f" sql {hashlib.sha256(str(record['sql']).encode()).hexdigest()[:8]}"
    if record.get("compare") not in (None, "", "value"):
        text += f" ({record['compare']})"
    return text


class FieldRules(_Configuration):
    """Keyed by field_rule_key; rules alike in all of it are told apart by `#2`, `#3`
    in the order they were made (the record's `key`)."""

    name = "field_rules"
    label = "Field rules"
    not_compared = ("key",)

    def key(self, record):
        return str(record.get("key") or field_rule_key(record))

    def _rows(self, project) -> Iterator[tuple[int, dict]]:
        from apps.quality.models import FieldRule

        rules = (
            FieldRule.objects.filter(project=project)
            .order_by("id")
            .select_related("node", "datasource")
            .prefetch_related("channels")
        )
        seen: dict[str, int] = {}
        for rule in rules.iterator(chunk_size=CHUNK_SIZE):
            record = {
                "node": rule.node.name,
                "node_env": rule.node.env,
                "datasource": rule.datasource.name if rule.datasource_id else None,
                "table": rule.table,
                "field": rule.field,
                "where": rule.where,
                "metric": rule.metric,
                "sql": rule.sql,
                "operator": rule.operator,
                "threshold": rule.threshold,
                "threshold_high": rule.threshold_high,
                "compare": rule.compare,
                "severity": rule.severity,
                "channels": sorted(c.name for c in rule.channels.all()),
                "enabled": rule.enabled,
            }
            key = field_rule_key(record)
            seen[key] = seen.get(key, 0) + 1
            record["key"] = key if seen[key] == 1 else f"{key} #{seen[key]}"
            yield rule.pk, record

    def export(self, project):
        for _, record in self._rows(project):
            yield record

    def apply(self, run):
        from apps.quality import services
        from apps.quality.models import FieldRule

        diff = run.diffs[self.name]
        nodes = _online_nodes(run.project)
        wanted = set(diff.to_write) | (set(diff.removed) if run.remove_missing else set())
        ids = {
            record["key"]: pk for pk, record in self._rows(run.project) if record["key"] in wanted
        }
        existing = FieldRule.objects.in_bulk([ids[k] for k in diff.to_write if k in ids])
        for key in diff.to_write:
            record, prefix = run.records[self.name][key], f"{self.name}.{key}"
            node = node_key(record.get("node_env") or Env.PROD, str(record.get("node")))
            if node not in nodes:
                run.errors.append(
                    {
                        "field": f"{prefix}.node",
                        "message": f"no node {node!r} in project {run.project.code}",
                    }
                )
                continue
            data = {field: record[field] for field in services.RULE_FIELDS if field in record}
            data.update(
                node=nodes[node],
                channels=_channel_ids(run, f"field rule {key!r}", record.get("channels")),
            )
            self._save(
                run,
                prefix,
                existing.get(ids.get(key)),
                data,
                create=services.field_rule_create,
                update=lambda rule, **kw: services.field_rule_update(rule=rule, **kw),
            )
        if run.remove_missing:
            removed = [ids[key] for key in diff.removed if key in ids]
            for rule in FieldRule.objects.filter(pk__in=removed).select_related("node"):
                services.field_rule_delete(rule=rule, by=run.user, source=run.source)


class RuntimeConfiguration(Kind):
    """The runtime settings of one level: the project's (per project, restored: one
    record, key `project`, setting the project's overrides) or the global row."""

    name = "runtime_config"
    label = "Runtime configuration"

    def __init__(self, scope: str):
        self.scope = scope
        self.restorable = scope == PROJECT

    def export(self, project):
        from apps.configuration.models import RuntimeConfig
        from apps.configuration.runtime import level_values

        row = RuntimeConfig.objects.filter(project=project).first()
        if row is not None:
            yield {"level": "project" if project else "global", "values": level_values(row)}

    def key(self, record):
        return str(record["level"])

    def fingerprint(self, record, archived=None):
        return _digest(record.get("values"))

    def current(self, project):
        for record in self.export(project):
            yield self.key(record), self.fingerprint(record)

    def apply(self, run):
        from apps.configuration.runtime_services import runtime_config_update
        from apps.core.errors import ValidationFailed

        diff = run.diffs[self.name]
        writes = [(run.records[self.name][key].get("values"), key) for key in diff.to_write]
        if run.remove_missing:
            writes += [({}, key) for key in diff.removed]
        for values, key in writes:
            try:
                runtime_config_update(
                    project=run.project,
                    values=values,
                    by=run.user,
                    source=run.source,
                    replace=True,
                    prefix=f"{self.name}.{key}.values.",
                )
            except ValidationFailed as exc:
                run.refused(exc, prefix="")


# --- archived for the record ------------------------------------------------------------


class ResourceGroups(Kind):
    name = "resource_groups"
    label = "Resource groups"
    scope = GLOBAL

    def export(self, project):
        from apps.configuration.models import ResourceGroup

        rows = ResourceGroup.objects.order_by("name").values(
            "name", "description", "max_concurrency", "cpu_capacity", "memory_capacity_mb"
        )
        yield from rows.iterator(chunk_size=CHUNK_SIZE)


class ThrottleRules(Kind):
    name = "throttle_rules"
    label = "Throttling rules"
    scope = GLOBAL

    def export(self, project):
        from apps.configuration.models import ThrottleRule

        rows = ThrottleRule.objects.order_by("name").values(
            "name",
            "scope_kind",
            "scope_value",
            "max_concurrency",
            "window_start",
            "window_end",
            "enabled",
        )
        yield from rows.iterator(chunk_size=CHUNK_SIZE)


register(Datasources())
register(Variables())
register(Resources())
register(Nodes())
register(Baselines())
register(MonitorRules())
register(FieldRules())
register(RuntimeConfiguration(PROJECT))
register(ResourceGroups())
register(RuntimeConfiguration(GLOBAL))
register(ThrottleRules())
