"""What a notification says and whom it is for: the shapes the monitoring app hands to
apps.notifications.services.notify (re-exported there)."""

from dataclasses import asdict, dataclass, field

# What a message announces.
EVENTS = ("fired", "repeated", "escalated", "resolved", "test")


@dataclass(frozen=True)
class Recipient:
    """A user to reach: their email, phone, and chat ids for @-mentions, keyed by channel
    kind ({"dingtalk": ..., "feishu": ..., "wecom": ..., "slack": ...})."""

    username: str
    email: str = ""
    phone: str = ""
    chat_ids: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Message:
    """`text` is plain text (what happened, to what, since when, how often); `url` an
    absolute link to the page that shows it; `fields` JSON-able facts for webhooks."""

    event: str
    title: str
    text: str
    url: str
    severity: str
    fields: dict = field(default_factory=dict)
