"""Writes to accounts: a user's own contact details (email, phone, chat ids), which
notifications use to reach and @-mention them; API tokens made and revoked."""

import datetime
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from apps.audit.services import operation_record
from apps.core import clock
from apps.core.errors import PermissionDenied, ValidationFailed

from .models import PHONE_RE, ApiToken, Profile
from .timezones import is_timezone_name

# Chat ids are opaque to opscenter, but never spaces or markup: they go into messages.
CHAT_ID_RE = re.compile(r"^[A-Za-z0-9_.@+:-]{1,100}$")
SLACK_ID_RE = re.compile(r"^[UW][A-Z0-9]{2,20}$")
PROFILE_FIELDS = (
    "email",
    "phone",
    "dingtalk_id",
    "feishu_id",
    "wecom_id",
    "slack_id",
    "timezone",
)


def profile_update(*, user, fields: dict, source: str = "ui") -> Profile:
    """Change some of PROFILE_FIELDS (`email` is the user's own); blank clears one (a blank
    timezone: times in the project's zone, apps.accounts.timezones)."""
    errors: list[dict] = []
    clean: dict[str, str] = {}
    for name, value in fields.items():
        if name not in PROFILE_FIELDS:
            errors.append({"field": name, "message": "unknown field"})
            continue
        if not isinstance(value, str):
            errors.append({"field": name, "message": "a string"})
            continue
        value = value.strip()
        clean[name] = value
        if not value:
            continue
        if name == "email":
            try:
                validate_email(value)
            except ValidationError:
                errors.append({"field": "email", "message": "not an email address"})
        elif name == "phone":
            if not PHONE_RE.match(value):
                errors.append(
                    {"field": "phone", "message": "digits, with an optional + and spaces or dashes"}
                )
        elif name == "slack_id":
            if not SLACK_ID_RE.match(value):
                errors.append(
                    {"field": "slack_id", "message": "a Slack member id such as U024BE7LH"}
                )
        elif name == "timezone":
            if not is_timezone_name(value):
                errors.append(
                    {
                        "field": "timezone",
                        "message": f"unknown timezone {value!r}: an IANA name such as "
                        "Asia/Shanghai or Europe/Berlin, or empty for the project's",
                    }
                )
        elif not CHAT_ID_RE.match(value):
            errors.append(
                {"field": name, "message": "up to 100 letters, digits and _ . @ + : - (no spaces)"}
            )
    if errors:
        names = ", ".join(dict.fromkeys(e["field"] for e in errors))
        raise ValidationFailed(f"invalid profile: {names}", errors)
    with transaction.atomic():
        profile = Profile.objects.filter(user=user).first() or Profile(user=user)
        changed = [k for k, v in clean.items() if k != "email" and getattr(profile, k) != v]
        for key in changed:
            setattr(profile, key, clean[key])
        if changed and profile.pk:
            profile.save(update_fields=changed)
        elif changed:
            profile.save()
        if "email" in clean and clean["email"] != user.email:
            user.email = clean["email"]
            user.save(update_fields=["email"])
            changed.append("email")
        if changed:
            operation_record(
                user=user,
                source=source,
                action="profile.update",
                object_type="user",
                object_id=user.get_username(),
                detail={"changed": changed},
            )
    return profile


# Ten years: a longer lifetime is "never" in all but name; say 0 for that.
TOKEN_MAX_DAYS = 3650


def token_create(
    *, user, name: str, days: int | None = None, by, source: str = "ui"
) -> tuple[ApiToken, str]:
    """A new API token for `user` and its key, which is not kept: the caller shows it once.
    It expires after `days` (OPSCENTER_TOKEN_DAYS when None; 0: never). `by` is who made
    it (None: the server's command line)."""
    if days is None:
        days = settings.OPSCENTER_TOKEN_DAYS
    errors: list[dict] = []
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        errors.append({"field": "name", "message": "a name to recognise the token by"})
    elif len(name) > 100:
        errors.append({"field": "name", "message": "at most 100 characters"})
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= TOKEN_MAX_DAYS:
        errors.append(
            {"field": "days", "message": f"whole days from 1 to {TOKEN_MAX_DAYS}, or 0 for never"}
        )
    if not user.is_active:
        errors.append({"field": "user", "message": "inactive: a token would not work"})
    if errors:
        names = ", ".join(dict.fromkeys(e["field"] for e in errors))
        raise ValidationFailed(f"invalid token: {names}", errors)
    expires_at = clock.now() + datetime.timedelta(days=days) if days else None
    with transaction.atomic():
        token, key = ApiToken.issue(user=user, name=name, expires_at=expires_at)
        operation_record(
            user=by,
            source=source,
            action="token.create",
            object_type="api_token",
            object_id=token.prefix,
            detail={
                "user": user.get_username(),
                "name": name,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
    return token, key


def token_revoke(*, token: ApiToken, by, source: str = "ui") -> bool:
    """Revoke a token at once: its owner or a superuser may (None: the server's command
    line). False: it was revoked already, and nothing changed."""
    if by is not None and by.pk != token.user_id and not by.is_superuser:
        raise PermissionDenied("only its owner or a superuser may revoke a token")
    now = clock.now()
    with transaction.atomic():
        # Conditional: of two revokes at once, one changes the row and is recorded.
        changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=now
        )
        if not changed:
            return False
        token.revoked_at = now
        operation_record(
            user=by,
            source=source,
            action="token.revoke",
            object_type="api_token",
            object_id=token.prefix,
            detail={"user": token.user.get_username(), "name": token.name},
        )
    return True
