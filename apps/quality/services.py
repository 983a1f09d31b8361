"""Writes of field rules (SPEC 7.4, the FieldRule object of SPEC 12).

A rule is its node's configuration: on a `prod` node it needs the project's `admin`
role (as every production configuration does), on a `dev` node `developer`; members
read (see selectors). Every write goes through operation_run: the role check, then the
whole rule validated (a change is merged into the stored rule first, then checked as a
whole) and written in one transaction with its operation log entry. Bad input raises
ValidationFailed naming every wrong field and changes nothing.
"""

import datetime
import math
from typing import Any

from django.db import transaction

from apps.audit.services import operation_run
from apps.core import clock
from apps.core.errors import NotFound, ValidationFailed
from apps.core.schemas import MAX_ID
from apps.instances.params import ParamContext, UnknownParameter, render
from apps.nodes.choices import Env, NodeType
from apps.nodes.models import Node
from apps.notifications.models import Channel
from apps.projects.choices import Role
from apps.projects.models import Datasource, Project, Variable
from apps.projects.permissions import require_role

from . import sql as rule_sql
from .choices import FIELD_METRICS, Compare, Metric, Operator, RuleSeverity
from .models import FieldRule

# What a rule is made of besides its project, with the value an omitted field takes.
RULE_DEFAULTS: dict[str, Any] = {
    "table": "",
    "field": "",
    "where": "",
    "sql": "",
    "threshold_high": None,
    "compare": Compare.VALUE,
    "severity": RuleSeverity.BLOCK,
    "channels": [],
    "enabled": True,
}
RULE_FIELDS = ("node", "datasource", "metric", "operator", "threshold", *RULE_DEFAULTS)
WHERE_MAX = 4000
SQL_MAX = 20000


def _error(field: str, message: str) -> dict:
    return {"field": field, "message": message}


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def field_rule_data(rule: FieldRule) -> dict:
    """A rule as services take it: node id, datasource name, channel ids."""
    return {
        "node": rule.node_id,
        "datasource": rule.datasource.name,
        "table": rule.table,
        "field": rule.field,
        "where": rule.where,
        "metric": rule.metric,
        "sql": rule.sql,
        "operator": rule.operator,
        "threshold": rule.threshold,
        "threshold_high": rule.threshold_high,
        "compare": rule.compare,
        "severity": rule.severity,
        "channels": sorted(channel.pk for channel in rule.channels.all()),
        "enabled": rule.enabled,
    }


def _node_of(project: Project, value) -> tuple[Node | None, list[dict]]:
    if not _is_id(value):
        return None, [_error("node", "a node id")]
    node = Node.objects.filter(pk=value).first()
    if node is None or node.project_id != project.pk:
        return None, [_error("node", f"no node {value} in project {project.code}")]
    if node.type == NodeType.VIRTUAL:
        return node, [_error("node", f"{node.name} is virtual: it runs nothing to check")]
    return node, []


def _datasource_of(project: Project, value) -> tuple[Datasource | None, list[dict]]:
    if not isinstance(value, str) or not value.strip():
        return None, [_error("datasource", "the name of a datasource of the project")]
    datasource = Datasource.objects.filter(project=project, name=value.strip()).first()
    if datasource is None:
        return None, [_error("datasource", f"no datasource {value!r} in project {project.code}")]
    return datasource, []


def _param_context(project: Project, node: Node | None) -> ParamContext:
    """A context to try a rule's parameters with: today's dates, the project's variables
    and the node's parameters (their values are the run's; only the names matter here)."""
    spec = node.current_version.spec if node and node.current_version_id else {}
    now = clock.now().astimezone(project.tz)
    return ParamContext(
        biz_date=now.date() - datetime.timedelta(days=1),
        cyctime=now,
        variables=dict(Variable.objects.filter(project=project).values_list("name", "value")),
        params={str(k): str(v) for k, v in (spec.get("params") or {}).items()},
    )


def _text_errors(data: dict, metric) -> list[dict]:
    """table, field, where and sql, each as the metric wants it."""
    errors = []
    custom = metric == Metric.CUSTOM_SQL
    for name in ("table", "field", "where", "sql"):
        if not isinstance(data.get(name), str):
            errors.append(_error(name, "text"))
    if errors:
        return errors
    table, field = data["table"].strip(), data["field"].strip()
    if table or not custom:
        problem = rule_sql.identifier_error(table, qualified=True)
        if problem:
            errors.append(_error("table", problem))
    if metric in FIELD_METRICS or (custom and field):
        problem = rule_sql.identifier_error(field, qualified=False)
        if problem:
            errors.append(
                _error("field", f"{metric} measures one column: name it" if not field else problem)
            )
    elif metric == Metric.ROW_COUNT and field:
        errors.append(_error("field", "row_count counts rows: leave field empty"))
    where, sql = data["where"], data["sql"]
    if custom:
        if where.strip():
            errors.append(_error("where", "custom_sql filters in its own query: leave where empty"))
        if not sql.strip():
            errors.append(_error("sql", "custom_sql needs its query, returning one number"))
        elif len(sql) > SQL_MAX:
            errors.append(_error("sql", f"at most {SQL_MAX} characters"))
        elif problem := rule_sql.custom_sql_error(sql):
            errors.append(_error("sql", problem))
    else:
        if sql.strip():
            errors.append(_error("sql", "only for metric custom_sql"))
        if len(where) > WHERE_MAX:
            errors.append(_error("where", f"at most {WHERE_MAX} characters"))
        elif where.strip() and (problem := rule_sql.where_error(where)):
            errors.append(_error("where", problem))
    return errors


def _param_errors(project: Project, node: Node | None, data: dict) -> list[dict]:
    errors = []
    context = None
    for name in ("where", "sql"):
        text = data.get(name)
        if not isinstance(text, str) or "${" not in text:
            continue
        context = context or _param_context(project, node)
        try:
            render(text, context)
        except UnknownParameter as exc:
            errors.append(_error(name, str(exc)))
    return errors


def _threshold_errors(data: dict) -> list[dict]:
    errors = []
    operator, low, high = data.get("operator"), data.get("threshold"), data.get("threshold_high")
    if operator not in Operator.values:
        errors.append(_error("operator", f"one of {', '.join(Operator.values)}"))
    if not _is_number(low) or not math.isfinite(low):
        errors.append(_error("threshold", "a finite number"))
    if operator == Operator.BETWEEN:
        if high is None:
            errors.append(_error("threshold_high", "between needs threshold_high, its upper bound"))
        elif not _is_number(high) or not math.isfinite(high):
            errors.append(_error("threshold_high", "a finite number"))
        elif _is_number(low) and high < low:
            errors.append(_error("threshold_high", "at least threshold"))
    elif high is not None:
        errors.append(_error("threshold_high", "only for operator between"))
    return errors


def _channel_errors(project: Project, channels) -> list[dict]:
    if not isinstance(channels, list) or not all(_is_id(i) for i in channels):
        return [_error("channels", "a list of channel ids")]
    usable = dict(Channel.objects.filter(pk__in=channels).values_list("pk", "project_id"))
    errors = []
    for channel_id in dict.fromkeys(channels):
        if channel_id not in usable:
            errors.append(_error("channels", f"no channel {channel_id}"))
        elif usable[channel_id] not in (None, project.pk):
            errors.append(_error("channels", f"channel {channel_id} belongs to another project"))
    return errors


def field_rule_errors(project: Project, data: dict) -> list[dict]:
    """Every error of a whole rule (every field of RULE_FIELDS present in `data`)."""
    node, errors = _node_of(project, data.get("node"))
    errors += _datasource_of(project, data.get("datasource"))[1]
    metric = data.get("metric")
    if metric not in Metric.values:
        errors.append(_error("metric", f"one of {', '.join(Metric.values)}"))
    errors += _text_errors(data, metric)
    errors += _param_errors(project, node, data)
    errors += _threshold_errors(data)
    if data.get("compare") not in Compare.values:
        errors.append(_error("compare", f"one of {', '.join(Compare.values)}"))
    if data.get("severity") not in RuleSeverity.values:
        errors.append(_error("severity", f"one of {', '.join(RuleSeverity.values)}"))
    errors += _channel_errors(project, data.get("channels"))
    if not isinstance(data.get("enabled"), bool):
        errors.append(_error("enabled", "true or false"))
    return errors


def _raise_if_any(errors: list[dict]) -> None:
    if errors:
        fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
        raise ValidationFailed(f"invalid field rule: {fields}", errors)


def _unknown_fields(data: dict) -> list[dict]:
    return [
        _error(key, "cannot be changed; create a new rule instead")
        if key == "project"
        else _error(key, "unknown field")
        for key in data
        if key not in RULE_FIELDS
    ]


def _clean(project: Project, data: dict) -> dict:
    """A validated rule in the shape it is stored in."""
    return {
        "node": Node.objects.get(pk=data["node"]),
        "datasource": Datasource.objects.get(project=project, name=data["datasource"].strip()),
        "table": data["table"].strip(),
        "field": data["field"].strip(),
        "where": data["where"].strip() if data["metric"] != Metric.CUSTOM_SQL else "",
        "metric": data["metric"],
        "sql": data["sql"].strip() if data["metric"] == Metric.CUSTOM_SQL else "",
        "operator": data["operator"],
        "threshold": float(data["threshold"]),
        "threshold_high": None if data["threshold_high"] is None else float(data["threshold_high"]),
        "compare": data["compare"],
        "severity": data["severity"],
        "channels": list(dict.fromkeys(data["channels"])),
        "enabled": data["enabled"],
    }


def _logged(clean: dict) -> dict:
    return {
        **{k: v for k, v in clean.items() if k not in ("node", "datasource")},
        "node": clean["node"].pk,
        "datasource": clean["datasource"].name,
    }


def _write(rule: FieldRule, clean: dict) -> None:
    for name, value in clean.items():
        if name != "channels":
            setattr(rule, name, value)
    rule.save()
    rule.channels.set(clean["channels"])


def _require(by, project: Project, nodes) -> None:
    """Rules of a prod node are production configuration (admin); of dev nodes only,
    a developer's. A node id that names nothing asks for developer (validation then
    answers 422)."""
    prod = any(isinstance(n, Node) and n.env == Env.PROD for n in nodes)
    require_role(by, project, Role.ADMIN if prod else Role.DEVELOPER)


def _node_in(project: Project, value) -> Node | None:
    return Node.objects.filter(pk=value, project=project).first() if _is_id(value) else None


def field_rule_create(*, project: Project, data: dict, by, source: str) -> FieldRule:
    """A new rule of `project` from `data` (RULE_FIELDS; omitted ones take RULE_DEFAULTS)."""
    made: dict[str, FieldRule] = {}

    def change() -> dict:
        errors = _unknown_fields(data)
        merged = {**RULE_DEFAULTS, **data}
        errors += field_rule_errors(project, merged)
        _raise_if_any(errors)
        clean = _clean(project, merged)
        rule = FieldRule(project=project)
        _write(rule, clean)
        made["rule"] = rule
        return _logged(clean)

    operation_run(
        by=by,
        source=source,
        action="field_rule.create",
        object_type="field_rule",
        object_id=lambda: made["rule"].pk,
        project=project,
        authorize=lambda: _require(by, project, [_node_in(project, data.get("node"))]),
        change=change,
    )
    return made["rule"]


def field_rule_update(*, rule: FieldRule, data: dict, by, source: str) -> FieldRule:
    """PATCH: the fields in `data` replace the stored ones, then the whole rule is checked.
    `project` may be sent only unchanged (a rule stays in its project)."""
    project = rule.project
    fields = dict(data)
    if fields.get("project") in (project.code, project):
        fields.pop("project")

    def change() -> dict:
        current = (
            FieldRule.objects.select_for_update(of=("self",))
            .select_related("datasource")
            .filter(pk=rule.pk)
            .first()
        )
        if current is None:
            raise NotFound(f"field rule {rule.pk} not found")
        errors = _unknown_fields(fields)
        before = field_rule_data(current)
        merged = {**before, **fields}
        errors += field_rule_errors(project, merged)
        _raise_if_any(errors)
        clean = _clean(project, merged)
        logged = _logged(clean)
        changed = {name: value for name, value in logged.items() if before.get(name) != value}
        if changed:
            current.project = project
            _write(current, clean)
        return {"changed": changed}

    operation_run(
        by=by,
        source=source,
        action="field_rule.update",
        object_type="field_rule",
        object_id=rule.pk,
        project=project,
        authorize=lambda: _require(by, project, [rule.node, _node_in(project, fields.get("node"))]),
        change=change,
    )
    rule.refresh_from_db()
    return rule


def field_rule_delete(*, rule: FieldRule, by, source: str) -> None:
    """Removes the rule and its results; alerts it raised stay."""
    project = rule.project

    def change() -> dict:
        detail = {"node": rule.node_id, "rule": rule.describe()}
        with transaction.atomic():
            FieldRule.objects.filter(pk=rule.pk).delete()
        return detail

    operation_run(
        by=by,
        source=source,
        action="field_rule.delete",
        object_type="field_rule",
        object_id=rule.pk,
        project=project,
        authorize=lambda: _require(by, project, [rule.node]),
        change=change,
    )
