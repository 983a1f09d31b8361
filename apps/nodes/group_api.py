"""/api/node-groups: the node groups (nodes published with the same `group`, by default
their pipeline file), one group's nodes, and pausing or resuming a whole group."""

from dataclasses import asdict

from ninja import Field, Router, Schema

from apps.core.schemas import InputSchema, errors
from apps.projects.selectors import project_get

from . import operations
from .api import NodeBatchItemOut
from .selectors import group_get, node_groups_page, nodes_visible_to

router = Router(tags=["node groups"])


class NodeGroupOut(Schema):
    project: str
    name: str
    nodes: int = Field(description="its nodes, online and offline")
    paused: int = Field(description="its online nodes that are paused")
    offline: int


class NodeGroupPage(Schema):
    items: list[NodeGroupOut]
    next_cursor: str | None


class NodeGroupDetailOut(NodeGroupOut):
    node_ids: list[int] = Field(
        description="its nodes' ids, by name (e.g. to backfill the group: POST /api/backfills)"
    )


class NodeGroupOperationIn(InputSchema):
    env: str = Field("", description='only the nodes of this env ("prod" or "dev"); default all')


class NodeGroupOperationOut(Schema):
    project: str
    group: str
    results: list[NodeBatchItemOut] = Field(description="one per online node of the group")


def group_out(row: dict) -> dict:
    return {
        "project": row["project__code"],
        "name": row["group"],
        "nodes": row["nodes"],
        "paused": row["paused"],
        "offline": row["offline"],
    }


@router.get("", response=NodeGroupPage, summary="Node groups with their node counts")
def group_list(request, project: str = "", limit: str = "", cursor: str = ""):
    queryset = nodes_visible_to(request.auth)
    if project.strip():
        queryset = queryset.filter(project__code=project.strip())
    page = node_groups_page(queryset, cursor=cursor or None, limit=limit)
    return {"items": [group_out(row) for row in page.items], "next_cursor": page.next_cursor}


@router.get("/{code}/{group}", response=NodeGroupDetailOut, summary="A node group")
def group_detail(request, code: str, group: str):
    row = group_get(user=request.auth, project_code=code, group=group)
    ids = (
        nodes_visible_to(request.auth)
        .filter(project__code=code, group=group)
        .order_by("name", "env")
        .values_list("id", flat=True)
    )
    return {**group_out(row), "node_ids": list(ids)}


def _operated(request, code: str, group: str, payload, operation) -> dict:
    project = project_get(user=request.auth, code=code)
    results = operation(
        project=project,
        group=group,
        by=request.auth,
        source="api",
        env=payload.env.strip() if payload else "",
    )
    return {"project": project.code, "group": group, "results": [asdict(r) for r in results]}


@router.post(
    "/{code}/{group}/pause",
    response={200: NodeGroupOperationOut, **errors(409)},
    summary="Pause every online node of the group (each in its own node operation too)",
)
def group_pause(request, code: str, group: str, payload: NodeGroupOperationIn | None = None):
    return _operated(request, code, group, payload, operations.group_pause)


@router.post(
    "/{code}/{group}/resume",
    response={200: NodeGroupOperationOut, **errors(409)},
    summary="Resume every paused online node of the group",
)
def group_resume(request, code: str, group: str, payload: NodeGroupOperationIn | None = None):
    return _operated(request, code, group, payload, operations.group_resume)
