"""Operations on instances (SPEC section 5): rerun, set success, stop, pause, resume,
change resource group, remove a dependency, run now, and batches of them.

Every operation checks the acting user's role (operator for prod instances, developer
for dev ones; viewers never), changes state only with conditional updates (the row
must still be in a state that allows the change, so an operation racing the
dispatcher or a worker is refused rather than applied twice), and records itself in
the operation log: `ok` with what changed, or `refused` with the reason. A refusal is
recorded after its transaction rolled back, so the record survives the refusal.

When a change may let something start (a child of an instance set to succeeded, a
resumed instance), the dispatcher passes over exactly those instances as soon as the
change is committed, instead of waiting for its periodic pass.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef

from apps.audit.services import operation_records, operation_run
from apps.configuration.models import ResourceGroup
from apps.configuration.runtime import rerun_refusals
from apps.core import clock, dag
from apps.core.errors import Conflict, NotFound, OpscenterError, PermissionDenied, ValidationFailed
from apps.nodes.choices import Env
from apps.projects.choices import Role
from apps.projects.models import Project
from apps.projects.permissions import require_role
from apps.projects.selectors import has_role, projects_visible_to

from . import dispatcher, states
from .choices import FINISHED, AttemptState, InstanceKind, InstanceState, WaitReason
from .models import Attempt, Instance, InstanceDependency
from .selectors import instances_visible_to

BATCH_MAX = 1000
# Rows per `IN (...)` list when walking the graph (SQLite's variable limit is far above).
CHUNK = 500

UNFINISHED = (InstanceState.PENDING, InstanceState.QUEUED, InstanceState.RUNNING)
SET_SUCCESS_FROM = states.SET_SUCCESS_FROM

# How an instance in each state is described in a refusal ("instance 12 has failed: ...").
_STATE_PHRASE = {
    InstanceState.PENDING: "is pending",
    InstanceState.QUEUED: "is queued",
    InstanceState.RUNNING: "is running",
    InstanceState.SUCCEEDED: "has succeeded",
    InstanceState.FAILED: "has failed",
    InstanceState.STOPPED: "was stopped",
    InstanceState.SKIPPED: "was skipped",
}


@dataclass
class BatchItem:
    """The result of one item of a batch operation."""

    id: int
    ok: bool
    state: str | None
    message: str


def operate_role(env: str) -> str:
    """The role an operation on an instance or node of `env` needs."""
    return Role.DEVELOPER if env == Env.DEV else Role.OPERATOR


def state_phrase(state: str) -> str:
    return _STATE_PHRASE.get(state, f"is {state}")


def tick_on_commit(ids: Iterable[int]) -> None:
    """Let the dispatcher start whichever of `ids` may start, once the change is visible.
    A failure there must not turn a done operation into an error: the periodic pass
    catches up, so it is only logged (robust)."""
    ids = sorted(set(ids))
    if ids:
        transaction.on_commit(lambda: dispatcher.tick(only_ids=ids), robust=True)


def refresh_wait_reasons(ids: Iterable[int]) -> None:
    """Store the new wait reason of changed pending instances in the same transaction, so
    the answer shows it even before the dispatcher passes."""
    ids = list(ids)
    if ids:
        dispatcher.wait_reasons_refresh(scope=Instance.objects.filter(pk__in=ids), now=clock.now())


def _reload(instance: Instance) -> Instance:
    instance.refresh_from_db(
        from_queryset=Instance.objects.select_related(
            "node", "project", "resource_group", "version"
        )
    )
    return instance


def _current_state(instance_id: int) -> str | None:
    return Instance.objects.filter(pk=instance_id).values_list("state", flat=True).first()


def _refuse(instance: Instance, needs: str) -> Conflict:
    """A refusal naming the state the instance is in NOW (it may have moved since it was
    read) and what the operation needs."""
    state = _current_state(instance.pk) or instance.state
    return Conflict(f"instance {instance.pk} {state_phrase(state)}: {needs}")


def _operate(
    *, action: str, instance: Instance, by, source: str, change: Callable[[], dict]
) -> Instance:
    """Run `change` (which returns the log detail, or raises to refuse) with the role
    check, one transaction and the operation log around it."""

    def authorize() -> None:
        require_role(by, instance.project, operate_role(instance.env))
        if instance.kind == InstanceKind.REALTIME:
            raise Conflict(
                f"instance {instance.pk} is a realtime instance: start and stop it from its node"
            )

    operation_run(
        by=by,
        source=source,
        action=action,
        object_type="instance",
        object_id=instance.pk,
        project=instance.project,
        authorize=authorize,
        change=change,
        refused_detail=lambda: {"state": _current_state(instance.pk)},
    )
    return _reload(instance)


def children_of(ids: Iterable[int]) -> list[int]:
    """Instances waiting (through an edge that still blocks) for any of `ids`."""
    return list(
        InstanceDependency.objects.filter(upstream_id__in=list(ids), removed=False).values_list(
            "downstream_id", flat=True
        )
    )


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


# --- rerun -------------------------------------------------------------------------------


def _attempt_running():
    return Exists(Attempt.objects.filter(instance=OuterRef("pk"), state=AttemptState.RUNNING))


def _descendants(root_id: int) -> list[int]:
    """Every transitive downstream instance of `root_id`, nearest first, one query per
    level and chunk. Removed edges are followed too: what was rerun upstream is new data
    for them as well."""
    return list(dag.descendants([root_id], _downstream_edges, sort=True))


def _downstream_edges(ids: list[int]) -> dict[int, list[int]]:
    downstream: dict[int, list[int]] = {}
    for chunk in _chunks(ids):
        for upstream_id, downstream_id in InstanceDependency.objects.filter(
            upstream_id__in=chunk
        ).values_list("upstream_id", "downstream_id"):
            downstream.setdefault(upstream_id, []).append(downstream_id)
    return downstream


def _require_downstream_roles(by, ids: list[int]) -> None:
    """Resetting downstream instances is an operation on each of them: the user needs the
    role in every project (and environment) they belong to."""
    pairs = set()
    for chunk in _chunks(ids):
        pairs |= set(
            Instance.objects.filter(pk__in=chunk)
            .order_by()
            .values_list("project_id", "env")
            .distinct()
        )
    projects = {p.pk: p for p in Project.objects.filter(pk__in={p for p, _ in pairs})}
    denied = sorted(
        {
            project_id
            for project_id, env in pairs
            if not has_role(by, projects[project_id], operate_role(env))
        }
    )
    if not denied:
        return
    visible = set(projects_visible_to(by).filter(pk__in=denied).values_list("pk", flat=True))
    named = sorted(projects[p].code for p in denied if p in visible)
    hidden = len(denied) - len(named)
    where = ", ".join(named + ([f"{hidden} project(s) you cannot see"] if hidden else []))
    raise PermissionDenied(
        f"rerun with downstream would also reset instances in {where}, where you may not "
        "operate; rerun without downstream, or ask their operators"
    )


def rerun_policy_refusals(ids: list[int]) -> dict[int, str]:
    """Why each of `ids` may not be rerun by hand under its rerun policy (SPEC 9), read
    in one query per chunk; ids rerun may go are left out."""
    rows = []
    for chunk in _chunks(ids):
        rows += Instance.objects.filter(pk__in=chunk).values_list(
            "pk", "state", "project_id", "version__spec__rerun_policy"
        )
    return rerun_refusals(rows)


def _require_downstream_rerun_policies(ids: list[int]) -> None:
    """Resetting a downstream instance reruns it by hand too: its rerun policy holds."""
    refused = rerun_policy_refusals(ids)
    if refused:
        named = "; ".join(f"instance {pk}: {why}" for pk, why in sorted(refused.items())[:5])
        more = f" (and {len(refused) - 5} more)" if len(refused) > 5 else ""
        raise Conflict(
            f"rerun with downstream would also rerun instances whose rerun policy refuses "
            f"it: {named}{more}; rerun without downstream"
        )


def _record_resets(*, rerun_of: int, reset: dict[int, tuple[str, int]], by, source: str) -> None:
    """Each instance a rerun reset downstream carries the reset in its own operation log,
    naming the rerun instance and who reran it (written at once, in the rerun's
    transaction: a refused rerun leaves none)."""
    if not reset:
        return
    who = by.get_username() if getattr(by, "is_authenticated", False) else "the system"
    operation_records(
        user=by,
        source=source,
        action="reset_by_rerun",
        object_type="instance",
        rows=[
            {
                "object_id": pk,
                "project_id": project_id,
                "detail": {"rerun_of": rerun_of, "from_state": from_state},
                "message": f"reset by the rerun of instance {rerun_of} by {who}",
            }
            for pk, (from_state, project_id) in sorted(reset.items())
        ],
    )


def instance_rerun(*, instance: Instance, by, source: str, downstream: bool = False) -> Instance:
    """A finished instance (succeeded, failed, stopped, skipped) runs again: it becomes
    pending with a clean slate (retries, times, forced and paused flags) and gets a new
    attempt when it may start. With `downstream`, every finished transitive downstream
    instance is reset the same way (unfinished ones are left alone), and dependencies
    removed between rerun instances block again, so the rerun runs in order. The rerun
    policy of each (SPEC 9) may refuse: `never`, or `failed_only` for a succeeded one."""

    def change() -> dict:
        previous = _current_state(instance.pk)
        now = clock.now()
        refused = rerun_policy_refusals([instance.pk]).get(instance.pk)
        if refused:
            raise Conflict(f"instance {instance.pk} is not rerun: {refused}")
        if not states.instances_rerun(ids=[instance.pk], now=now):
            raise _refuse(instance, "rerun needs a finished instance")
        # A stopped instance's worker may not have killed its process yet; a new attempt
        # beside it would be two runs at once.
        if Attempt.objects.filter(instance=instance, state=AttemptState.RUNNING).exists():
            raise Conflict(
                f"instance {instance.pk}'s last attempt is still ending: rerun it when it "
                "has stopped"
            )
        reset: list[int] = []
        if downstream:
            candidates = _descendants(instance.pk)
            finished: dict[int, tuple[str, int]] = {}  # id -> (state, project id)
            for chunk in _chunks(candidates):
                finished.update(
                    (pk, (state, project_id))
                    for pk, state, project_id in Instance.objects.filter(
                        pk__in=chunk, state__in=FINISHED
                    )
                    .exclude(_attempt_running())
                    .values_list("pk", "state", "project_id")
                )
            _require_downstream_roles(by, list(finished))
            _require_downstream_rerun_policies(list(finished))
            for chunk in _chunks(sorted(finished)):
                # The ids recorded are exactly the rows changed.
                reset.extend(states.instances_rerun(ids=chunk, now=now, cause="rerun_downstream"))
            _record_resets(
                rerun_of=instance.pk, reset={pk: finished[pk] for pk in reset}, by=by, source=source
            )
        rerun = [instance.pk, *reset]
        restored = 0
        if reset:
            for chunk in _chunks(reset):
                restored += InstanceDependency.objects.filter(
                    downstream_id__in=chunk, upstream_id__in=rerun, removed=True
                ).update(removed=False)
        refresh_wait_reasons(rerun)
        tick_on_commit(rerun)
        return {
            "from_state": previous,
            "downstream": downstream,
            "reset_downstream": sorted(reset),
            "restored_dependencies": restored,
        }

    return _operate(action="rerun", instance=instance, by=by, source=source, change=change)


# --- set success, stop ------------------------------------------------------------------


def instance_set_success(*, instance: Instance, by, source: str) -> Instance:
    """pending, failed or stopped -> succeeded, marked forced; its children may start."""

    def change() -> dict:
        previous = _current_state(instance.pk)
        if not states.instance_set_success(instance_id=instance.pk, now=clock.now()):
            raise _refuse(instance, "set success needs a pending, failed or stopped instance")
        children = children_of([instance.pk])
        refresh_wait_reasons(children)
        tick_on_commit(children)
        return {"from_state": previous}

    return _operate(action="set_success", instance=instance, by=by, source=source, change=change)


def instance_stop(*, instance: Instance, by, source: str) -> Instance:
    """pending, queued or running -> stopped. A running attempt's worker notices within
    about a second and kills the whole process tree; the attempt ends `stopped`."""

    def change() -> dict:
        previous = _current_state(instance.pk)
        if not states.instance_stop_running(instance_id=instance.pk, now=clock.now()):
            raise _refuse(instance, "stop needs a pending, queued or running instance")
        if previous in (InstanceState.QUEUED, InstanceState.RUNNING):
            # Its slot in the resource group is free now: the next ones in line may start.
            waiting = Instance.objects.filter(
                resource_group_id=instance.resource_group_id,
                state=InstanceState.PENDING,
                wait_reason=WaitReason.WAITING_RESOURCES,
            ).order_by("-dispatch_priority", "scheduled_at", "id")
            tick_on_commit(waiting.values_list("pk", flat=True)[:CHUNK])
        return {"from_state": previous}

    return _operate(action="stop", instance=instance, by=by, source=source, change=change)


# --- pause, resume ---------------------------------------------------------------------


def instance_pause(*, instance: Instance, by, source: str) -> Instance:
    """Freeze an unfinished instance: it will not start (nor retry) until resumed, and its
    downstream waits. A running attempt is not interrupted (stop does that)."""

    def change() -> dict:
        changed = Instance.objects.filter(
            pk=instance.pk, state__in=UNFINISHED, paused=False
        ).update(paused=True)
        if not changed:
            if Instance.objects.filter(pk=instance.pk, paused=True).exists():
                raise Conflict(f"instance {instance.pk} is already paused")
            raise _refuse(instance, "only an unfinished instance can be paused")
        refresh_wait_reasons([instance.pk])
        return {"paused": True}

    return _operate(action="pause", instance=instance, by=by, source=source, change=change)


def instance_resume(*, instance: Instance, by, source: str) -> Instance:
    """Unfreeze a paused unfinished instance; it starts when its conditions hold."""

    def change() -> dict:
        changed = Instance.objects.filter(pk=instance.pk, state__in=UNFINISHED, paused=True).update(
            paused=False
        )
        if not changed:
            if Instance.objects.filter(pk=instance.pk, paused=False).exists():
                raise Conflict(f"instance {instance.pk} is not paused")
            raise _refuse(instance, "only an unfinished instance can be resumed")
        refresh_wait_reasons([instance.pk])
        tick_on_commit([instance.pk])
        return {"paused": False}

    return _operate(action="resume", instance=instance, by=by, source=source, change=change)


# --- before it starts: resource group, dependencies, run now ---------------------------


def instance_change_resource_group(
    *, instance: Instance, by, source: str, resource_group: str
) -> Instance:
    """Move a pending instance to another resource group (this instance only; the node
    and its other instances keep theirs)."""

    def change() -> dict:
        group = ResourceGroup.objects.filter(name=resource_group).first()
        if group is None:
            raise ValidationFailed(
                f"unknown resource group {resource_group!r}",
                [{"field": "resource_group", "message": f"no resource group {resource_group!r}"}],
            )
        previous = (
            Instance.objects.filter(pk=instance.pk)
            .values_list("resource_group__name", flat=True)
            .first()
        )
        if previous == group.name:
            raise Conflict(f"instance {instance.pk} is already in resource group {group.name!r}")
        changed = Instance.objects.filter(pk=instance.pk, state=InstanceState.PENDING).update(
            resource_group=group
        )
        if not changed:
            raise _refuse(instance, "the resource group can change only before it starts (pending)")
        refresh_wait_reasons([instance.pk])
        tick_on_commit([instance.pk])
        return {"from": previous, "to": group.name}

    return _operate(
        action="change_resource_group", instance=instance, by=by, source=source, change=change
    )


def instance_remove_dependency(
    *, instance: Instance, upstream_id: int, by, source: str
) -> Instance:
    """The pending instance no longer waits for upstream instance `upstream_id`. The edge
    is kept, marked removed, for the record and the graph."""

    def change() -> dict:
        edge = InstanceDependency.objects.filter(downstream=instance, upstream_id=upstream_id)
        if not edge.exists():
            raise NotFound(f"instance {upstream_id} is not an upstream of instance {instance.pk}")
        changed = edge.filter(
            removed=False,
            downstream__in=Instance.objects.filter(pk=instance.pk, state=InstanceState.PENDING),
        ).update(removed=True)
        if not changed:
            if edge.filter(removed=True).exists():
                raise Conflict(
                    f"the dependency of instance {instance.pk} on instance {upstream_id} "
                    "is already removed"
                )
            raise _refuse(instance, "a dependency can be removed only from a pending instance")
        upstream_state = _current_state(upstream_id)
        refresh_wait_reasons([instance.pk])
        tick_on_commit([instance.pk])
        return {"upstream": upstream_id, "upstream_state": upstream_state}

    return _operate(
        action="remove_dependency", instance=instance, by=by, source=source, change=change
    )


def instance_run_now(*, instance: Instance, by, source: str) -> Instance:
    """Start a pending instance as soon as its resource group has room, ignoring its
    upstream and its scheduled time (not pause flags, not resources)."""

    def change() -> dict:
        changed = Instance.objects.filter(
            pk=instance.pk,
            state=InstanceState.PENDING,
            paused=False,
            node__paused=False,
            run_now=False,
        ).update(run_now=True)
        if not changed:
            row = (
                Instance.objects.filter(pk=instance.pk)
                .values("state", "paused", "node__paused", "run_now", "node__name")
                .first()
            )
            if row and row["state"] == InstanceState.PENDING:
                if row["paused"]:
                    raise Conflict(f"instance {instance.pk} is paused: resume it first")
                if row["node__paused"]:
                    raise Conflict(f"node {row['node__name']} is paused: resume the node first")
                raise Conflict(f"instance {instance.pk} is already set to run now")
            raise _refuse(instance, "run now needs a pending instance")
        refresh_wait_reasons([instance.pk])
        tick_on_commit([instance.pk])
        return {"run_now": True}

    return _operate(action="run_now", instance=instance, by=by, source=source, change=change)


# --- batches -----------------------------------------------------------------------------

BATCH_ACTIONS: dict[str, Callable[..., Instance]] = {
    "rerun": instance_rerun,
    "stop": instance_stop,
    "set_success": instance_set_success,
    "pause": instance_pause,
    "resume": instance_resume,
}


def batch_ids(ids, *, field: str = "ids") -> list[int]:
    """Distinct ids in the order given; refuses what is not a list of ids."""
    if not isinstance(ids, list | tuple) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in ids
    ):
        raise ValidationFailed(
            f"invalid {field}", [{"field": field, "message": "a list of whole-number ids"}]
        )
    if len(ids) > BATCH_MAX:
        raise ValidationFailed(
            f"invalid {field}",
            [{"field": field, "message": f"at most {BATCH_MAX} ids in one batch"}],
        )
    return list(dict.fromkeys(ids))


def instances_batch(*, ids: list[int], action: str, by, source: str) -> list[BatchItem]:
    """`action` (rerun, stop, set_success, pause, resume) on each instance on its own: a
    refusal of one does not stop the others. Rerun here does not reset downstream."""
    operation = BATCH_ACTIONS.get(action)
    if operation is None:
        raise ValidationFailed(
            f"unknown action {action!r}",
            [{"field": "action", "message": f"one of {', '.join(BATCH_ACTIONS)}"}],
        )
    ids = batch_ids(ids)
    found = instances_visible_to(by).in_bulk(ids)
    results = []
    for instance_id in ids:
        instance = found.get(instance_id)
        if instance is None:
            results.append(BatchItem(instance_id, False, None, f"instance {instance_id} not found"))
            continue
        try:
            instance = operation(instance=instance, by=by, source=source)
        except OpscenterError as exc:
            results.append(BatchItem(instance_id, False, _current_state(instance_id), exc.detail))
        else:
            results.append(
                BatchItem(instance_id, True, instance.state, f"{action}: now {instance.state}")
            )
    return results
