from django.db import models

from apps.core.choices import colored


@colored({"active": "green", "expired": "gray", "revoked": "red"})
class TokenState(models.TextChoices):
    """Whether an API token opens the API now (derived from its times, never stored)."""

    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"
