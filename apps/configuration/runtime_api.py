"""GET/PUT /api/runtime-config (SPEC 12): each runtime setting's effective value and the
level it comes from; changes of the global level (superusers) and a project's (admins)."""

from typing import Any, Literal

from ninja import Field, Router, Schema

from apps.core.errors import ValidationFailed
from apps.core.schemas import MAX_ID, InputSchema, errors
from apps.nodes.selectors import node_get
from apps.projects.selectors import project_get

from .runtime import Runtime, runtime_for_node, runtime_for_spec
from .runtime_services import LEVELS, runtime_config_update

router = Router(tags=["configuration"])

Level = Literal["node", "project", "global"]


class RuntimeNumberOut(Schema):
    value: int
    source: Level


class RuntimeChoiceOut(Schema):
    value: str
    source: Level


class RuntimeConfigOut(Schema):
    """Each setting's effective value and the level it comes from: the node's NodeSpec
    when it gives one, else its project's, else the global level."""

    timeout_seconds: RuntimeNumberOut = Field(description="0: no timeout")
    timeout_action: RuntimeChoiceOut = Field(description="fail | alert_only | kill_and_retry")
    retries: RuntimeNumberOut
    retry_interval_seconds: RuntimeNumberOut
    rerun_policy: RuntimeChoiceOut = Field(description="always | failed_only | never")


class RuntimeConfigIn(InputSchema):
    # Loosely typed on purpose: the service names every wrong field itself.
    level: Any = Field(None, description='"global" (superusers) or "project" (its admins)')
    project: Any = Field(None, description="the project's code, for the project level")
    values: Any = Field(
        None,
        description="settings to set at that level; a null value removes that level's own "
        "value (the next level's applies again)",
    )


def _node_id(raw: str) -> int:
    text = raw.strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_ID:
        raise ValidationFailed(
            "invalid node", [{"field": "node", "message": f"must be a node id, not {raw!r}"}]
        )
    return int(text)


def effective(*, user, project: str = "", node: str = "") -> Runtime:
    """The settings `?project=&node=` asks about: a node's (its current version), a
    project's, or the global level's."""
    chosen = project_get(user=user, code=project.strip()) if project.strip() else None
    if node.strip():
        found = node_get(user=user, node_id=_node_id(node))
        if chosen is not None and found.project_id != chosen.pk:
            raise ValidationFailed(
                "node not in project",
                [{"field": "node", "message": f"node {found.pk} is not in project {chosen.code}"}],
            )
        return runtime_for_node(found)
    return runtime_for_spec(project_id=chosen.pk if chosen else None, spec=None)


@router.get(
    "",
    response={200: RuntimeConfigOut, **errors(404)},
    summary="Effective runtime settings and the level each comes from",
)
def runtime_config_get(request, project: str = "", node: str = ""):
    """`node` (an id) answers that node's settings (its current version, its project,
    global); `project` (a code) a project's; neither, the global level's."""
    return effective(user=request.auth, project=project, node=node).as_dict()


@router.put(
    "",
    response={200: RuntimeConfigOut, **errors(404)},
    summary="Change the global or a project's runtime settings",
)
def runtime_config_put(request, payload: RuntimeConfigIn):
    """`{"level": "global"|"project", "project": code, "values": {...}}`. Answers the
    effective settings of that level. Wrong input answers 422 naming each field and
    changes nothing; every change is in the operation log."""
    if payload.level not in LEVELS:
        raise ValidationFailed(
            "invalid level",
            [{"field": "level", "message": f"must be one of {', '.join(LEVELS)}"}],
        )
    project = None
    if payload.level == "project":
        if not isinstance(payload.project, str) or not payload.project.strip():
            raise ValidationFailed(
                "project missing",
                [{"field": "project", "message": "the project level needs a project code"}],
            )
        project = project_get(user=request.auth, code=payload.project.strip())
    elif payload.project is not None:
        raise ValidationFailed(
            "project given for the global level",
            [{"field": "project", "message": "the global level takes no project"}],
        )
    runtime_config_update(project=project, values=payload.values, by=request.auth, source="api")
    return runtime_for_spec(project_id=project.pk if project else None, spec=None).as_dict()
