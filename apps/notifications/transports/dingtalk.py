"""DingTalk custom robot: a markdown message to the robot's webhook URL.

Signing ("加签"), as DingTalk documents it: with the robot's secret (SEC...),
string_to_sign = "<timestamp in ms>\\n<secret>", HMAC-SHA256 keyed by the secret,
Base64, URL-encoded, appended to the URL as &timestamp=...&sign=....
@-mentions: a recipient's DingTalk id (a mobile number goes to at.atMobiles, any other
id to at.atUserIds), else their phone; markdown needs the @ in the text as well.
DingTalk answers HTTP 200 with {"errcode": 0, "errmsg": "ok"}; any other errcode is a
refusal (130101, sending too fast, is retried).
"""

import base64
import hashlib
import hmac
from urllib.parse import quote_plus

from . import http
from .base import Envelope, FieldErrors, FormField, Transport, check_url, is_phone

RATE_LIMITED = frozenset({130101})


def sign(secret: str, timestamp_ms: int) -> str:
    """The `sign` query value, URL-encoded."""
    string_to_sign = f"{timestamp_ms}\n{secret}"
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={sign(secret, timestamp_ms)}"


class DingTalkTransport(Transport):
    kind = "dingtalk"
    config_keys = ("url",)
    secret_keys = ("secret",)
    form_fields = (
        FormField(
            "url",
            "Robot webhook URL",
            widget="url",
            required=True,
            help="https://oapi.dingtalk.com/robot/send?access_token=…",
        ),
        FormField(
            "secret",
            "Signing secret",
            widget="secret",
            help="The robot's 加签 secret (SEC…), when its security setting signs.",
        ),
    )

    def check(self, config: dict, errors: FieldErrors) -> dict:
        return {"url": check_url(config, errors, what="the robot's webhook URL")}

    def send(self, envelope: Envelope, *, config: dict, secrets: dict[str, str]) -> int | None:
        mobiles: list[str] = []
        user_ids: list[str] = []
        for recipient in envelope.recipients:
            chat_id = (recipient.get("chat_ids") or {}).get("dingtalk") or ""
            if chat_id and not is_phone(chat_id):
                user_ids.append(chat_id)
            elif chat_id or recipient.get("phone"):
                mobiles.append(chat_id or recipient["phone"])
        mobiles = list(dict.fromkeys(mobiles))
        user_ids = list(dict.fromkeys(user_ids))
        message = envelope.message
        parts = [f"#### {envelope.headline()}", (message.get("text") or "").strip()]
        if message.get("url"):
            parts.append(f"[Open in opscenter]({message['url']})")
        mentions = " ".join(f"@{who}" for who in [*mobiles, *user_ids])
        if mentions:
            parts.append(mentions)
        body = {
            "msgtype": "markdown",
            "markdown": {
                "title": envelope.headline()[:100],
                "text": "\n\n".join(p for p in parts if p),
            },
            "at": {"atMobiles": mobiles, "atUserIds": user_ids, "isAtAll": False},
        }
        url = config["url"]
        if secrets.get("secret"):
            url = signed_url(url, secrets["secret"], int(envelope.now.timestamp() * 1000))
        response = http.request("POST", url, json=body)
        http.robot_answer(
            response,
            code_keys=("errcode",),
            message_keys=("errmsg",),
            retry_codes=RATE_LIMITED,
            who="DingTalk",
        )
        return response.status_code
