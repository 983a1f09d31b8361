import datetime
import hashlib
import re
import secrets

from django.conf import settings
from django.db import models

from .choices import TokenState


class ApiToken(models.Model):
    """A bearer token for the JSON API. Only its hash is stored: the key is shown once,
    when it is made. A token stops working when it expires or is revoked (kept, so its
    owner still sees it listed, until the user goes)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12, help_text="first characters, to recognise it")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="empty: never")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.user} {self.prefix}…"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @classmethod
    def issue(
        cls, *, user, name: str = "", expires_at: datetime.datetime | None = None
    ) -> tuple["ApiToken", str]:
        """A new token and its key (the only time the key exists outside the caller)."""
        key = "ops_" + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user,
            name=name,
            prefix=key[:10],
            key_hash=cls.hash_key(key),
            expires_at=expires_at,
        )
        return token, key

    def state(self, now: datetime.datetime) -> TokenState:
        if self.revoked_at is not None:
            return TokenState.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return TokenState.EXPIRED
        return TokenState.ACTIVE


# A phone number as people write it: digits with an optional +, spaces, dots, dashes, ().
PHONE_RE = re.compile(r"^\+?[0-9][0-9 ().-]{2,30}$")


class Profile(models.Model):
    """How to reach a user: the email is the user's own; phone and chat ids are here, for
    SMS and phone providers and for @-mentions in robot channels."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    phone = models.CharField(max_length=32, blank=True)
    dingtalk_id = models.CharField("DingTalk user id or mobile", max_length=100, blank=True)
    feishu_id = models.CharField("Feishu open_id", max_length=100, blank=True)
    wecom_id = models.CharField("WeCom user id", max_length=100, blank=True)
    slack_id = models.CharField("Slack member id", max_length=100, blank=True)
    # Empty: a page about one project shows its times in the project's zone, any other
    # page in the server's TIME_ZONE (apps.accounts.timezones).
    timezone = models.CharField(
        max_length=64, blank=True, help_text="IANA name such as Asia/Shanghai; empty: the project's"
    )

    def __str__(self) -> str:
        return f"profile of {self.user}"

    @classmethod
    def of(cls, user) -> "Profile":
        profile, _ = cls.objects.get_or_create(user=user)
        return profile
