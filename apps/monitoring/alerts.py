"""Alerts as incidents (SPEC 7.2): raised by rules, counted while open, sent again only
after the rule's dedup interval, escalated once, acknowledged and resolved by operators
or resolved by themselves when the instance succeeds — each announced to the people
the rule names, through its channels."""

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse

from apps.audit.services import operation_run
from apps.core import clock, times
from apps.core.errors import Conflict, PermissionDenied
from apps.notifications import services as notifications
from apps.notifications.models import Channel
from apps.projects.choices import Role
from apps.projects.permissions import require_role

from . import oncall, rules
from .choices import OPEN_STATES, AlertEventKind, AlertSource, AlertState, TriggerType
from .models import Alert, AlertEvent, MonitorRule, OnCallSchedule

User = get_user_model()


# A built-in system check (no MonitorRule) raises at this severity, counts repeats no
# more often than this, and is sent to the node's owner through its project's channels.
SYSTEM_SEVERITY = {TriggerType.RUNNING_LONGER: "warning"}
SYSTEM_DEDUP_MINUTES = 30


@dataclass
class Hit:
    """A rule's trigger met by one instance: what to raise or count. `rule` None: a
    built-in system check (apps.monitoring.timepass.runtime_timeouts_check), keyed
    apart from every rule's."""

    rule: MonitorRule | None
    trigger: str
    # The instance's facts: id, node_id, node_name, project_id, project_code, owner,
    # biz_date, scheduled_at, state.
    instance: dict
    what: str  # what happened, in a line: "attempt 2 failed: exit code 3"
    # Success alerts are news, not incidents: they are born resolved.
    born_resolved: bool = False
    # The occurrence this hit is about (an attempt's number), for the timeline.
    detail: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        if self.rule is None:
            return system_dedup_key(self.trigger, "instance", self.instance["id"])
        return dedup_key(self.rule.pk, self.trigger, "instance", self.instance["id"])

    @property
    def context_key(self) -> tuple:
        return ("rule", self.rule.pk) if self.rule else ("system", self.instance["project_id"])


def dedup_key(rule_id: int, trigger: str, target_type: str, target_id) -> str:
    return f"{AlertSource.MONITOR}:{rule_id}:{trigger}:{target_type}:{target_id}"


def system_dedup_key(trigger: str, target_type: str, target_id) -> str:
    return f"{AlertSource.SYSTEM}:{trigger}:{target_type}:{target_id}"


def alert_url(alert_id: int) -> str:
    return settings.OPSCENTER_BASE_URL.rstrip("/") + reverse("alerts:detail", args=[alert_id])


# --- who hears of it ---------------------------------------------------------------------


def usernames_for(recipients: dict, *, owner: str | None, now: datetime.datetime) -> list[str]:
    """A rule's recipients object resolved to usernames at `now` (the node owner, named
    users, members of named groups, whoever is on call)."""
    names: list[str] = []
    if recipients.get("owner") and owner:
        names.append(owner)
    names += recipients.get("users") or []
    groups = recipients.get("groups") or []
    if groups:
        names += list(
            User.objects.filter(groups__name__in=groups, is_active=True).values_list(
                "username", flat=True
            )
        )
    if recipients.get("on_call"):
        schedule = OnCallSchedule.objects.filter(name=recipients["on_call"]).first()
        person = oncall.on_call_at(schedule, now) if schedule else None
        if person:
            names.append(person)
    return list(dict.fromkeys(names))


def _message(alert: Alert, event: str, what: str) -> notifications.Message:
    since = times.format_when(alert.first_at, tz=alert.project.tz if alert.project else None)
    lines = [
        what,
        f"Project: {alert.project.code if alert.project else '-'}",
    ]
    if alert.node_id:
        lines.append(f"Node: {alert.facts.get('node_name', alert.node_id)}")
    if alert.instance_id:
        lines.append(f"Instance: {alert.instance_id} (biz date {alert.facts.get('biz_date', '?')})")
    lines += [
        f"Since: {since}",
        f"Count: {alert.count} time{'s' if alert.count != 1 else ''}",
        f"State: {alert.state}",
    ]
    prefix = {
        "resolved": "[RESOLVED] ",
        "escalated": "[ESCALATED] ",
        "repeated": "[REPEAT] ",
    }.get(event, "")
    return notifications.Message(
        event=event,
        title=f"{prefix}[{alert.severity.upper()}] {alert.title}",
        text="\n".join(lines),
        url=alert_url(alert.pk),
        severity=alert.severity,
        fields={
            "alert": alert.pk,
            "event": event,
            "project": alert.project.code if alert.project else None,
            "rule": alert.rule_id,
            "trigger": alert.trigger,
            "severity": alert.severity,
            "state": alert.state,
            "title": alert.title,
            "node": alert.node_id,
            "node_name": alert.facts.get("node_name"),
            "instance": alert.instance_id,
            "biz_date": alert.facts.get("biz_date"),
            "count": alert.count,
            "first_at": alert.first_at.isoformat(),
            "last_at": alert.last_at.isoformat(),
            "what": what,
            "url": alert_url(alert.pk),
        },
    )


def _send(
    alert: Alert,
    *,
    event: str,
    what: str,
    usernames: Sequence[str],
    channel_ids: Sequence[int],
    now: datetime.datetime,
    suppressed: bool = False,
    channels_by_id: dict[int, Channel] | None = None,
    recipients: Sequence[notifications.Recipient] | None = None,
) -> None:
    if channels_by_id is None:
        channels = list(Channel.objects.filter(pk__in=list(channel_ids), enabled=True))
    else:
        channels = [channels_by_id[i] for i in channel_ids if i in channels_by_id]
    if not channels:
        return
    notifications.notify(
        alert_id=alert.pk,
        message=_message(alert, event, what),
        channels=channels,
        recipients=recipients if recipients is not None else notifications.recipients_of(usernames),
        suppressed=suppressed,
        now=now,
        project_id=alert.project_id,
    )


# --- raising -----------------------------------------------------------------------------


class _RuleContext:
    """What sending needs of a rule, read once per batch."""

    def __init__(self, rule: MonitorRule, now: datetime.datetime):
        self.rule = rule
        self.channel_ids = [c.pk for c in rule.channels.all() if c.enabled]
        self.channels = {c.pk: c for c in rule.channels.all() if c.enabled}
        self.muted = rules.muted(rule, now, rule.project.tz)
        self._names: dict[str | None, list[str]] = {}
        self._recipients: dict[tuple[str, ...], list[notifications.Recipient]] = {}
        self.now = now

    def usernames(self, owner: str | None) -> list[str]:
        if owner not in self._names:
            self._names[owner] = usernames_for(self.rule.recipients, owner=owner, now=self.now)
        return self._names[owner]

    def recipients(self, usernames: Sequence[str]) -> list[notifications.Recipient]:
        key = tuple(usernames)
        if key not in self._recipients:
            self._recipients[key] = notifications.recipients_of(usernames)
        return self._recipients[key]


class _SystemContext(_RuleContext):
    """What sending needs for a built-in check's alerts in one project: the node's owner,
    through the project's enabled channels."""

    def __init__(self, project_id: int, now: datetime.datetime):
        self.rule = None
        channels = list(Channel.objects.filter(project_id=project_id, enabled=True))
        self.channel_ids = [c.pk for c in channels]
        self.channels = {c.pk: c for c in channels}
        self.muted = False
        self._names = {}
        self._recipients = {}
        self.now = now

    def usernames(self, owner: str | None) -> list[str]:
        return [owner] if owner else []


def alerts_raise(hits: Iterable[Hit], *, now: datetime.datetime) -> list[Alert]:
    """Raise or count an alert per hit, in one transaction: a new key fires (and is
    sent), an open key counts a repeat (sent again once the dedup interval has passed).
    Answers the alerts touched."""
    hits = list(hits)
    if not hits:
        return []
    contexts: dict[tuple, _RuleContext] = {}
    touched = []
    # One transaction, and the deliveries of the whole batch queued at once after it.
    with transaction.atomic(), notifications.enqueue_batch():
        keys = [hit.key for hit in hits]
        open_alerts = {
            alert.dedup_key: alert
            for alert in Alert.objects.select_for_update(of=("self",))
            .filter(dedup_key__in=keys, state__in=OPEN_STATES)
            .select_related("project")
        }
        for hit in hits:
            context = contexts.get(hit.context_key)
            if context is None:
                context = contexts[hit.context_key] = (
                    _RuleContext(hit.rule, now)
                    if hit.rule
                    else _SystemContext(hit.instance["project_id"], now)
                )
            alert = open_alerts.get(hit.key)
            if alert is None:
                alert = _fire(hit, context, now=now)
                if alert.is_open:
                    open_alerts[hit.key] = alert
            else:
                _repeat(alert, hit, context, now=now)
            touched.append(alert)
    return touched


def _fire(hit: Hit, context: _RuleContext, *, now: datetime.datetime) -> Alert:
    rule = hit.rule
    facts = hit.instance
    usernames = context.usernames(facts.get("owner"))
    alert = Alert(
        project_id=rule.project_id if rule else facts["project_id"],
        source=AlertSource.MONITOR if rule else AlertSource.SYSTEM,
        rule=rule,
        trigger=hit.trigger,
        severity=rules.severity_of(rule, hit.trigger) if rule else SYSTEM_SEVERITY[hit.trigger],
        state=AlertState.RESOLVED if hit.born_resolved else AlertState.FIRING,
        title=_title(hit),
        message=hit.what,
        target_type="instance",
        target_id=str(facts["id"]),
        dedup_key=hit.key,
        node_id=facts.get("node_id"),
        instance_id=facts["id"],
        first_at=now,
        last_at=now,
        last_sent_at=now,
        resolved_at=now if hit.born_resolved else None,
        recipients=usernames,
        channel_ids=context.channel_ids,
        facts={
            "owner": facts.get("owner"),
            "node_name": facts.get("node_name"),
            "biz_date": str(facts.get("biz_date") or ""),
            "project_code": facts.get("project_code"),
        },
    )
    try:
        with transaction.atomic():
            alert.save()
    except IntegrityError:
        # Another monitor opened this key a moment ago: count a repeat on that one.
        existing = Alert.objects.select_for_update().get(dedup_key=hit.key, state__in=OPEN_STATES)
        _repeat(existing, hit, context, now=now)
        return existing
    if rule:
        alert.project = rule.project
    AlertEvent.objects.create(
        alert=alert, kind=AlertEventKind.FIRED, at=now, comment=hit.what, detail=hit.detail
    )
    _send(
        alert,
        event="fired",
        what=hit.what,
        usernames=usernames,
        recipients=context.recipients(usernames),
        channel_ids=context.channel_ids,
        channels_by_id=context.channels,
        now=now,
        suppressed=context.muted,
    )
    return alert


def _title(hit: Hit) -> str:
    node = f"{hit.instance.get('project_code')}.{hit.instance.get('node_name')}"
    words = {
        TriggerType.FAILURE: "failed",
        TriggerType.RETRIES_EXHAUSTED: "failed with no retry left",
        TriggerType.SUCCESS: "succeeded",
        TriggerType.RUNNING_LONGER: "is running long",
        TriggerType.UNFINISHED_BY: "is not finished in time",
        TriggerType.NOT_STARTED_BY: "has not started in time",
        TriggerType.SLOWER_THAN_USUAL: "is slower than usual",
    }
    return f"{node} {words.get(hit.trigger, hit.trigger)} (biz date {hit.instance.get('biz_date')})"


def _repeat(alert: Alert, hit: Hit, context: _RuleContext, *, now: datetime.datetime) -> None:
    dedup_minutes = hit.rule.dedup_minutes if hit.rule else SYSTEM_DEDUP_MINUTES
    due = (
        alert.last_sent_at is None
        or alert.last_sent_at + datetime.timedelta(minutes=dedup_minutes) <= now
    )
    Alert.objects.filter(pk=alert.pk).update(
        count=F("count") + 1,
        last_at=now,
        message=hit.what,
        **({"last_sent_at": now} if due else {}),
    )
    alert.count += 1
    alert.last_at = now
    alert.message = hit.what
    AlertEvent.objects.create(
        alert=alert,
        kind=AlertEventKind.REPEATED,
        at=now,
        comment=hit.what,
        detail={**hit.detail, "sent": due},
    )
    if due:
        alert.last_sent_at = now
        _send(
            alert,
            event="repeated",
            what=hit.what,
            usernames=alert.recipients,
            recipients=context.recipients(alert.recipients),
            channel_ids=context.channel_ids,
            channels_by_id=context.channels,
            now=now,
            suppressed=context.muted,
        )


def alert_announce(alert: Alert, *, event: str, what: str, now: datetime.datetime) -> None:
    """Send an alert a feature raised itself (a field rule's) to the people and channels
    it keeps: `event` is fired, repeated or resolved."""
    _send(
        alert,
        event=event,
        what=what,
        usernames=alert.recipients,
        channel_ids=alert.channel_ids,
        now=now,
    )


# --- system alerts: the platform itself (a dead cluster) ---------------------------------


def system_alerts_sync(
    *, trigger: str, current: dict[str, tuple[str, str]], now: datetime.datetime
) -> tuple[list[int], list[int]]:
    """Keep one open system alert per condition that holds now: `current` maps a target
    (e.g. a cluster's id) to (title, what). A new target fires, sent to the superusers
    through the global channels; an open alert whose target no longer holds resolves
    itself, announced likewise. Answers (fired ids, resolved ids)."""
    prefix = f"{AlertSource.SYSTEM}:{trigger}:"
    fired, resolved = [], []
    with transaction.atomic(), notifications.enqueue_batch():
        open_alerts = {
            alert.target_id: alert
            for alert in Alert.objects.select_for_update()
            .filter(dedup_key__startswith=prefix, state__in=OPEN_STATES)
            .order_by("pk")
        }
        new = [target for target in current if target not in open_alerts]
        gone = [alert for target, alert in open_alerts.items() if target not in current]
        if not new and not gone:
            return fired, resolved
        admins = list(
            User.objects.filter(is_superuser=True, is_active=True).values_list(
                "username", flat=True
            )
        )
        channel_ids = list(
            Channel.objects.filter(project__isnull=True, enabled=True).values_list("pk", flat=True)
        )
        for target in new:
            title, what = current[target]
            alert = Alert(
                project=None,
                source=AlertSource.SYSTEM,
                trigger=trigger,
                severity="critical",
                title=title,
                message=what,
                target_type=trigger,
                target_id=target,
                dedup_key=prefix + target,
                first_at=now,
                last_at=now,
                last_sent_at=now,
                recipients=admins,
                channel_ids=channel_ids,
            )
            try:
                with transaction.atomic():
                    alert.save()
            except IntegrityError:  # another monitor raised it a moment ago
                continue
            AlertEvent.objects.create(alert=alert, kind=AlertEventKind.FIRED, at=now, comment=what)
            _send(
                alert, event="fired", what=what, usernames=admins, channel_ids=channel_ids, now=now
            )
            fired.append(alert.pk)
        for alert in gone:
            if not Alert.objects.filter(pk=alert.pk, state__in=OPEN_STATES).update(
                state=AlertState.RESOLVED, resolved_at=now, resolved_by=None
            ):
                continue
            alert.state, alert.resolved_at = AlertState.RESOLVED, now
            what = "no longer holds"
            AlertEvent.objects.create(
                alert=alert, kind=AlertEventKind.RESOLVED, at=now, comment=what
            )
            _send(
                alert,
                event="resolved",
                what=what,
                usernames=alert.recipients,
                channel_ids=alert.channel_ids,
                now=now,
            )
            resolved.append(alert.pk)
    return fired, resolved


# --- resolving by itself, escalation --------------------------------------------------


def alerts_resolve_for_instances(why: dict[int, str], *, now: datetime.datetime) -> list[int]:
    """The instances succeeded (a later attempt, or an operator set them successful;
    `why` says which, per instance id): their open alerts resolve themselves, announced
    to the people told when they fired."""
    ids = list(why)
    if not ids:
        return []
    resolved = []
    with transaction.atomic(), notifications.enqueue_batch():
        alerts = list(
            Alert.objects.select_for_update(of=("self",))
            .filter(instance_id__in=ids, state__in=OPEN_STATES)
            # A field rule's warning is raised on an attempt that succeeds: it resolves
            # when the rule passes again (apps.quality.alerts), not with the success.
            .exclude(source=AlertSource.FIELD)
            .select_related("project", "rule")
        )
        for alert in alerts:
            if not Alert.objects.filter(pk=alert.pk, state__in=OPEN_STATES).update(
                state=AlertState.RESOLVED, resolved_at=now, resolved_by=None
            ):
                continue
            alert.state = AlertState.RESOLVED
            alert.resolved_at = now
            reason = why[alert.instance_id]
            AlertEvent.objects.create(
                alert=alert, kind=AlertEventKind.RESOLVED, at=now, comment=reason
            )
            muted = bool(alert.rule and rules.muted(alert.rule, now, alert.project.tz))
            _send(
                alert,
                event="resolved",
                what=reason,
                usernames=alert.recipients,
                channel_ids=alert.channel_ids,
                now=now,
                suppressed=muted,
            )
            resolved.append(alert.pk)
    return resolved


def alerts_escalate(*, now: datetime.datetime) -> list[int]:
    """Firing alerts nobody acknowledged within their rule's escalate_after_minutes are
    sent to its escalate_to recipients too, once."""
    candidates = (
        Alert.objects.filter(
            state=AlertState.FIRING,
            escalated_at__isnull=True,
            rule__escalate_after_minutes__isnull=False,
        )
        .select_related("rule", "project")
        .order_by("first_at")
    )
    escalated = []
    for alert in candidates.iterator(chunk_size=500):
        rule = alert.rule
        if alert.first_at + datetime.timedelta(minutes=rule.escalate_after_minutes) > now:
            continue
        with transaction.atomic():
            if not Alert.objects.filter(
                pk=alert.pk, state=AlertState.FIRING, escalated_at__isnull=True
            ).update(escalated_at=now):
                continue  # acknowledged, resolved or escalated by another pass meanwhile
            owner = alert.facts.get("owner")
            usernames = usernames_for(rule.escalate_to or {}, owner=owner, now=now)
            minutes = rule.escalate_after_minutes
            what = f"not acknowledged within {minutes} minutes: {alert.message}"
            AlertEvent.objects.create(
                alert=alert,
                kind=AlertEventKind.ESCALATED,
                at=now,
                comment=what,
                detail={"to": usernames},
            )
            _send(
                alert,
                event="escalated",
                what=what,
                usernames=usernames,
                channel_ids=[c.pk for c in rule.channels.all()],
                now=now,
                suppressed=rules.muted(rule, now, alert.project.tz),
            )
        escalated.append(alert.pk)
    return escalated


# --- operators: acknowledge and resolve --------------------------------------------------


def _operate(*, alert: Alert, by, source: str, action: str, comment: str, change) -> Alert:
    def authorize() -> None:
        if alert.project_id is None:
            if not by.is_superuser:
                raise PermissionDenied("only a superuser acts on a system alert")
            return
        require_role(by, alert.project, Role.OPERATOR)

    operation_run(
        by=by,
        source=source,
        action=action,
        object_type="alert",
        object_id=alert.pk,
        project=alert.project,
        authorize=authorize,
        change=change,
        refused_detail=lambda: {
            "state": Alert.objects.values_list("state", flat=True).get(pk=alert.pk)
        },
    )
    alert.refresh_from_db()
    return alert


def alert_ack(*, alert: Alert, by, source: str, comment: str = "") -> Alert:
    """firing -> acknowledged: someone is on it; escalation stops."""

    def change() -> dict:
        now = clock.now()
        if not Alert.objects.filter(pk=alert.pk, state=AlertState.FIRING).update(
            state=AlertState.ACKNOWLEDGED, acknowledged_by=by, acknowledged_at=now
        ):
            state = Alert.objects.values_list("state", flat=True).get(pk=alert.pk)
            raise Conflict(f"alert {alert.pk} is {state}: only a firing alert can be acknowledged")
        AlertEvent.objects.create(
            alert=alert, kind=AlertEventKind.ACKNOWLEDGED, at=now, user=by, comment=comment
        )
        return {"comment": comment}

    return _operate(alert=alert, by=by, source=source, action="ack", comment=comment, change=change)


def alert_resolve(*, alert: Alert, by, source: str, comment: str = "") -> Alert:
    """firing | acknowledged -> resolved, by an operator."""

    def change() -> dict:
        now = clock.now()
        if not Alert.objects.filter(pk=alert.pk, state__in=OPEN_STATES).update(
            state=AlertState.RESOLVED, resolved_by=by, resolved_at=now
        ):
            raise Conflict(f"alert {alert.pk} is already resolved")
        AlertEvent.objects.create(
            alert=alert, kind=AlertEventKind.RESOLVED, at=now, user=by, comment=comment
        )
        return {"comment": comment}

    return _operate(
        alert=alert, by=by, source=source, action="resolve", comment=comment, change=change
    )


ALERT_ACTIONS = {"ack": alert_ack, "resolve": alert_resolve}
