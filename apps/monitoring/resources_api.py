"""GET /api/resources: the resource dashboard's numbers (SPEC 11, 12), as the page shows
them."""

import datetime

from ninja import Field, Router, Schema

from apps.core.schemas import errors
from apps.projects.selectors import project_get

from .resources import (
    GroupUsage,
    NodeUsage,
    ResourceUsage,
    resources_get,
    resources_range,
    resources_scope,
    resources_today,
)

router = Router(tags=["overview"])


class NodeResourcesOut(Schema):
    node: int
    node_name: str
    project: str
    env: str
    resource_group: str
    runs: int
    allocated_cpu: float | None = Field(description="cores (the current version's cpu)")
    allocated_memory_mb: int | None
    avg_cores_p95: float | None = Field(
        description="95th percentile over its runs of CPU seconds / wall seconds"
    )
    peak_memory_mb_p95: float | None
    peak_memory_mb_max: float | None
    cpu_seconds: float = Field(description="core-seconds used by its runs in the range")
    running_seconds: float
    avg_cores: float | None = Field(description="cpu_seconds / running_seconds")
    killed_for_memory: int = Field(description="runs killed for passing memory_mb")
    flag: str = Field(description="over_provisioned | under_provisioned | ok | no_data")
    suggested_cpu: float | None = Field(description="p95 x 1.25 rounded up to 0.25 core")
    suggested_memory_mb: int | None = Field(description="p95 x 1.25 rounded up to 64 MB")


class GroupResourcesOut(Schema):
    name: str
    nodes: int
    runs: int
    cpu_seconds: float
    allocated_cpu_seconds: float = Field(description="each run's allocated cpu x its wall time")
    running_seconds: float
    avg_cores: float | None
    allocated_cores: float | None
    peak_memory_mb_max: float | None
    killed_for_memory: int
    flags: dict[str, int] = Field(description="its nodes per flag")


class ResourcesOut(Schema):
    start: datetime.date
    end: datetime.date
    timezone: str
    nodes: list[NodeResourcesOut]
    projects: list[GroupResourcesOut]
    resource_groups: list[GroupResourcesOut]


def node_out(usage: NodeUsage) -> dict:
    return {
        "node": usage.node_id,
        "node_name": usage.node_name,
        "project": usage.project_code,
        "env": usage.env,
        "resource_group": usage.resource_group,
        "runs": usage.runs,
        "allocated_cpu": usage.allocated_cpu,
        "allocated_memory_mb": usage.allocated_memory_mb,
        "avg_cores_p95": usage.avg_cores_p95,
        "peak_memory_mb_p95": usage.peak_memory_mb_p95,
        "peak_memory_mb_max": usage.peak_memory_mb_max,
        "cpu_seconds": usage.cpu_seconds,
        "running_seconds": usage.running_seconds,
        "avg_cores": usage.avg_cores,
        "killed_for_memory": usage.killed_for_memory,
        "flag": usage.flag,
        "suggested_cpu": usage.suggested_cpu,
        "suggested_memory_mb": usage.suggested_memory_mb,
    }


def group_out(usage: GroupUsage) -> dict:
    return {
        "name": usage.name,
        "nodes": usage.nodes,
        "runs": usage.runs,
        "cpu_seconds": usage.cpu_seconds,
        "allocated_cpu_seconds": usage.allocated_cpu_seconds,
        "running_seconds": usage.running_seconds,
        "avg_cores": usage.avg_cores,
        "allocated_cores": usage.allocated_cores,
        "peak_memory_mb_max": usage.peak_memory_mb_max,
        "killed_for_memory": usage.killed_for_memory,
        "flags": usage.flags,
    }


def resources_out(usage: ResourceUsage) -> dict:
    return {
        "start": usage.start,
        "end": usage.end,
        "timezone": usage.timezone,
        "nodes": [node_out(n) for n in usage.nodes],
        "projects": [group_out(g) for g in usage.projects],
        "resource_groups": [group_out(g) for g in usage.resource_groups],
    }


@router.get(
    "",
    response={200: ResourcesOut, **errors(404)},
    summary="Allocated versus measured CPU and memory per node, project and resource group",
)
def resources(
    request,
    project: str = "",
    resource_group: str = "",
    node: str = "",
    start: str = "",
    end: str = "",
):
    """Runs started from `start` to `end` (YYYY-MM-DD, both included; by default the last 7
    days), in the project's timezone when `project` is given. Each node with its 95th
    percentiles, flag and suggestion (SPEC 11); `projects` and `resource_groups` sum the
    runs that ran in each."""
    chosen = project_get(user=request.auth, code=project.strip()) if project.strip() else None
    scope = resources_scope(
        user=request.auth, project=chosen, resource_group=resource_group.strip(), node=node
    )
    first, last = resources_range(start, end, today=resources_today(scope))
    return resources_out(resources_get(scope=scope, start=first, end=last))
