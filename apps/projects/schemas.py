"""API shapes for projects, members, datasources and variables (SPEC section 12)."""

import datetime
from typing import Annotated

from ninja import Field, Schema
from pydantic import PlainSerializer

from apps.core.schemas import InputSchema

# ISO 8601 with an explicit offset ("+00:00", never "Z"), so every client parses it alike.
IsoDateTime = Annotated[
    datetime.datetime,
    PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="unless-none"),
]


# --- projects --------------------------------------------------------------------------


class ProjectIn(InputSchema):
    code: str = Field(description="letters, digits, '-' and '_'; fixed once created")
    name: str
    description: str = ""
    timezone: str = Field("UTC", description="IANA timezone, e.g. Asia/Shanghai")
    env_mode: str = Field("basic", description="basic | dev_prod")
    generation_time: str = Field("23:00", description="HH:MM in the project's timezone")
    generation_mode: str = Field("t_plus_1", description="t_plus_1 | immediate")


class ProjectPatch(InputSchema):
    # Omitted fields are kept; defaults of None are never validated, so null is refused.
    name: str = None
    description: str = None
    timezone: str = None
    env_mode: str = None
    generation_time: str = None
    generation_mode: str = None


class ProjectOut(Schema):
    code: str
    name: str
    description: str
    timezone: str
    env_mode: str
    generation_time: str
    generation_mode: str
    created_at: IsoDateTime
    role: str | None = Field(None, description="the caller's role in the project")

    @staticmethod
    def resolve_generation_time(obj) -> str:
        return obj.generation_time.strftime("%H:%M")

    @staticmethod
    def resolve_role(obj) -> str | None:
        return getattr(obj, "caller_role", None)


class ProjectList(Schema):
    items: list[ProjectOut]
    next_cursor: str | None


# --- members ---------------------------------------------------------------------------


class MemberIn(InputSchema):
    username: str
    role: str = Field(description="viewer | developer | operator | admin")


class MemberPatch(InputSchema):
    role: str = Field(description="viewer | developer | operator | admin")


class MemberOut(Schema):
    username: str
    role: str
    created_at: IsoDateTime

    @staticmethod
    def resolve_username(obj) -> str:
        return obj.user.username


class MemberList(Schema):
    items: list[MemberOut]
    next_cursor: str | None


# --- datasources -----------------------------------------------------------------------


class DatasourceIn(InputSchema):
    name: str
    kind: str = Field(description="postgresql | sqlite")
    dsn: str = Field("", description="postgresql: a libpq DSN or URL, without the password")
    path: str = Field("", description="sqlite: the database file")
    password: str | None = Field(None, description="write-only; stored encrypted, never returned")


class DatasourcePatch(InputSchema):
    name: str = None
    kind: str = None
    dsn: str = None
    path: str = None
    password: str | None = Field(None, description='write-only: omitted keeps it, "" clears it')


class DatasourceOut(Schema):
    name: str
    kind: str
    dsn: str
    path: str
    has_password: bool
    restored_without_secret: bool = Field(
        description="restored from a backup (which keeps no secrets) after it had a password: "
        "set the password again; setting one clears this"
    )
    created_at: IsoDateTime


class DatasourceList(Schema):
    items: list[DatasourceOut]
    next_cursor: str | None


class DatasourceTestOut(Schema):
    ok: bool
    message: str = Field(description="where it connected, or why it could not; never the password")
    seconds: float
    server_version: str = Field("", description="the server's (or SQLite's) version when ok")


# --- variables -------------------------------------------------------------------------


class VariableIn(InputSchema):
    name: str = Field(description="used in scripts as ${var.NAME}")
    value: str = ""


class VariablePatch(InputSchema):
    value: str


class VariableOut(Schema):
    name: str
    value: str


class VariableList(Schema):
    items: list[VariableOut]
    next_cursor: str | None
