"""API shapes of a realtime node's process (used by apps.nodes.api)."""

import datetime

from ninja import Field, Schema

from apps.core.schemas import InputSchema
from apps.instances.models import Attempt

from .models import RealtimeSettings


class RealtimeOut(Schema):
    node: int
    instance: int
    state: str
    version: int
    cpu: float | None = Field(description="setting used from the next start (null: the spec's)")
    memory_mb: int | None
    applied_cpu: float | None = Field(description="what the current/last start got")
    applied_memory_mb: int | None
    restart_limit: int
    restart_window_seconds: int
    supervisor: str
    heartbeat_at: datetime.datetime | None
    attempt: int | None = Field(description="number of the latest process start")
    pid: int | None
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None


class RealtimeResourcesIn(InputSchema):
    cpu: float | None = None
    memory_mb: int | None = None
    restart_limit: int | None = None


def realtime_out(row: RealtimeSettings) -> dict:
    row.refresh_from_db()
    instance = row.instance
    instance.refresh_from_db()
    latest = Attempt.objects.filter(instance=instance).order_by("-number").first()
    return {
        "node": row.node_id,
        "instance": instance.pk,
        "state": instance.state,
        "version": instance.version.number,
        "cpu": row.cpu,
        "memory_mb": row.memory_mb,
        "applied_cpu": row.applied_cpu,
        "applied_memory_mb": row.applied_memory_mb,
        "restart_limit": row.restart_limit,
        "restart_window_seconds": row.restart_window_seconds,
        "supervisor": row.supervisor,
        "heartbeat_at": row.heartbeat_at,
        "attempt": latest.number if latest else None,
        "pid": latest.pid if latest else None,
        "started_at": instance.started_at,
        "finished_at": instance.finished_at,
    }
