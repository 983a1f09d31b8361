"""GET /api/health: the cluster health page's numbers."""

import datetime

from ninja import Router, Schema

from .selectors import health_get

router = Router(tags=["health"])


class ClusterOut(Schema):
    cluster_id: str
    host: str
    pid: int
    queue: str
    status: str
    alive: bool
    workers: int
    started_at: datetime.datetime | None
    heartbeat_at: datetime.datetime
    heartbeat_age_seconds: float
    queued_tasks: int | None
    failed_tasks: int


class SupervisorOut(Schema):
    name: str
    host: str
    queues: list[str]
    workers: int
    heartbeat_at: datetime.datetime | None
    heartbeat_age_seconds: float | None
    alive: bool


class FailedTaskOut(Schema):
    id: str
    name: str
    func: str
    queue: str
    started_at: datetime.datetime | None
    stopped_at: datetime.datetime | None


class HealthOut(Schema):
    generated_at: datetime.datetime
    dead_after_seconds: float
    dead: int
    clusters: list[ClusterOut]
    supervisors: list[SupervisorOut]
    failed_tasks: list[FailedTaskOut]


@router.get("", response=HealthOut, summary="Task clusters and realtime supervisors")
def health(request):
    """Every django-q2 cluster seen (a dead one: no heartbeat for more than
    `dead_after_seconds`), every realtime supervisor, and the recent failed tasks."""
    data = health_get()
    return {
        "generated_at": data.now,
        "dead_after_seconds": data.dead_after_seconds,
        "dead": data.dead,
        "clusters": [vars(c) for c in data.clusters],
        "supervisors": [vars(s) for s in data.supervisors],
        "failed_tasks": [
            {
                "id": t.id,
                "name": t.name,
                "func": t.func,
                "queue": t.cluster or "",
                "started_at": t.started,
                "stopped_at": t.stopped,
            }
            for t in data.failed_tasks
        ],
    }
