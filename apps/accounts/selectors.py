"""Reads of accounts: a user's API tokens."""

from django.db.models import QuerySet

from .models import ApiToken


def tokens_of(*, user) -> QuerySet[ApiToken]:
    """The user's tokens, newest first, revoked and expired ones included."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")
