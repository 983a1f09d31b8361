"""Each transport against a real local server: what it sends, how it signs, how it reads
the answer. Signatures are recomputed here from the documented algorithms."""

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, quote_plus

import pytest

from apps.notifications import services
from apps.notifications.services import recipients_of

from .helpers import NOW, SECRET, deliver_all, message, send_one

pytestmark = pytest.mark.django_db


# --- webhook ------------------------------------------------------------------------------


def test_webhook_posts_the_documented_body_signed_over_timestamp_and_raw_body(
    http_receiver, make_channel, people
):
    channel = make_channel(
        "webhook",
        url=http_receiver.url_for("/alerts?team=data"),
        headers={"X-Team": "data"},
        secrets={"secret": SECRET},
    )
    delivery = send_one(channel, recipients=recipients_of(["olga"]))
    assert delivery.state == "sent" and delivery.tries == 1 and delivery.last_status == 200
    (request,) = http_receiver.requests
    assert request.method == "POST" and request.path == "/alerts"
    assert request.query == {"team": "data"}
    assert request.header("Content-Type") == "application/json"
    assert request.header("X-Team") == "data"
    assert request.header("X-Opscenter-Event") == "fired"
    assert request.header("X-Opscenter-Delivery") == str(delivery.pk)
    timestamp = request.header("X-Opscenter-Timestamp")
    assert timestamp == str(int(NOW.timestamp()))
    expected = hmac.new(
        SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    assert request.header("X-Opscenter-Signature") == f"sha256={expected}"
    body = request.json
    assert body == {
        "version": 1,
        "event": "fired",
        "delivery": delivery.pk,
        "alert": None,
        "severity": "critical",
        "title": "[CRITICAL] load failed",
        "text": message().text,
        "url": "http://ops.example.com/monitoring/alerts/7/",
        "fields": {"node": "load", "count": 3},
        "recipients": [
            {
                "username": "olga",
                "email": "olga@example.com",
                "phone": "+86 138 0000 1111",
                "chat_ids": {
                    "dingtalk": "13800001111",
                    "feishu": "ou_olga",
                    "wecom": "olga.w",
                    "slack": "U0OLGA",
                },
            }
        ],
        "sent_at": NOW.isoformat(),
    }


def test_webhook_without_a_secret_is_not_signed(http_receiver, make_channel):
    delivery = send_one(make_channel("webhook", url=http_receiver.url_for()))
    assert delivery.state == "sent"
    (request,) = http_receiver.requests
    assert request.header("X-Opscenter-Signature") is None
    assert request.header("X-Opscenter-Timestamp") == str(int(NOW.timestamp()))


# --- DingTalk -----------------------------------------------------------------------------


def test_dingtalk_signs_the_url_as_dingtalk_documents_and_mentions_by_mobile_and_id(
    http_receiver, make_channel, people
):
    channel = make_channel(
        "dingtalk",
        url=http_receiver.url_for("/robot/send?access_token=tok123"),
        secrets={"secret": SECRET},
    )
    delivery = send_one(channel, recipients=recipients_of(["olga", "dave", "vera"]))
    assert delivery.state == "sent" and delivery.last_status == 200
    assert delivery.recipient == "#dingtalk-channel"
    (request,) = http_receiver.requests
    assert request.path == "/robot/send"
    assert request.query["access_token"] == "tok123"
    timestamp = request.query["timestamp"]
    assert timestamp == str(int(NOW.timestamp() * 1000))  # milliseconds
    # string_to_sign = timestamp + "\n" + secret, HMAC-SHA256 keyed by the secret, Base64.
    digest = hmac.new(SECRET.encode(), f"{timestamp}\n{SECRET}".encode(), hashlib.sha256).digest()
    expected = base64.b64encode(digest).decode()
    assert request.query["sign"] == expected
    # ... and URL-encoded in the query as sent.
    assert f"&sign={quote_plus(expected)}" in request.raw_query
    body = request.json
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "[CRITICAL] load failed"
    assert "Node load failed in project acme." in body["markdown"]["text"]
    assert "(http://ops.example.com/monitoring/alerts/7/)" in body["markdown"]["text"]
    # olga's DingTalk id is a mobile number; dave's is a user id; vera has neither.
    assert body["at"] == {
        "atMobiles": ["13800001111"],
        "atUserIds": ["dave-staff-id"],
        "isAtAll": False,
    }
    assert "@13800001111" in body["markdown"]["text"]
    assert "@dave-staff-id" in body["markdown"]["text"]


def test_dingtalk_without_secret_sends_no_signature(http_receiver, make_channel):
    delivery = send_one(make_channel("dingtalk", url=http_receiver.url_for("/robot/send?a=1")))
    assert delivery.state == "sent"
    assert set(http_receiver.requests[0].query) == {"a"}


def test_dingtalk_error_code_in_a_200_answer_is_a_permanent_failure(http_receiver, make_channel):
    http_receiver.script((200, {"errcode": 310000, "errmsg": "sign not match"}))
    channel = make_channel(
        "dingtalk",
        url=http_receiver.url_for("/robot/send?access_token=tok123"),
        secrets={"secret": SECRET},
    )
    delivery = send_one(channel)
    assert delivery.state == "failed" and delivery.tries == 1
    assert delivery.last_status == 200
    assert "errcode 310000: sign not match" in delivery.last_error
    assert "tok123" not in delivery.last_error and "sign=" not in delivery.last_error
    assert services.deliveries_retry_due(now=NOW.replace(hour=5)) == 0


def test_dingtalk_rate_limit_code_is_retried(http_receiver, make_channel):
    http_receiver.script((200, {"errcode": 130101, "errmsg": "send too fast"}))
    delivery = send_one(make_channel("dingtalk", url=http_receiver.url_for("/robot/send")))
    assert delivery.state == "pending" and delivery.next_try_at is not None
    assert "130101" in delivery.last_error


# --- Feishu -------------------------------------------------------------------------------


def test_feishu_signs_in_the_body_as_feishu_documents_and_mentions_open_ids(
    http_receiver, make_channel, people
):
    channel = make_channel(
        "feishu",
        url=http_receiver.url_for("/open-apis/bot/v2/hook/abc-def"),
        secrets={"secret": SECRET},
    )
    delivery = send_one(channel, recipients=recipients_of(["olga", "dave"]))
    assert delivery.state == "sent"
    body = http_receiver.requests[0].json
    assert body["timestamp"] == str(int(NOW.timestamp()))  # seconds, as a string
    # string_to_sign = timestamp + "\n" + secret is the HMAC-SHA256 key; the message is empty.
    digest = hmac.new(f"{body['timestamp']}\n{SECRET}".encode(), b"", hashlib.sha256).digest()
    assert body["sign"] == base64.b64encode(digest).decode()
    assert body["msg_type"] == "text"
    text = body["content"]["text"]
    assert text.startswith("[CRITICAL] load failed\nNode load failed")
    assert "http://ops.example.com/monitoring/alerts/7/" in text
    assert '<at user_id="ou_olga">olga</at>' in text
    assert "dave" not in text  # no Feishu id


def test_feishu_refusal_code_fails_with_its_message(http_receiver, make_channel):
    http_receiver.script(
        (200, {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"})
    )
    channel = make_channel("feishu", url=http_receiver.url_for("/open-apis/bot/v2/hook/abc-def"))
    delivery = send_one(channel)
    assert delivery.state == "failed"
    assert "code 19021: sign match fail" in delivery.last_error
    assert "abc-def" not in delivery.last_error


# --- WeCom and Slack ----------------------------------------------------------------------


def test_wecom_mentions_user_ids_and_falls_back_to_mobiles(http_receiver, make_channel, people):
    channel = make_channel("wecom", url=http_receiver.url_for("/cgi-bin/webhook/send?key=k-123"))
    delivery = send_one(channel, recipients=recipients_of(["olga", "dave"]))
    assert delivery.state == "sent"
    request = http_receiver.requests[0]
    assert request.query == {"key": "k-123"}
    body = request.json
    assert body["msgtype"] == "text"
    assert body["text"]["mentioned_list"] == ["olga.w"]
    assert body["text"]["mentioned_mobile_list"] == ["13900002222"]
    assert body["text"]["content"].startswith("[CRITICAL] load failed")


def test_wecom_errcode_fails(http_receiver, make_channel):
    http_receiver.script((200, {"errcode": 93000, "errmsg": "invalid webhook url"}))
    delivery = send_one(make_channel("wecom", url=http_receiver.url_for("/send?key=k-123")))
    assert delivery.state == "failed"
    assert delivery.last_error.endswith("errcode 93000: invalid webhook url")
    assert "k-123" not in delivery.last_error


def test_slack_mentions_members_and_escapes_text(http_receiver, make_channel, people):
    http_receiver.script((200, "ok"))
    channel = make_channel("slack", url=http_receiver.url_for("/services/T0/B0/xyz"))
    delivery = send_one(channel, recipients=recipients_of(["olga", "dave"]), text="a <b> & c")
    assert delivery.state == "sent"
    text = http_receiver.requests[0].json["text"]
    assert text.splitlines() == [
        "*[CRITICAL] load failed*",
        "a &lt;b&gt; &amp; c",
        "<http://ops.example.com/monitoring/alerts/7/|Open in opscenter>",
        "<@U0OLGA> <@U0DAVE>",
    ]


def test_slack_4xx_is_permanent_and_names_no_path(http_receiver, make_channel):
    http_receiver.script((404, "no_service"))
    delivery = send_one(make_channel("slack", url=http_receiver.url_for("/services/T0/B0/xyz")))
    assert delivery.state == "failed" and delivery.last_status == 404
    assert delivery.last_error == f"{http_receiver.url} answered 404: no_service"


# --- SMS and phone ------------------------------------------------------------------------


def test_sms_one_delivery_per_phone_with_a_json_template_and_bearer_token(
    http_receiver, make_channel, people
):
    channel = make_channel(
        "sms",
        url=http_receiver.url_for("/sms/send"),
        body_template='{"to": "{phone}", "text": "{message}"}',
        to=["+1 555 0100"],
        secrets={"token": "tok-sms-secret"},
    )
    deliveries = services.notify(
        alert_id=None,
        message=message(title='[CRITICAL] "load" failed'),
        channels=[channel],
        recipients=recipients_of(["olga", "dave", "vera"]),
        now=NOW,
    )
    assert [d.recipient for d in deliveries] == ["+1 555 0100", "+86 138 0000 1111", "13900002222"]
    assert [d.state for d in deliver_all(deliveries)] == ["sent"] * 3
    bodies = [r.json for r in http_receiver.requests]
    assert [b["to"] for b in bodies] == ["+1 555 0100", "+86 138 0000 1111", "13900002222"]
    # JSON-escaped quotes; one short text with the link.
    assert bodies[0]["text"] == (
        '[opscenter] [CRITICAL] "load" failed http://ops.example.com/monitoring/alerts/7/'
    )
    request = http_receiver.requests[0]
    assert request.header("Authorization") == "Bearer tok-sms-secret"
    assert request.header("Content-Type") == "application/json"


def test_sms_get_provider_with_placeholders_in_the_url_and_token_in_a_header(
    http_receiver, make_channel, people
):
    channel = make_channel(
        "sms",
        url=http_receiver.url_for("/send?to={phone}&msg={message}"),
        method="GET",
        headers={"X-Api-Key": "{token}"},
        secrets={"token": "tok-sms-secret"},
    )
    delivery = send_one(channel, recipients=recipients_of(["dave"]))
    assert delivery.state == "sent"
    request = http_receiver.requests[0]
    assert request.method == "GET" and request.body == b""
    assert request.query["to"] == "13900002222"
    assert request.query["msg"].startswith("[opscenter] [CRITICAL] load failed")
    assert request.header("X-Api-Key") == "tok-sms-secret"
    assert request.header("Authorization") is None


def test_sms_form_encoded_template(http_receiver, make_channel, people):
    channel = make_channel(
        "sms",
        url=http_receiver.url_for("/send"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body_template="to={phone}&text={message}",
    )
    send_one(channel, recipients=recipients_of(["olga"]))
    request = http_receiver.requests[0]
    form = parse_qs(request.body.decode())
    assert form["to"] == ["+86 138 0000 1111"]
    assert form["text"][0].startswith("[opscenter] [CRITICAL] load failed")


def test_phone_call_text_has_no_link(http_receiver, make_channel, people):
    channel = make_channel(
        "phone",
        url=http_receiver.url_for("/call"),
        body_template='{"n": "{phone}", "say": "{message}"}',
    )
    delivery = send_one(channel, recipients=recipients_of(["dave"]))
    assert delivery.state == "sent" and delivery.kind == "phone"
    assert http_receiver.requests[0].json == {
        "n": "13900002222",
        "say": "opscenter alert. [CRITICAL] load failed",
    }


def test_sms_without_any_phone_is_recorded_as_failed(http_receiver, make_channel, users):
    channel = make_channel("sms", url=http_receiver.url_for("/send"), body_template="{phone}")
    (delivery,) = services.notify(
        alert_id=None,
        message=message(),
        channels=[channel],
        recipients=recipients_of(["vera"]),
        now=NOW,
    )
    assert delivery.state == "failed" and "no phone number" in delivery.last_error
    assert http_receiver.requests == []


# --- email --------------------------------------------------------------------------------


def test_email_one_message_per_address_through_smtp(smtp_server, make_channel, people):
    channel = make_channel("email", to=["oncall@example.com", "OLGA@example.com"])
    deliveries = services.notify(
        alert_id=None,
        message=message(),
        channels=[channel],
        recipients=recipients_of(["olga", "dave"]),
        now=NOW,
    )
    # olga's address is in `to` already (addresses compare without case).
    assert [d.recipient for d in deliveries] == [
        "oncall@example.com",
        "OLGA@example.com",
        "dave@example.com",
    ]
    assert [d.state for d in deliver_all(deliveries)] == ["sent"] * 3
    assert [m.envelope_to for m in smtp_server.messages] == [
        ["oncall@example.com"],
        ["OLGA@example.com"],
        ["dave@example.com"],
    ]
    mail = smtp_server.messages[0]
    assert mail["Subject"] == "[CRITICAL] load failed"
    assert mail["X-Opscenter-Event"] == "fired"
    assert mail["X-Opscenter-Delivery"] == str(deliveries[0].pk)
    body = mail.get_payload(decode=True).decode()
    assert "Node load failed in project acme." in body
    assert "http://ops.example.com/monitoring/alerts/7/" in body


def test_email_refused_address_is_permanent_with_the_smtp_code(smtp_server, make_channel):
    smtp_server.refuse("gone@example.com", 550, "No such user here")
    delivery = send_one(make_channel("email", to=["gone@example.com"]))
    assert delivery.state == "failed" and delivery.last_status == 550
    assert "550 No such user here" in delivery.last_error


def test_email_temporary_refusal_is_retried(smtp_server, make_channel):
    smtp_server.refuse("busy@example.com", 451, "Try again later")
    delivery = send_one(make_channel("email", to=["busy@example.com"]))
    assert delivery.state == "pending" and delivery.last_status == 451
    assert delivery.next_try_at is not None


def test_email_server_down_is_retried(settings, closed_port, make_channel):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", closed_port
    delivery = send_one(make_channel("email", to=["a@example.com"]))
    assert delivery.state == "pending" and delivery.last_status is None
    assert delivery.last_error.startswith("cannot reach the mail server")


def test_email_without_to_mails_only_the_recipients_and_says_when_there_is_none(
    make_channel, users
):
    channel = make_channel("email")
    (delivery,) = services.notify(
        alert_id=None, message=message(), channels=[channel], recipients=[], now=NOW
    )
    assert delivery.state == "failed" and delivery.recipient == ""
    assert "no email address" in delivery.last_error
