"""WeCom (企业微信) group robot: a text message to the robot's webhook URL (its `key` is
in the URL; WeCom robots have no signing secret).

@-mentions: text.mentioned_list with each recipient's WeCom user id, and
text.mentioned_mobile_list with the phone of those who have none. WeCom answers HTTP 200
with {"errcode": 0, "errmsg": "ok"}; another errcode is a refusal (45009, over the
rate limit, is retried).
"""

from . import http
from .base import Envelope, FieldErrors, FormField, Transport, check_url, plain_text

RATE_LIMITED = frozenset({45009})
MAX_CONTENT = 2000  # WeCom refuses text content over 2048 bytes


class WeComTransport(Transport):
    kind = "wecom"
    config_keys = ("url",)
    form_fields = (
        FormField(
            "url",
            "Robot webhook URL",
            widget="url",
            required=True,
            help="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…",
        ),
    )

    def check(self, config: dict, errors: FieldErrors) -> dict:
        return {"url": check_url(config, errors, what="the robot's webhook URL")}

    def send(self, envelope: Envelope, *, config: dict, secrets: dict[str, str]) -> int | None:
        user_ids: list[str] = []
        mobiles: list[str] = []
        for recipient in envelope.recipients:
            chat_id = (recipient.get("chat_ids") or {}).get("wecom")
            if chat_id:
                user_ids.append(chat_id)
            elif recipient.get("phone"):
                mobiles.append(recipient["phone"])
        content = plain_text(envelope)
        if len(content.encode()) > MAX_CONTENT:
            content = content.encode()[:MAX_CONTENT].decode("utf-8", "ignore") + "…"
        body = {
            "msgtype": "text",
            "text": {
                "content": content,
                "mentioned_list": list(dict.fromkeys(user_ids)),
                "mentioned_mobile_list": list(dict.fromkeys(mobiles)),
            },
        }
        response = http.request("POST", config["url"], json=body)
        http.robot_answer(
            response,
            code_keys=("errcode",),
            message_keys=("errmsg",),
            retry_codes=RATE_LIMITED,
            who="WeCom",
        )
        return response.status_code
