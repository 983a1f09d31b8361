"""/api/channels (CRUD and Test) and /api/notifications (the delivery log), SPEC 8 and 12.

Secrets travel only in requests (`secrets: {"secret": "..."}`; null or "" removes one);
answers say which are set (`secrets_set`). Project channels: members read, admins
change; global channels (`project: null`): everyone reads, superusers change.
"""

from typing import Any

from ninja import Field, Query, Router, Schema, Status

from apps.core.errors import NotFound, ValidationFailed
from apps.core.pagination import keyset_page
from apps.core.schemas import InputSchema, PageQuery, errors
from apps.projects.schemas import IsoDateTime
from apps.projects.selectors import project_get

from . import services
from .choices import DeliveryState
from .models import Channel
from .selectors import channel_get, channels_visible_to, deliveries_visible_to
from .transports import transport_for

channels_router = Router(tags=["notifications"])
deliveries_router = Router(tags=["notifications"])
SOURCE = "api"
MAX_ID = 2**63 - 1


# --- shapes -------------------------------------------------------------------------------


class ChannelIn(InputSchema):
    name: str
    project: str | None = Field(None, description="a project code, or null for a global channel")
    kind: str = Field(
        description="email | webhook | dingtalk | feishu | wecom | slack | sms | phone"
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="kind-specific: url, to, method, headers, body_template",
    )
    secrets: dict[str, str | None] = Field(
        default_factory=dict,
        description='write-only: {"secret": "..."} (webhook, dingtalk, feishu) or '
        '{"token": "..."} (sms, phone); null or "" removes one',
    )
    enabled: bool = True


class ChannelPatch(InputSchema):
    # Omitted fields are kept; defaults of None are never validated, so null is refused.
    name: str = None
    kind: str = None
    config: dict[str, Any] = Field(None, description="replaces the whole config")
    secrets: dict[str, str | None] = Field(
        None, description='only the named secrets change; null or "" removes one'
    )
    enabled: bool = None
    project: str | None = Field(None, description="cannot be changed")


class ChannelOut(Schema):
    id: int
    name: str
    project: str | None
    kind: str
    config: dict[str, Any]
    enabled: bool
    secrets_set: list[str] = Field(description="names of the secrets that are set")
    target: str = Field(description="where it sends, without paths or tokens")
    created_at: IsoDateTime

    @staticmethod
    def resolve_project(obj) -> str | None:
        return obj.project.code if obj.project_id else None

    @staticmethod
    def resolve_target(obj) -> str:
        return transport_for(obj.kind).describe(obj.config or {})


class ChannelList(Schema):
    items: list[ChannelOut]
    next_cursor: str | None


class ChannelQuery(PageQuery):
    project: str | None = Field(None, description="a project code: that project's channels")
    kind: str | None = None
    enabled: bool | None = None


class DeliveryOut(Schema):
    id: int
    alert: int | None
    channel: int
    channel_name: str
    kind: str
    recipient: str
    event: str
    state: str
    tries: int
    last_status: int | None = Field(description="HTTP status (SMTP code for email) of the last try")
    last_error: str
    created_at: IsoDateTime
    sent_at: IsoDateTime | None
    next_try_at: IsoDateTime | None

    @staticmethod
    def resolve_alert(obj) -> int | None:
        return obj.alert_id

    @staticmethod
    def resolve_channel(obj) -> int:
        return obj.channel_id

    @staticmethod
    def resolve_channel_name(obj) -> str:
        return obj.channel.name


class DeliveryList(Schema):
    items: list[DeliveryOut]
    next_cursor: str | None


class DeliveryQuery(PageQuery):
    alert: int | None = Field(None, ge=1, le=MAX_ID)
    channel: int | None = Field(None, ge=1, le=MAX_ID)
    state: str | None = Field(None, description="pending | sent | failed | suppressed")
    project: str | None = None


# --- channels -----------------------------------------------------------------------------


def _project_named(request, code: str | None):
    if code is None:
        return None
    try:
        return project_get(user=request.user, code=code)
    except NotFound as exc:
        raise NotFound(exc.detail, [{"field": "project", "message": exc.detail}]) from exc


@channels_router.get(
    "", response={200: ChannelList, **errors(404)}, summary="Channels the caller may see"
)
def channel_list(request, query: Query[ChannelQuery]):
    channels = channels_visible_to(request.user)
    if query.project:
        channels = channels.filter(project=_project_named(request, query.project))
    if query.kind:
        channels = channels.filter(kind=query.kind)
    if query.enabled is not None:
        channels = channels.filter(enabled=query.enabled)
    page = keyset_page(
        channels, cursor=query.cursor, limit=query.limit, order_field="name", descending=False
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@channels_router.post(
    "",
    response={201: ChannelOut, **errors(404)},
    summary="Create a channel (project admin; superuser: global)",
)
def channel_create(request, payload: ChannelIn):
    data = payload.dict()
    project = _project_named(request, data.pop("project"))
    channel = services.channel_create(by=request.user, project=project, source=SOURCE, **data)
    return Status(201, channel)


def _channel(request, channel_id: int) -> Channel:
    return channel_get(user=request.user, channel_id=channel_id)


@channels_router.get("/{channel_id}", response=ChannelOut)
def channel_detail(request, channel_id: int):
    return _channel(request, channel_id)


@channels_router.patch("/{channel_id}", response=ChannelOut, summary="Change a channel")
def channel_update(request, channel_id: int, payload: ChannelPatch):
    channel = _channel(request, channel_id)
    return services.channel_update(
        channel=channel,
        by=request.user,
        fields=payload.dict(exclude_unset=True),
        source=SOURCE,
    )


@channels_router.delete(
    "/{channel_id}",
    response={204: None, **errors(409)},
    summary="Delete a channel (refused while rules use it)",
)
def channel_delete(request, channel_id: int):
    channel = _channel(request, channel_id)
    services.channel_delete(channel=channel, by=request.user, source=SOURCE)
    return Status(204, None)


@channels_router.post(
    "/{channel_id}/test",
    response=DeliveryOut,
    summary="Send a test message now; answers its delivery (state, status, error)",
)
def channel_test(request, channel_id: int):
    channel = _channel(request, channel_id)
    return services.channel_test(channel=channel, by=request.user, source=SOURCE)


# --- deliveries ---------------------------------------------------------------------------


@deliveries_router.get(
    "", response={200: DeliveryList, **errors(404)}, summary="Deliveries, newest first"
)
def delivery_list(request, query: Query[DeliveryQuery]):
    deliveries = deliveries_visible_to(request.user).select_related("channel")
    if query.state:
        if query.state not in DeliveryState.values:
            raise ValidationFailed(
                "invalid state",
                [{"field": "state", "message": "one of " + ", ".join(DeliveryState.values)}],
            )
        deliveries = deliveries.filter(state=query.state)
    if query.alert is not None:
        deliveries = deliveries.filter(alert_id=query.alert)
    if query.channel is not None:
        deliveries = deliveries.filter(channel_id=query.channel)
    if query.project:
        deliveries = deliveries.filter(project=_project_named(request, query.project))
    page = keyset_page(deliveries, cursor=query.cursor, limit=query.limit, order_field="id")
    return {"items": page.items, "next_cursor": page.next_cursor}
