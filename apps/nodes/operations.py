"""Operations on nodes (SPEC section 5): pause and resume, change owner, run, take
offline, and batches of them.

Like the instance operations: the acting user's role is checked (operator for prod
nodes, developer for dev ones), state changes are conditional updates, and each
operation is recorded in the operation log, refusals included (recorded after their
transaction rolled back).
"""

import datetime
from collections.abc import Callable

from django.contrib.auth import get_user_model

from apps.audit.services import operation_run
from apps.core import clock
from apps.core.errors import Conflict, NotFound, OpscenterError, ValidationFailed
from apps.instances import states
from apps.instances.choices import InstanceKind, InstanceState
from apps.instances.models import Instance
from apps.instances.operations import (
    BatchItem,
    batch_ids,
    children_of,
    operate_role,
    refresh_wait_reasons,
    tick_on_commit,
)
from apps.projects.models import Membership, Project
from apps.projects.permissions import require_role
from apps.projects.selectors import projects_visible_to

from .choices import Env, NodeStatus, ScheduleType
from .models import Node
from .selectors import nodes_visible_to
from .validation import PARAM_NAME_RE, RESERVED_PARAMS

RUN_REFUSED = {
    ScheduleType.RECURRING: "Run is for one-time nodes and dev nodes; use backfill for a "
    "recurring node",
    ScheduleType.REALTIME: "Run is for one-time nodes and dev nodes; a realtime node is "
    "started and stopped",
}


def operate(*, action: str, node: Node, by, source: str, change: Callable[[], dict]) -> dict:
    """Run `change` with the role check, one transaction and the operation log around it;
    returns the detail `change` recorded. Realtime operations use it too."""
    return operation_run(
        by=by,
        source=source,
        action=action,
        object_type="node",
        object_id=node.pk,
        project=node.project,
        authorize=lambda: require_role(by, node.project, operate_role(node.env)),
        change=change,
    )


def _reload(node: Node) -> Node:
    node.refresh_from_db(
        from_queryset=Node.objects.select_related(
            "project", "owner", "resource_group", "current_version"
        )
    )
    return node


def _pending_ids(node: Node) -> list[int]:
    return list(
        Instance.objects.filter(node=node, state=InstanceState.PENDING).values_list("pk", flat=True)
    )


# --- pause, resume ---------------------------------------------------------------------


def node_pause(*, node: Node, by, source: str, group: str = "") -> Node:
    """Hold every pending and future instance of the node (they show as frozen) until it
    is resumed. Running instances go on. `group`: the node group paused as a whole that
    this pause is part of, recorded with it."""

    def change() -> dict:
        if not Node.objects.filter(pk=node.pk, paused=False).update(paused=True):
            raise Conflict(f"node {node} is already paused")
        refresh_wait_reasons(_pending_ids(node))
        return {"paused": True, **({"group": group} if group else {})}

    operate(action="node_pause", node=node, by=by, source=source, change=change)
    return _reload(node)


def node_resume(*, node: Node, by, source: str, group: str = "") -> Node:
    """Release the node's instances; those whose conditions hold start at once. `group`:
    as for node_pause."""

    def change() -> dict:
        if not Node.objects.filter(pk=node.pk, paused=True).update(paused=False):
            raise Conflict(f"node {node} is not paused")
        pending = _pending_ids(node)
        refresh_wait_reasons(pending)
        tick_on_commit(pending)
        return {"paused": False, **({"group": group} if group else {})}

    operate(action="node_resume", node=node, by=by, source=source, change=change)
    return _reload(node)


# --- a whole node group ------------------------------------------------------------------


def group_pause(*, project: Project, group: str, by, source: str, env: str = "") -> list[BatchItem]:
    """Pause every online node of the group (of `env` only, when given) that is not
    paused yet; see _group_operate."""
    return _group_operate(
        action="pause", project=project, group=group, env=env, by=by, source=source
    )


def group_resume(
    *, project: Project, group: str, by, source: str, env: str = ""
) -> list[BatchItem]:
    """Resume every paused online node of the group (of `env` only, when given)."""
    return _group_operate(
        action="resume", project=project, group=group, env=env, by=by, source=source
    )


def _group_operate(
    *, action: str, project: Project, group: str, env: str, by, source: str
) -> list[BatchItem]:
    """Pause or resume a node group: one group operation in the operation log (what it
    changed and left alone), made of the node operations node_pause / node_resume on each
    node it changes, each logged on its node too (naming the group). The acting user needs
    the operating role for every environment the group's nodes are in, else nothing is
    done. A node refused on its own (changed meanwhile) does not stop the others; a
    group with nothing to change is refused (409). Answers one result per online node."""
    if env and env not in Env.values:
        raise ValidationFailed(
            f"invalid env {env!r}", [{"field": "env", "message": f"one of {', '.join(Env.values)}"}]
        )
    scope = Node.objects.filter(project=project, group=group)
    if env:
        scope = scope.filter(env=env)
    nodes = list(
        scope.filter(status=NodeStatus.ONLINE)
        .select_related("project", "owner", "resource_group", "current_version")
        .order_by("name", "env")
    )
    if not nodes and not scope.exists():
        raise NotFound(f"no node group {group!r} in project {project.code!r}")
    pause = action == "pause"
    operation = node_pause if pause else node_resume
    results: list[BatchItem] = []

    def authorize() -> None:
        for node_env in sorted({node.env for node in nodes} or {env or Env.PROD}):
            require_role(by, project, operate_role(node_env))

    def change() -> dict:
        already = "already paused" if pause else "not paused"
        if all(node.paused == pause for node in nodes):
            raise Conflict(
                f"node group {group} of {project.code}: every online node is {already}"
                if nodes
                else f"node group {group} of {project.code} has no online node"
            )
        done: dict[str, list[str]] = {"changed": [], "unchanged": [], "refused": []}
        for node in nodes:
            if node.paused == pause:
                results.append(BatchItem(node.pk, True, _state(node), already))
                done["unchanged"].append(str(node))
                continue
            try:
                node = operation(node=node, by=by, source=source, group=group)
            except OpscenterError as exc:
                node.refresh_from_db(fields=["paused", "status"])
                results.append(BatchItem(node.pk, False, _state(node), exc.detail))
                done["refused"].append(str(node))
            else:
                results.append(BatchItem(node.pk, True, _state(node), f"{action}d"))
                done["changed"].append(str(node))
        return {"group": group, "env": env, **done}

    operation_run(
        by=by,
        source=source,
        action=f"group_{action}",
        object_type="node_group",
        object_id=f"{project.code}/{group}",
        project=project,
        authorize=authorize,
        change=change,
    )
    return results


# --- run ---------------------------------------------------------------------------------


def run_params(params) -> dict[str, str]:
    """Parameter values given for a run, as the strings substitution uses."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ValidationFailed(
            "invalid params", [{"field": "params", "message": "an object {name: value}"}]
        )
    values, errors = {}, []
    for name, value in params.items():
        field = f"params.{name}"
        if not isinstance(name, str) or not PARAM_NAME_RE.match(name):
            errors.append(
                {
                    "field": field,
                    "message": "a parameter name is letters, digits and _, not starting with "
                    "a digit",
                }
            )
        elif name in RESERVED_PARAMS:
            errors.append({"field": field, "message": f"${{{name}}} is built in"})
        elif isinstance(value, bool):
            values[name] = "true" if value else "false"
        elif value is None:
            values[name] = ""
        elif isinstance(value, str | int | float):
            values[name] = str(value)
        else:
            errors.append({"field": field, "message": "a value is a string or a number"})
    if errors:
        raise ValidationFailed("invalid " + ", ".join(e["field"] for e in errors), errors)
    return values


def node_run(
    *,
    node: Node,
    by,
    source: str,
    biz_date: datetime.date | None = None,
    params: dict | None = None,
) -> Instance:
    """Run a one-time (manual) node, or any node in dev, now: a new `one_time` instance of
    the node's current version, without dependencies, for `biz_date` (default: yesterday
    in the project's timezone), with `params` overriding the node's parameter defaults."""
    made: list[Instance] = []

    def change() -> dict:
        if node.env == Env.PROD and node.schedule_type != ScheduleType.ONE_TIME:
            raise Conflict(RUN_REFUSED[node.schedule_type])
        values = run_params(params)
        if biz_date is not None and not isinstance(biz_date, datetime.date):
            raise ValidationFailed(
                "invalid biz_date", [{"field": "biz_date", "message": "a date YYYY-MM-DD"}]
            )
        current = (
            Node.objects.filter(pk=node.pk).values("status", "paused", "current_version").first()
        )
        if current["status"] != NodeStatus.ONLINE:
            raise Conflict(f"node {node} is offline")
        if current["paused"]:
            raise Conflict(f"node {node} is paused: resume it to run it")
        if current["current_version"] is None:
            raise Conflict(f"node {node} has no published version")
        now = clock.now()
        day = biz_date or now.astimezone(node.project.tz).date() - datetime.timedelta(days=1)
        instance = Instance.objects.create(
            project=node.project,
            node=node,
            version_id=current["current_version"],
            env=node.env,
            kind=InstanceKind.ONE_TIME,
            biz_date=day,
            scheduled_at=now,
            priority=node.priority,
            resource_group_id=node.resource_group_id,
            params=values,
            created_by=by if getattr(by, "is_authenticated", False) else None,
        )
        made.append(instance)
        refresh_wait_reasons([instance.pk])
        tick_on_commit([instance.pk])
        return {"instance": instance.pk, "biz_date": day.isoformat(), "params": values}

    operate(action="run", node=node, by=by, source=source, change=change)
    return Instance.objects.select_related("node", "project", "resource_group", "version").get(
        pk=made[0].pk
    )


# --- offline -----------------------------------------------------------------------------


def node_offline(*, node: Node, by, source: str) -> Node:
    """Take the node offline: no more instances are generated for it and its pending
    instances are cancelled (skipped). Refused while online nodes depend on it."""

    def change() -> dict:
        dependents = list(
            Node.objects.filter(upstream_links__upstream=node, status=NodeStatus.ONLINE)
            .exclude(pk=node.pk)
            .select_related("project")
            .order_by("project__code", "name")
        )
        if dependents:
            visible = set(projects_visible_to(by).values_list("pk", flat=True))
            named = [str(d) for d in dependents if d.project_id in visible]
            hidden = len(dependents) - len(named)
            listed = ", ".join(named + ([f"{hidden} in projects you cannot see"] if hidden else []))
            raise Conflict(
                f"node {node} cannot go offline: online nodes depend on it: {listed}",
                [{"node": name, "message": "depends on it and is online"} for name in named],
            )
        if not Node.objects.filter(pk=node.pk, status=NodeStatus.ONLINE).update(
            status=NodeStatus.OFFLINE
        ):
            raise Conflict(f"node {node} is already offline")
        pending = _pending_ids(node)
        skipped = len(states.instances_cancel(ids=pending, now=clock.now(), cause="offline"))
        # A skipped instance no longer blocks: whatever waited only for it may start.
        tick_on_commit(children_of(pending))
        return {"status": NodeStatus.OFFLINE, "skipped_instances": skipped}

    operate(action="offline", node=node, by=by, source=source, change=change)
    return _reload(node)


# --- owner and batches -------------------------------------------------------------------


def _state(node: Node) -> str:
    """A node's state in a batch result, in the operator's words."""
    if node.status == NodeStatus.ONLINE and node.paused:
        return "paused"
    return node.status


def node_change_owner(*, node: Node, owner, by, source: str) -> Node:
    def change() -> dict:
        if (
            not owner.is_superuser
            and not Membership.objects.filter(project=node.project_id, user=owner).exists()
        ):
            message = f"{owner.get_username()!r} is not a member of project {node.project.code!r}"
            raise ValidationFailed(message, [{"field": "owner", "message": message}])
        previous = Node.objects.filter(pk=node.pk).values_list("owner__username", flat=True)[0]
        Node.objects.filter(pk=node.pk).update(owner=owner)
        return {"from": previous, "to": owner.get_username()}

    operate(action="change_owner", node=node, by=by, source=source, change=change)
    return _reload(node)


def _batch(
    ids: list[int], *, by, operation: Callable[[Node], Node], done: Callable[[Node], str]
) -> list[BatchItem]:
    found = nodes_visible_to(by).in_bulk(ids)
    results = []
    for node_id in ids:
        node = found.get(node_id)
        if node is None:
            results.append(BatchItem(node_id, False, None, f"node {node_id} not found"))
            continue
        try:
            node = operation(node)
        except OpscenterError as exc:
            node.refresh_from_db(fields=["paused", "status"])
            results.append(BatchItem(node_id, False, _state(node), exc.detail))
        else:
            results.append(BatchItem(node_id, True, _state(node), done(node)))
    return results


def nodes_change_owner(*, node_ids: list[int], owner: str, by, source: str) -> list[BatchItem]:
    """Give each node a new owner, who must be an active member of the node's project.
    Each node on its own: one refusal does not stop the others."""
    user = get_user_model().objects.filter(username=owner, is_active=True).first()
    if user is None:
        raise ValidationFailed(
            f"unknown owner {owner!r}",
            [{"field": "owner", "message": f"no active user {owner!r}"}],
        )
    node_ids = batch_ids(node_ids, field="node_ids")
    return _batch(
        node_ids,
        by=by,
        operation=lambda node: node_change_owner(node=node, owner=user, by=by, source=source),
        done=lambda node: f"owner is now {user.get_username()}",
    )


NODE_BATCH_ACTIONS = {"pause": node_pause, "resume": node_resume}


def nodes_batch(*, ids: list[int], action: str, by, source: str) -> list[BatchItem]:
    """Pause or resume each node on its own."""
    operation = NODE_BATCH_ACTIONS.get(action)
    if operation is None:
        raise ValidationFailed(
            f"unknown action {action!r}",
            [{"field": "action", "message": f"one of {', '.join(NODE_BATCH_ACTIONS)}"}],
        )
    return _batch(
        batch_ids(ids),
        by=by,
        operation=lambda node: operation(node=node, by=by, source=source),
        done=lambda node: f"{action}: now {_state(node)}",
    )
