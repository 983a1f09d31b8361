"""/api/instances: list, detail, log, diagnosis and the dependency graph around one."""

from dataclasses import fields

from django.db.models import Q
from ninja import Query, Router, Schema

from apps.audit.models import OperationLog
from apps.core.errors import NotFound, ValidationFailed
from apps.core.pagination import keyset_page

from .choices import AttemptState
from .diagnosis import diagnose
from .models import Attempt, InstanceDependency
from .schemas import DagOut, DiagnosisOut, InstanceDetail, InstanceList, LogOut
from .selectors import (
    InstanceFilters,
    attempt_log,
    instance_filter,
    instance_get,
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
    page = keyset_page(
        _listable(queryset), cursor=query.cursor, limit=query.limit, order_field="scheduled_at"
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


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
    response=DagOut,
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
    visible = instances_visible_to(request.user)
    ids = {instance.pk}
    edges: dict[tuple[int, int], bool] = {}
    for direction, levels in (("up", query.up), ("down", query.down)):
        frontier = {instance.pk}
        for _level in range(levels):
            if not frontier or len(ids) >= DAG_MAX_INSTANCES:
                break
            if direction == "up":
                rows = InstanceDependency.objects.filter(downstream_id__in=frontier)
            else:
                rows = InstanceDependency.objects.filter(upstream_id__in=frontier)
            found = set()
            for up, down, removed in rows.values_list("upstream_id", "downstream_id", "removed"):
                edges[(up, down)] = removed
                found.add(up if direction == "up" else down)
            # Only instances the caller may see are walked through and shown.
            frontier = set(
                visible.filter(pk__in=found - ids).values_list("pk", flat=True)[
                    : DAG_MAX_INSTANCES - len(ids)
                ]
            )
            ids |= frontier
    instances = list(_listable(visible.filter(pk__in=ids)).order_by("scheduled_at", "id"))
    return {
        "root": instance.pk,
        "instances": instances,
        "edges": [
            {"upstream": up, "downstream": down, "removed": removed}
            for (up, down), removed in sorted(edges.items())
            if up in ids and down in ids
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


class ListQuery(Schema):
    limit: int | None = None
    cursor: str | None = None


@router.get(
    "/{int:instance_id}/operations",
    response=OperationList,
    summary="Operations recorded on this instance, newest first",
)
def instance_operations(request, instance_id: int, query: Query[ListQuery]):
    instance = instance_get(user=request.user, instance_id=instance_id)
    records = OperationLog.objects.filter(object_type="instance", object_id=str(instance.pk))
    page = keyset_page(records, cursor=query.cursor, limit=query.limit)
    return {"items": page.items, "next_cursor": page.next_cursor}
