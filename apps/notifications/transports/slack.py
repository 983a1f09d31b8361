"""Slack incoming webhook: {"text": ...} in Slack's mrkdwn, mentioning each recipient's
Slack member id as <@U...>. Slack answers 200 "ok"; its refusals are 4xx with a reason
("invalid_payload", "no_service", ...), permanent; 429 and 5xx are retried.
"""

from . import http
from .base import Envelope, FieldErrors, FormField, Transport, check_url


def escape(text: str) -> str:
    """Slack's three control characters, so text never becomes a link or a mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackTransport(Transport):
    kind = "slack"
    config_keys = ("url",)
    form_fields = (
        FormField(
            "url",
            "Incoming webhook URL",
            widget="url",
            required=True,
            help="https://hooks.slack.com/services/…",
        ),
    )

    def check(self, config: dict, errors: FieldErrors) -> dict:
        return {"url": check_url(config, errors, what="the incoming webhook URL")}

    def send(self, envelope: Envelope, *, config: dict, secrets: dict[str, str]) -> int | None:
        message = envelope.message
        lines = [f"*{escape(envelope.headline())}*"]
        if text := (message.get("text") or "").strip():
            lines.append(escape(text))
        if message.get("url"):
            lines.append(f"<{message['url']}|Open in opscenter>")
        mentions = " ".join(f"<@{escape(member)}>" for member in envelope.chat_ids("slack"))
        if mentions:
            lines.append(mentions)
        response = http.request("POST", config["url"], json={"text": "\n".join(lines)})
        return response.status_code
