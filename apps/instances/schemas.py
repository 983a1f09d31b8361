"""API shapes for instances (SPEC section 12 field names). Times are given in the
instance's project timezone, ISO 8601 with the offset."""

import datetime
from typing import Any

from ninja import Field, Schema

from apps.projects.schemas import IsoDateTime


def _local(obj, value: datetime.datetime | None) -> datetime.datetime | None:
    return value.astimezone(obj.project.tz) if value else None


class InstanceOut(Schema):
    id: int
    project: str
    node: int
    node_name: str
    version: int
    kind: str
    biz_date: datetime.date
    scheduled_at: IsoDateTime
    state: str
    wait_reason: str
    paused: bool
    forced: bool
    priority: int
    lent_priority: int | None = Field(
        description="the priority a baseline at risk lends it (SPEC 7.3); it is dispatched "
        "at the greater of this and its own priority"
    )
    lent_by: int | None = Field(description="the baseline lending it its priority")
    resource_group: str
    started_at: IsoDateTime | None
    finished_at: IsoDateTime | None
    duration_seconds: float | None

    @staticmethod
    def resolve_project(obj) -> str:
        return obj.project.code

    @staticmethod
    def resolve_node(obj) -> int:
        return obj.node_id

    @staticmethod
    def resolve_node_name(obj) -> str:
        return obj.node.name

    @staticmethod
    def resolve_version(obj) -> int:
        return obj.version.number

    @staticmethod
    def resolve_lent_by(obj) -> int | None:
        return obj.lent_by_id

    @staticmethod
    def resolve_resource_group(obj) -> str:
        return obj.resource_group.name

    @staticmethod
    def resolve_scheduled_at(obj):
        return _local(obj, obj.scheduled_at)

    @staticmethod
    def resolve_started_at(obj):
        return _local(obj, obj.started_at)

    @staticmethod
    def resolve_finished_at(obj):
        return _local(obj, obj.finished_at)


class InstanceList(Schema):
    items: list[InstanceOut]
    next_cursor: str | None


class AttemptOut(Schema):
    number: int
    state: str
    reason: str
    started_at: IsoDateTime
    finished_at: IsoDateTime | None
    exit_code: int | None
    cpu_seconds: float | None
    peak_memory_mb: float | None
    worker: str
    killed_for: str = Field(
        description='why opscenter killed it: "timeout", "memory" (over its memory_mb), or ""'
    )
    runtime: dict[str, Any] = Field(
        description="the runtime settings it started with, each {value, source} "
        "(as GET /api/runtime-config answers them); {} for attempts that ran nothing"
    )

    @staticmethod
    def resolve_started_at(obj):
        return _local(obj.instance, obj.started_at)

    @staticmethod
    def resolve_finished_at(obj):
        return _local(obj.instance, obj.finished_at)


class InstanceDetail(InstanceOut):
    env: str
    dry_run: bool
    attempt_count: int
    next_attempt_at: IsoDateTime | None
    attempts: list[AttemptOut]
    upstream: list[int] = Field(description="ids of the upstream instances it waits for")
    downstream: list[int] = Field(description="ids of the instances that wait for it")
    removed_upstream: list[int] = Field(
        description="upstream instances whose dependency an operator removed"
    )
    params: dict[str, str] = Field(
        description="parameter values given when the run was started (a one-time Run); "
        "the node's defaults apply to the others"
    )
    created_by: str | None = Field(
        description="who started it (a one-time Run, a backfill); null when generated"
    )

    @staticmethod
    def resolve_created_by(obj) -> str | None:
        return obj.created_by.get_username() if obj.created_by_id else None

    @staticmethod
    def resolve_next_attempt_at(obj):
        return _local(obj, obj.next_attempt_at)


class LogOut(Schema):
    attempt: int | None = Field(description="attempt number; null before the first attempt")
    offset: int
    next_offset: int = Field(description="ask for this offset next to follow the log")
    text: str
    finished: bool = Field(description="true when the attempt ended and all its log was read")


class InstanceDagEdgeOut(Schema):
    upstream: int
    downstream: int
    removed: bool


class InstanceDagOut(Schema):
    root: int
    instances: list[InstanceOut]
    edges: list[InstanceDagEdgeOut]


class BlockerOut(Schema):
    kind: str = Field(
        description="frozen | waiting_upstream | waiting_time | throttled | waiting_resources"
    )
    message: str
    detail: dict
    actions: list[dict] = Field(description="operations that would unblock it")


class NoteOut(Schema):
    kind: str
    message: str
    detail: dict


class DiagnosisOut(Schema):
    instance: int
    state: str
    summary: str
    ready: bool = Field(
        description="pending and nothing stops it: the next dispatcher pass starts it"
    )
    blockers: list[BlockerOut]
    notes: list[NoteOut]
