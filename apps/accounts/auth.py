import datetime

from ninja.security import HttpBearer, SessionAuth

from apps.core import clock

from .models import ApiToken

__all__ = ["BearerTokenAuth", "SessionAuth"]

# last_used_at is for people ("is this token still in use?"); writing it on every request
# would make each read a write, which SQLite under a worker cluster cannot afford.
LAST_USED_PRECISION = datetime.timedelta(minutes=1)


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
        now = clock.now()
        if found.last_used_at is None or now - found.last_used_at >= LAST_USED_PRECISION:
            ApiToken.objects.filter(pk=found.pk).update(last_used_at=now)
        request.user = found.user
        return found.user
