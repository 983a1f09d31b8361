"""/api/field-rules (SPEC 12, configuration object FieldRule) and a rule's results.
Members read; a rule of a prod node is changed by the project's admin, of a dev node by
a developer. A rule one may not see answers 404."""

from ninja import Field, Query, Router, Schema, Status

from apps.core.pagination import keyset_page
from apps.core.schemas import InputSchema, ObjectId, PageQuery, errors
from apps.projects.schemas import IsoDateTime
from apps.projects.selectors import project_get

from . import services
from .models import FieldRule
from .selectors import field_rule_get, field_rule_results, field_rules_visible_to

router = Router(tags=["field rules"])
SOURCE = "api"

_METRIC = (
    "row_count | null_count | null_ratio | distinct_count | min | max | sum | avg | custom_sql"
)
_TABLE = "a table, optionally schema.table: letters, digits and underscores (quoted when run)"
_WHERE = "a filter with the script parameters of SPEC 2, e.g. ds = '${bizdate}'"


class FieldRuleIn(InputSchema):
    project: str = Field(description="the project's code")
    node: ObjectId = Field(description="the node (of the project) whose runs are checked")
    datasource: str = Field(description="the name of one of the project's datasources")
    table: str = Field("", description=_TABLE + "; optional for custom_sql")
    field: str = Field("", description="the column; needed by every metric but row_count")
    where: str = Field("", description=_WHERE)
    metric: str = Field(description=_METRIC)
    sql: str = Field("", description="custom_sql only: one query returning one number")
    operator: str = Field(description="< | <= | > | >= | == | != | between")
    threshold: float
    threshold_high: float | None = Field(None, description="the upper bound of between")
    compare: str = Field("value", description="value | change_pct_vs_previous | change_pct_vs_avg7")
    severity: str = Field("block", description="block: fails the attempt; warn: alerts only")
    channels: list[ObjectId] = Field(
        default_factory=list, description="channel ids a warn rule's alert goes to"
    )
    enabled: bool = True


class FieldRulePatch(InputSchema):
    # Omitted fields are kept; null is refused except for threshold_high.
    project: str = Field(None, description="only the rule's own project: a rule cannot move")
    node: ObjectId = None
    datasource: str = None
    table: str = None
    field: str = None
    where: str = None
    metric: str = None
    sql: str = None
    operator: str = None
    threshold: float = None
    threshold_high: float | None = None
    compare: str = None
    severity: str = None
    channels: list[ObjectId] = None
    enabled: bool = None


class FieldRuleOut(Schema):
    id: int
    project: str
    node: int
    node_name: str
    datasource: str
    table: str
    field: str
    where: str
    metric: str
    sql: str
    operator: str
    threshold: float
    threshold_high: float | None
    compare: str
    severity: str
    channels: list[int]
    enabled: bool
    description: str = Field(description="the rule in words")
    expectation: str = Field(description="what a check must find, in words")
    created_at: IsoDateTime
    updated_at: IsoDateTime

    @staticmethod
    def resolve_project(obj) -> str:
        return obj.project.code

    @staticmethod
    def resolve_node(obj) -> int:
        return obj.node_id

    @staticmethod
    def resolve_node_name(obj) -> str:
        return obj.node.name

    @staticmethod
    def resolve_datasource(obj) -> str:
        return obj.datasource.name

    @staticmethod
    def resolve_channels(obj) -> list[int]:
        return sorted(channel.pk for channel in obj.channels.all())

    @staticmethod
    def resolve_description(obj) -> str:
        return obj.describe()

    @staticmethod
    def resolve_expectation(obj) -> str:
        return obj.expectation()

    @staticmethod
    def resolve_created_at(obj):
        return obj.created_at.astimezone(obj.project.tz)

    @staticmethod
    def resolve_updated_at(obj):
        return obj.updated_at.astimezone(obj.project.tz)


class FieldRuleList(Schema):
    items: list[FieldRuleOut]
    next_cursor: str | None


class FieldRuleQuery(PageQuery):
    project: str = Field("", description="a project's code")
    node: ObjectId | None = Field(None, description="a node's id")


class FieldRuleResultOut(Schema):
    id: int
    instance: int
    attempt: int
    value: float | None = Field(description="the metric; null when the check errored")
    baseline: float | None = Field(
        description="compare modes: the previous value or the mean of the last 7"
    )
    compared: float | None = Field(
        description="what was held against the threshold: the value, or its change in %"
    )
    expected: str
    passed: bool
    error: str
    checked_at: IsoDateTime

    @staticmethod
    def resolve_instance(obj) -> int:
        return obj.instance_id


class FieldRuleResultList(Schema):
    items: list[FieldRuleResultOut]
    next_cursor: str | None


class FieldRuleResultQuery(PageQuery):
    instance: ObjectId | None = Field(None, description="only the checks of this instance")


def _answer(rule: FieldRule) -> FieldRule:
    return (
        FieldRule.objects.select_related("project", "node", "datasource")
        .prefetch_related("channels")
        .get(pk=rule.pk)
    )


@router.get("", response={200: FieldRuleList, **errors(404)}, summary="Field rules, oldest first")
def field_rule_list(request, query: Query[FieldRuleQuery]):
    queryset = field_rules_visible_to(request.user)
    if query.project:
        queryset = queryset.filter(project=project_get(user=request.user, code=query.project))
    if query.node is not None:
        queryset = queryset.filter(node_id=query.node)
    page = keyset_page(queryset, cursor=query.cursor, limit=query.limit, descending=False)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.post(
    "",
    response={201: FieldRuleOut, **errors(404)},
    summary="Create a field rule (project admin; developer for a dev node)",
)
def field_rule_create(request, payload: FieldRuleIn):
    data = payload.dict()
    project = project_get(user=request.user, code=data.pop("project"))
    rule = services.field_rule_create(project=project, data=data, by=request.user, source=SOURCE)
    return Status(201, _answer(rule))


@router.get("/{int:rule_id}", response=FieldRuleOut)
def field_rule_detail(request, rule_id: int):
    return field_rule_get(user=request.user, rule_id=rule_id)


@router.patch(
    "/{int:rule_id}",
    response=FieldRuleOut,
    summary="Change a field rule; the whole rule is checked again",
)
def field_rule_update(request, rule_id: int, payload: FieldRulePatch):
    rule = field_rule_get(user=request.user, rule_id=rule_id)
    services.field_rule_update(
        rule=rule, data=payload.dict(exclude_unset=True), by=request.user, source=SOURCE
    )
    return _answer(rule)


@router.delete(
    "/{int:rule_id}", response={204: None}, summary="Delete a field rule and its results"
)
def field_rule_delete(request, rule_id: int):
    rule = field_rule_get(user=request.user, rule_id=rule_id)
    services.field_rule_delete(rule=rule, by=request.user, source=SOURCE)
    return Status(204, None)


@router.get(
    "/{int:rule_id}/results",
    response=FieldRuleResultList,
    summary="A rule's results, newest first",
)
def field_rule_result_list(request, rule_id: int, query: Query[FieldRuleResultQuery]):
    rule = field_rule_get(user=request.user, rule_id=rule_id)
    page = keyset_page(
        field_rule_results(rule=rule, instance_id=query.instance),
        cursor=query.cursor,
        limit=query.limit,
        order_field="checked_at",
    )
    return {"items": page.items, "next_cursor": page.next_cursor}
