"""Writes to projects and their configuration: members, datasources, variables.

Each service validates everything before writing, raises ValidationFailed naming every
wrong field, and records the change in the operation log. Permission checks are the
caller's (apps.projects.permissions.require_role); the services trust `user`.
"""

import contextlib
import datetime
import os
import re
import sqlite3
import time
import zoneinfo
from dataclasses import dataclass
from typing import Any

import psycopg.conninfo
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, RestrictedError

from apps.audit.choices import Result
from apps.audit.services import operation_record
from apps.core.errors import Conflict, NotFound, ValidationFailed

from .choices import DatasourceKind, EnvMode, GenerationMode, Role
from .models import Datasource, Membership, Project, Variable
from .selectors import nodes_using_datasource

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# Datasources are named in node specs; variables are used as ${var.NAME} in scripts.
DATASOURCE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
VARIABLE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

# Fields of a project an admin may change after creation (the code is its identity).
PROJECT_EDITABLE = (
    "name",
    "description",
    "timezone",
    "env_mode",
    "generation_time",
    "generation_mode",
)


class _Errors:
    """Collects every problem of one input so the answer names them all at once."""

    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, field: str, message: str) -> None:
        self.items.append({"field": field, "message": message})

    def raise_if_any(self, what: str) -> None:
        if self.items:
            fields = ", ".join(dict.fromkeys(e["field"] for e in self.items))
            raise ValidationFailed(f"invalid {what}: {fields}", self.items)


@contextlib.contextmanager
def _taken_raises(field: str, message: str):
    """A unique constraint lost to a concurrent request answers like the check before it."""
    try:
        yield
    except IntegrityError as exc:
        raise ValidationFailed(f"invalid {field}", [{"field": field, "message": message}]) from exc


def _one_of(choices) -> str:
    return "one of " + ", ".join(choices.values)


def parse_generation_time(value: Any) -> datetime.time | None:
    """'HH:MM' (24-hour) -> time, None when it is not one."""
    if isinstance(value, datetime.time):
        return value.replace(second=0, microsecond=0, tzinfo=None)
    if isinstance(value, str) and (match := TIME_RE.match(value.strip())):
        return datetime.time(int(match.group(1)), int(match.group(2)))
    return None


def _check_project_fields(errors: _Errors, fields: dict) -> dict:
    """Validate the editable project fields present in `fields`; answer cleaned values."""
    clean: dict[str, Any] = {}
    if "name" in fields:
        name = (fields["name"] or "").strip()
        if not name:
            errors.add("name", "must not be empty")
        elif len(name) > 200:
            errors.add("name", "at most 200 characters")
        clean["name"] = name
    if "description" in fields:
        clean["description"] = fields["description"] or ""
    if "timezone" in fields:
        tz = (fields["timezone"] or "").strip()
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            errors.add("timezone", f"unknown timezone {tz!r}: an IANA name such as Asia/Shanghai")
        clean["timezone"] = tz
    if "env_mode" in fields:
        if fields["env_mode"] not in EnvMode.values:
            errors.add("env_mode", _one_of(EnvMode))
        clean["env_mode"] = fields["env_mode"]
    if "generation_time" in fields:
        parsed = parse_generation_time(fields["generation_time"])
        if parsed is None:
            errors.add("generation_time", "a time of day as HH:MM (24-hour)")
        clean["generation_time"] = parsed
    if "generation_mode" in fields:
        if fields["generation_mode"] not in GenerationMode.values:
            errors.add("generation_mode", _one_of(GenerationMode))
        clean["generation_mode"] = fields["generation_mode"]
    return clean


def _jsonable(fields: dict) -> dict:
    return {
        k: v.strftime("%H:%M") if isinstance(v, datetime.time) else v for k, v in fields.items()
    }


# --- projects ----------------------------------------------------------------------------


def project_create(
    *,
    user,
    code: str,
    name: str,
    timezone: str = "UTC",
    env_mode: str = EnvMode.BASIC,
    generation_time: str | datetime.time = "23:00",
    generation_mode: str = GenerationMode.T_PLUS_1,
    description: str = "",
    source: str = "api",
) -> Project:
    """A new project; its creator (when there is one) becomes its admin."""
    errors = _Errors()
    code = (code or "").strip()
    if not CODE_RE.match(code):
        errors.add("code", "1 to 64 letters, digits, '-' or '_', starting with a letter or digit")
    elif Project.objects.filter(code__iexact=code).exists():
        errors.add("code", f"a project {code!r} already exists")
    clean = _check_project_fields(
        errors,
        dict(
            name=name,
            description=description,
            timezone=timezone,
            env_mode=env_mode,
            generation_time=generation_time,
            generation_mode=generation_mode,
        ),
    )
    errors.raise_if_any("project")
    with transaction.atomic(), _taken_raises("code", f"a project {code!r} already exists"):
        project = Project.objects.create(code=code, **clean)
        if user is not None and user.is_authenticated:
            Membership.objects.create(project=project, user=user, role=Role.ADMIN)
        operation_record(
            user=user,
            source=source,
            action="project.create",
            object_type="project",
            object_id=project.code,
            project=project,
            detail=_jsonable(clean),
        )
    return project


def project_update(*, project: Project, user, fields: dict, source: str = "api") -> Project:
    """Change some of PROJECT_EDITABLE; `fields` holds only what the caller sent."""
    errors = _Errors()
    for field in fields:
        if field not in PROJECT_EDITABLE:
            errors.add(field, "cannot be changed" if field == "code" else "unknown field")
    clean = _check_project_fields(errors, fields)
    if clean.get("env_mode") == EnvMode.BASIC and project.env_mode != EnvMode.BASIC:
        # A basic project has no dev environment; its dev nodes would be stranded.
        from apps.nodes.models import Node

        if Node.objects.filter(project=project, env="dev").exists():
            errors.add("env_mode", "the project still has dev nodes; take them offline first")
    errors.raise_if_any("project")
    changed = {k: v for k, v in clean.items() if getattr(project, k) != v}
    if not changed:
        return project
    with transaction.atomic():
        for key, value in changed.items():
            setattr(project, key, value)
        project.save(update_fields=list(changed))
        operation_record(
            user=user,
            source=source,
            action="project.update",
            object_type="project",
            object_id=project.code,
            project=project,
            detail=_jsonable(changed),
        )
    return project


def project_delete(*, project: Project, user, source: str = "api") -> None:
    """Delete a project with its nodes and history. Refused while something runs or while
    other projects' nodes depend on its nodes (their pipelines would silently change).

    It holds the generators' lock: a generation in progress (which reads this project's
    nodes and those of its neighbours) finishes first, and one that comes after finds the
    project gone. A generation that runs too long answers 409."""
    from apps.instances.choices import ACTIVE
    from apps.instances.generation import without_generators
    from apps.instances.models import Instance
    from apps.nodes.models import NodeDependency

    refusal = (
        f"instances are being generated; project {project.code!r} can be deleted when "
        "the generation has finished (try again in a moment)"
    )
    with without_generators(refusal=refusal):
        active = Instance.objects.filter(project=project, state__in=ACTIVE).count()
        if active:
            raise Conflict(
                f"project {project.code!r} has {active} queued or running instance(s); "
                "stop them first"
            )
        dependents = (
            NodeDependency.objects.filter(upstream__project=project)
            .exclude(node__project=project)
            .select_related("node__project", "upstream")
            .order_by("node__project__code", "node__name")
        )
        if dependents.exists():
            names = sorted({f"{d.node.project.code}.{d.node.name}" for d in dependents[:20]})
            raise Conflict(
                f"nodes of other projects depend on project {project.code!r}: {', '.join(names)}",
                [{"field": "code", "message": f"{n} depends on it"} for n in names],
            )
        operation_record(
            user=user,
            source=source,
            action="project.delete",
            object_type="project",
            object_id=project.code,
            project=None,
            detail={"code": project.code, "name": project.name},
        )
        # Instances first: they protect the node versions they ran.
        Instance.objects.filter(project=project).delete()
        project.delete()


# --- members ---------------------------------------------------------------------------


def _check_role(errors: _Errors, role: Any) -> None:
    if role not in Role.values:
        errors.add("role", _one_of(Role))


def _admins_left_without(project: Project, membership: Membership) -> int:
    return (
        Membership.objects.filter(project=project, role=Role.ADMIN)
        .exclude(pk=membership.pk)
        .count()
    )


def member_add(
    *, project: Project, username: str, role: str, user, source: str = "api"
) -> Membership:
    errors = _Errors()
    member = get_user_model().objects.filter(username=username, is_active=True).first()
    if member is None:
        errors.add("username", f"unknown user {username!r}")
    elif Membership.objects.filter(project=project, user=member).exists():
        errors.add("username", f"{username!r} is already a member; change their role instead")
    _check_role(errors, role)
    errors.raise_if_any("member")
    with transaction.atomic(), _taken_raises("username", f"{username!r} is already a member"):
        membership = Membership.objects.create(project=project, user=member, role=role)
        operation_record(
            user=user,
            source=source,
            action="member.add",
            object_type="member",
            object_id=member.username,
            project=project,
            detail={"username": member.username, "role": role},
        )
    return membership


def member_get(*, project: Project, username: str) -> Membership:
    membership = (
        Membership.objects.select_related("user")
        .filter(project=project, user__username=username)
        .first()
    )
    if membership is None:
        raise NotFound(f"{username!r} is not a member of project {project.code!r}")
    return membership


def member_update(*, membership: Membership, role: str, user, source: str = "api") -> Membership:
    errors = _Errors()
    _check_role(errors, role)
    if (
        membership.role == Role.ADMIN
        and role != Role.ADMIN
        and not _admins_left_without(membership.project, membership)
    ):
        errors.add(
            "role", "the project's last admin cannot be demoted; make someone else admin first"
        )
    errors.raise_if_any("member")
    if membership.role == role:
        return membership
    with transaction.atomic():
        before = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        operation_record(
            user=user,
            source=source,
            action="member.update",
            object_type="member",
            object_id=membership.user.username,
            project=membership.project,
            detail={"username": membership.user.username, "role": role, "was": before},
        )
    return membership


def member_remove(*, membership: Membership, user, source: str = "api") -> None:
    if membership.role == Role.ADMIN and not _admins_left_without(membership.project, membership):
        raise Conflict(
            "the project's last admin cannot be removed; make someone else admin first",
            [{"field": "username", "message": "the last admin"}],
        )
    with transaction.atomic():
        operation_record(
            user=user,
            source=source,
            action="member.remove",
            object_type="member",
            object_id=membership.user.username,
            project=membership.project,
            detail={"username": membership.user.username, "role": membership.role},
        )
        membership.delete()


# --- datasources -----------------------------------------------------------------------


def _secret_dsn_parameters() -> frozenset[str]:
    """libpq's parameters that hold a secret: those it marks as passwords ("*"), plus the
    SCRAM keys, which stand for the password, and the ones older libpq versions lack."""
    known = {
        "password",
        "sslpassword",
        "oauth_client_secret",
        "scram_client_key",
        "scram_server_key",
    }
    for option in psycopg.pq.Conninfo.get_defaults():
        if option.dispchar == b"*":
            known.add(option.keyword.decode())
    return frozenset(known)


SECRET_DSN_PARAMETERS = _secret_dsn_parameters()


def dsn_problem(dsn: str) -> str | None:
    """Why `dsn` cannot be a datasource's connection string, or None. The DSN is shown in
    pages, answers and the operation log, so no secret may travel in it, in key=value or
    URL form (a URL's user:password@ is its `password` parameter)."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        return f"not a PostgreSQL connection string: {exc}"
    secrets = sorted(SECRET_DSN_PARAMETERS.intersection(parts))
    if secrets:
        return (
            f"contains secret parameters ({', '.join(secrets)}); remove them: the password "
            "goes in `password`, which is stored encrypted and never shown"
        )
    return None


def _check_datasource(
    errors: _Errors, *, project: Project, fields: dict, current: Datasource | None
):
    """Validate the datasource as it would be after applying `fields` to `current`."""
    name = fields.get("name", current.name if current else "")
    kind = fields.get("kind", current.kind if current else "")
    dsn = fields.get("dsn", current.dsn if current else "") or ""
    path = fields.get("path", current.path if current else "") or ""
    if "name" in fields or current is None:
        if not isinstance(name, str) or not DATASOURCE_NAME_RE.match(name):
            errors.add(
                "name", "1 to 100 letters, digits, '.', '-' or '_', starting with a letter or digit"
            )
        else:
            taken = Datasource.objects.filter(project=project, name=name)
            if current is not None:
                taken = taken.exclude(pk=current.pk)
            if taken.exists():
                errors.add("name", f"a datasource {name!r} already exists in this project")
    if kind not in DatasourceKind.values:
        errors.add("kind", _one_of(DatasourceKind))
    elif kind == DatasourceKind.POSTGRESQL:
        if not dsn.strip():
            errors.add(
                "dsn", "a PostgreSQL datasource needs a dsn (e.g. host=db dbname=sales user=etl)"
            )
        elif problem := dsn_problem(dsn):
            errors.add("dsn", problem)
        if path.strip():
            errors.add("path", "only for sqlite datasources")
    elif kind == DatasourceKind.SQLITE:
        if not path.strip():
            errors.add("path", "a SQLite datasource needs the path of its database file")
        if dsn.strip():
            errors.add("dsn", "only for postgresql datasources")
        if fields.get("password"):
            errors.add("password", "SQLite datasources have no password")
    if (
        "password" in fields
        and fields["password"] is not None
        and not isinstance(fields["password"], str)
    ):
        errors.add("password", "a string")
    return {"name": name, "kind": kind, "dsn": dsn.strip(), "path": path.strip()}


def _datasource_detail(datasource: Datasource, password_changed: bool) -> dict:
    detail = {
        "name": datasource.name,
        "kind": datasource.kind,
        "dsn": datasource.dsn,
        "path": datasource.path,
    }
    if password_changed:
        detail["password"] = "changed"  # never the secret itself
    return detail


def datasource_create(
    *,
    project: Project,
    name: str,
    kind: str,
    dsn: str = "",
    path: str = "",
    password: str | None = None,
    user,
    source: str = "api",
) -> Datasource:
    errors = _Errors()
    fields = {"name": name, "kind": kind, "dsn": dsn, "path": path, "password": password}
    clean = _check_datasource(errors, project=project, fields=fields, current=None)
    errors.raise_if_any("datasource")
    with (
        transaction.atomic(),
        _taken_raises("name", f"a datasource {name!r} already exists in this project"),
    ):
        datasource = Datasource(project=project, **clean)
        if password:
            datasource.set_password(password)
        datasource.save()
        operation_record(
            user=user,
            source=source,
            action="datasource.create",
            object_type="datasource",
            object_id=datasource.name,
            project=project,
            detail=_datasource_detail(datasource, bool(password)),
        )
    return datasource


def datasource_get(*, project: Project, name: str) -> Datasource:
    datasource = Datasource.objects.filter(project=project, name=name).first()
    if datasource is None:
        raise NotFound(f"datasource {name!r} not found in project {project.code!r}")
    return datasource


def datasource_update(
    *, datasource: Datasource, fields: dict, user, source: str = "api"
) -> Datasource:
    """Change some fields. `password`: absent or None keeps it, "" clears it, else replaces it."""
    errors = _Errors()
    for field in fields:
        if field not in ("name", "kind", "dsn", "path", "password"):
            errors.add(field, "unknown field")
    clean = _check_datasource(errors, project=datasource.project, fields=fields, current=datasource)
    if clean["name"] != datasource.name and (users := nodes_using_datasource(datasource)):
        errors.add("name", f"nodes use it by name: {', '.join(users)}")
    errors.raise_if_any("datasource")
    changed = [k for k, v in clean.items() if getattr(datasource, k) != v]
    try:
        old_password: str | None = datasource.get_password()
    except ValueError:  # undecryptable (the key changed): only a new password replaces it
        old_password = None
    password = old_password if fields.get("password") is None else fields["password"]
    if clean["kind"] == DatasourceKind.SQLITE:
        password = ""  # a datasource that became SQLite keeps no stale secret
    password_changed = password != old_password
    if not changed and not password_changed:
        return datasource
    with transaction.atomic():
        for key in changed:
            setattr(datasource, key, clean[key])
        if password_changed:
            datasource.set_password(password)
            changed.append("password_encrypted")
        datasource.save(update_fields=changed)
        operation_record(
            user=user,
            source=source,
            action="datasource.update",
            object_type="datasource",
            object_id=datasource.name,
            project=datasource.project,
            detail=_datasource_detail(datasource, password_changed),
        )
    return datasource


def datasource_delete(*, datasource: Datasource, user, source: str = "api") -> None:
    if users := nodes_using_datasource(datasource):
        raise Conflict(
            f"datasource {datasource.name!r} is used by nodes: {', '.join(users)}",
            [{"field": "name", "message": f"used by {name}"} for name in users],
        )
    with transaction.atomic():
        operation_record(
            user=user,
            source=source,
            action="datasource.delete",
            object_type="datasource",
            object_id=datasource.name,
            project=datasource.project,
            detail=_datasource_detail(datasource, False),
        )
        try:
            datasource.delete()
        except (ProtectedError, RestrictedError) as exc:
            # Another feature's objects read it (field rules): they go first.
            users = sorted({str(obj) for obj in exc.args[1]})[:20]
            raise Conflict(
                f"datasource {datasource.name!r} is used by: {', '.join(users)}",
                [{"field": "name", "message": f"used by {name}"} for name in users],
            ) from exc


# Seconds a Test connection waits for a server before it says it could not reach it.
CONNECTION_TEST_TIMEOUT = 10


@dataclass(frozen=True)
class ConnectionTest:
    """What a Test connection found: `ok`, and a message saying where it connected (and
    the server's version) or why it could not."""

    ok: bool
    message: str
    seconds: float
    server_version: str = ""


def _postgresql_version(number: int) -> str:
    """libpq's server_version number as people write it: 160004 -> 16.4, 90624 -> 9.6.24."""
    if number >= 100000:
        return f"{number // 10000}.{number % 10000}"
    return f"{number // 10000}.{number // 100 % 100}.{number % 100}"


def _connection_try(settings: dict, timeout: int) -> tuple[bool, str, str]:
    """(ok, message, server version): connect with the SQL runners' own connect() and run
    one query that needs a working database."""
    from apps.instances.executors.sql_runner import connect

    kind = settings["kind"]
    if kind == DatasourceKind.SQLITE and not os.path.isfile(settings["path"]):
        # sqlite3 would create an empty database here: a typo must not pass as connected.
        return (
            False,
            f"no database file at {settings['path']} (a SQL node would start an empty one there)",
            "",
        )
    try:
        conn, _, where = connect(settings, connect_timeout=timeout)
    except Exception as exc:  # whatever the driver raises is the answer
        return False, f"could not connect: {str(exc).strip()}", ""
    try:
        cursor = conn.cursor()
        if kind == DatasourceKind.SQLITE:
            cursor.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
            tables = cursor.fetchone()[0]
            version = sqlite3.sqlite_version
            return True, f"Connected to {where} (SQLite {version}, {tables} table(s))", version
        cursor.execute("SELECT 1")
        cursor.fetchone()
        version = _postgresql_version(conn.info.server_version)
        user = conn.info.user
        return True, f"Connected to {where} as {user} (PostgreSQL {version})", version
    except Exception as exc:  # a file that is no database, a server that refuses queries
        return False, f"connected to {where}, but a query failed: {str(exc).strip()}", ""
    finally:
        conn.close()


def datasource_test(
    *,
    datasource: Datasource,
    user,
    source: str = "api",
    timeout: int = CONNECTION_TEST_TIMEOUT,
) -> ConnectionTest:
    """Connect to the datasource as its SQL nodes do, from this (the web) server, and say
    whether it worked. The password is used, never shown: the driver's message is cleaned
    of it. The try is recorded in the operation log with its outcome."""
    started = time.monotonic()
    try:
        settings = datasource.connection_settings()
    except ValueError as exc:  # the stored password no longer decrypts
        ok, message, version = False, f"the stored password cannot be used: {exc}", ""
        password = ""
    else:
        password = settings["password"]
        ok, message, version = _connection_try(settings, timeout)
    if password:
        message = message.replace(password, "********")
    result = ConnectionTest(
        ok=ok,
        message=message,
        seconds=round(time.monotonic() - started, 3),
        server_version=version,
    )
    operation_record(
        user=user,
        source=source,
        action="datasource.test",
        object_type="datasource",
        object_id=datasource.name,
        project=datasource.project,
        detail={"ok": ok, "seconds": result.seconds},
        result=Result.OK if ok else Result.FAILED,
        message=message,
    )
    return result


# --- variables -------------------------------------------------------------------------


def variable_get(*, project: Project, name: str) -> Variable:
    variable = Variable.objects.filter(project=project, name=name).first()
    if variable is None:
        raise NotFound(f"variable {name!r} not found in project {project.code!r}")
    return variable


def variable_set(
    *,
    project: Project,
    name: str,
    value: str,
    user,
    create: bool = False,
    source: str = "api",
) -> Variable:
    """Create or change a variable. `create=True` refuses one that exists (POST)."""
    errors = _Errors()
    if not isinstance(name, str) or not VARIABLE_NAME_RE.match(name):
        errors.add(
            "name",
            "1 to 100 letters, digits or '_', not starting with a digit (used as ${var.NAME})",
        )
    elif create and Variable.objects.filter(project=project, name=name).exists():
        errors.add("name", f"a variable {name!r} already exists in this project")
    if not isinstance(value, str):
        errors.add("value", "a string")
    errors.raise_if_any("variable")
    with transaction.atomic():
        variable, created = Variable.objects.get_or_create(
            project=project, name=name, defaults={"value": value}
        )
        if not created:
            if variable.value == value:
                return variable
            variable.value = value
            variable.save(update_fields=["value"])
        operation_record(
            user=user,
            source=source,
            action="variable.create" if created else "variable.update",
            object_type="variable",
            object_id=name,
            project=project,
            detail={"name": name, "value": value},
        )
    return variable


def variable_delete(*, variable: Variable, user, source: str = "api") -> None:
    with transaction.atomic():
        operation_record(
            user=user,
            source=source,
            action="variable.delete",
            object_type="variable",
            object_id=variable.name,
            project=variable.project,
            detail={"name": variable.name},
        )
        variable.delete()
