"""Notifications: what the monitoring app calls to tell people, and the channels it uses.

`notify` plans the deliveries of one message (a row each, written in bulk), and hands
the pending ones to django-q2 after the commit; `delivery_send` is one try of one
delivery, claimed with a conditional update so two workers never send it twice;
`deliveries_retry_due` re-enqueues what is due again. Channel services validate every
field, check the caller's role, and keep secrets write-only.
"""

import contextlib
import datetime
import json
import logging
import re
import threading
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any
from urllib.parse import quote, quote_plus

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse

from apps.audit.services import operation_record
from apps.core import clock, times
from apps.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from apps.projects.models import Project

from .choices import ChannelKind, DeliveryState
from .messages import EVENTS, Message, Recipient
from .models import Channel, Delivery
from .selectors import may_change_channels
from .transports import Envelope, FieldErrors, Target, TransportError, origin, transport_for

__all__ = [
    "Message",
    "Recipient",
    "channel_create",
    "channel_delete",
    "channel_test",
    "channel_update",
    "deliveries_retry_due",
    "delivery_send",
    "notify",
    "recipients_of",
]

logger = logging.getLogger(__name__)

TASK = "apps.notifications.tasks.deliver"
BULK_BATCH = 500
# A pending delivery never handed to the queue this long after it was made was lost
# between the commit and the enqueue (a crash): the retry pass sends it.
LOST_AFTER = datetime.timedelta(minutes=1)
# A task still not run this long after it was queued is taken for lost and queued again
# (a duplicate is harmless: only one claim wins).
REQUEUE_AFTER = datetime.timedelta(minutes=15)
RETRY_PASS_LIMIT = 5000
MAX_ERROR = 1000
CHAT_KINDS = ("dingtalk", "feishu", "wecom", "slack")
NAME_MAX = 100


# --- recipients ---------------------------------------------------------------------------


def recipients_of(usernames: Iterable[str]) -> list[Recipient]:
    """The active users of these names with their profiles, in the order given; unknown
    names are dropped. One query per 500 names."""
    names = list(dict.fromkeys(name for name in usernames if name))
    found: dict[str, Recipient] = {}
    columns = ["phone", *(f"{kind}_id" for kind in CHAT_KINDS)]
    for start in range(0, len(names), 500):
        rows = (
            get_user_model()
            .objects.filter(username__in=names[start : start + 500], is_active=True)
            .values("username", "email", *(f"profile__{c}" for c in columns))
        )
        for row in rows:
            found[row["username"]] = Recipient(
                username=row["username"],
                email=row["email"] or "",
                phone=row["profile__phone"] or "",
                chat_ids={
                    kind: row[f"profile__{kind}_id"]
                    for kind in CHAT_KINDS
                    if row[f"profile__{kind}_id"]
                },
            )
    return [found[name] for name in names if name in found]


# --- sending ------------------------------------------------------------------------------


class _EnqueueBatch:
    """The pending deliveries notify() made inside `enqueue_batch()`: queued together
    after the commit, one broker connection for the whole batch."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.now: datetime.datetime | None = None


_batch = threading.local()


@contextlib.contextmanager
def enqueue_batch():
    """Inside it (and inside a transaction), notify() only collects the pending
    deliveries; leaving it queues them all after the commit at once. An alert storm
    raises thousands of alerts in one transaction: one queueing call, not thousands."""
    if getattr(_batch, "current", None) is not None:  # nested: the outer one queues
        yield
        return
    batch = _batch.current = _EnqueueBatch()
    try:
        yield
    finally:
        _batch.current = None
    if batch.ids:
        transaction.on_commit(partial(enqueue_deliveries, batch.ids, now=batch.now), robust=True)


def notify(
    *,
    alert_id: int | None,
    message: Message,
    channels: Sequence[Channel],
    recipients: Sequence[Recipient],
    suppressed: bool = False,
    now: datetime.datetime,
    project_id: int | None = None,
) -> list[Delivery]:
    """Record the deliveries of `message` through every enabled channel and queue the
    pending ones after the commit. Email: one per address; sms and phone: one per
    number; robots, Slack and webhooks: one to the room, mentioning every recipient.
    `suppressed` (a mute window): recorded as such, never sent. A channel that cannot
    reach anyone (an email channel and nobody with an address) gets one failed delivery
    that says so. No query per delivery: the rows are written in bulk."""
    if message.event not in EVENTS:
        raise ValueError(f"unknown event {message.event!r}: one of {', '.join(EVENTS)}")
    if project_id is None and alert_id is not None:
        from apps.monitoring.models import Alert

        project_id = Alert.objects.filter(pk=alert_id).values_list("project_id", flat=True).first()
    base = _payload(message, alert_id=alert_id)
    rows: list[Delivery] = []
    for channel in channels:
        if not channel.enabled:
            continue
        try:
            transport = transport_for(channel.kind)
        except KeyError:
            logger.error("channel %s has an unknown kind %r: skipped", channel.pk, channel.kind)
            continue
        for target in transport.targets(config=channel.config or {}, recipients=recipients):
            rows.append(
                _delivery_row(
                    channel=channel,
                    target=target,
                    payload=base,
                    alert_id=alert_id,
                    project_id=project_id or channel.project_id,
                    event=message.event,
                    suppressed=suppressed,
                    now=now,
                )
            )
    if not rows:
        return []
    with transaction.atomic():
        created = Delivery.objects.bulk_create(rows, batch_size=BULK_BATCH)
        pending = [d.pk for d in created if d.state == DeliveryState.PENDING]
        if pending:
            batch = getattr(_batch, "current", None)
            if batch is not None:
                batch.ids.extend(pending)
                batch.now = now
            else:
                transaction.on_commit(partial(enqueue_deliveries, pending, now=now), robust=True)
    return created


def _payload(message: Message, *, alert_id: int | None) -> dict:
    # The facts go through JSON once here, so dates and decimals are stored as text.
    fields = json.loads(json.dumps(message.fields or {}, cls=DjangoJSONEncoder))
    return {
        "event": message.event,
        "alert": alert_id,
        "title": message.title,
        "text": message.text,
        "url": message.url,
        "severity": message.severity,
        "fields": fields,
    }


def _delivery_row(
    *,
    channel: Channel,
    target: Target,
    payload: dict,
    alert_id: int | None,
    project_id: int | None,
    event: str,
    suppressed: bool,
    now: datetime.datetime,
) -> Delivery:
    state, error = DeliveryState.PENDING, ""
    if suppressed:
        state = DeliveryState.SUPPRESSED
    elif target.problem:
        state, error = DeliveryState.FAILED, target.problem
    recipient = f"#{channel.name}" if target.recipient is None else target.recipient
    return Delivery(
        alert_id=alert_id,
        channel=channel,
        project_id=project_id,
        kind=channel.kind,
        recipient=recipient[:300],
        event=event,
        state=state,
        payload={**payload, **target.payload} if target.payload else payload,
        last_error=error,
        created_at=now,
    )


class _BulkOrmBroker:
    """Stands in for django-q2's ORM broker while a batch is queued: async_task signs
    each task as usual and hands it here; flush() writes them all with one bulk insert
    instead of one INSERT per task."""

    def __init__(self, broker):
        self.broker = broker
        self.list_key = broker.list_key
        self.packages: list[str] = []

    def enqueue(self, task: str) -> None:
        self.packages.append(task)

    def flush(self) -> None:
        from django.utils import timezone
        from django_q.models import OrmQ

        lock = timezone.now()
        self.broker.get_connection().bulk_create(
            [OrmQ(key=self.list_key, payload=package, lock=lock) for package in self.packages],
            batch_size=BULK_BATCH,
        )
        self.packages = []


def enqueue_deliveries(ids: Sequence[int], *, now: datetime.datetime | None = None) -> None:
    """One django-q2 task per delivery, on the queue the "default" cluster serves (with
    the ORM broker written in bulk); then each delivery remembers it was queued."""
    from django_q.brokers import get_broker
    from django_q.brokers.orm import ORM
    from django_q.conf import Conf
    from django_q.tasks import async_task

    if not ids:
        return
    cluster = settings.Q_CLUSTER.get("name", "default")
    broker = get_broker(cluster)
    sync = Conf.SYNC  # what async_task itself obeys
    # A synchronous cluster (Q_SYNC: tests, demos) runs each task right here instead.
    bulk = _BulkOrmBroker(broker) if isinstance(broker, ORM) and not sync else None
    for delivery_id in ids:
        async_task(
            TASK,
            delivery_id,
            q_options={
                "cluster": cluster,
                "broker": bulk or broker,
                "task_name": f"delivery-{delivery_id}",
                # The outcome is recorded on the delivery; django-q2 need not keep it.
                "save": False,
            },
        )
    if bulk is not None:
        bulk.flush()
    queued_at = now or clock.now()
    for start in range(0, len(ids), 500):
        Delivery.objects.filter(pk__in=ids[start : start + 500]).update(queued_at=queued_at)


def max_tries() -> int:
    return max(3, int(settings.OPSCENTER_DELIVERY_MAX_TRIES))


def backoff(tries: int) -> datetime.timedelta:
    """The wait after the `tries`-th failed try: base, 2×base, 4×base, ..."""
    base = float(settings.OPSCENTER_DELIVERY_BACKOFF_SECONDS)
    return datetime.timedelta(seconds=base * 2 ** max(tries - 1, 0))


def claim_lease() -> datetime.timedelta:
    """How long a claimed try may take before the delivery counts as lost (its worker
    died mid-send) and may be tried again."""
    return datetime.timedelta(
        seconds=max(300.0, 4 * float(settings.OPSCENTER_DELIVERY_TIMEOUT_SECONDS))
    )


def delivery_send(
    *, delivery_id: int, now: datetime.datetime, max_tries_override: int | None = None
) -> Delivery:
    """One try of one delivery. The claim is a conditional update (pending, and due):
    only the caller that gets 1 back sends, so duplicates of a task are harmless. On
    success: `sent`. A retryable error: `pending` again, due after the backoff, until
    OPSCENTER_DELIVERY_MAX_TRIES tries are spent: then `failed`. A permanent error:
    `failed` at once. `tries`, `last_error` and `last_status` are always recorded."""
    lease_until = now + claim_lease()
    claimed = (
        Delivery.objects.filter(pk=delivery_id, state=DeliveryState.PENDING)
        .filter(Q(next_try_at__isnull=True) | Q(next_try_at__lte=now))
        .update(tries=F("tries") + 1, next_try_at=lease_until)
    )
    delivery = Delivery.objects.select_related("channel").filter(pk=delivery_id).first()
    if delivery is None:
        raise NotFound(f"delivery {delivery_id} not found")
    if not claimed:
        return delivery
    channel = delivery.channel
    secrets: dict[str, str] = {}
    status: int | None = None
    failure: TransportError | None = None
    try:
        secrets = _secrets_of(channel)
        status = _send(delivery, channel, secrets=secrets, now=now)
    except TransportError as exc:
        failure = exc
    except Exception as exc:  # a fault of ours: recorded and retried like a network error
        logger.exception("delivery %s: unexpected error", delivery_id)
        failure = TransportError(f"unexpected error: {type(exc).__name__}", permanent=False)
    if failure is None:
        values: dict[str, Any] = {
            "state": DeliveryState.SENT,
            "sent_at": now,
            "last_status": status,
            "last_error": "",
            "next_try_at": None,
        }
    else:
        limit = max_tries_override or max_tries()
        final = failure.permanent or delivery.tries >= limit
        values = {
            "state": DeliveryState.FAILED if final else DeliveryState.PENDING,
            "last_status": failure.status,
            "last_error": scrub(
                failure.message, url=channel.config.get("url", ""), secrets=secrets
            ),
            "next_try_at": None if final else now + backoff(delivery.tries),
        }
    # Only the claim this try holds is answered (a lease that ran out was claimed again).
    Delivery.objects.filter(
        pk=delivery.pk, state=DeliveryState.PENDING, next_try_at=lease_until
    ).update(**values)
    for key, value in values.items():
        setattr(delivery, key, value)
    logger.info(
        "delivery %s (%s, try %s): %s%s",
        delivery.pk,
        delivery.kind,
        delivery.tries,
        delivery.state,
        f" ({delivery.last_error})" if delivery.last_error else "",
    )
    return delivery


def _secrets_of(channel: Channel) -> dict[str, str]:
    try:
        return {key: channel.get_secret(key) for key in channel.secrets}
    except ValueError as exc:
        raise TransportError(
            "a secret of the channel cannot be decrypted (was OPSCENTER_ENCRYPTION_KEY "
            "changed?): set it again",
            permanent=True,
        ) from exc


def _send(
    delivery: Delivery, channel: Channel, *, secrets: dict[str, str], now: datetime.datetime
) -> int | None:
    if not channel.enabled and delivery.event != "test":
        raise TransportError("the channel was disabled before this was sent", permanent=True)
    if channel.kind != delivery.kind:
        raise TransportError(
            f"the channel became a {channel.kind} channel after this {delivery.kind} "
            "delivery was planned",
            permanent=True,
        )
    envelope = Envelope(
        delivery_id=delivery.pk,
        recipient=delivery.recipient,
        message=delivery.payload or {},
        now=now,
    )
    return transport_for(channel.kind).send(envelope, config=channel.config or {}, secrets=secrets)


_QUERY_IN_URL = re.compile(r"(https?://[^\s?#\"'<>]+)\?[^\s\"'<>]*")
_SECRET_PARAM = re.compile(r"(?i)\b(access_token|token|key|sign|signature|secret)=[^&\s\"']+")


def scrub(text: str, *, url: str = "", secrets: dict[str, str] | None = None) -> str:
    """An error message fit to keep and show: no secret (as is or URL-encoded), no
    configured URL beyond its origin, no query string of any URL, no signed parameter."""
    for value in (secrets or {}).values():
        if value and len(value) >= 3:
            for form in {value, quote(value, safe=""), quote_plus(value)}:
                text = text.replace(form, "[secret]")
    if url:
        bare = url.split("?", 1)[0]
        for form in sorted({url, bare}, key=len, reverse=True):
            if len(form) > len(origin(url)):
                text = text.replace(form, origin(url))
    text = _QUERY_IN_URL.sub(r"\1", text)
    text = _SECRET_PARAM.sub(r"\1=…", text)
    return text[:MAX_ERROR]


def deliveries_retry_due(*, now: datetime.datetime) -> int:
    """Queue again the pending deliveries whose next try has come (a backoff ran out, or
    a claimed try's worker died), and those never queued a minute after they were made
    (the process died between the commit and the enqueue). Answers how many."""
    stale = now - REQUEUE_AFTER
    pending = Delivery.objects.filter(state=DeliveryState.PENDING)
    due = pending.filter(next_try_at__lte=now).filter(
        Q(queued_at__isnull=True) | Q(queued_at__lt=F("next_try_at")) | Q(queued_at__lt=stale)
    )
    lost = pending.filter(next_try_at__isnull=True, created_at__lte=now - LOST_AFTER).filter(
        Q(queued_at__isnull=True) | Q(queued_at__lt=stale)
    )
    ids = list(due.order_by("next_try_at").values_list("pk", flat=True)[:RETRY_PASS_LIMIT])
    ids += list(lost.order_by("created_at").values_list("pk", flat=True)[:RETRY_PASS_LIMIT])
    # The rows are committed already: no need to wait for the caller's transaction.
    enqueue_deliveries(ids, now=now)
    return len(ids)


# --- channels -----------------------------------------------------------------------------


def require_channel_admin(user, project: Project | None) -> None:
    """Project channels are changed by the project's admins; global ones by superusers.
    A project the user is not a member of does not exist for them."""
    if may_change_channels(user, project):
        return
    if project is None:
        raise PermissionDenied("global channels are changed by superusers only")
    from apps.projects.permissions import require_role

    require_role(user, project, "admin")


def _check_name(
    errors: FieldErrors, name: Any, *, project: Project | None, current: Channel | None
) -> str:
    if not isinstance(name, str) or not name.strip():
        errors.add("name", "required: a name for the channel")
        return ""
    name = name.strip()
    if len(name) > NAME_MAX:
        errors.add("name", f"at most {NAME_MAX} characters")
        return name
    taken = Channel.objects.filter(project=project, name=name)
    if current is not None:
        taken = taken.exclude(pk=current.pk)
    if taken.exists():
        where = f"project {project.code!r}" if project else "the global channels"
        errors.add("name", f"a channel {name!r} already exists in {where}")
    return name


def _check_secrets(
    errors: FieldErrors, secrets: Any, *, kind: str, stored: dict[str, str]
) -> tuple[dict[str, str], list[str]]:
    """The encrypted secrets after applying `secrets` (a string sets one, "" or null
    removes it, an absent key keeps it), and the names of those that changed."""
    allowed = transport_for(kind).secret_keys if kind in ChannelKind.values else ()
    kept = {k: v for k, v in stored.items() if k in allowed}
    changed = sorted(set(stored) - set(kept))
    if secrets in (None, {}):
        return kept, changed
    if not isinstance(secrets, dict):
        errors.add("secrets", 'an object of secret names to values, e.g. {"secret": "..."}')
        return kept, changed
    probe = Channel(secrets=dict(kept))
    for key, value in secrets.items():
        if key not in allowed:
            names = ", ".join(allowed) or "none"
            errors.add(f"secrets.{key}", f"unknown for {kind} channels (secrets: {names})")
        elif value is not None and not isinstance(value, str):
            errors.add(f"secrets.{key}", 'a string (or null or "" to remove it)')
        elif isinstance(value, str) and len(value) > 2000:
            errors.add(f"secrets.{key}", "at most 2000 characters")
        elif value and ("\r" in value or "\n" in value):
            errors.add(f"secrets.{key}", "one line")
        else:
            before = key in probe.secrets
            probe.set_secret(key, value.strip() if value else None)
            if value or before:
                changed.append(key)
    return probe.secrets, sorted(set(changed))


def _check_channel(
    errors: FieldErrors, *, project: Project | None, fields: dict, current: Channel | None
) -> dict:
    """Validate the channel as it would be after applying `fields` to `current`."""
    kind = fields.get("kind", current.kind if current else None)
    if kind not in ChannelKind.values:
        errors.add("kind", "one of " + ", ".join(ChannelKind.values))
    clean: dict[str, Any] = {"kind": kind}
    if "name" in fields or current is None:
        clean["name"] = _check_name(errors, fields.get("name"), project=project, current=current)
    else:
        clean["name"] = current.name
    config = fields.get("config", current.config if current else {})
    if config is None:
        config = {}
    if kind in ChannelKind.values:
        clean["config"] = transport_for(kind).clean_config(config, errors)
    elif not isinstance(config, dict):
        errors.add("config", "an object with the channel's settings")
    enabled = fields.get("enabled", current.enabled if current else True)
    if not isinstance(enabled, bool):
        errors.add("enabled", "true or false")
    clean["enabled"] = enabled
    clean["secrets"], clean["secrets_changed"] = _check_secrets(
        errors, fields.get("secrets"), kind=kind, stored=current.secrets if current else {}
    )
    return clean


def channel_check(*, project: Project | None, fields: dict, current: Channel | None = None) -> dict:
    """The channel's stored values (name, kind, config, enabled, encrypted secrets, and
    `secrets_changed`) after applying `fields`, or ValidationFailed naming every field."""
    errors = FieldErrors()
    clean = _check_channel(errors, project=project, fields=fields, current=current)
    _raise_if(errors)
    return clean


def _raise_if(errors: FieldErrors) -> None:
    if errors:
        names = ", ".join(dict.fromkeys(e["field"] for e in errors.items))
        raise ValidationFailed(f"invalid channel: {names}", errors.items)


def _detail(channel: Channel, secrets_changed: list[str]) -> dict:
    # Never the secrets, nor the URL's path and query (robot URLs hold access tokens).
    detail = {
        "name": channel.name,
        "kind": channel.kind,
        "enabled": channel.enabled,
        "target": transport_for(channel.kind).describe(channel.config),
        "secrets_set": channel.secrets_set,
    }
    if secrets_changed:
        detail["secrets_changed"] = secrets_changed
    return detail


@contextlib.contextmanager
def _name_taken_raises(name: str):
    """A name taken by a concurrent request answers like the check before it."""
    try:
        yield
    except IntegrityError as exc:
        raise ValidationFailed(
            "invalid channel: name",
            [{"field": "name", "message": f"a channel {name!r} already exists"}],
        ) from exc


def channel_create(
    *,
    by,
    project: Project | None,
    name: str,
    kind: str,
    config: dict | None = None,
    secrets: dict | None = None,
    enabled: bool = True,
    source: str = "api",
) -> Channel:
    require_channel_admin(by, project)
    errors = FieldErrors()
    fields = {"name": name, "kind": kind, "config": config, "secrets": secrets, "enabled": enabled}
    clean = _check_channel(errors, project=project, fields=fields, current=None)
    _raise_if(errors)
    changed = clean.pop("secrets_changed")
    with transaction.atomic(), _name_taken_raises(clean["name"]):
        channel = Channel.objects.create(project=project, **clean)
        operation_record(
            user=by,
            source=source,
            action="channel.create",
            object_type="channel",
            object_id=channel.pk,
            project=project,
            detail=_detail(channel, changed),
        )
    return channel


CHANNEL_EDITABLE = ("name", "kind", "config", "secrets", "enabled")


def channel_update(*, channel: Channel, by, fields: dict, source: str = "api") -> Channel:
    """Change some fields; `fields` holds only what the caller sent. `config` replaces the
    whole config; `secrets` changes only the keys it names."""
    require_channel_admin(by, channel.project)
    errors = FieldErrors()
    for key in fields:
        if key == "project":
            errors.add("project", "cannot be changed: create the channel in the other project")
        elif key not in CHANNEL_EDITABLE:
            errors.add(key, "unknown field")
    clean = _check_channel(errors, project=channel.project, fields=fields, current=channel)
    _raise_if(errors)
    secrets_changed = clean.pop("secrets_changed")
    changed = [key for key, value in clean.items() if getattr(channel, key) != value]
    if not changed:
        return channel
    with transaction.atomic(), _name_taken_raises(clean["name"]):
        for key in changed:
            setattr(channel, key, clean[key])
        channel.save(update_fields=changed)
        operation_record(
            user=by,
            source=source,
            action="channel.update",
            object_type="channel",
            object_id=channel.pk,
            project=channel.project,
            detail={**_detail(channel, secrets_changed), "changed": changed},
        )
    return channel


def channel_users(channel: Channel, limit: int = 20) -> list[str]:
    """What refers to the channel (monitor rules, baselines, ...): every many-to-many
    relation onto Channel, named as "<model> <name>"."""
    names: list[str] = []
    for relation in Channel._meta.related_objects:
        if not relation.many_to_many:
            continue
        related = getattr(channel, relation.get_accessor_name()).all()[:limit]
        names.extend(f"{relation.related_model._meta.verbose_name} {obj}" for obj in related)
    return names[:limit]


def channel_delete(*, channel: Channel, by, source: str = "api") -> None:
    """Delete a channel and its delivery log. Refused while rules still send through it
    (disable it instead, or take it out of them first)."""
    require_channel_admin(by, channel.project)
    users = channel_users(channel)
    if users:
        raise Conflict(
            f"channel {channel.name!r} is used by: {', '.join(users)}; disable it or remove "
            "it from them first",
            [{"field": "id", "message": f"used by {name}"} for name in users],
        )
    with transaction.atomic():
        operation_record(
            user=by,
            source=source,
            action="channel.delete",
            object_type="channel",
            object_id=channel.pk,
            project=channel.project,
            detail=_detail(channel, []),
        )
        channel.delete()


def channel_test_message(*, channel: Channel, by, now: datetime.datetime) -> Message:
    where = f"project {channel.project.code}" if channel.project_id else "global"
    url = settings.OPSCENTER_BASE_URL.rstrip("/") + reverse(
        "notifications:channel_detail", args=[channel.pk]
    )
    return Message(
        event="test",
        title=f"[TEST] Test of channel {channel.name}",
        text=(
            f"A test message from opscenter through the {channel.get_kind_display()} channel "
            f"{channel.name!r} ({where}), sent by {by.get_username()} at "
            f"{times.format_when(now)}. Alerts will look like this."
        ),
        url=url,
        severity="info",
        fields={
            "channel": channel.pk,
            "channel_name": channel.name,
            "project": channel.project.code if channel.project_id else None,
            "by": by.get_username(),
        },
    )


def channel_test(
    *, channel: Channel, by, now: datetime.datetime | None = None, source: str = "api"
) -> Delivery:
    """Send a test message now, through the same path as alerts, one try, and answer its
    delivery. It goes to the tester: their email or phone when the channel sends to
    people (else the channel's first `to`), mentioning them in a room."""
    require_channel_admin(by, channel.project)
    now = now or clock.now()
    recipients = recipients_of([by.get_username()])
    message = channel_test_message(channel=channel, by=by, now=now)
    targets = transport_for(channel.kind).targets(
        config=channel.config or {}, recipients=recipients
    )
    own = {value.lower() for r in recipients for value in (r.email, r.phone) if value}
    target = next((t for t in targets if (t.recipient or "").lower() in own), targets[0])
    with transaction.atomic():
        delivery = _delivery_row(
            channel=channel,
            target=target,
            payload=_payload(message, alert_id=None),
            alert_id=None,
            project_id=channel.project_id,
            event="test",
            suppressed=False,
            now=now,
        )
        delivery.queued_at = now  # sent right here, not by the queue
        delivery.save()
        operation_record(
            user=by,
            source=source,
            action="channel.test",
            object_type="channel",
            object_id=channel.pk,
            project=channel.project,
            detail={"delivery": delivery.pk, "recipient": delivery.recipient},
        )
    if delivery.state == DeliveryState.PENDING:
        delivery = delivery_send(delivery_id=delivery.pk, now=now, max_tries_override=1)
    return delivery
