"""SMS through a configurable HTTP provider; one delivery per phone number (the channel's
`to` numbers and every recipient's phone).

Config: `url`, `method` (POST, PUT or GET), `headers`, `body_template`, `to`; secret
`token`. Placeholders {phone}, {message}, {title}, {url}, {event}, {severity} and
{token} are replaced in the URL (URL-encoded), the header values (as they are) and the
body template: JSON-escaped when the body is JSON (a template that is a JSON object or
array, or a JSON Content-Type header), form-encoded for application/x-www-form-urlencoded, as they
are otherwise. When {token} appears nowhere, the token is sent as
`Authorization: Bearer <token>`. Any 2xx answer counts as sent.
"""

import json
import re
from collections.abc import Sequence
from urllib.parse import quote, quote_plus

from ..messages import Recipient
from . import http
from .base import (
    Envelope,
    FieldErrors,
    FormField,
    Target,
    Transport,
    check_headers,
    check_list,
    check_url,
    is_phone,
    origin,
)

METHODS = ("POST", "PUT", "GET")
# A JSON object or array, not a template that merely starts with a placeholder ("{phone}").
JSON_LIKE = re.compile(r'^\s*(\{\s*["}]|\[)')
PLACEHOLDERS = ("phone", "message", "title", "url", "event", "severity", "token")
NO_PHONE = "no phone number: the channel has no `to` and no recipient has a phone"
MAX_TEMPLATE = 5000
# An SMS says what and where in one short text; the page behind the link says the rest.
MAX_MESSAGE = 300


def _normalized(phone: str) -> str:
    return re.sub(r"[ ().-]", "", phone)


def content_type(config: dict) -> str:
    for name, value in (config.get("headers") or {}).items():
        if name.lower() == "content-type":
            return value.lower()
    template = config.get("body_template") or ""
    return "application/json" if JSON_LIKE.match(template) else "text/plain; charset=utf-8"


def _escape_for(kind: str):
    if "json" in kind:
        return lambda value: json.dumps(value, ensure_ascii=False)[1:-1]
    if "x-www-form-urlencoded" in kind:
        return quote_plus
    return lambda value: value


def fill(template: str, values: dict[str, str], escape) -> str:
    for key in PLACEHOLDERS:
        template = template.replace("{" + key + "}", escape(values.get(key, "")))
    return template


class SmsTransport(Transport):
    kind = "sms"
    config_keys = ("url", "method", "headers", "body_template", "to")
    secret_keys = ("token",)
    room = False
    form_fields = (
        FormField(
            "url",
            "Provider URL",
            widget="url",
            required=True,
            help="May hold {phone} and {message} (URL-encoded), e.g. for a GET provider.",
        ),
        FormField("method", "Method", widget="select", choices=METHODS),
        FormField("headers", "Headers", widget="headers", help="One per line as Name: value."),
        FormField(
            "body_template",
            "Body template",
            widget="template",
            help='With {phone} and {message}, e.g. {"to": "{phone}", "text": "{message}"}. '
            "A JSON template gets JSON-escaped values.",
        ),
        FormField(
            "to",
            "Also send to",
            widget="lines",
            help="Numbers that get every message, one per line (e.g. the duty phone).",
        ),
        FormField(
            "token",
            "API token",
            widget="secret",
            help="Sent as Authorization: Bearer <token>, or wherever {token} appears.",
        ),
    )

    def check(self, config: dict, errors: FieldErrors) -> dict:
        url = check_url(config, errors, what="the provider's URL")
        method = config.get("method") or "POST"
        if not isinstance(method, str) or method.upper() not in METHODS:
            errors.add("config.method", "one of " + ", ".join(METHODS))
            method = "POST"
        method = method.upper()
        headers = check_headers(config, errors)
        template = config.get("body_template") or ""
        if not isinstance(template, str):
            errors.add("config.body_template", "a string")
            template = ""
        elif len(template) > MAX_TEMPLATE:
            errors.add("config.body_template", f"at most {MAX_TEMPLATE} characters")
        elif method == "GET" and template.strip():
            errors.add(
                "config.body_template",
                "a GET request has no body: put {phone} and {message} in the URL",
            )
        elif url and "{phone}" not in url and "{phone}" not in template:
            errors.add(
                "config.body_template", "must contain {phone} (here or in the URL): whom to send to"
            )
        elif "json" in content_type({"headers": headers, "body_template": template}):
            sample = fill(template, dict.fromkeys(PLACEHOLDERS, "x"), _escape_for("json"))
            try:
                json.loads(sample)
            except ValueError:
                errors.add(
                    "config.body_template",
                    "not valid JSON once {phone}, {message}, ... are filled in",
                )
        to = check_list(config, errors, valid=is_phone, item="a phone number")
        return {
            "url": url,
            "method": method,
            "headers": headers,
            "body_template": template,
            "to": to,
        }

    def describe(self, config: dict) -> str:
        return f"{config.get('method', 'POST')} {origin(config.get('url', ''))}"

    def targets(self, *, config: dict, recipients: Sequence[Recipient]) -> list[Target]:
        phones: dict[str, str] = {}
        for phone in [*(config.get("to") or []), *(r.phone for r in recipients)]:
            if phone and _normalized(phone) not in phones:
                phones[_normalized(phone)] = phone
        if not phones:
            return [Target(recipient="", problem=NO_PHONE)]
        return [Target(recipient=phone) for phone in phones.values()]

    def text(self, envelope: Envelope) -> str:
        url = envelope.message.get("url") or ""
        text = f"[opscenter] {envelope.headline()}"
        room = MAX_MESSAGE - len(url) - 1
        if len(text) > room:
            text = text[: max(room - 1, 0)] + "…"
        return f"{text} {url}".strip()

    def send(self, envelope: Envelope, *, config: dict, secrets: dict[str, str]) -> int | None:
        token = secrets.get("token", "")
        values = {
            "phone": envelope.recipient,
            "message": self.text(envelope),
            "title": envelope.message.get("title", ""),
            "url": envelope.message.get("url", ""),
            "event": envelope.event,
            "severity": envelope.message.get("severity", ""),
            "token": token,
        }
        method = config.get("method", "POST")
        kind = content_type(config)
        url = fill(config["url"], values, lambda value: quote(value, safe=""))
        headers = {
            name: fill(value, values, str) for name, value in (config.get("headers") or {}).items()
        }
        template = config.get("body_template", "")
        uses_token = "{token}" in config["url"] + template + "".join(
            (config.get("headers") or {}).values()
        )
        if token and not uses_token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if method != "GET":
            if not any(name.lower() == "content-type" for name in headers):
                headers["Content-Type"] = kind
            data = fill(template, values, _escape_for(kind)).encode()
        return http.request(method, url, data=data, headers=headers).status_code
