"""Webhook: a POST of a JSON body to any URL, signed when the channel has a `secret`.

Body (version 1):

    {"version": 1, "event": "fired", "delivery": 812, "alert": 45,
     "severity": "critical", "title": "...", "text": "...", "url": "https://...",
     "fields": {...the alert's facts...},
     "recipients": [{"username": "olga", "email": "...", "phone": "...",
                     "chat_ids": {"slack": "U0123"}}],
     "sent_at": "2026-11-22T02:00:00+00:00"}

Headers: Content-Type: application/json, X-Opscenter-Event, X-Opscenter-Delivery,
X-Opscenter-Timestamp (Unix seconds) and, with a secret,
X-Opscenter-Signature: sha256=<hex HMAC-SHA256 keyed by the secret over
"<timestamp>." followed by the raw body bytes>. A receiver recomputes it over the body
it read, compares in constant time, and refuses timestamps too far from its clock.
"""

import hashlib
import hmac
import json

from . import http
from .base import Envelope, FieldErrors, FormField, Transport, check_headers, check_url

VERSION = 1
SIGNATURE_HEADER = "X-Opscenter-Signature"
TIMESTAMP_HEADER = "X-Opscenter-Timestamp"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def body_of(envelope: Envelope) -> dict:
    message = envelope.message
    return {
        "version": VERSION,
        "event": envelope.event,
        "delivery": envelope.delivery_id,
        "alert": message.get("alert"),
        "severity": message.get("severity", ""),
        "title": message.get("title", ""),
        "text": message.get("text", ""),
        "url": message.get("url", ""),
        "fields": message.get("fields") or {},
        "recipients": envelope.recipients,
        "sent_at": envelope.now.isoformat(),
    }


class WebhookTransport(Transport):
    kind = "webhook"
    config_keys = ("url", "headers")
    secret_keys = ("secret",)
    form_fields = (
        FormField("url", "URL", widget="url", required=True, help="Receives a JSON POST."),
        FormField(
            "headers",
            "Extra headers",
            widget="headers",
            help="One per line as Name: value (e.g. an Authorization header).",
        ),
        FormField(
            "secret",
            "Signing secret",
            widget="secret",
            help="Signs each request: X-Opscenter-Signature: sha256=HMAC(secret, "
            "timestamp + '.' + body).",
        ),
    )

    def check(self, config: dict, errors: FieldErrors) -> dict:
        return {
            "url": check_url(config, errors, what="the URL to POST to"),
            "headers": check_headers(config, errors),
        }

    def send(self, envelope: Envelope, *, config: dict, secrets: dict[str, str]) -> int | None:
        raw = json.dumps(body_of(envelope), separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = int(envelope.now.timestamp())
        headers = {
            **(config.get("headers") or {}),
            "Content-Type": "application/json",
            "X-Opscenter-Event": envelope.event,
            TIMESTAMP_HEADER: str(timestamp),
        }
        if envelope.delivery_id is not None:
            headers["X-Opscenter-Delivery"] = str(envelope.delivery_id)
        if secrets.get("secret"):
            headers[SIGNATURE_HEADER] = signature(secrets["secret"], timestamp, raw)
        return http.request("POST", config["url"], data=raw, headers=headers).status_code
