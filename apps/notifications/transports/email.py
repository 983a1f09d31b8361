"""Email through Django's email backend (EMAIL_BACKEND, EMAIL_HOST, ...): one message per
address, to the channel's `to` addresses and every recipient's own email.

A channel without `to` mails only the people each alert names (and a test goes to the
tester). The SMTP reply code of a refusal is kept as the delivery's status: 5xx is
permanent, 4xx and lost connections are retried.
"""

import smtplib
from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email

from ..messages import Recipient
from .base import (
    Envelope,
    FieldErrors,
    FormField,
    Target,
    Transport,
    TransportError,
    check_list,
)

NO_ADDRESS = "no email address: the channel has no `to` and no recipient has an email"


def is_email(value: str) -> bool:
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


class EmailTransport(Transport):
    kind = "email"
    config_keys = ("to",)
    room = False
    form_fields = (
        FormField(
            "to",
            "Also send to",
            widget="lines",
            help="Addresses that get every message, one per line. Empty: only the people "
            "each alert names (their account email).",
        ),
    )

    def check(self, config: dict, errors: FieldErrors) -> dict:
        return {"to": check_list(config, errors, valid=is_email, item="an email address")}

    def describe(self, config: dict) -> str:
        to = config.get("to") or []
        return ", ".join(to) if to else "the alert's recipients"

    def targets(self, *, config: dict, recipients: Sequence[Recipient]) -> list[Target]:
        addresses: dict[str, str] = {}
        for address in [*(config.get("to") or []), *(r.email for r in recipients)]:
            if address and address.lower() not in addresses:
                addresses[address.lower()] = address
        if not addresses:
            return [Target(recipient="", problem=NO_ADDRESS)]
        return [Target(recipient=address) for address in addresses.values()]

    def send(self, envelope: Envelope, *, config: dict, secrets: dict[str, str]) -> int | None:
        message = envelope.message
        subject = " ".join(envelope.headline().split())[:200]
        body = "\n\n".join(
            part
            for part in [
                (message.get("text") or "").strip(),
                message.get("url") or "",
                f"-- \nopscenter · {envelope.event} · severity {message.get('severity') or '-'}",
            ]
            if part
        )
        headers = {"X-Opscenter-Event": envelope.event}
        if envelope.delivery_id is not None:
            headers["X-Opscenter-Delivery"] = str(envelope.delivery_id)
        mail = EmailMessage(subject, body, to=[envelope.recipient], headers=headers)
        try:
            mail.send(fail_silently=False)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (None, b""))
            raise _refusal(f"the mail server refused {envelope.recipient}", code, reply) from exc
        except smtplib.SMTPResponseException as exc:
            raise _refusal(
                "the mail server refused the message", exc.smtp_code, exc.smtp_error
            ) from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise TransportError("the mail server closed the connection", permanent=False) from exc
        except (OSError, smtplib.SMTPException) as exc:
            reason = (
                exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            )
            raise TransportError(
                f"cannot reach the mail server: {reason}", permanent=False
            ) from exc
        return None


def _refusal(what: str, code, reply) -> TransportError:
    if isinstance(reply, bytes):
        reply = reply.decode("utf-8", "replace")
    code = code if isinstance(code, int) else None
    said = f": {code} {' '.join(str(reply).split())}" if code else ""
    # 4xx: the server asks to try later; 5xx: it will not take this message.
    return TransportError(f"{what}{said}"[:500], permanent=bool(code and code >= 500), status=code)
