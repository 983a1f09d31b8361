"""The transport boundary: a channel's config and secrets plus one rendered message in,
an HTTP status (or None) out, or a TransportError saying whether a retry can help."""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

from apps.accounts.models import PHONE_RE

from ..messages import Recipient

# An HTTP header name (RFC 9110 token).
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
MAX_URL = 2000


class TransportError(Exception):
    """A try that did not deliver. `permanent`: retrying cannot help (a 4xx answer, a
    robot's error code, a refused address); else it may (network, 5xx, 429).
    `message` never holds a secret, a token or a signed query string."""

    def __init__(self, message: str, *, permanent: bool, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status = status


@dataclass(frozen=True)
class Target:
    """One delivery a channel makes of a message. `recipient` None: the channel's own room
    (a robot, a webhook); `problem`: it cannot be sent at all, recorded as failed."""

    recipient: str | None
    payload: dict = field(default_factory=dict)
    problem: str = ""


@dataclass(frozen=True)
class Envelope:
    """One try of one delivery: its id, recipient and the message stored in its payload
    (event, title, text, url, severity, fields, recipients)."""

    delivery_id: int | None
    recipient: str
    message: dict
    now: datetime

    @property
    def event(self) -> str:
        return self.message.get("event", "fired")

    @property
    def recipients(self) -> list[dict]:
        return self.message.get("recipients") or []

    def headline(self) -> str:
        """The message's one-line title, as the sender wrote it (alerts put their event and
        severity in it: "[RESOLVED] [CRITICAL] load failed")."""
        return " ".join((self.message.get("title") or "").split())

    def chat_ids(self, kind: str) -> list[str]:
        ids = []
        for recipient in self.recipients:
            value = (recipient.get("chat_ids") or {}).get(kind)
            if value and value not in ids:
                ids.append(value)
        return ids


@dataclass(frozen=True)
class FormField:
    """How a page asks for one config key or secret. widget: url, text, lines (a list,
    one per line), headers ("Name: value" lines), template (multi-line text), select,
    secret (a password input that never shows what is stored)."""

    name: str
    label: str
    widget: str = "text"
    help: str = ""
    choices: tuple[str, ...] = ()
    required: bool = False

    @property
    def secret(self) -> bool:
        return self.widget == "secret"


class FieldErrors:
    """Every problem of one input, so the answer names them all at once."""

    def __init__(self) -> None:
        self.items: list[dict] = []

    def add(self, field: str, message: str) -> None:
        self.items.append({"field": field, "message": message})

    def __bool__(self) -> bool:
        return bool(self.items)


class Transport:
    """One channel kind. Subclasses name their config keys and secret keys, validate
    config, plan the deliveries of a message and send one."""

    kind: ClassVar[str]
    config_keys: ClassVar[tuple[str, ...]] = ()
    secret_keys: ClassVar[tuple[str, ...]] = ()
    form_fields: ClassVar[tuple[FormField, ...]] = ()
    # Robots and webhooks post to one room and @-mention the recipients there.
    room: ClassVar[bool] = True

    # --- config ---------------------------------------------------------------------------

    def clean_config(self, config: Any, errors: FieldErrors) -> dict:
        """The config as stored, or problems in `errors` named config.<key>."""
        if not isinstance(config, dict):
            errors.add("config", "an object with the channel's settings")
            return {}
        for key in config:
            if key not in self.config_keys:
                if key in self.secret_keys:
                    errors.add(f"config.{key}", f"a secret: give it in secrets.{key}")
                else:
                    allowed = ", ".join(self.config_keys) or "none"
                    errors.add(f"config.{key}", f"unknown for {self.kind} channels ({allowed})")
        clean = self.check(config, errors)
        return {k: v for k, v in clean.items() if v not in (None, "", [], {})}

    def check(self, config: dict, errors: FieldErrors) -> dict:
        raise NotImplementedError

    def describe(self, config: dict) -> str:
        """A short, secret-free summary for lists: where it posts."""
        return origin(config.get("url", ""))

    # --- delivery -------------------------------------------------------------------------

    def targets(self, *, config: dict, recipients: Sequence[Recipient]) -> list[Target]:
        """The deliveries of one message: one to the room, mentioning every recipient."""
        return [Target(recipient=None, payload={"recipients": [r.as_dict() for r in recipients]})]

    def send(self, envelope: Envelope, *, config: dict, secrets: dict[str, str]) -> int | None:
        raise NotImplementedError


# --- checks shared by the kinds ---------------------------------------------------------------


def origin(url: str) -> str:
    """scheme://host[:port] of a URL: what errors and lists show of it (paths and
    queries of robot URLs carry their access tokens)."""
    try:
        parts = urlsplit(url or "")
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "the configured URL"
    if not parts.scheme or not host:
        return "the configured URL"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}"


def check_url(config: dict, errors: FieldErrors, *, what: str, required: bool = True) -> str:
    url = config.get("url")
    if url in (None, ""):
        if required:
            errors.add("config.url", f"required: {what}")
        return ""
    if not isinstance(url, str):
        errors.add("config.url", "a string")
        return ""
    url = url.strip()
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 — raises on a bad port
    except ValueError:
        valid = False
    if not valid or any(c.isspace() for c in url):
        errors.add("config.url", "an http:// or https:// URL")
    elif len(url) > MAX_URL:
        errors.add("config.url", f"at most {MAX_URL} characters")
    return url


def check_headers(config: dict, errors: FieldErrors) -> dict[str, str]:
    headers = config.get("headers")
    if headers in (None, ""):
        return {}
    if not isinstance(headers, dict):
        errors.add("config.headers", 'an object of header names to values, e.g. {"X-Key": "v"}')
        return {}
    clean = {}
    for name, value in headers.items():
        if not HEADER_NAME_RE.match(str(name)):
            errors.add(f"config.headers.{name}", "not a valid header name")
        elif not isinstance(value, str):
            errors.add(f"config.headers.{name}", "a string")
        elif "\r" in value or "\n" in value or len(value) > 2000:
            errors.add(f"config.headers.{name}", "one line of at most 2000 characters")
        else:
            clean[name] = value
    return clean


def check_list(config: dict, errors: FieldErrors, *, valid, item: str, limit: int = 50) -> list:
    """config["to"]: a list of strings, each one `item` (`valid` says so)."""
    value = config.get("to")
    if value in (None, ""):
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        errors.add("config.to", f"a list, each {item}")
        return []
    if len(value) > limit:
        errors.add("config.to", f"at most {limit} entries")
        return []
    clean = []
    for index, entry in enumerate(value):
        if not isinstance(entry, str) or not valid(entry.strip()):
            errors.add(f"config.to.{index}", f"not {item}")
        elif entry.strip() not in clean:
            clean.append(entry.strip())
    return clean


def is_phone(value: str) -> bool:
    return bool(PHONE_RE.match(value))


def plain_text(envelope: Envelope, *, mentions: str = "", link: bool = True) -> str:
    """headline, text, link, mentions: the body of the plain-text chat messages."""
    lines = [envelope.headline()]
    text = (envelope.message.get("text") or "").strip()
    if text:
        lines.append(text)
    url = envelope.message.get("url") or ""
    if link and url:
        lines.append(url)
    if mentions:
        lines.append(mentions)
    return "\n".join(lines)
