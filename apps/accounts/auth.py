from django.utils import timezone
from ninja.security import HttpBearer, SessionAuth

from .models import ApiToken

__all__ = ["BearerTokenAuth", "SessionAuth"]


class BearerTokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`; tokens come from the UI or `opscenter token create`."""

    def authenticate(self, request, token: str):
        found = (
            ApiToken.objects.select_related("user")
            .filter(key_hash=ApiToken.hash_key(token), user__is_active=True)
            .first()
        )
        if found is None:
            return None
        ApiToken.objects.filter(pk=found.pk).update(last_used_at=timezone.now())
        request.user = found.user
        return found.user
