"""Why is it not running? Every unmet start condition of an instance (SPEC section 4).

diagnose() checks the conditions in the order a pending instance is shown with them —
frozen, waiting_upstream, waiting_time, throttled, waiting_resources — and reports each
one that is unmet, with its detail and the operations that would unblock it. Unlike
the dispatcher, which only needs the first reason, it reports them all: an operator who
resumes a paused instance should already know that its upstream failed too.

The conditions that features add are explained by their admission gates
(apps.instances.admission), asked in the order of their wait reasons: the ones that
filter (the backfill window) after upstream, the ones that count capacity (throttling
rules, then the resource group) after time.

Instances named in the answer are plain dicts (`_ref`), JSON-ready, with times in their
own project's timezone.
"""

import datetime
from collections import deque
from dataclasses import asdict, dataclass, field

from django.conf import settings

from apps.core import clock, dag, times
from apps.projects.selectors import projects_visible_to

from . import admission, logs
from .admission import Blocker
from .choices import DONE_FOR_DOWNSTREAM, InstanceKind, InstanceState, WaitReason
from .dispatcher import ready_now
from .models import Attempt, Instance, InstanceDependency

# Bounds on the root-cause walk: a very long unfinished chain (a self-dependent node
# stuck for months) is reported as far as this, not walked to its end.
MAX_WALK_LEVELS = 200
MAX_WALK_INSTANCES = 5000
MAX_LISTED = 50  # slot holders and frontier instances listed in one answer


@dataclass
class Note:
    """Something worth knowing that does not stop the instance."""

    kind: str
    message: str
    detail: dict = field(default_factory=dict)


@dataclass
class Diagnosis:
    instance: int
    state: str
    summary: str
    ready: bool = False
    blockers: list[Blocker] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _iso(value: datetime.datetime | None, tz) -> str | None:
    return value.astimezone(tz).isoformat() if value else None


class _Names:
    """How instances are named in an answer for one viewer. An instance of a project the
    viewer is not a member of (a cross-project ancestor, a slot holder) keeps its id and
    state — what it waits for matters — but not its project or node."""

    def __init__(self, visible_project_ids: set[int] | None):
        self.visible = visible_project_ids  # None: every project

    def shown(self, instance: Instance) -> bool:
        return self.visible is None or instance.project_id in self.visible

    def label(self, instance: Instance) -> str:
        if self.shown(instance):
            return instance.node.name
        return f"instance {instance.pk} of another project"

    def ref(self, instance: Instance) -> dict:
        """An instance named in a diagnosis (needs node and project loaded)."""
        if not self.shown(instance):
            return {
                "id": instance.pk,
                "project": None,
                "node": None,
                "node_name": None,
                "state": instance.state,
                "paused": instance.paused,
                "biz_date": None,
                "scheduled_at": None,
                "hidden": True,
            }
        return {
            "id": instance.pk,
            "project": instance.project.code,
            "node": instance.node_id,
            "node_name": instance.node.name,
            "state": instance.state,
            "paused": instance.paused,
            "biz_date": instance.biz_date.isoformat(),
            "scheduled_at": _iso(instance.scheduled_at, instance.project.tz),
            "hidden": False,
        }


_action = admission.action


# --- the entry point -------------------------------------------------------------------


def diagnose(instance: Instance, *, now: datetime.datetime | None = None, viewer=None) -> Diagnosis:
    """Every reason `instance` is not running now (none for a started or finished one).
    With `viewer`, instances of projects that user does not see are not named."""
    now = now or clock.now()
    if instance.state == InstanceState.QUEUED and (overdue := _queued_overdue(instance, now)):
        return overdue
    if instance.state != InstanceState.PENDING:
        result = Diagnosis(
            instance=instance.pk, state=instance.state, summary=_not_pending(instance)
        )
        if instance.state == InstanceState.FAILED and (excerpt := _error_excerpt(instance)):
            result.notes.append(excerpt)
        return result
    names = _Names(_visible_project_ids(viewer))

    result = Diagnosis(instance=instance.pk, state=instance.state, summary="")
    result.blockers.extend(_frozen(instance))
    upstream_blocker, notes = _upstream(instance, names)
    result.notes.extend(notes)
    if upstream_blocker:
        result.blockers.append(upstream_blocker)
    explaining = admission.Explaining(
        now=now, names=names, ready_now=lambda scope: ready_now(scope, now)
    )
    for gate in admission.by_reason(admission.filter_gates()):
        result.blockers.extend(gate.explain(instance, explaining))
    if instance.dry_run:
        # A dry run never executes: it is skipped as soon as its upstream is done.
        result.notes.append(
            Note(
                kind="dry_run",
                message="a dry run (its cron does not fire that day): it is skipped, not run, "
                "as soon as its upstream is done",
            )
        )
    else:
        if blocker := _waiting_time(instance, now):
            result.blockers.append(blocker)
        # Throttling rules, then the resource group (SPEC order of wait reasons).
        for gate in admission.by_reason(admission.capacity_gates()):
            result.blockers.extend(gate.explain(instance, explaining))

    if instance.lent_priority:
        result.notes.append(_lent(instance))
    result.ready = not result.blockers
    if result.ready:
        result.summary = (
            "ready: skipped at the next dispatcher pass"
            if instance.dry_run
            else "ready: the next dispatcher pass starts it"
        )
    else:
        result.summary = "waiting: " + "; ".join(b.message for b in result.blockers)
    return result


def _lent(instance: Instance) -> Note:
    """A baseline at risk lends the instance its priority (SPEC 7.3): it starts before
    what its own priority would let it."""
    lender = instance.lent_by
    name = lender.name if lender else "a baseline"
    return Note(
        kind="lent_priority",
        message=f"dispatched at priority {max(instance.priority, instance.lent_priority)} "
        f"(its own is {instance.priority}): baseline {name} lends it "
        f"{instance.lent_priority} while its cycle is at risk",
        detail={
            "priority": instance.priority,
            "lent_priority": instance.lent_priority,
            "lent_by": instance.lent_by_id,
            "lent_by_name": lender.name if lender else None,
        },
    )


def _visible_project_ids(viewer) -> set[int] | None:
    if viewer is None or viewer.is_superuser:
        return None
    return set(projects_visible_to(viewer).values_list("id", flat=True))


def _queued_overdue(instance: Instance, now: datetime.datetime) -> Diagnosis | None:
    """A queued instance no worker has taken in time: its task was probably lost with a
    crashed cluster, and the dispatcher hands it out again (dispatcher.requeue_overdue)."""
    if instance.queued_at is None:
        return None
    waited = round((now - instance.queued_at).total_seconds(), 1)
    timeout = float(settings.OPSCENTER_QUEUED_TIMEOUT_SECONDS)
    if waited <= timeout:
        return None
    return Diagnosis(
        instance=instance.pk,
        state=instance.state,
        summary=(
            f"queued for {waited:g}s: overdue, no worker has taken it within "
            f"OPSCENTER_QUEUED_TIMEOUT_SECONDS ({timeout:g}s); is a worker cluster of "
            f"resource group {instance.resource_group.name!r} running? "
            "The next dispatcher pass hands it out again"
        ),
        notes=[
            Note(
                kind="queued_overdue",
                message="no worker has taken its task in time",
                detail={"queued_seconds": waited, "timeout_seconds": timeout},
            )
        ],
    )


def _error_excerpt(instance: Instance) -> Note | None:
    """The last error lines of the failed instance's last attempt (its last lines when
    none looks like an error), so the cause is read without opening the log."""
    attempt = Attempt.objects.filter(instance=instance).order_by("-number").first()
    if attempt is None or not attempt.log_size:
        return None
    lines = logs.error_excerpt(attempt=attempt)
    message = f"the last error lines of attempt {attempt.number}"
    if not lines:
        start = max(attempt.log_size - logs.EXCERPT_SCAN_CHARS, 0)
        lines = list(deque(logs.log_lines(attempt, start=start), logs.EXCERPT_LINES))
        message = f"the last lines of attempt {attempt.number} (none looks like an error)"
    if not lines:
        return None
    return Note(
        kind="error_excerpt",
        message=message,
        detail={"attempt": attempt.number, "lines": [line.as_dict() for line in lines]},
    )


def _not_pending(instance: Instance) -> str:
    state = instance.state
    if instance.kind == InstanceKind.REALTIME:
        # A streaming process is started and stopped from its node, not dispatched.
        return f"realtime, {state}: start or stop it from its node"
    if state == InstanceState.SUCCEEDED:
        if instance.forced:
            return "finished: set to succeeded by an operator"
        return f"finished: succeeded at {times.format_when(instance.finished_at)}"
    if state == InstanceState.SKIPPED:
        if instance.dry_run:
            return "finished: skipped, a dry run (its cron does not fire that day)"
        return "finished: skipped (cancelled)"
    if state in (InstanceState.FAILED, InstanceState.STOPPED):
        last = (
            Attempt.objects.filter(instance=instance)
            .order_by("-number")
            .values_list("reason", flat=True)
            .first()
        )
        why = f": {last}" if last else ""
        return f"finished: {state}{why}; rerun it to run again"
    if state == InstanceState.QUEUED:
        return f"queued: waiting for a worker of resource group {instance.resource_group.name!r}"
    if state == InstanceState.RUNNING:
        return (
            f"running since {times.format_when(instance.started_at)} "
            f"(attempt {instance.attempt_count})"
        )
    return f"{state}: not waiting to start"


# --- 1. frozen ---------------------------------------------------------------------------


def _frozen(instance: Instance) -> list[Blocker]:
    blockers = []
    if instance.paused:
        blockers.append(
            Blocker(
                kind=WaitReason.FROZEN,
                message="the instance is paused",
                detail={"paused": "instance"},
                actions=[_action("resume", instance.pk, object="instance")],
            )
        )
    if instance.node.paused:
        blockers.append(
            Blocker(
                kind=WaitReason.FROZEN,
                message=f"its node {instance.node.name!r} is paused",
                detail={
                    "paused": "node",
                    "node": instance.node_id,
                    "node_name": instance.node.name,
                },
                actions=[_action("resume", instance.node_id, object="node")],
            )
        )
    return blockers


# --- 2. waiting_upstream -------------------------------------------------------------------


def _problem(instance: Instance) -> str | None:
    """Why this ancestor holds up its downstream for good (until someone acts), if it does."""
    if instance.state in (InstanceState.FAILED, InstanceState.STOPPED):
        return instance.state
    if instance.state == InstanceState.PENDING:
        if instance.paused:
            return "paused"
        if instance.node.paused:
            return "node_paused"
    return None


def _problem_actions(instance: Instance, cause: str) -> list[dict]:
    if cause in (InstanceState.FAILED, InstanceState.STOPPED):
        return [
            _action("rerun", instance.pk, object="instance"),
            _action("set_success", instance.pk, object="instance"),
        ]
    if cause == "paused":
        return [_action("resume", instance.pk, object="instance")]
    if cause == "node_paused":
        return [_action("resume", instance.node_id, object="node")]
    return []


def _upstream(instance: Instance, names: _Names) -> tuple[Blocker | None, list[Note]]:
    edges = list(
        InstanceDependency.objects.filter(downstream=instance).select_related(
            "upstream__node", "upstream__project"
        )
    )
    notes = [
        Note(
            kind="dependency_removed",
            message=f"the dependency on {names.label(e.upstream)!r} (instance {e.upstream_id}) "
            "was removed: it is not waited for",
            detail={"upstream": names.ref(e.upstream)},
        )
        for e in edges
        if e.removed
    ]
    notes.extend(_upstream_nodes_without_instance(instance, edges))
    waiting_on = [
        e.upstream for e in edges if not e.removed and e.upstream.state not in DONE_FOR_DOWNSTREAM
    ]
    if not waiting_on:
        return None, notes

    walk = _walk_up(waiting_on)
    actions = []
    for ancestor, cause, _via in walk.root_causes:
        actions.extend(_problem_actions(ancestor, cause))
    actions.extend(
        _action("remove_dependency", instance.pk, object="instance", upstream=up.pk)
        for up in waiting_on
    )
    actions.append(_action("run_now", instance.pk, object="instance"))

    listed = ", ".join(f"{names.label(up)} ({up.state})" for up in waiting_on[:5])
    more = f" and {len(waiting_on) - 5} more" if len(waiting_on) > 5 else ""
    message = f"waits for {len(waiting_on)} upstream instance(s): {listed}{more}"
    if walk.root_causes:
        causes = ", ".join(
            f"{names.label(a)} {cause.replace('_', ' ')}" for a, cause, _ in walk.root_causes[:5]
        )
        message += f"; root cause: {causes}"
    detail = {
        "upstream": [names.ref(up) for up in waiting_on],
        "root_causes": [
            {**names.ref(a), "cause": cause, "via": via} for a, cause, via in walk.root_causes
        ],
        # Unfinished ancestors that are not a problem: running, or pending on their own
        # time or resources. The chain moves on when they finish.
        "in_progress": [
            {**names.ref(a), "cause": cause, "via": via}
            for a, cause, via in walk.in_progress[:MAX_LISTED]
        ],
        "walk_truncated": walk.truncated,
    }
    return Blocker(WaitReason.WAITING_UPSTREAM, message, detail, actions), notes


@dataclass
class _Walk:
    # (ancestor, cause, ids of the path from the instance's direct upstream up to it)
    root_causes: list[tuple[Instance, str, list[int]]] = field(default_factory=list)
    in_progress: list[tuple[Instance, str, list[int]]] = field(default_factory=list)
    truncated: bool = False


def _walk_up(start: list[Instance]) -> _Walk:
    """Walk up the unfinished ancestors, one query per level, stopping at each problem
    (failed, stopped, paused) and at each ancestor that is itself not held up by anyone."""
    walk = _Walk()
    instances = {i.pk: i for i in start}
    held_up: set[int] = set()

    def unfinished_upstream(ids: list[int]) -> dict[int, list[int]]:
        edges = (
            InstanceDependency.objects.filter(downstream_id__in=ids, removed=False)
            .exclude(upstream__state__in=DONE_FOR_DOWNSTREAM)
            .select_related("upstream__node", "upstream__project")
            .order_by("downstream_id", "upstream__scheduled_at", "upstream_id")
        )
        upstream: dict[int, list[int]] = {}
        for edge in edges:
            instances.setdefault(edge.upstream_id, edge.upstream)
            upstream.setdefault(edge.downstream_id, []).append(edge.upstream_id)
        held_up.update(upstream)
        return upstream

    def ends_the_chain(instance_id: int) -> bool:
        ancestor = instances[instance_id]
        return bool(_problem(ancestor)) or ancestor.state != InstanceState.PENDING

    ancestors = dag.Walk(
        list(instances), unfinished_upstream, depth=MAX_WALK_LEVELS, stop=ends_the_chain
    )
    expanded: list[Instance] = []

    def settle() -> None:
        for ancestor in expanded:
            if ancestor.pk not in held_up:
                # Its upstream is done: it waits on its own time, slot or dispatcher pass.
                cause = ancestor.wait_reason or "pending"
                walk.in_progress.append((ancestor, cause, ancestors.path(ancestor.pk)))

    reached = 0
    for number, level in enumerate(ancestors):
        settle()
        reached += len(level)
        if number == MAX_WALK_LEVELS or (number and reached > MAX_WALK_INSTANCES):
            # This level is read but not reported: there is more above it.
            walk.truncated = True
            return walk
        expanded = []
        for ancestor in map(instances.__getitem__, level):
            if cause := _problem(ancestor):
                walk.root_causes.append((ancestor, cause, ancestors.path(ancestor.pk)))
            elif ancestor.state == InstanceState.PENDING:
                expanded.append(ancestor)
            else:
                walk.in_progress.append((ancestor, ancestor.state, ancestors.path(ancestor.pk)))
    settle()
    return walk


def _upstream_nodes_without_instance(
    instance: Instance, edges: list[InstanceDependency]
) -> list[Note]:
    """Upstream nodes of its version that have no instance to wait for (a node added later,
    or offline): not blocking, but an operator expecting a wait should know. Their names
    are in the instance's own spec, so they are shown to every viewer."""
    from apps.nodes.models import Node

    expected = set(instance.version.upstream_ids or [])
    linked = {e.upstream.node_id for e in edges}
    missing = expected - linked
    if not missing:
        return []
    nodes = Node.objects.filter(pk__in=missing).select_related("project").order_by("name")
    return [
        Note(
            kind="upstream_without_instance",
            message=f"upstream node {node.name!r} has no instance for biz date "
            f"{instance.biz_date.isoformat()}: not waited for",
            detail={"node": node.pk, "node_name": node.name, "project": node.project.code},
        )
        for node in nodes
    ]


# --- 3. waiting_time -------------------------------------------------------------------


def _waiting_time(instance: Instance, now: datetime.datetime) -> Blocker | None:
    retry = instance.next_attempt_at is not None
    until = instance.next_attempt_at if retry else instance.scheduled_at
    if until <= now:
        return None
    tz = instance.project.tz
    what = "its next attempt" if retry else "its scheduled time"
    return Blocker(
        kind=WaitReason.WAITING_TIME,
        message=f"waits for {what}, {times.format_when(until)}",
        detail={
            "until": _iso(until, tz),
            "seconds": int((until - now).total_seconds()),
            "retry": retry,
            "attempts_so_far": instance.attempt_count,
        },
        actions=[_action("run_now", instance.pk, object="instance")],
    )


# --- 4, 5. throttled, waiting_resources ------------------------------------------------
# Explained by the capacity gates that hold instances back (admission.capacity_gates():
# throttling rules, resource groups), as the backfill window is by its filter gate.
