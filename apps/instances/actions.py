"""Which operations the pages offer on an instance: by its state (the same state sets
the operations check) and the viewer's role. The operations themselves decide; this only
keeps buttons that would surely be refused off the page, and previews a batch."""

from dataclasses import dataclass

from apps.projects.selectors import has_role

from .choices import FINISHED, InstanceKind, InstanceState
from .models import Instance
from .operations import (
    SET_SUCCESS_FROM,
    UNFINISHED,
    operate_role,
    rerun_policy_refusals,
    state_phrase,
)


@dataclass(frozen=True)
class Action:
    name: str
    label: str
    # What the action needs, in the operations' words ("rerun needs a finished instance").
    needs: str
    # Asked before a change that throws work away or cannot be undone by one click.
    confirm: str = ""
    danger: bool = False


ACTIONS = {
    a.name: a
    for a in [
        Action(
            "rerun",
            "Rerun",
            "rerun needs a finished instance",
            confirm="Rerun {name}? It runs again as a new attempt.",
        ),
        Action(
            "rerun_downstream",
            "Rerun with downstream",
            "rerun needs a finished instance",
            confirm="Rerun {name} and reset every finished instance downstream of it? "
            "They all run again, in order.",
        ),
        Action(
            "set_success",
            "Set success",
            "set success needs a pending, failed or stopped instance",
            confirm="Set {name} to succeeded without running it? Its downstream may start.",
        ),
        Action(
            "stop",
            "Stop",
            "stop needs a pending, queued or running instance",
            confirm="Stop {name}? A running attempt is killed with its whole process tree.",
            danger=True,
        ),
        Action("pause", "Pause", "only an unfinished instance that is not paused can be paused"),
        Action("resume", "Resume", "only a paused unfinished instance can be resumed"),
        Action(
            "run_now",
            "Run without dependencies",
            "run now needs a pending instance that is not paused",
            confirm="Run {name} now, without waiting for its upstream or its time? "
            "It still waits for a free slot in its resource group.",
        ),
        Action(
            "change_resource_group",
            "Change resource group",
            "the resource group can change only before it starts (pending)",
        ),
        Action(
            "remove_dependency",
            "Remove dependency",
            "a dependency can be removed only from a pending instance",
            confirm="Stop waiting for this upstream instance? The dependency stays on record "
            "as removed.",
        ),
        Action("resume_node", "Resume node", "only a paused node can be resumed"),
    ]
}

# The instance-list batch: the operations' batch actions, in menu order.
BATCH_ACTIONS = ["rerun", "stop", "set_success", "pause", "resume"]


def state_allows(action: str, instance: Instance) -> bool:
    """True when `instance`'s state (as read) admits `action`."""
    if instance.kind == InstanceKind.REALTIME:
        # A streaming process is started and stopped from its node.
        return False
    state, pending = instance.state, instance.state == InstanceState.PENDING
    match action:
        case "rerun" | "rerun_downstream":
            return state in FINISHED
        case "set_success":
            return state in SET_SUCCESS_FROM
        case "stop":
            return state in UNFINISHED
        case "pause":
            return state in UNFINISHED and not instance.paused
        case "resume":
            return state in UNFINISHED and instance.paused
        case "run_now":
            return (
                pending
                and not instance.paused
                and not instance.node.paused
                and not (instance.run_now)
            )
        case "change_resource_group" | "remove_dependency":
            return pending
        case "resume_node":
            return instance.node.paused
    raise ValueError(f"unknown action {action!r}")


class Roles:
    """Whether the viewer may operate on instances, per (project, env), asked once each."""

    def __init__(self, user):
        self.user = user
        self._known: dict[tuple[int, str], bool] = {}

    def may_operate(self, instance: Instance) -> bool:
        key = (instance.project_id, instance.env)
        if key not in self._known:
            self._known[key] = has_role(self.user, instance.project, operate_role(instance.env))
        return self._known[key]

    def needed(self, instance: Instance) -> str:
        return operate_role(instance.env)


RERUN_ACTIONS = ("rerun", "rerun_downstream")


def rerun_policy_refusal(instance: Instance) -> str:
    """Why the instance's rerun policy refuses a manual rerun now ("" when it does not,
    or when its state refuses anyway)."""
    if instance.kind == InstanceKind.REALTIME or instance.state not in FINISHED:
        return ""
    return rerun_policy_refusals([instance.pk]).get(instance.pk, "")


def offered(instance: Instance, roles: Roles, *, rerun_refused: str = "") -> list[Action]:
    """The actions the detail page shows as buttons for this instance and viewer (rerun
    left out when `rerun_refused`, its policy's refusal, says why)."""
    if not roles.may_operate(instance):
        return []
    return [
        ACTIONS[name]
        for name in (
            "rerun",
            "rerun_downstream",
            "set_success",
            "run_now",
            "pause",
            "resume",
            "resume_node",
            "stop",
        )
        if state_allows(name, instance) and not (rerun_refused and name in RERUN_ACTIONS)
    ]


def refusal(
    action: str, instance: Instance, roles: Roles, *, policy_refusals: dict[int, str] | None = None
) -> str:
    """Why `action` would be refused on `instance` now ("" when it would be applied).
    `policy_refusals` (operations.rerun_policy_refusals of a batch) spares a query per
    instance."""
    if not roles.may_operate(instance):
        return f"needs the {roles.needed(instance)} role in project {instance.project.code!r}"
    if instance.kind == InstanceKind.REALTIME:
        return "a realtime instance is started and stopped from its node"
    if not state_allows(action, instance):
        if action == "pause" and instance.paused and instance.state in UNFINISHED:
            return f"instance {instance.pk} is already paused"
        if action == "resume" and not instance.paused and instance.state in UNFINISHED:
            return f"instance {instance.pk} is not paused"
        return f"instance {instance.pk} {state_phrase(instance.state)}: {ACTIONS[action].needs}"
    if action in RERUN_ACTIONS:
        refused = (
            policy_refusals.get(instance.pk, "")
            if policy_refusals is not None
            else rerun_policy_refusal(instance)
        )
        if refused:
            return f"instance {instance.pk} is not rerun: {refused}"
    return ""
