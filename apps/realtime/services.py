"""Realtime (streaming) nodes: their one instance, and start / stop / change resources.

A realtime node has exactly one instance (kind "realtime"), made in state `stopped` when
the node is first published. The operations here only move its state; the supervisor
(supervisor.py) runs the process:

    stopped | failed -> starting      realtime_start
    starting -> running               the supervisor claims it and starts the process
    running -> stopping -> stopped    realtime_stop; the supervisor ends the process tree
    starting -> stopped               realtime_stop before any supervisor claimed it
    running -> failed                 the process kept exiting (restart limit reached)

Every transition is a conditional update, so a stop racing a claim, or two operators
at once, leave exactly one winner. Resource changes are stored and read at the next
start; a republish that changes the version is also picked up at the next start.
"""

import datetime
from collections.abc import Iterable

from django.conf import settings

from apps.core import clock
from apps.core.errors import Conflict, ValidationFailed
from apps.instances import states
from apps.instances.choices import InstanceKind, InstanceState
from apps.instances.models import Instance
from apps.nodes.choices import NodeStatus, ScheduleType
from apps.nodes.models import Node
from apps.nodes.operations import operate

from .models import RealtimeSettings

S = InstanceState
STARTABLE = (InstanceState.STOPPED, InstanceState.FAILED)
STOPPABLE = (InstanceState.STARTING, InstanceState.RUNNING)
# On the way between two stable states: a supervisor is about to move it on.
MOVING = (InstanceState.STARTING, InstanceState.STOPPING)
MAX_CPU = 1024
MAX_MEMORY_MB = 4 * 1024 * 1024
MAX_RESTART_LIMIT = 100


def _biz_date(node: Node, now: datetime.datetime) -> datetime.date:
    # Like every other run: the data of the day before (T-1), in the project's timezone.
    return now.astimezone(node.project.tz).date() - datetime.timedelta(days=1)


def realtime_instances_ensure(*, node_ids: Iterable[int]) -> list[Instance]:
    """Give each realtime node among `node_ids` its instance (state `stopped`) if it has
    none yet. Called by publish; a node that has one keeps it."""
    made = []
    nodes = (
        Node.objects.filter(pk__in=list(node_ids), schedule_type=ScheduleType.REALTIME)
        .filter(realtime__isnull=True, current_version__isnull=False)
        .select_related("project")
    )
    now = clock.now()
    for node in nodes:
        instance = Instance.objects.create(
            project=node.project,
            node=node,
            version_id=node.current_version_id,
            env=node.env,
            kind=InstanceKind.REALTIME,
            biz_date=_biz_date(node, now),
            scheduled_at=now,
            state=InstanceState.STOPPED,
            priority=node.priority,
            resource_group_id=node.resource_group_id,
        )
        RealtimeSettings.objects.create(node=node, instance=instance)
        made.append(instance)
    return made


def realtime_settings_get(node: Node) -> RealtimeSettings:
    if node.schedule_type != ScheduleType.REALTIME:
        raise Conflict(f"node {node} is not a realtime node")
    found = RealtimeSettings.objects.filter(node=node).select_related("instance").first()
    if found is None:
        # Published before realtime instances existed, or made without publish.
        realtime_instances_ensure(node_ids=[node.pk])
        found = RealtimeSettings.objects.select_related("instance").get(node=node)
    return found


def supervisor_lost(row: RealtimeSettings, now: datetime.datetime) -> bool:
    """No supervisor has heartbeated for this instance within the heartbeat timeout."""
    limit = now - datetime.timedelta(seconds=settings.OPSCENTER_HEARTBEAT_TIMEOUT)
    return row.heartbeat_at is None or row.heartbeat_at < limit


def realtime_start(*, node: Node, by, source: str) -> Instance:
    """stopped | failed -> starting, with the node's current version; a supervisor starts
    the process within a moment."""

    def change() -> dict:
        row = realtime_settings_get(node)
        current = Node.objects.filter(pk=node.pk).values("status", "current_version").first()
        if current["status"] != NodeStatus.ONLINE:
            raise Conflict(f"node {node} is offline")
        if current["current_version"] is None:
            raise Conflict(f"node {node} has no published version")
        now = clock.now()
        changed = states.move(
            ids=[row.instance_id],
            from_states=STARTABLE,
            to_state=InstanceState.STARTING,
            now=now,
            cause="realtime_start",
            version_id=current["current_version"],
            biz_date=_biz_date(node, now),
            scheduled_at=now,
            started_at=now,
            finished_at=None,
            retries_used=0,
        )
        if not changed:
            state = Instance.objects.values_list("state", flat=True).get(pk=row.instance_id)
            raise Conflict(f"node {node} is {state}: only a stopped or failed one can start")
        return {"instance": row.instance_id, "version_id": current["current_version"]}

    operate(action="realtime_start", node=node, by=by, source=source, change=change)
    return Instance.objects.select_related("node", "version").get(node=node, realtime__isnull=False)


def realtime_stop(*, node: Node, by, source: str) -> Instance:
    """running -> stopping (the supervisor asks the process to end, then kills it after
    the grace period); starting -> stopped when no supervisor has taken it yet."""

    def change() -> dict:
        row = realtime_settings_get(node)
        now = clock.now()
        ids = [row.instance_id]
        stop = dict(ids=ids, now=now, cause="realtime_stop")
        if states.move(**stop, from_states=[S.STARTING], to_state=S.STOPPED, finished_at=now):
            return {"instance": row.instance_id, "from": S.STARTING}
        if supervisor_lost(row, now) and states.move(
            **stop, from_states=[S.RUNNING, S.STOPPING], to_state=S.STOPPED, finished_at=now
        ):
            # Nobody runs it (its supervisor is gone, and its process with it).
            return {"instance": row.instance_id, "from": "running", "supervisor": "lost"}
        if states.move(**stop, from_states=[S.RUNNING], to_state=S.STOPPING):
            return {"instance": row.instance_id, "from": S.RUNNING}
        state = Instance.objects.values_list("state", flat=True).get(pk=row.instance_id)
        raise Conflict(f"node {node} is {state}: only a starting or running one can stop")

    operate(action="realtime_stop", node=node, by=by, source=source, change=change)
    return Instance.objects.select_related("node", "version").get(node=node, realtime__isnull=False)


def _positive(value, *, field: str, kind: type, maximum: float, errors: list) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and kind is int:
        ok = float(value).is_integer()
    if not ok or not 0 < value <= maximum:
        what = "a whole number" if kind is int else "a number"
        errors.append({"field": field, "message": f"{what} above 0, at most {maximum:g}"})


def realtime_change_resources(
    *,
    node: Node,
    by,
    source: str,
    cpu: float | None = None,
    memory_mb: int | None = None,
    restart_limit: int | None = None,
) -> RealtimeSettings:
    """Store new CPU / memory (and restart limit) for the node's realtime process; they
    take effect at its next start."""

    def change() -> dict:
        errors: list[dict] = []
        if cpu is None and memory_mb is None and restart_limit is None:
            errors.append({"field": "cpu", "message": "give cpu, memory_mb or restart_limit"})
        if cpu is not None:
            _positive(cpu, field="cpu", kind=float, maximum=MAX_CPU, errors=errors)
        if memory_mb is not None:
            _positive(memory_mb, field="memory_mb", kind=int, maximum=MAX_MEMORY_MB, errors=errors)
        if restart_limit is not None and (
            not isinstance(restart_limit, int)
            or isinstance(restart_limit, bool)
            or not 0 <= restart_limit <= MAX_RESTART_LIMIT
        ):
            errors.append(
                {"field": "restart_limit", "message": f"a whole number 0..{MAX_RESTART_LIMIT}"}
            )
        if errors:
            raise ValidationFailed("invalid " + ", ".join(e["field"] for e in errors), errors)
        row = RealtimeSettings.objects.select_for_update().get(pk=realtime_settings_get(node).pk)
        before = {"cpu": row.cpu, "memory_mb": row.memory_mb, "restart_limit": row.restart_limit}
        if cpu is not None:
            row.cpu = float(cpu)
        if memory_mb is not None:
            row.memory_mb = int(memory_mb)
        if restart_limit is not None:
            row.restart_limit = restart_limit
        row.save(update_fields=["cpu", "memory_mb", "restart_limit", "updated_at"])
        after = {"cpu": row.cpu, "memory_mb": row.memory_mb, "restart_limit": row.restart_limit}
        return {"before": before, "after": after, "applies": "at the next start"}

    operate(action="realtime_resources", node=node, by=by, source=source, change=change)
    return RealtimeSettings.objects.select_related("instance").get(node=node)


def effective_resources(row: RealtimeSettings, spec: dict) -> tuple[float | None, int | None]:
    """The CPU and memory a start gets: the operator's setting, else the spec's."""
    cpu = row.cpu if row.cpu is not None else spec.get("cpu")
    memory = row.memory_mb if row.memory_mb is not None else spec.get("memory_mb")
    return (float(cpu) if cpu is not None else None, int(memory) if memory is not None else None)
