"""/api/resource-groups and /api/throttle-rules (SPEC 9, 12: configuration objects
ResourceGroup and ThrottleRule). Every signed-in user reads groups and global rules, a
project's members its rules; superusers change groups and global rules, a project's
admins its rules. Answers add each object's live usage."""

from ninja import Field, Query, Router, Schema, Status

from apps.core.pagination import keyset_page
from apps.core.schemas import InputSchema, PageQuery, errors
from apps.projects.selectors import project_get

from . import capacity_services as services
from .capacity_selectors import (
    resource_group_get,
    resource_groups_usage,
    throttle_rule_get,
    throttle_rules_usage,
    throttle_rules_visible_to,
)
from .models import ResourceGroup, ThrottleRule

groups_router = Router(tags=["resource groups"])
rules_router = Router(tags=["throttling rules"])
SOURCE = "api"


# --- resource groups -------------------------------------------------------------------


class ResourceGroupIn(InputSchema):
    name: str = Field(description="letters, digits, - and _; also its workers' queue")
    description: str = ""
    max_concurrency: int = Field(10, description="instances queued or running at once, >= 1")
    cpu_capacity: float | None = Field(None, description="cores its instances may allocate")
    memory_capacity_mb: int | None = Field(None, description="MiB its instances may allocate")


class ResourceGroupPatch(InputSchema):
    # Omitted fields are kept; null clears a capacity (no limit).
    name: str = Field(None, description="only unchanged: a group cannot be renamed")
    description: str = None
    max_concurrency: int = None
    cpu_capacity: float | None = None
    memory_capacity_mb: int | None = None


class ResourceGroupOut(Schema):
    id: int
    name: str
    description: str
    max_concurrency: int
    cpu_capacity: float | None
    memory_capacity_mb: int | None
    in_use: int = Field(description="its instances queued or running now")
    queued: int
    running: int
    cpu_in_use: float = Field(description="cores its queued and running instances allocate")
    memory_in_use_mb: float
    waiting: int = Field(description="pending instances waiting for a slot or throttled")
    nodes: int = Field(description="nodes that run in it")


class ResourceGroupList(Schema):
    items: list[ResourceGroupOut]
    next_cursor: str | None


def _group_answers(groups: list[ResourceGroup]) -> list[dict]:
    usage = resource_groups_usage(groups)
    return [{**services.resource_group_data(g), "id": g.pk, **usage[g.pk]} for g in groups]


@groups_router.get("", response=ResourceGroupList, summary="Resource groups, by name")
def resource_group_list(request, query: Query[PageQuery]):
    page = keyset_page(
        ResourceGroup.objects.all(),
        cursor=query.cursor,
        limit=query.limit,
        order_field="name",
        descending=False,
    )
    return {"items": _group_answers(page.items), "next_cursor": page.next_cursor}


@groups_router.post(
    "", response={201: ResourceGroupOut}, summary="Create a resource group (superuser)"
)
def resource_group_create(request, payload: ResourceGroupIn):
    group = services.resource_group_create(data=payload.dict(), by=request.user, source=SOURCE)
    return Status(201, _group_answers([group])[0])


@groups_router.get("/{name}", response=ResourceGroupOut)
def resource_group_detail(request, name: str):
    return _group_answers([resource_group_get(name=name)])[0]


@groups_router.patch(
    "/{name}",
    response=ResourceGroupOut,
    summary="Change a resource group (superuser); the whole group is checked again",
)
def resource_group_update(request, name: str, payload: ResourceGroupPatch):
    group = resource_group_get(name=name)
    group = services.resource_group_update(
        group=group, data=payload.dict(exclude_unset=True), by=request.user, source=SOURCE
    )
    return _group_answers([group])[0]


@groups_router.delete(
    "/{name}",
    response={204: None, **errors(409)},
    summary="Delete a resource group (superuser; refused while nodes, instances or rules use it)",
)
def resource_group_delete(request, name: str):
    group = resource_group_get(name=name)
    services.resource_group_delete(group=group, by=request.user, source=SOURCE)
    return Status(204, None)


# --- throttling rules ------------------------------------------------------------------

_SCOPE_VALUE = (
    "resource_group: a group's name; project: a project's code; node_type: shell, python, "
    "sql, http or virtual; datasource: project_code.datasource_name"
)


class ThrottleRuleIn(InputSchema):
    name: str
    scope_kind: str = Field(description="resource_group | project | node_type | datasource")
    scope_value: str = Field(description=_SCOPE_VALUE)
    max_concurrency: int = Field(description="instances of its scope queued or running at once")
    window_start: str | None = Field(
        None, description="HH:MM: the rule applies only from then (with window_end)"
    )
    window_end: str | None = Field(
        None, description="HH:MM, before window_start to cross midnight; null: always"
    )
    enabled: bool = True


class ThrottleRulePatch(InputSchema):
    name: str = None
    scope_kind: str = None
    scope_value: str = None
    max_concurrency: int = None
    window_start: str | None = None
    window_end: str | None = None
    enabled: bool = None


class ThrottleRuleOut(Schema):
    id: int
    name: str
    scope_kind: str
    scope_value: str
    max_concurrency: int
    window_start: str | None
    window_end: str | None
    enabled: bool
    project: str | None = Field(
        description="the project the rule belongs to (project and datasource scopes); "
        "null: a global rule"
    )
    timezone: str = Field(description="the window's timezone: its project's, else TIME_ZONE")
    in_force: bool = Field(description="enabled and inside its window now")
    in_use: int = Field(description="instances of its scope queued or running now")
    throttled: int = Field(description="pending instances it holds back now")


class ThrottleRuleList(Schema):
    items: list[ThrottleRuleOut]
    next_cursor: str | None


class ThrottleRuleQuery(PageQuery):
    project: str = Field("", description="a project's code: that project's rules")
    scope_kind: str = ""


def _rule_answers(rules: list[ThrottleRule]) -> list[dict]:
    from . import throttling

    usage = throttle_rules_usage(rules)
    return [
        {
            **services.throttle_rule_data(rule),
            "id": rule.pk,
            "project": rule.project.code if rule.project_id else None,
            "timezone": str(throttling.rule_timezone(rule)),
            **usage[rule.pk],
        }
        for rule in rules
    ]


def _rule(request, rule_id: int) -> ThrottleRule:
    return throttle_rule_get(user=request.user, rule_id=rule_id)


@rules_router.get(
    "", response={200: ThrottleRuleList, **errors(404)}, summary="Throttling rules, oldest first"
)
def throttle_rule_list(request, query: Query[ThrottleRuleQuery]):
    queryset = throttle_rules_visible_to(request.user)
    if query.project:
        queryset = queryset.filter(project=project_get(user=request.user, code=query.project))
    if query.scope_kind:
        queryset = queryset.filter(scope_kind=query.scope_kind)
    page = keyset_page(queryset, cursor=query.cursor, limit=query.limit, descending=False)
    return {"items": _rule_answers(page.items), "next_cursor": page.next_cursor}


@rules_router.post(
    "",
    response={201: ThrottleRuleOut},
    summary="Create a throttling rule (a project's admin for its project and datasource "
    "rules; a superuser for global ones)",
)
def throttle_rule_create(request, payload: ThrottleRuleIn):
    rule = services.throttle_rule_create(data=payload.dict(), by=request.user, source=SOURCE)
    return Status(201, _rule_answers([_rule(request, rule.pk)])[0])


@rules_router.get("/{int:rule_id}", response=ThrottleRuleOut)
def throttle_rule_detail(request, rule_id: int):
    return _rule_answers([_rule(request, rule_id)])[0]


@rules_router.patch(
    "/{int:rule_id}",
    response=ThrottleRuleOut,
    summary="Change a throttling rule; the whole rule is checked again",
)
def throttle_rule_update(request, rule_id: int, payload: ThrottleRulePatch):
    rule = _rule(request, rule_id)
    services.throttle_rule_update(
        rule=rule, data=payload.dict(exclude_unset=True), by=request.user, source=SOURCE
    )
    return _rule_answers([_rule(request, rule_id)])[0]


@rules_router.delete("/{int:rule_id}", response={204: None}, summary="Delete a throttling rule")
def throttle_rule_delete(request, rule_id: int):
    services.throttle_rule_delete(rule=_rule(request, rule_id), by=request.user, source=SOURCE)
    return Status(204, None)
