"""The event side of monitoring: reads the instance event outbox (InstanceEvent, written
by the state machine with every change) and turns failures and successes into alerts.

A batch of events is claimed with SELECT ... FOR UPDATE SKIP LOCKED, acted on, and marked
processed in ONE transaction: two monitors never handle an event twice (the second skips
rows the first holds), and a monitor that dies mid-batch loses nothing (its transaction
rolls back and the events are claimed again)."""

import datetime
import logging
from collections import defaultdict
from collections.abc import Callable

from django.conf import settings
from django.db import connection, transaction

from apps.instances.choices import InstanceState
from apps.instances.models import Instance, InstanceEvent
from apps.nodes.choices import Env

from . import alerts, rules
from .choices import EVENT_TRIGGERS, TriggerType
from .models import MonitorRule

S = InstanceState
BATCH = 500
logger = logging.getLogger(__name__)

# Other apps react to state changes too (apps.baselines recomputes at once the cycles an
# instance is on): each hook(events, now=...) is given every batch, inside the batch's
# transaction, before the rules. A hook that fails is logged and undone alone: alerting
# goes on (its app's own pass catches up).
EVENT_HOOKS: list[Callable[..., None]] = []


def event_hook_register(hook: Callable[..., None]) -> None:
    if hook not in EVENT_HOOKS:
        EVENT_HOOKS.append(hook)


def rules_with(triggers) -> list[MonitorRule]:
    """Enabled rules having any of `triggers`, with what raising needs."""
    wanted = set(triggers)
    return [
        rule
        for rule in MonitorRule.objects.filter(enabled=True)
        .select_related("project")
        .prefetch_related("channels")
        if any(t.get("type") in wanted for t in rule.triggers)
    ]


class RuleIndex:
    """Which rules watch which node, read once per batch or pass."""

    def __init__(self, rule_list: list[MonitorRule]):
        self.by_project: dict[int, list[tuple[MonitorRule, set[int] | None]]] = defaultdict(list)
        for rule in rule_list:
            self.by_project[rule.project_id].append((rule, rules.rule_node_ids(rule)))

    def matching(self, project_id: int, node_id: int):
        for rule, node_ids in self.by_project.get(project_id, ()):
            if node_ids is None or node_id in node_ids:
                yield rule


def _triggers_of(event: dict) -> list[str]:
    """The event triggers a state change meets."""
    old, new = event["from_state"], event["to_state"]
    if new == S.SUCCEEDED:
        return [TriggerType.SUCCESS]
    if old == S.RUNNING and new == S.PENDING and event["cause"] == "retry":
        return [TriggerType.FAILURE]
    if old in (S.RUNNING, S.STOPPING) and new == S.FAILED:
        return [TriggerType.FAILURE, TriggerType.RETRIES_EXHAUSTED]
    return []


def _what(trigger: str, event: dict, facts: dict) -> str:
    attempt = event["attempt"]
    cause = event["cause"]
    if trigger == TriggerType.SUCCESS:
        how = " (set successful by an operator)" if cause == "set_success" else ""
        return f"succeeded{f' on attempt {attempt}' if attempt else ''}{how}"
    reason = facts.get("reason") or cause or "failed"
    if trigger == TriggerType.FAILURE and event["to_state"] == S.PENDING:
        return f"attempt {attempt} failed ({reason}); a retry follows"
    if trigger == TriggerType.RETRIES_EXHAUSTED:
        return f"attempt {attempt} failed ({reason}) and no retry is left"
    return f"attempt {attempt or '?'} failed ({reason})"


def _facts(instance_ids: list[int]) -> dict[int, dict]:
    rows = Instance.objects.filter(pk__in=instance_ids).values(
        "id",
        "node_id",
        "node__name",
        "project_id",
        "project__code",
        "node__owner__username",
        "biz_date",
        "scheduled_at",
        "state",
        "kind",
        "env",
    )
    return {
        row["id"]: {
            "id": row["id"],
            "node_id": row["node_id"],
            "node_name": row["node__name"],
            "project_id": row["project_id"],
            "project_code": row["project__code"],
            "owner": row["node__owner__username"],
            "biz_date": row["biz_date"],
            "scheduled_at": row["scheduled_at"],
            "state": row["state"],
            "kind": row["kind"],
            "env": row["env"],
        }
        for row in rows
    }


def _reasons(events: list[dict]) -> dict[tuple[int, int], str]:
    from apps.instances.models import Attempt

    wanted = {(e["instance_id"], e["attempt"]) for e in events if e["attempt"]}
    if not wanted:
        return {}
    rows = Attempt.objects.filter(
        instance_id__in={i for i, _ in wanted}, number__in={n for _, n in wanted}
    ).values_list("instance_id", "number", "reason")
    return {(i, n): reason for i, n, reason in rows if (i, n) in wanted}


def events_consume(*, now: datetime.datetime, limit: int = BATCH) -> int:
    """Handle one batch of unprocessed events. Answers how many were claimed (0: none
    left that no other monitor holds)."""
    with transaction.atomic():
        pending = InstanceEvent.objects.filter(processed_at__isnull=True).order_by("id")
        if connection.features.has_select_for_update_skip_locked:
            pending = pending.select_for_update(skip_locked=True)
        events = list(
            pending.values("id", "instance_id", "from_state", "to_state", "attempt", "cause")[
                :limit
            ]
        )
        if not events:
            return 0
        _handle(events, now=now)
        InstanceEvent.objects.filter(pk__in=[e["id"] for e in events]).update(processed_at=now)
    return len(events)


def events_prune(*, now: datetime.datetime, limit: int = 50_000) -> int:
    """Processed events older than OPSCENTER_EVENT_RETENTION_DAYS go, a bounded number
    per pass (the outbox keeps only its recent record: attempts keep the rest)."""
    before = now - datetime.timedelta(days=settings.OPSCENTER_EVENT_RETENTION_DAYS)
    old = list(
        InstanceEvent.objects.filter(processed_at__isnull=False, at__lt=before)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    for start in range(0, len(old), 5000):
        InstanceEvent.objects.filter(pk__in=old[start : start + 5000]).delete()
    return len(old)


def _handle(events: list[dict], *, now: datetime.datetime) -> None:
    for hook in EVENT_HOOKS:
        try:
            with transaction.atomic():
                hook(events, now=now)
        except Exception:
            logger.exception("instance event hook %s failed", getattr(hook, "__name__", hook))
    interesting = [e for e in events if _triggers_of(e)]
    if not interesting:
        return
    facts = _facts(sorted({e["instance_id"] for e in interesting}))
    reasons = _reasons(interesting)
    # First what a success ends: the instance's open alerts resolve themselves.
    why = {
        e["instance_id"]: "an operator set the instance successful"
        if e["cause"] == "set_success"
        else "a later attempt succeeded"
        for e in interesting
        if e["to_state"] == S.SUCCEEDED
    }
    alerts.alerts_resolve_for_instances(why, now=now)
    index = RuleIndex(rules_with(EVENT_TRIGGERS))
    hits = []
    for event in interesting:
        fact = facts.get(event["instance_id"])
        # Rules watch production runs; dev runs and deleted instances page nobody.
        if fact is None or fact["env"] != Env.PROD:
            continue
        fact = {**fact, "reason": reasons.get((event["instance_id"], event["attempt"]), "")}
        for rule in index.matching(fact["project_id"], fact["node_id"]):
            wanted = {t.get("type") for t in rule.triggers}
            for trigger in _triggers_of(event):
                if trigger in wanted:
                    hits.append(
                        alerts.Hit(
                            rule=rule,
                            trigger=trigger,
                            instance=fact,
                            what=_what(trigger, event, fact),
                            born_resolved=trigger == TriggerType.SUCCESS,
                            detail={"attempt": event["attempt"], "event": event["id"]},
                        )
                    )
    alerts.alerts_raise(hits, now=now)
