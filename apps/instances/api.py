"""/api/instances: list, detail, log, diagnosis, the dependency graph around one, and the
operations on instances."""

from dataclasses import asdict, fields
from typing import Literal

from django.db.models import Q
from django.http import JsonResponse
from ninja import Field, Query, Router, Schema

from apps.audit.models import OperationLog
from apps.core.errors import NotFound, ValidationFailed
from apps.core.pagination import keyset_page
from apps.core.schemas import InputSchema, ObjectId, PageQuery, errors

from . import operations
from .choices import AttemptState
from .diagnosis import diagnose
from .graph import instance_graph
from .models import Attempt, InstanceDependency
from .schemas import DiagnosisOut, InstanceDagOut, InstanceDetail, InstanceList, LogOut
from .selectors import (
    InstanceFilters,
    attempt_log,
    instance_filter,
    instance_get,
    instance_rows_page,
    instances_visible_to,
)

router = Router(tags=["instances"])

LOG_PAGE_CHARS = 256 * 1024  # one answer of a log; follow next_offset for the rest
DAG_MAX_LEVELS = 10
DAG_MAX_INSTANCES = 500


class InstanceQuery(Schema):
    kind: str = ""
    project: str = ""
    node: str = ""
    biz_date: str = ""
    state: str = ""
    owner: str = ""
    resource_group: str = ""
    backfill: str = ""
    baseline: str = Field("", description="any, or a baseline's id: instances on its path today")
    limit: int | None = None
    cursor: str | None = None


def _listable(queryset):
    # A list needs the version's number, not its (possibly large) spec and script.
    return queryset.defer("version__spec", "version__upstream_ids", "params")


@router.get("", response=InstanceList, summary="Instances, newest scheduled first")
def instance_list(request, query: Query[InstanceQuery]):
    filters = InstanceFilters(
        **{f.name: getattr(query, f.name).strip() for f in fields(InstanceFilters)}
    )
    queryset = instance_filter(instances_visible_to(request.user), filters)
    page = instance_rows_page(queryset, cursor=query.cursor, limit=query.limit)
    # The rows are plain values already in the InstanceOut shape (tests hold the two
    # together), so the page is written out directly instead of validated row by row.
    return JsonResponse(
        {"items": [row.as_api() for row in page.items], "next_cursor": page.next_cursor}
    )


@router.get("/{int:instance_id}", response=InstanceDetail)
def instance_detail(request, instance_id: int):
    instance = instance_get(user=request.user, instance_id=instance_id)
    upstream, removed, downstream = [], [], []
    edges = InstanceDependency.objects.filter(Q(downstream=instance) | Q(upstream=instance))
    for upstream_id, downstream_id, is_removed in edges.order_by("id").values_list(
        "upstream_id", "downstream_id", "removed"
    ):
        if downstream_id == instance.pk:
            (removed if is_removed else upstream).append(upstream_id)
        elif not is_removed:
            downstream.append(downstream_id)
    # The schema reads these names; attempts come from instance.attempts in one query.
    instance.upstream = upstream
    instance.removed_upstream = removed
    instance.downstream = downstream
    return instance


class LogQuery(Schema):
    attempt: int | None = None
    offset: int = 0


@router.get("/{int:instance_id}/log", response=LogOut, summary="A piece of an attempt's log")
def instance_log(request, instance_id: int, query: Query[LogQuery]):
    instance = instance_get(user=request.user, instance_id=instance_id)
    if query.offset < 0:
        raise ValidationFailed(
            "invalid offset", [{"field": "offset", "message": "a character offset, 0 or more"}]
        )
    attempts = Attempt.objects.filter(instance=instance)
    if query.attempt is None:
        attempt = attempts.order_by("-number").first()
        if attempt is None:
            # Not started yet: nothing to read, but a follower should keep asking.
            return {
                "attempt": None,
                "offset": query.offset,
                "next_offset": query.offset,
                "text": "",
                "finished": instance.is_finished,
            }
    else:
        attempt = attempts.filter(number=query.attempt).first()
        if attempt is None:
            raise NotFound(
                f"instance {instance.pk} has no attempt {query.attempt}",
                [{"field": "attempt", "message": "no such attempt"}],
            )
    # Read the state before the log: the worker writes the last piece of log in the same
    # transaction that ends the attempt, so an ended attempt's log is complete.
    ended = attempt.state != AttemptState.RUNNING
    # One character more than is sent tells whether anything is left.
    text, _ = attempt_log(attempt=attempt, offset=query.offset, max_chars=LOG_PAGE_CHARS + 1)
    more = len(text) > LOG_PAGE_CHARS
    text = text[:LOG_PAGE_CHARS]
    next_offset = query.offset + len(text)
    return {
        "attempt": attempt.number,
        "offset": query.offset,
        "next_offset": next_offset,
        "text": text,
        "finished": ended and not more,
    }


@router.get(
    "/{int:instance_id}/diagnosis",
    response=DiagnosisOut,
    summary="Why is it not running? Every unmet start condition and how to unblock it",
)
def instance_diagnosis(request, instance_id: int):
    instance = instance_get(user=request.user, instance_id=instance_id)
    return diagnose(instance, viewer=request.user).as_dict()


class DagQuery(Schema):
    up: int = 1
    down: int = 1


@router.get(
    "/{int:instance_id}/dag",
    response=InstanceDagOut,
    summary="The instances and edges within `up` levels upstream and `down` levels downstream",
)
def instance_dag(request, instance_id: int, query: Query[DagQuery]):
    errors = [
        {"field": name, "message": f"a whole number from 0 to {DAG_MAX_LEVELS}"}
        for name in ("up", "down")
        if not 0 <= getattr(query, name) <= DAG_MAX_LEVELS
    ]
    if errors:
        raise ValidationFailed("invalid " + ", ".join(e["field"] for e in errors), errors)
    instance = instance_get(user=request.user, instance_id=instance_id)
    found = instance_graph(
        user=request.user,
        instance=instance,
        up=query.up,
        down=query.down,
        max_instances=DAG_MAX_INSTANCES,
    )
    ids = [node.pk for node in found.instances]
    visible = instances_visible_to(request.user)
    instances = list(_listable(visible.filter(pk__in=ids)).order_by("scheduled_at", "id"))
    return {
        "root": instance.pk,
        "instances": instances,
        "edges": [
            {"upstream": up, "downstream": down, "removed": removed}
            for up, down, removed in found.edges
        ],
    }


class OperationOut(Schema):
    id: int
    created_at: str
    username: str
    source: str
    action: str
    result: str
    message: str
    detail: dict

    @staticmethod
    def resolve_created_at(obj) -> str:
        return obj.created_at.isoformat()


class OperationList(Schema):
    items: list[OperationOut]
    next_cursor: str | None


@router.get(
    "/{int:instance_id}/operations",
    response=OperationList,
    summary="Operations recorded on this instance, newest first",
)
def instance_operations(request, instance_id: int, query: Query[PageQuery]):
    instance = instance_get(user=request.user, instance_id=instance_id)
    records = OperationLog.objects.filter(object_type="instance", object_id=str(instance.pk))
    page = keyset_page(records, cursor=query.cursor, limit=query.limit)
    return {"items": page.items, "next_cursor": page.next_cursor}


# --- operations (SPEC section 5) -------------------------------------------------------
# Each answers the instance as GET /api/instances/{id} does; a state that does not allow
# the operation answers 409, a missing role 403.


class RerunIn(InputSchema):
    downstream: bool = Field(
        False, description="also reset every finished transitive downstream instance"
    )


class InstancePatch(InputSchema):
    resource_group: str = Field(description="the resource group to run this instance in")


class InstanceBatchIn(InputSchema):
    ids: list[ObjectId] = Field(max_length=operations.BATCH_MAX)
    action: Literal["rerun", "stop", "set_success", "pause", "resume"]


class InstanceBatchItemOut(Schema):
    id: int
    ok: bool
    state: str | None
    message: str


class InstanceBatchOut(Schema):
    results: list[InstanceBatchItemOut]


def _operated(request, instance_id: int, operation, **kwargs):
    instance = instance_get(user=request.user, instance_id=instance_id)
    operation(instance=instance, by=request.user, source="api", **kwargs)
    return instance_detail(request, instance_id)


@router.post(
    "/batch", response=InstanceBatchOut, summary="One operation on many instances, each on its own"
)
def instances_batch(request, payload: InstanceBatchIn):
    results = operations.instances_batch(
        ids=payload.ids, action=payload.action, by=request.user, source="api"
    )
    return {"results": [asdict(item) for item in results]}


@router.post(
    "/{int:instance_id}/rerun",
    response={200: InstanceDetail, **errors(409)},
    summary="Run a finished instance again (optionally with every finished downstream one)",
)
def instance_rerun(request, instance_id: int, payload: RerunIn | None = None):
    downstream = payload.downstream if payload else False
    return _operated(request, instance_id, operations.instance_rerun, downstream=downstream)


@router.post(
    "/{int:instance_id}/set-success",
    response={200: InstanceDetail, **errors(409)},
    summary="Mark a pending, failed or stopped instance succeeded (forced)",
)
def instance_set_success(request, instance_id: int):
    return _operated(request, instance_id, operations.instance_set_success)


@router.post(
    "/{int:instance_id}/stop",
    response={200: InstanceDetail, **errors(409)},
    summary="Stop a pending, queued or running instance (kills its process tree)",
)
def instance_stop(request, instance_id: int):
    return _operated(request, instance_id, operations.instance_stop)


@router.post(
    "/{int:instance_id}/pause",
    response={200: InstanceDetail, **errors(409)},
    summary="Freeze an instance",
)
def instance_pause(request, instance_id: int):
    return _operated(request, instance_id, operations.instance_pause)


@router.post(
    "/{int:instance_id}/resume",
    response={200: InstanceDetail, **errors(409)},
    summary="Unfreeze an instance",
)
def instance_resume(request, instance_id: int):
    return _operated(request, instance_id, operations.instance_resume)


@router.post(
    "/{int:instance_id}/run-now",
    response={200: InstanceDetail, **errors(409)},
    summary="Start a pending instance without waiting for upstream or its time",
)
def instance_run_now(request, instance_id: int):
    return _operated(request, instance_id, operations.instance_run_now)


@router.delete(
    "/{int:instance_id}/upstream/{int:upstream_id}",
    response={200: InstanceDetail, **errors(409)},
    summary="Remove a pending instance's dependency on one upstream instance",
)
def instance_remove_dependency(request, instance_id: int, upstream_id: int):
    return _operated(
        request, instance_id, operations.instance_remove_dependency, upstream_id=upstream_id
    )


@router.patch(
    "/{int:instance_id}",
    response={200: InstanceDetail, **errors(409)},
    summary="Change a pending instance's resource group",
)
def instance_update(request, instance_id: int, payload: InstancePatch):
    return _operated(
        request,
        instance_id,
        operations.instance_change_resource_group,
        resource_group=payload.resource_group,
    )
