"""/api/nodes (reads and operations) and POST /api/projects/{code}/publish."""

import datetime
from dataclasses import asdict
from typing import Any, Literal

from ninja import Field, Router, Schema, Status

from apps.core.errors import ValidationFailed
from apps.core.pagination import keyset_page
from apps.core.schemas import InputSchema, ObjectId, errors
from apps.instances.api import instance_detail
from apps.instances.operations import BATCH_MAX
from apps.instances.schemas import InstanceDetail
from apps.projects.selectors import project_get
from apps.realtime import services as realtime_services
from apps.realtime.schemas import RealtimeOut, RealtimeResourcesIn, realtime_out

from . import operations
from .models import Node, NodeVersion
from .selectors import (
    NodeFilters,
    node_dag,
    node_filter,
    node_get,
    node_upstream_names,
    node_versions,
    nodes_visible_to,
)
from .services import nodes_publish

router = Router(tags=["nodes"])
# Mounted under /projects: publishing is an operation on a project.
publish_router = Router(tags=["nodes"])


class NodeOut(Schema):
    id: int
    project: str
    env: str
    name: str
    type: str
    schedule_type: str
    cron: str
    upstream: list[str]
    self_dependent: bool
    owner: str
    priority: int
    resource_group: str
    paused: bool
    version: int | None
    group: str = Field(description="the node group it was published with; empty: none")


class NodeDetailOut(NodeOut):
    description: str
    status: str
    published_at: datetime.datetime | None
    downstream: list[str]
    spec: dict[str, Any] | None


class NodePage(Schema):
    items: list[NodeOut]
    next_cursor: str | None


class PinnedResourceOut(Schema):
    name: str
    version: int


class VersionOut(Schema):
    number: int
    spec_hash: str
    spec: dict[str, Any]
    upstream_ids: list[int]
    resources: list[PinnedResourceOut] = Field(
        description="the resource versions this version runs with, pinned when it was published"
    )
    published_at: datetime.datetime
    published_by: str | None
    note: str


class VersionPage(Schema):
    items: list[VersionOut]
    next_cursor: str | None


class DagNodeOut(Schema):
    id: int
    project: str
    env: str
    name: str
    type: str
    schedule_type: str
    status: str
    paused: bool
    level: int  # negative: upstream, positive: downstream, 0: the node asked for


class NodeDagEdgeOut(Schema):
    upstream: int
    downstream: int


class NodeDagOut(Schema):
    node: int
    nodes: list[DagNodeOut]
    edges: list[NodeDagEdgeOut]


class PublishIn(InputSchema):
    # Loosely typed on purpose: the publish validation names every wrong field itself,
    # node by node, instead of stopping at the first.
    env: Any = Field("prod", description='"prod", or "dev" in dev_prod projects')
    nodes: Any = Field(None, description="a list of NodeSpecs (SPEC section 12)")
    note: Any = Field("", description="kept with every new version")


class PublishOut(Schema):
    created: list[str]
    updated: list[str]
    unchanged: list[str]


def node_out(node: Node) -> dict:
    return {
        "id": node.id,
        "project": node.project.code,
        "env": node.env,
        "name": node.name,
        "type": node.type,
        "schedule_type": node.schedule_type,
        "cron": node.cron,
        "upstream": node_upstream_names(node),
        "self_dependent": node.self_dependent,
        "owner": node.owner.username,
        "priority": node.priority,
        "resource_group": node.resource_group.name,
        "paused": node.paused,
        "version": node.version,
        "group": node.group,
    }


def _depth(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValidationFailed(
            f"invalid {name}", [{"field": name, "message": "a whole number from 0 to 10"}]
        ) from None


@router.get("", response=NodePage, summary="List nodes")
def node_list(
    request,
    project: str = "",
    env: str = "",
    type: str = "",
    schedule_type: str = "",
    owner: str = "",
    paused: str = "",
    status: str = "",
    group: str = "",
    q: str = "",
    limit: str = "",
    cursor: str = "",
):
    filters = NodeFilters(
        project=project.strip(),
        env=env.strip(),
        type=type.strip(),
        schedule_type=schedule_type.strip(),
        owner=owner.strip(),
        paused=paused.strip(),
        status=status.strip(),
        group=group.strip(),
        q=q.strip(),
    )
    queryset = node_filter(nodes_visible_to(request.auth), filters)
    page = keyset_page(queryset, cursor=cursor, limit=limit, order_field="name", descending=False)
    return {"items": [node_out(n) for n in page.items], "next_cursor": page.next_cursor}


@router.get("/{int:node_id}", response=NodeDetailOut, summary="A node and its current spec")
def node_detail(request, node_id: int):
    node = node_get(user=request.auth, node_id=node_id)
    downstream = [
        d.name if d.project_id == node.project_id else f"{d.project.code}.{d.name}"
        for d in nodes_visible_to(request.auth)
        .filter(upstream_links__upstream=node)
        .order_by("name")
    ]
    version = node.current_version
    return {
        **node_out(node),
        "description": node.description,
        "status": node.status,
        "published_at": version.published_at if version else None,
        "downstream": downstream,
        "spec": version.spec if version else None,
    }


def _version_out(version: NodeVersion) -> dict:
    return {
        "number": version.number,
        "spec_hash": version.spec_hash,
        "spec": version.spec,
        "upstream_ids": version.upstream_ids,
        "resources": [{"name": p.name, "version": p.number} for p in version.resource_pins.all()],
        "published_at": version.published_at,
        "published_by": version.published_by.username if version.published_by else None,
        "note": version.note,
    }


@router.get(
    "/{int:node_id}/versions", response=VersionPage, summary="A node's versions, newest first"
)
def node_version_list(request, node_id: int, limit: str = "", cursor: str = ""):
    node = node_get(user=request.auth, node_id=node_id)
    page = keyset_page(node_versions(node=node), cursor=cursor, limit=limit, order_field="number")
    return {"items": [_version_out(v) for v in page.items], "next_cursor": page.next_cursor}


@router.get("/{int:node_id}/dag", response=NodeDagOut, summary="The node graph around a node")
def node_graph(request, node_id: int, up: str = "2", down: str = "2"):
    node = node_get(user=request.auth, node_id=node_id)
    graph = node_dag(user=request.auth, node=node, up=_depth("up", up), down=_depth("down", down))
    return {
        "node": node.id,
        "nodes": [
            {
                "id": n.id,
                "project": n.project.code,
                "env": n.env,
                "name": n.name,
                "type": n.type,
                "schedule_type": n.schedule_type,
                "status": n.status,
                "paused": n.paused,
                "level": graph.levels[n.id],
            }
            for n in graph.nodes
        ],
        "edges": [{"upstream": u, "downstream": d} for u, d in graph.edges],
    }


@publish_router.post("/{code}/publish", response=PublishOut, summary="Publish a batch of NodeSpecs")
def project_publish(request, code: str, payload: PublishIn):
    """All or nothing: any error answers 422 listing every error, and nothing changes."""
    project = project_get(user=request.auth, code=code)
    if not isinstance(payload.note, str):
        raise ValidationFailed("invalid note", [{"field": "note", "message": "must be a string"}])
    result = nodes_publish(
        project=project,
        env=payload.env,
        specs=payload.nodes,
        user=request.auth,
        note=payload.note,
        source="api",
    )
    return {"created": result.created, "updated": result.updated, "unchanged": result.unchanged}


# --- operations (SPEC section 5) -------------------------------------------------------
# Each answers the node as GET /api/nodes/{id} does (run answers the new instance); a
# state that does not allow the operation answers 409, a missing role 403.


class NodeRunIn(InputSchema):
    biz_date: datetime.date | None = Field(
        None, description="YYYY-MM-DD; default: yesterday in the project's timezone"
    )
    params: dict[str, Any] | None = Field(None, description="values overriding node params")


class NodeOwnerIn(InputSchema):
    node_ids: list[ObjectId] = Field(max_length=BATCH_MAX)
    owner: str


class NodeBatchIn(InputSchema):
    ids: list[ObjectId] = Field(max_length=BATCH_MAX)
    action: Literal["pause", "resume"]


class NodeBatchItemOut(Schema):
    id: int
    ok: bool
    state: str | None = Field(description="online, paused or offline; null when not found")
    message: str


class NodeBatchOut(Schema):
    results: list[NodeBatchItemOut]


def _operated(request, node_id: int, operation) -> dict:
    node = node_get(user=request.auth, node_id=node_id)
    operation(node=node, by=request.auth, source="api")
    return node_detail(request, node_id)


@router.post("/owner", response=NodeBatchOut, summary="Give nodes a new owner, each on its own")
def nodes_owner(request, payload: NodeOwnerIn):
    results = operations.nodes_change_owner(
        node_ids=payload.node_ids, owner=payload.owner, by=request.auth, source="api"
    )
    return {"results": [asdict(item) for item in results]}


@router.post("/batch", response=NodeBatchOut, summary="Pause or resume many nodes, each on its own")
def nodes_batch(request, payload: NodeBatchIn):
    results = operations.nodes_batch(
        ids=payload.ids, action=payload.action, by=request.auth, source="api"
    )
    return {"results": [asdict(item) for item in results]}


@router.post(
    "/{int:node_id}/pause",
    response={200: NodeDetailOut, **errors(409)},
    summary="Hold every pending and future instance of the node",
)
def node_pause(request, node_id: int):
    return _operated(request, node_id, operations.node_pause)


@router.post(
    "/{int:node_id}/resume",
    response={200: NodeDetailOut, **errors(409)},
    summary="Release a paused node",
)
def node_resume(request, node_id: int):
    return _operated(request, node_id, operations.node_resume)


@router.post(
    "/{int:node_id}/offline",
    response={200: NodeDetailOut, **errors(409)},
    summary="Take a node offline (refused while online nodes depend on it)",
)
def node_offline(request, node_id: int):
    return _operated(request, node_id, operations.node_offline)


@router.post(
    "/{int:node_id}/run",
    response={201: InstanceDetail, **errors(409)},
    summary="Run a one-time node, or any dev node, now: answers the new instance",
)
def node_run(request, node_id: int, payload: NodeRunIn | None = None):
    node = node_get(user=request.auth, node_id=node_id)
    instance = operations.node_run(
        node=node,
        by=request.auth,
        source="api",
        biz_date=payload.biz_date if payload else None,
        params=payload.params if payload else None,
    )
    return Status(201, instance_detail(request, instance.pk))


# --- realtime nodes (apps.realtime) ------------------------------------------------------


def _realtime_operated(request, node_id: int, operation) -> dict:
    node = node_get(user=request.auth, node_id=node_id)
    operation(node=node, by=request.auth, source="api")
    return realtime_out(realtime_services.realtime_settings_get(node))


@router.get(
    "/{int:node_id}/realtime",
    response={200: RealtimeOut, **errors(409)},
    summary="A realtime node's process (409: not a realtime node)",
)
def node_realtime(request, node_id: int):
    node = node_get(user=request.auth, node_id=node_id)
    return realtime_out(realtime_services.realtime_settings_get(node))


@router.post(
    "/{int:node_id}/realtime/start",
    response={200: RealtimeOut, **errors(409)},
    summary="Start a stopped or failed realtime node (a supervisor runs its process)",
)
def node_realtime_start(request, node_id: int):
    return _realtime_operated(request, node_id, realtime_services.realtime_start)


@router.post(
    "/{int:node_id}/realtime/stop",
    response={200: RealtimeOut, **errors(409)},
    summary="Stop a realtime node: SIGTERM, then SIGKILL after the grace period",
)
def node_realtime_stop(request, node_id: int):
    return _realtime_operated(request, node_id, realtime_services.realtime_stop)


@router.post(
    "/{int:node_id}/realtime/resources",
    response={200: RealtimeOut, **errors(409)},
    summary="Change a realtime node's CPU, memory or restart limit (from its next start)",
)
def node_realtime_resources(request, node_id: int, payload: RealtimeResourcesIn):
    node = node_get(user=request.auth, node_id=node_id)
    row = realtime_services.realtime_change_resources(
        node=node,
        by=request.auth,
        source="api",
        cpu=payload.cpu,
        memory_mb=payload.memory_mb,
        restart_limit=payload.restart_limit,
    )
    return realtime_out(row)
