"""Field rules at work (SPEC 7.4): after an instance's command succeeded, its node's
enabled rules run against their datasources, before the attempt is recorded (the check
registered with apps.instances.checks).

Every rule's statement is built here (identifiers quoted, `where` and `custom_sql` with
the instance's parameters) and the statements of one datasource run together in one
apps.quality.runner process, started like a sql node's runner: killed when the
attempt's timeout passes or an operator stops the instance. Each answer is judged
(compare mode over the rule's recorded history, then operator and threshold), logged,
and kept as a FieldRuleResult. A failing or erroring `block` rule fails the attempt,
naming rule, value and threshold, so its downstream waits; a failing `warn` rule raises
an alert (apps.quality.alerts) and the attempt succeeds.
"""

import json
from dataclasses import dataclass

from apps.core import clock
from apps.instances.checks import CheckContext, CheckFailure
from apps.instances.executors import runner_command
from apps.instances.executors.process import note
from apps.instances.params import UnknownParameter
from apps.monitoring.choices import OPEN_STATES, AlertSource
from apps.monitoring.models import Alert
from apps.nodes.choices import Env

from . import alerts
from . import sql as rule_sql
from .choices import Compare, RuleSeverity
from .models import FieldRule, FieldRuleResult
from .runner import RESULT_PREFIX

RUNNER_MODULE = "apps.quality.runner"
RUNNER_DONE = note("exited with code 0")
# How many earlier results a compare mode reads (a rerun adds rows to its instance).
HISTORY_ROWS = 50
SQL_SHOWN = 300


@dataclass
class Verdict:
    rule: FieldRule
    statement: str = ""
    value: float | None = None
    baseline: float | None = None
    compared: float | None = None
    passed: bool = False
    error: str = ""
    note: str = ""
    answered: bool = False


def field_rules_check(context: CheckContext) -> CheckFailure | None:
    instance = context.instance
    rules = list(
        FieldRule.objects.filter(node_id=instance.node_id, enabled=True)
        .select_related("datasource")
        .order_by("id")
    )
    if not rules:
        return None
    context.line(f"field rules: checking {len(rules)}")
    verdicts = {rule.pk: Verdict(rule=rule) for rule in rules}
    by_datasource: dict[int, list[Verdict]] = {}
    for verdict in verdicts.values():
        try:
            verdict.statement = _statement(verdict.rule, context)
        except (UnknownParameter, rule_sql.RuleError) as exc:
            verdict.error, verdict.answered = str(exc), True
            continue
        by_datasource.setdefault(verdict.rule.datasource_id, []).append(verdict)

    cut_short = None
    for planned in by_datasource.values():
        cut_short = _run(planned, verdicts, context)
        if cut_short is not None:
            break
    now = clock.now()
    judged = [v for v in verdicts.values() if v.answered or cut_short is None]
    for verdict in judged:
        if not verdict.answered:
            verdict.error = "no answer from the check's process (see the log above)"
        _judge(verdict, instance)
        context.line(_log_line(verdict))
    _keep(judged, context, now)
    if cut_short is not None:
        return cut_short
    _alert(judged, instance, context.attempt.number, now)
    return _failure(judged)


def _statement(rule: FieldRule, context: CheckContext) -> str:
    where = context.render(rule.where) if rule.where.strip() else ""
    custom = context.render(rule.sql) if rule.metric == "custom_sql" else ""
    return rule_sql.statement(
        metric=rule.metric,
        table=rule.table,
        field=rule.field,
        where=where,
        sql=custom,
        dialect=rule.datasource.kind,
    )


def _run(planned: list[Verdict], verdicts: dict[int, Verdict], context) -> CheckFailure | None:
    """Run one datasource's statements; answers a CheckFailure when the process was
    stopped or timed out (the attempt ends so), else None."""
    datasource = planned[0].rule.datasource
    for verdict in planned:
        context.line(
            f"field rule #{verdict.rule.pk} on {datasource.name}: "
            f"{rule_sql.shorten(verdict.statement, SQL_SHOWN)}"
        )
    payload = {
        "datasource": datasource.connection_settings(),
        "checks": [{"rule": v.rule.pk, "sql": v.statement} for v in planned],
    }
    command = runner_command(RUNNER_MODULE, payload, workdir=context.workdir, env={})

    def output(text: str) -> None:
        rest = []
        for line in text.splitlines(keepends=True):
            if line == RUNNER_DONE:
                continue  # its end is told by the results
            if not line.startswith(RESULT_PREFIX):
                rest.append(line)
                continue
            try:
                answer = json.loads(line[len(RESULT_PREFIX) :])
                verdict = verdicts[int(answer["rule"])]
            except (ValueError, KeyError, TypeError):
                rest.append(line)
                continue
            verdict.value = answer.get("value")
            verdict.error = answer.get("error") or ""
            verdict.answered = True
        if rest:
            context.write("".join(rest))

    result = context.run(command, output)
    if result.outcome in ("stopped", "timed_out"):
        return CheckFailure(
            reason=f"field rules: {result.reason}",
            outcome=result.outcome,
            killed_for=result.killed_for,
        )
    return None


def _history(rule: FieldRule, instance) -> list[float]:
    """The rule's earlier values newest first, one per earlier instance (its latest)."""
    rows = (
        FieldRuleResult.objects.filter(
            rule=rule, scheduled_at__lt=instance.scheduled_at, value__isnull=False
        )
        .order_by("-scheduled_at", "-checked_at", "-id")
        .values_list("instance_id", "value")[:HISTORY_ROWS]
    )
    seen: set[int] = set()
    values = []
    for instance_id, value in rows:
        if instance_id not in seen:
            seen.add(instance_id)
            values.append(value)
    return values


def _judge(verdict: Verdict, instance) -> None:
    rule = verdict.rule
    if verdict.error or verdict.value is None:
        verdict.error = verdict.error or "no value"
        verdict.passed = False
        return
    try:
        if rule.compare == Compare.VALUE:
            verdict.compared = verdict.value
        else:
            verdict.baseline = rule_sql.baseline_of(rule.compare, _history(rule, instance))
            if verdict.baseline is None:
                verdict.passed = True
                verdict.note = "no earlier result to compare with yet: passes"
                return
            verdict.compared = rule_sql.change_pct(verdict.value, verdict.baseline)
        verdict.passed = rule_sql.satisfies(
            rule.operator, verdict.compared, rule.threshold, rule.threshold_high
        )
    except rule_sql.RuleError as exc:
        verdict.error, verdict.passed = str(exc), False


def _fmt(value: float | None) -> str:
    if value is None:
        return "none"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.6g}"


def measured(verdict: Verdict) -> str:
    """`row_count of orders = 12 (change -40% vs 20)`: what was measured, in words."""
    text = f"{verdict.rule.describe()} = {_fmt(verdict.value)}"
    if verdict.compared is not None and verdict.rule.compare != Compare.VALUE:
        text += f" (change {verdict.compared:+.2f}% vs {_fmt(verdict.baseline)})"
    return text


def _log_line(verdict: Verdict) -> str:
    rule = verdict.rule
    head = f"field rule #{rule.pk} [{rule.severity}]"
    if verdict.error:
        return f"{head} ERROR: {verdict.error} ({rule.describe()}; expected {rule.expectation()})"
    if verdict.note:
        return f"{head} passed: {measured(verdict)}; {verdict.note}"
    word = "passed" if verdict.passed else "FAILED"
    return f"{head} {word}: {measured(verdict)}; expected {rule.expectation()}"


def _keep(judged: list[Verdict], context: CheckContext, now) -> None:
    instance = context.instance
    FieldRuleResult.objects.bulk_create(
        [
            FieldRuleResult(
                rule=v.rule,
                instance_id=instance.pk,
                attempt=context.attempt.number,
                scheduled_at=instance.scheduled_at,
                value=v.value,
                baseline=v.baseline,
                compared=v.compared,
                expected=v.rule.expectation()[:200],
                passed=v.passed,
                error=v.error,
                checked_at=now,
            )
            for v in judged
        ],
        batch_size=500,
    )


def _what(verdict: Verdict) -> str:
    rule = verdict.rule
    if verdict.error:
        return f"field rule #{rule.pk} errored: {verdict.error} ({rule.describe()})"
    return f"field rule #{rule.pk} failed: {measured(verdict)}; expected {rule.expectation()}"


def _alert(judged: list[Verdict], instance, attempt: int, now) -> None:
    """Warn rules: a failure alerts (production runs only, as monitoring rules); a pass
    resolves the rule's open alert on this instance."""
    if instance.env != Env.PROD:
        return
    warn = [v for v in judged if v.rule.severity == RuleSeverity.WARN]
    if not warn:
        return
    # One read for what passing rules may resolve: most have nothing open.
    open_keys = set(
        Alert.objects.filter(
            instance_id=instance.pk, source=AlertSource.FIELD, state__in=OPEN_STATES
        ).values_list("dedup_key", flat=True)
    )
    for verdict in warn:
        if verdict.passed and alerts.dedup_key(verdict.rule.pk, instance.pk) not in open_keys:
            continue
        if verdict.passed:
            alerts.field_alert_resolve(
                rule=verdict.rule,
                instance=instance,
                what=f"field rule #{verdict.rule.pk} passed on attempt {attempt}",
                now=now,
            )
        else:
            alerts.field_alert_raise(
                rule=verdict.rule,
                instance=instance,
                attempt=attempt,
                what=_what(verdict),
                now=now,
            )


def _failure(judged: list[Verdict]) -> CheckFailure | None:
    blocking = [v for v in judged if v.rule.severity == RuleSeverity.BLOCK and not v.passed]
    if not blocking:
        return None
    reason = _what(blocking[0])
    if len(blocking) > 1:
        reason += f"; and {len(blocking) - 1} more block rule(s)"
    # A value that fails its rule fails again on a retry of the same data; an error (a
    # datasource away) may not.
    return CheckFailure(reason=reason, retryable=all(v.error for v in blocking))
