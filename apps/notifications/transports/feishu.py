"""Feishu / Lark custom bot: a text message to the bot's webhook URL.

Signing ("签名校验"), as Feishu documents it: string_to_sign =
"<timestamp in seconds>\\n<secret>" is the HMAC-SHA256 *key*, over an empty message;
the digest, Base64-encoded, travels in the body as "sign" with "timestamp" (a string).
@-mentions: <at user_id="ou_...">name</at> for each recipient's Feishu open_id.
Feishu answers HTTP 200 with {"code": 0, ...} (older bots: {"StatusCode": 0}); another
code is a refusal (11232, frequency limited, is retried).
"""

import base64
import hashlib
import hmac
from html import escape

from . import http
from .base import Envelope, FieldErrors, FormField, Transport, check_url, plain_text

RATE_LIMITED = frozenset({11232})


def sign(secret: str, timestamp_s: int) -> str:
    string_to_sign = f"{timestamp_s}\n{secret}"
    digest = hmac.new(string_to_sign.encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class FeishuTransport(Transport):
    kind = "feishu"
    config_keys = ("url",)
    secret_keys = ("secret",)
    form_fields = (
        FormField(
            "url",
            "Bot webhook URL",
            widget="url",
            required=True,
            help="https://open.feishu.cn/open-apis/bot/v2/hook/… (Lark: open.larksuite.com)",
        ),
        FormField(
            "secret",
            "Signing secret",
            widget="secret",
            help="The bot's 签名校验 secret, when its security setting signs.",
        ),
    )

    def check(self, config: dict, errors: FieldErrors) -> dict:
        return {"url": check_url(config, errors, what="the bot's webhook URL")}

    def send(self, envelope: Envelope, *, config: dict, secrets: dict[str, str]) -> int | None:
        mentions = " ".join(
            f'<at user_id="{escape(chat_id)}">{escape(r["username"])}</at>'
            for r in envelope.recipients
            if (chat_id := (r.get("chat_ids") or {}).get("feishu"))
        )
        body: dict = {
            "msg_type": "text",
            "content": {"text": plain_text(envelope, mentions=mentions)},
        }
        if secrets.get("secret"):
            timestamp = int(envelope.now.timestamp())
            body["timestamp"] = str(timestamp)
            body["sign"] = sign(secrets["secret"], timestamp)
        response = http.request("POST", config["url"], json=body)
        http.robot_answer(
            response,
            code_keys=("code", "StatusCode"),
            message_keys=("msg", "StatusMessage"),
            retry_codes=RATE_LIMITED,
            who="Feishu",
        )
        return response.status_code
