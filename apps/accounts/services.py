"""Writes to accounts: a user's own contact details (email, phone, chat ids), which
notifications use to reach and @-mention them."""

import re

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from apps.audit.services import operation_record
from apps.core.errors import ValidationFailed

from .models import PHONE_RE, Profile

# Chat ids are opaque to opscenter, but never spaces or markup: they go into messages.
CHAT_ID_RE = re.compile(r"^[A-Za-z0-9_.@+:-]{1,100}$")
SLACK_ID_RE = re.compile(r"^[UW][A-Z0-9]{2,20}$")
PROFILE_FIELDS = ("email", "phone", "dingtalk_id", "feishu_id", "wecom_id", "slack_id")


def profile_update(*, user, fields: dict, source: str = "ui") -> Profile:
    """Change some of PROFILE_FIELDS (`email` is the user's own); blank clears one."""
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
