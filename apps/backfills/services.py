"""Data backfill (PatchData, SPEC section 6): plan, create, follow, stop and repair a run.

A run re-runs root nodes, and optionally their downstream nodes, for a range of
business dates. Each selected node gets kind `backfill` instances of its CURRENT
version, one per cron time on biz date + 1 (weekly and longer nodes: a dry run on the
days they do not fire, as in generation), with the dependencies of SPEC section 3 among
the selected nodes of the same date (generation.align), and a self-dependent node's
first instance of a date waits for its last instance of the date run before it.

Order. Each instance carries `backfill_seq`, its date's position in the run's order
(ascending or descending dates). The dispatcher starts an instance only when its seq is
below `window_start + parallelism`; `window_start` is the first position that still has
an unfinished instance (backfill_refresh, called when an instance of the run finishes
and by each dispatcher pass). Serial is parallelism 1: date d+1 starts only when every
instance of date d is finished.

Sharing a resource group with recurring work. Backfill instances obey resource groups,
capacity and priority like any other, with two rules so a large backfill never starves
the daily pipelines it shares a group with:
- a backfill instance's priority is one below its node's (at least 1), so recurring
  instances of the same node priority start first as slots free up, even though the
  backfill's instances have older scheduled times (at node priority 1 they tie, and the
  older scheduled time wins);
- only the window's dates are eligible at once, so a 90-date run puts at most
  `parallelism` dates' worth of instances in front of the dispatcher.

Scheduled times stay truthful (the cron times of biz date + 1). A time in the past is
due at once; one in the future waits for it unless the run has `ignore_schedule_time`,
which sets `next_attempt_at` to the creation time: the dispatcher's due test takes
next_attempt_at over scheduled_at, so the instance is due at once without pretending
another scheduled time (and, unlike run-now, it still waits for upstream).

Creation is one bulk write: every instance in batched INSERTs, then every edge.
"""

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Count, Min

from apps.audit.choices import Result
from apps.audit.services import operation_record, operation_run
from apps.configuration.models import ResourceGroup
from apps.core import clock, dag
from apps.core.errors import Conflict, OpscenterError, ValidationFailed
from apps.instances import dispatcher, generation, schedules, states
from apps.instances.choices import ACTIVE, InstanceKind, InstanceState
from apps.instances.models import Instance, InstanceDependency
from apps.instances.operations import instance_rerun, operate_role, tick_on_commit
from apps.nodes.choices import NodeStatus, ScheduleType
from apps.nodes.models import Node
from apps.nodes.selectors import node_downstream_ids
from apps.projects.models import Project
from apps.projects.permissions import require_role
from apps.projects.selectors import projects_visible_to

from .choices import BackfillOrder, BackfillState, Downstream
from .models import Backfill

ONE_DAY = datetime.timedelta(days=1)
MAX_DATES = 366
MAX_PARALLELISM = 100
MAX_NODES = 1000
MAX_INSTANCES = 200_000
BATCH_SIZE = 2000
UNFINISHED = (InstanceState.PENDING, InstanceState.QUEUED, InstanceState.RUNNING)


def backfill_priority(node_priority: int) -> int:
    """A backfill instance's priority: one below its node's, at least 1 (see above)."""
    return max(1, int(node_priority or 3) - 1)


@dataclass
class BackfillPlan:
    """What a backfill would create. `dates` is in run order: (biz date, instances)."""

    dates: list[tuple[datetime.date, int]]
    total: int
    nodes: list[Node]
    # (upstream node id, downstream node id) among the selected nodes: the DAG of a date.
    edges: list[tuple[int, int]]
    # Inputs, checked and normalised.
    root_ids: list[int] = field(default_factory=list)
    downstream_kind: str = Downstream.NONE
    order: str = BackfillOrder.SERIAL
    parallelism: int = 1
    descending: bool = False
    start: datetime.date | None = None
    end: datetime.date | None = None


# --- checking the request -------------------------------------------------------------


def _error(field_name: str, message: str) -> dict:
    return {"field": field_name, "message": message}


def _backfillable_error(node: Node) -> str | None:
    if node.status != NodeStatus.ONLINE:
        return f"node {node.pk} ({node.name}) is offline"
    if node.schedule_type != ScheduleType.RECURRING:
        return f"node {node.pk} ({node.name}) is {node.schedule_type}: only recurring nodes are backfilled"
    if node.current_version_id is None:
        return f"node {node.pk} ({node.name}) has no published version"
    cron = node.current_version.spec.get("schedule", {}).get("cron")
    if schedules.cron_error(cron):
        return f"node {node.pk} ({node.name}) has no valid cron"
    return None


def nodes_resolve(*, ids: Iterable, by=None) -> list[Node]:
    """The nodes of `ids` (visible to `by` when given), in the order given; 422 naming
    `nodes` for any id that is not a node one may see."""
    ids = list(ids)
    wanted = []
    errors = []
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(_error("nodes", f"{value!r} is not a node id"))
        else:
            wanted.append(value)
    found = Node.objects.select_related("project", "current_version").filter(pk__in=wanted)
    if by is not None and not by.is_superuser:
        found = found.filter(project__in=projects_visible_to(by))
    by_id = {node.pk: node for node in found}
    errors += [_error("nodes", f"node {i} not found") for i in wanted if i not in by_id]
    if errors:
        raise ValidationFailed("invalid nodes", errors)
    return [by_id[i] for i in dict.fromkeys(wanted)]


def downstream_of(roots: Sequence[Node], *, by) -> list[Node]:
    """Every transitive downstream node of `roots` in the current node graph (also in
    other projects, those `by` may see), that can be backfilled; one query per level."""
    found = dag.descendants([node.pk for node in roots], node_downstream_ids)
    nodes = Node.objects.select_related("project", "current_version").filter(pk__in=list(found))
    if by is not None and not by.is_superuser:
        nodes = nodes.filter(project__in=projects_visible_to(by))
    return [node for node in nodes.order_by("id") if _backfillable_error(node) is None]


def _dates(start: datetime.date, end: datetime.date, descending: bool) -> list[datetime.date]:
    days = [start + ONE_DAY * i for i in range((end - start).days + 1)]
    return days[::-1] if descending else days


def _cron(node: Node) -> str:
    return node.current_version.spec["schedule"]["cron"]


def backfill_plan(
    *,
    project: Project | None = None,
    nodes: list,
    downstream,
    start,
    end,
    order: str = BackfillOrder.SERIAL,
    parallelism: int | None = 1,
    descending: bool = False,
    by=None,
) -> BackfillPlan:
    """Check a backfill request and answer what it would create; creates nothing.
    Raises ValidationFailed naming every wrong field. `nodes` are Node objects or ids;
    `by` limits downstream nodes of other projects to those the user may see."""
    errors: list[dict] = []
    if not isinstance(nodes, list | tuple) or not nodes:
        raise ValidationFailed("invalid nodes", [_error("nodes", "name at least one node")])
    if len(nodes) > MAX_NODES:
        raise ValidationFailed("invalid nodes", [_error("nodes", f"at most {MAX_NODES} nodes")])
    if not all(isinstance(n, Node) for n in nodes):
        nodes = nodes_resolve(ids=nodes, by=by)
    roots = list({node.pk: node for node in nodes}.values())
    errors += [_error("nodes", e) for e in map(_backfillable_error, roots) if e]
    projects = {node.project_id for node in roots}
    if len(projects) > 1:
        errors.append(_error("nodes", "the root nodes must belong to one project"))
    if project is not None and projects - {project.pk}:
        errors.append(_error("nodes", f"the root nodes must belong to project {project.code}"))

    for name, value in (("start", start), ("end", end)):
        if isinstance(value, str):
            try:
                value = datetime.date.fromisoformat(value)
            except ValueError:
                value = None
        if not isinstance(value, datetime.date) or isinstance(value, datetime.datetime):
            errors.append(_error(name, "a date as YYYY-MM-DD"))
            value = None
        if name == "start":
            start = value
        else:
            end = value
    if start and end:
        if start > end:
            errors.append(_error("end", "the end date must not be before the start date"))
        elif (end - start).days + 1 > MAX_DATES:
            errors.append(_error("end", f"a backfill covers at most {MAX_DATES} dates"))

    if order not in BackfillOrder.values:
        errors.append(_error("order", "serial or parallel"))
    if order == BackfillOrder.SERIAL:
        if parallelism not in (None, 1):
            errors.append(_error("parallelism", "a serial backfill runs one date at a time: 1"))
        parallelism = 1
    elif (
        isinstance(parallelism, bool)
        or not isinstance(parallelism, int)
        or not 1 <= parallelism <= MAX_PARALLELISM
    ):
        errors.append(_error("parallelism", f"a whole number of dates from 1 to {MAX_PARALLELISM}"))
    if not isinstance(descending, bool):
        errors.append(_error("descending", "true or false"))

    selected = list(roots)
    kind = Downstream.NONE
    if downstream in (None, Downstream.NONE):
        pass
    elif downstream == Downstream.ALL:
        kind = Downstream.ALL
        selected += downstream_of(roots, by=by)
    elif isinstance(downstream, list | tuple):
        kind = Downstream.SUBSET
        candidates = {node.pk: node for node in downstream_of(roots, by=by)}
        for value in downstream:
            if value in candidates:
                selected.append(candidates[value])
            elif value not in {n.pk for n in roots}:
                errors.append(
                    _error("downstream", f"{value!r} is not a downstream node of the root nodes")
                )
        if not downstream:
            kind = Downstream.NONE
    else:
        errors.append(_error("downstream", '"none", "all" or a list of downstream node ids'))
    if errors:
        raise ValidationFailed(
            "invalid backfill: " + ", ".join(dict.fromkeys(e["field"] for e in errors)), errors
        )

    selected = list({node.pk: node for node in selected}.values())
    selected_ids = {node.pk for node in selected}
    edges = sorted(
        (int(u), node.pk)
        for node in selected
        for u in node.current_version.upstream_ids or []
        if int(u) in selected_ids and int(u) != node.pk
    )
    days = _dates(start, end, descending)
    dates = []
    for day in days:
        count = sum(
            len(schedules.instance_times(_cron(node), day + ONE_DAY, node.project.tz))
            for node in selected
        )
        dates.append((day, count))
    total = sum(count for _, count in dates)
    if total > MAX_INSTANCES:
        raise ValidationFailed(
            "invalid backfill: end",
            [_error("end", f"{total} instances: a backfill creates at most {MAX_INSTANCES}")],
        )
    return BackfillPlan(
        dates=dates,
        total=total,
        nodes=sorted(selected, key=lambda n: n.pk),
        edges=edges,
        root_ids=[node.pk for node in roots],
        downstream_kind=kind,
        order=order,
        parallelism=parallelism,
        descending=descending,
        start=start,
        end=end,
    )


# --- creating --------------------------------------------------------------------------


def _require_roles(by, nodes: Iterable[Node]) -> None:
    pairs = {(node.project_id, node.env): node.project for node in nodes}
    for (_, env), project in sorted(pairs.items(), key=lambda item: item[0]):
        require_role(by, project, operate_role(env))


def _instances(backfill: Backfill, plan: BackfillPlan, *, by, now) -> list[Instance]:
    groups = dict(ResourceGroup.objects.values_list("name", "id"))
    default_group = groups.get(ResourceGroup.DEFAULT) or ResourceGroup.get_default().id
    made = []
    for seq, (day, _) in enumerate(plan.dates):
        for node in plan.nodes:
            spec = node.current_version.spec
            for scheduled_at, dry_run in schedules.instance_times(
                _cron(node), day + ONE_DAY, node.project.tz
            ):
                made.append(
                    Instance(
                        project_id=node.project_id,
                        node_id=node.pk,
                        version_id=node.current_version_id,
                        env=node.env,
                        kind=InstanceKind.BACKFILL,
                        biz_date=day,
                        scheduled_at=scheduled_at,
                        dry_run=dry_run,
                        priority=backfill_priority(spec.get("priority")),
                        resource_group_id=groups.get(spec.get("resource_group"), default_group),
                        next_attempt_at=now if backfill.ignore_schedule_time else None,
                        created_by=by if getattr(by, "is_authenticated", False) else None,
                        backfill=backfill,
                        backfill_seq=seq,
                    )
                )
    return made


def _edges(plan: BackfillPlan, made: list[Instance]) -> list[InstanceDependency]:
    """SPEC section 3 among the run's instances of each date, and self-dependencies along
    the run's order."""
    # (seq, node id) -> the node's instances of that date, in scheduled order.
    days: dict[tuple[int, int], list[Instance]] = {}
    for instance in made:
        days.setdefault((instance.backfill_seq, instance.node_id), []).append(instance)
    for instances in days.values():
        instances.sort(key=lambda i: i.scheduled_at)
    nodes = {node.pk: node for node in plan.nodes}
    sub_daily = {node_id: schedules.is_sub_daily(_cron(node)) for node_id, node in nodes.items()}
    upstream_of: dict[int, list[int]] = {}
    for upstream_id, node_id in plan.edges:
        upstream_of.setdefault(node_id, []).append(upstream_id)
    pairs: set[tuple[int, int]] = set()
    for (seq, node_id), children in days.items():
        child_times = [i.scheduled_at for i in children]
        for upstream_id in upstream_of.get(node_id, []):
            parents = days.get((seq, upstream_id))
            if not parents:
                continue
            aligned = generation.align(
                child_times,
                [p.scheduled_at for p in parents],
                child_sub_daily=sub_daily[node_id],
                upstream_sub_daily=sub_daily[upstream_id],
            )
            for child, indexes in zip(children, aligned, strict=True):
                pairs.update((child.pk, parents[i].pk) for i in indexes)
        if nodes[node_id].current_version.spec.get("self_dependent"):
            pairs.update((b.pk, a.pk) for a, b in zip(children, children[1:], strict=False))
            previous = days.get((seq - 1, node_id))
            if previous:
                pairs.add((children[0].pk, previous[-1].pk))
    return [InstanceDependency(downstream_id=d, upstream_id=u) for d, u in sorted(pairs)]


def backfill_create(
    *,
    by,
    source: str,
    nodes: list,
    downstream="none",
    start,
    end,
    order: str = BackfillOrder.SERIAL,
    parallelism: int | None = 1,
    descending: bool = False,
    ignore_schedule_time: bool = False,
) -> Backfill:
    """Create a backfill run and all its instances and edges in one bulk write. The user
    needs the operate role (operator; developer for dev nodes) in every project whose
    nodes the run covers."""
    plan = backfill_plan(
        nodes=nodes,
        downstream=downstream,
        start=start,
        end=end,
        order=order,
        parallelism=parallelism,
        descending=descending,
        by=by,
    )
    if not isinstance(ignore_schedule_time, bool):
        raise ValidationFailed(
            "invalid backfill: ignore_schedule_time",
            [_error("ignore_schedule_time", "true or false")],
        )
    project = next(n for n in plan.nodes if n.pk == plan.root_ids[0]).project
    try:
        _require_roles(by, plan.nodes)
    except OpscenterError as exc:
        operation_record(
            user=by,
            source=source,
            action="backfill_create",
            object_type="backfill",
            project=project,
            detail={"nodes": plan.root_ids, "start": str(plan.start), "end": str(plan.end)},
            result=Result.REFUSED,
            message=exc.detail,
        )
        raise
    now = clock.now()
    with transaction.atomic():
        backfill = Backfill.objects.create(
            project=project,
            created_by=by if getattr(by, "is_authenticated", False) else None,
            root_node_ids=plan.root_ids,
            downstream=plan.downstream_kind,
            node_ids=[node.pk for node in plan.nodes],
            start_date=plan.start,
            end_date=plan.end,
            order=plan.order,
            parallelism=plan.parallelism,
            descending=plan.descending,
            ignore_schedule_time=ignore_schedule_time,
            total=plan.total,
        )
        made = Instance.objects.bulk_create(
            _instances(backfill, plan, by=by, now=now), batch_size=BATCH_SIZE
        )
        edges = _edges(plan, made)
        InstanceDependency.objects.bulk_create(edges, batch_size=BATCH_SIZE * 2)
        operation_record(
            user=by,
            source=source,
            action="backfill_create",
            object_type="backfill",
            object_id=backfill.pk,
            project=project,
            detail={
                "nodes": plan.root_ids,
                "downstream": plan.downstream_kind,
                "node_ids": backfill.node_ids,
                "start": str(plan.start),
                "end": str(plan.end),
                "order": plan.order,
                "parallelism": plan.parallelism,
                "descending": plan.descending,
                "ignore_schedule_time": ignore_schedule_time,
                "instances": len(made),
                "edges": len(edges),
            },
        )
        # The first window's ready instances start now rather than at the next pass.
        transaction.on_commit(
            lambda: dispatcher.tick(only_ids=_window_pending(backfill)), robust=True
        )
    return backfill


# --- following: the window and the run's state -------------------------------------------


def _window_pending(backfill: Backfill, since_seq: int | None = None) -> list[int]:
    """Pending instances inside the run's window (from `since_seq` when given)."""
    pending = Instance.objects.filter(
        backfill=backfill,
        state=InstanceState.PENDING,
        backfill_seq__lt=backfill.window_start + backfill.parallelism,
    )
    if since_seq is not None:
        pending = pending.filter(backfill_seq__gte=since_seq)
    return list(pending.values_list("id", flat=True))


def backfill_refresh(*, backfill_id: int) -> list[int]:
    """See _refresh_once; a refresh that lost a race to another one reads again, so the
    newest facts always win."""
    for _ in range(3):
        entered = _refresh_once(backfill_id)
        if entered is not None:
            return entered
    return []


def _refresh_once(backfill_id: int) -> list[int] | None:
    """Move the run's window to its first date with an unfinished instance and derive
    the run's state from its instances. Returns the pending instances that entered the
    window (for the dispatcher to look at at once), or None when another refresh changed
    the run meanwhile.

    The run is `succeeded` when every instance succeeded or was skipped, `failed` when
    something failed or was stopped and nothing else can run (nothing queued or running,
    nothing in the window ready to start), `running` otherwise. A stopped run stays
    stopped. Every change is a conditional update on what was read."""
    backfill = Backfill.objects.filter(pk=backfill_id).first()
    if backfill is None:
        return []
    instances = Instance.objects.filter(backfill=backfill)
    first_open = instances.filter(state__in=UNFINISHED).aggregate(seq=Min("backfill_seq"))["seq"]
    window_start = backfill.date_count if first_open is None else first_open
    if backfill.state == BackfillState.STOPPED:
        new_state = BackfillState.STOPPED
    else:
        counts = dict(instances.values_list("state").annotate(n=Count("id")).order_by())
        unfinished = sum(counts.get(s, 0) for s in UNFINISHED)
        broken = counts.get(InstanceState.FAILED, 0) + counts.get(InstanceState.STOPPED, 0)
        if not unfinished:
            new_state = BackfillState.FAILED if broken else BackfillState.SUCCEEDED
        elif broken and not any(counts.get(s, 0) for s in ACTIVE):
            window = instances.filter(backfill_seq__lt=window_start + backfill.parallelism)
            can_start = dispatcher.unblocked_pending(window).exists()
            new_state = BackfillState.RUNNING if can_start else BackfillState.FAILED
        else:
            new_state = BackfillState.RUNNING
    if new_state == backfill.state and window_start == backfill.window_start:
        return []
    finished_at = (
        None if new_state == BackfillState.RUNNING else (backfill.finished_at or clock.now())
    )
    changed = Backfill.objects.filter(
        pk=backfill.pk, state=backfill.state, window_start=backfill.window_start
    ).update(state=new_state, window_start=window_start, finished_at=finished_at)
    if not changed:
        return None
    if window_start <= backfill.window_start:
        return []
    old_end = backfill.window_start + backfill.parallelism
    backfill.window_start = window_start
    return _window_pending(backfill, since_seq=old_end)


def backfills_refresh_running() -> None:
    """Each dispatcher pass: refresh every running backfill (there are few)."""
    for backfill_id in Backfill.objects.filter(state=BackfillState.RUNNING).values_list(
        "id", flat=True
    ):
        backfill_refresh(backfill_id=backfill_id)


# --- operations on a run ----------------------------------------------------------------


def _operate(*, action: str, backfill: Backfill, by, source: str, change) -> Backfill:
    """Role check (operator, developer for dev roots), one transaction, the operation
    log; refusals are recorded too."""

    def authorize() -> None:
        nodes = list(Node.objects.select_related("project").filter(pk__in=backfill.node_ids))
        _require_roles(by, nodes)
        if not nodes:
            require_role(by, backfill.project, operate_role("prod"))

    operation_run(
        by=by,
        source=source,
        action=action,
        object_type="backfill",
        object_id=backfill.pk,
        project=backfill.project,
        authorize=authorize,
        change=change,
        refused_detail=lambda: {"state": backfill.state},
    )
    backfill.refresh_from_db()
    return backfill


def backfill_stop(*, backfill: Backfill, by, source: str) -> Backfill:
    """Stop the whole run: it becomes `stopped`, its pending and queued instances are
    stopped at once and its running ones through the instance stop path (their workers
    kill the process trees). Nothing of the run is left pending."""

    def change() -> dict:
        now = clock.now()
        previous = backfill.state
        if not Backfill.objects.filter(
            pk=backfill.pk, state__in=[BackfillState.RUNNING, BackfillState.FAILED]
        ).update(state=BackfillState.STOPPED, finished_at=now):
            state = Backfill.objects.values_list("state", flat=True).get(pk=backfill.pk)
            raise Conflict(f"backfill {backfill.pk} is {state}: only a running or failed run stops")
        instances = Instance.objects.filter(backfill=backfill)
        # Pending and queued first, together: the state machine locks them, so the
        # dispatcher passes over them and nothing of the run is queued behind our back.
        # Then what is running (its workers kill the process trees).
        held = set(instances.filter(state__in=ACTIVE).values_list("resource_group_id", flat=True))
        waiting_ids = instances.filter(
            state__in=[InstanceState.PENDING, InstanceState.QUEUED]
        ).values_list("id", flat=True)
        stopped_waiting = len(
            states.instances_stop(ids=list(waiting_ids), now=now, cause="backfill_stop")
        )
        running = list(
            instances.filter(state=InstanceState.RUNNING).values_list("id", "resource_group_id")
        )
        stopped = states.instances_stop(ids=[i for i, _ in running], now=now, cause="backfill_stop")
        # Slots the run held are free: the next in line in those groups may start.
        groups = held | {group for _, group in running}
        if groups:
            waiting = Instance.objects.filter(
                resource_group_id__in=groups, state=InstanceState.PENDING
            ).order_by("-dispatch_priority", "scheduled_at", "id")
            tick_on_commit(waiting.values_list("pk", flat=True)[:500])
        return {
            "from_state": previous,
            "stopped_running": stopped,
            "stopped_waiting": stopped_waiting,
        }

    return _operate(action="backfill_stop", backfill=backfill, by=by, source=source, change=change)


def backfill_rerun_failed(*, backfill: Backfill, by, source: str) -> Backfill:
    """Rerun the run's failed instances with their downstream (instance_rerun) and set the
    run running again; its window moves back to the first date with work to do."""

    def change() -> dict:
        failed = list(
            Instance.objects.filter(backfill=backfill, state=InstanceState.FAILED)
            .order_by("backfill_seq", "scheduled_at", "id")
            .select_related("project", "node", "version", "resource_group")
        )
        if not failed:
            raise Conflict(f"backfill {backfill.pk} has no failed instance to rerun")
        rerun = []
        for instance in failed:
            # An earlier rerun's downstream may have reset this one already.
            if Instance.objects.filter(pk=instance.pk, state=InstanceState.FAILED).exists():
                instance_rerun(instance=instance, by=by, source=source, downstream=True)
                rerun.append(instance.pk)
        instances = Instance.objects.filter(backfill=backfill)
        if backfill.ignore_schedule_time:
            instances.filter(state=InstanceState.PENDING, next_attempt_at__isnull=True).update(
                next_attempt_at=clock.now()
            )
        first_open = instances.filter(state__in=UNFINISHED).aggregate(seq=Min("backfill_seq"))[
            "seq"
        ]
        previous = backfill.state
        backfill.window_start = backfill.date_count if first_open is None else first_open
        Backfill.objects.filter(pk=backfill.pk).update(
            state=BackfillState.RUNNING, finished_at=None, window_start=backfill.window_start
        )
        tick_on_commit(_window_pending(backfill))
        return {"from_state": previous, "rerun": rerun}

    return _operate(
        action="backfill_rerun_failed", backfill=backfill, by=by, source=source, change=change
    )
