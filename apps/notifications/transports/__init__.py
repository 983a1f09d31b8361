"""Notification transports: one module per channel kind behind a registry.

A transport validates its channel's config, plans the deliveries of a message
(`targets`) and sends one (`send`): it answers the HTTP status, or raises
TransportError(message, permanent=..., status=...). Transports never touch the
database; apps.notifications.services records what happened.
"""

from .base import Envelope, FieldErrors, FormField, Target, Transport, TransportError, origin
from .dingtalk import DingTalkTransport
from .email import EmailTransport
from .feishu import FeishuTransport
from .phone import PhoneTransport
from .slack import SlackTransport
from .sms import SmsTransport
from .webhook import WebhookTransport
from .wecom import WeComTransport

__all__ = [
    "REGISTRY",
    "Envelope",
    "FieldErrors",
    "FormField",
    "Target",
    "Transport",
    "TransportError",
    "origin",
    "transport_for",
]

REGISTRY: dict[str, Transport] = {
    transport.kind: transport
    for transport in (
        EmailTransport(),
        WebhookTransport(),
        DingTalkTransport(),
        FeishuTransport(),
        WeComTransport(),
        SlackTransport(),
        SmsTransport(),
        PhoneTransport(),
    )
}


def transport_for(kind: str) -> Transport:
    """The transport of a channel kind; KeyError for a kind opscenter does not know."""
    return REGISTRY[kind]
