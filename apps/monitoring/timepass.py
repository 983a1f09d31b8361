"""The clock side of monitoring: the minute pass finds what is late or slow —
`running_longer`, `slower_than_usual`, `unfinished_by`, `not_started_by` — with one
query per rule and trigger, each excluding in SQL what already alerted, so a pass over
a day of millions of instances reads only the late ones.

Each check first finds the late rows' ids alone (the rule's filters on the instance or
attempt table, no joins: its plan does not hang on estimates of how many rows a node
list matches), then reads the facts an alert needs (node name, owner, project) by id,
CHUNK rows at a time, raising each chunk before reading the next. No database cursor
stays open while alerts are raised: raising commits and hands deliveries to the queue,
which may close the connection (django-q2's ORM broker closes old connections)."""

import datetime
from array import array
from collections.abc import Iterable, Iterator

from django.db.models import BooleanField, CharField, Exists, F, Func, OuterRef, Q, Value
from django.db.models.functions import Cast, Concat

from apps.instances.choices import AttemptState, InstanceKind, InstanceState
from apps.instances.models import Attempt, Instance
from apps.nodes.choices import Env

from . import alerts, rules
from .choices import TIME_TRIGGERS, AlertSource, TriggerType
from .durations import node_medians
from .events import rules_with
from .models import Alert, MonitorRule

S = InstanceState
CHUNK = 1000
FACTS = {
    "id": "id",
    "node_id": "node_id",
    "node_name": "node__name",
    "project_id": "project_id",
    "project_code": "project__code",
    "owner": "node__owner__username",
    "biz_date": "biz_date",
    "scheduled_at": "scheduled_at",
    "state": "state",
}


def _key_prefix(rule: MonitorRule, trigger: str) -> str:
    return f"{AlertSource.MONITOR}:{rule.pk}:{trigger}:instance:"


def _alerted(rule: MonitorRule, trigger: str, instance_ref: str, since_ref: str | None = None):
    """An alert of this rule and trigger exists for the instance (since the attempt began,
    when `since_ref` names the attempt's start)."""
    key = Concat(
        Value(_key_prefix(rule, trigger)),
        Cast(OuterRef(instance_ref), output_field=CharField()),
        output_field=CharField(),
    )
    found = Alert.objects.filter(dedup_key=key)
    if since_ref:
        found = found.filter(last_at__gte=OuterRef(since_ref))
    return Exists(found)


class AnyOf(Func):
    """`column = ANY(%s)` with the ids as ONE array parameter on PostgreSQL: a rule over
    thousands of nodes costs one placeholder, not one per node to prepare, send, parse
    and plan. `column IN (...)` elsewhere."""

    conditional = True
    output_field = BooleanField()

    def __init__(self, column: str, ids: Iterable[int]):
        super().__init__(F(column))
        self.ids = sorted(ids)

    def as_sql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.get_source_expressions()[0])
        if connection.vendor == "postgresql":
            return f"{column} = ANY(%s)", [*params, self.ids]
        marks = ", ".join(["%s"] * len(self.ids))
        return f"{column} IN ({marks})", [*params, *self.ids]


def _scope_q(rule: MonitorRule, prefix: str = "") -> list | None:
    """The rule's scope as filter arguments; None when it watches nothing."""
    q = Q(**{f"{prefix}project_id": rule.project_id, f"{prefix}env": Env.PROD})
    node_ids = rules.rule_node_ids(rule)
    if node_ids is None:
        return [q]
    if not node_ids:
        return None
    return [q, AnyOf(f"{prefix}node_id", node_ids)]


def _hits(rule, trigger, rows: Iterator[dict], what, prefix: str) -> Iterator[alerts.Hit]:
    for row in rows:
        facts = {name: row[f"{prefix}{column}"] for name, column in FACTS.items()}
        yield alerts.Hit(
            rule=rule,
            trigger=trigger,
            instance=facts,
            what=what(row),
            detail={"attempt": row.get("number")},
        )


def _ids(queryset) -> array:
    """The ids the (unordered) query finds, read at once: no cursor left open."""
    return array("q", queryset.order_by().values_list("pk", flat=True))


def _rows(model, ids: array, prefix: str, *extra: str) -> Iterator[dict]:
    """The facts of the rows `ids` names, CHUNK at a time, each chunk read whole before
    its rows are handed on."""
    columns = [f"{prefix}{column}" for column in FACTS.values()]
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start : start + CHUNK])
        yield from list(model.objects.filter(pk__in=chunk).order_by("pk").values(*columns, *extra))


def _running_longer(rule, trigger: dict, now: datetime.datetime, scope: list):
    minutes = trigger["minutes"]
    attempts = (
        Attempt.objects.filter(
            *scope,
            state=AttemptState.RUNNING,
            started_at__lte=now - datetime.timedelta(minutes=minutes),
        )
        .exclude(instance__kind=InstanceKind.REALTIME)
        .exclude(_alerted(rule, TriggerType.RUNNING_LONGER, "instance_id", "started_at"))
    )

    def what(row) -> str:
        ran = int((now - row["started_at"]).total_seconds() // 60)
        return f"attempt {row['number']} has run {ran} minutes (limit {minutes})"

    return _hits(
        rule,
        TriggerType.RUNNING_LONGER,
        _rows(Attempt, _ids(attempts), "instance__", "number", "started_at"),
        what,
        "instance__",
    )


def _slower_than_usual(rule, trigger: dict, now: datetime.datetime, scope: list):
    factor = float(trigger["factor"])
    attempts = (
        Attempt.objects.filter(*scope, state=AttemptState.RUNNING)
        .exclude(instance__kind=InstanceKind.REALTIME)
        .exclude(_alerted(rule, TriggerType.SLOWER_THAN_USUAL, "instance_id", "started_at"))
    )
    rows = list(_rows(Attempt, _ids(attempts), "instance__", "number", "started_at"))
    # The usual duration needs at least 3 successful runs to go by.
    medians = node_medians({row["instance__node_id"] for row in rows}, at_least=3)
    slow = [
        row
        for row in rows
        if row["instance__node_id"] in medians
        and (now - row["started_at"]).total_seconds() > factor * medians[row["instance__node_id"]]
    ]

    def what(row) -> str:
        ran = (now - row["started_at"]).total_seconds()
        usual = medians[row["instance__node_id"]]
        return (
            f"attempt {row['number']} has run {ran / 60:.1f} minutes, more than {factor:g}x "
            f"the usual {usual / 60:.1f} minutes (median of the last successful runs)"
        )

    return _hits(rule, TriggerType.SLOWER_THAN_USUAL, iter(slow), what, "instance__")


def _late(rule, trigger: dict, now: datetime.datetime, scope: list):
    """unfinished_by / not_started_by: recurring instances of today's (and yesterday's)
    scheduled day, past HH:MM of that day in the project's timezone."""
    kind = trigger["type"]
    tz = rule.project.tz
    today = now.astimezone(tz).date()
    days = []
    for day in (today - datetime.timedelta(days=1), today):
        if rules.deadline(day, trigger["time"], tz) <= now:
            start = datetime.datetime.combine(day, datetime.time(0), tzinfo=tz)
            days.append(
                Q(scheduled_at__gte=start, scheduled_at__lt=start + datetime.timedelta(days=1))
            )
    if not days:
        return iter(())
    when = days[0] if len(days) == 1 else days[0] | days[1]
    instances = Instance.objects.filter(*scope, when, kind=InstanceKind.RECURRING)
    if kind == TriggerType.UNFINISHED_BY:
        instances = instances.exclude(state__in=[S.SUCCEEDED, S.SKIPPED])
    else:
        instances = instances.filter(state__in=[S.PENDING, S.QUEUED], started_at__isnull=True)
    instances = instances.exclude(_alerted(rule, kind, "id"))
    verb = "finished" if kind == TriggerType.UNFINISHED_BY else "started"

    def what(row) -> str:
        return f"not {verb} by {trigger['time']} of its scheduled day (state {row['state']})"

    return _hits(rule, kind, _rows(Instance, _ids(instances), ""), what, "")


def runtime_timeouts_check(*, now: datetime.datetime) -> int:
    """The built-in check of runtime configuration's `alert_only` (SPEC 9), needing no
    MonitorRule: each running attempt past its timeout (Attempt.timeout_alert_at, set
    when it started with that action) raises one `running_longer` alert, a system alert
    for the node's owner through the project's channels, while the attempt goes on.
    Answers the alerts raised."""
    prefix = alerts.system_dedup_key(TriggerType.RUNNING_LONGER, "instance", "")
    key = Concat(
        Value(prefix),
        Cast(OuterRef("instance_id"), output_field=CharField()),
        output_field=CharField(),
    )
    attempts = (
        Attempt.objects.filter(state=AttemptState.RUNNING, timeout_alert_at__lte=now)
        .exclude(instance__kind=InstanceKind.REALTIME)
        .exclude(Exists(Alert.objects.filter(dedup_key=key, last_at__gte=OuterRef("started_at"))))
    )
    rows = _rows(Attempt, _ids(attempts), "instance__", "number", "started_at", "runtime")

    def what(row) -> str:
        ran = int((now - row["started_at"]).total_seconds() // 60)
        timeout = ((row["runtime"] or {}).get("timeout_seconds") or {}).get("value")
        return (
            f"attempt {row['number']} has run {ran} minutes, past its timeout of {timeout}s; "
            "timeout_action alert_only: it goes on"
        )

    raised = 0
    batch = []
    for hit in _hits(None, TriggerType.RUNNING_LONGER, rows, what, "instance__"):
        batch.append(hit)
        if len(batch) >= CHUNK:
            raised += len(alerts.alerts_raise(batch, now=now))
            batch = []
    return raised + len(alerts.alerts_raise(batch, now=now))


# trigger -> (its check, the path from the rows it reads to the instance)
PASSES = {
    TriggerType.RUNNING_LONGER: (_running_longer, "instance__"),
    TriggerType.SLOWER_THAN_USUAL: (_slower_than_usual, "instance__"),
    TriggerType.UNFINISHED_BY: (_late, ""),
    TriggerType.NOT_STARTED_BY: (_late, ""),
}


def time_triggers_check(*, now: datetime.datetime) -> int:
    """One pass over every enabled rule's time triggers, and the built-in timeout alerts
    of runtime configuration. Answers the alerts raised or counted."""
    raised = 0
    for rule in rules_with(TIME_TRIGGERS):
        for trigger in rule.triggers:
            found = PASSES.get(trigger.get("type"))
            if found is None:
                continue
            check, prefix = found
            scope = _scope_q(rule, prefix)
            if scope is None:
                continue
            batch = []
            for hit in check(rule, trigger, now, scope):
                batch.append(hit)
                if len(batch) >= CHUNK:
                    raised += len(alerts.alerts_raise(batch, now=now))
                    batch = []
            raised += len(alerts.alerts_raise(batch, now=now))
    return raised + runtime_timeouts_check(now=now)
