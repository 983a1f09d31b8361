from django.db import models

from apps.core.choices import colored


class ChannelKind(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"
    DINGTALK = "dingtalk", "DingTalk robot"
    FEISHU = "feishu", "Feishu / Lark robot"
    WECOM = "wecom", "WeCom robot"
    SLACK = "slack", "Slack"
    SMS = "sms", "SMS (HTTP provider)"
    PHONE = "phone", "Phone call (HTTP provider)"


@colored({"pending": "gray", "sent": "green", "failed": "red", "suppressed": "light"})
class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SUPPRESSED = "suppressed", "Suppressed"
