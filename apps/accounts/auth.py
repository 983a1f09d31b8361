import datetime

from ninja.security import HttpBearer, SessionAuth

from apps.core import clock
from apps.core.errors import NotAuthenticated

from .choices import TokenState
from .models import ApiToken

__all__ = ["BearerTokenAuth", "SessionAuth"]

# last_used_at is for people ("is this token still in use?"); writing it on every request
# would make each read a write, which SQLite under a worker cluster cannot afford.
LAST_USED_PRECISION = datetime.timedelta(minutes=1)


class BearerTokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`; tokens come from the tokens page or `opscenter
    token create`. An expired or revoked token answers 401 saying so, at once: every
    request reads the token's row."""

    def authenticate(self, request, token: str):
        found = (
            ApiToken.objects.select_related("user")
            .filter(key_hash=ApiToken.hash_key(token), user__is_active=True)
            .first()
        )
        if found is None:
            return None
        now = clock.now()
        state = found.state(now)
        if state == TokenState.REVOKED:
            raise NotAuthenticated(
                f"this API token ({found.prefix}…) was revoked at "
                f"{found.revoked_at.isoformat(timespec='seconds')}",
                [{"field": "Authorization", "message": "revoked token"}],
            )
        if state == TokenState.EXPIRED:
            raise NotAuthenticated(
                f"this API token ({found.prefix}…) expired at "
                f"{found.expires_at.isoformat(timespec='seconds')}: make a new one",
                [{"field": "Authorization", "message": "expired token"}],
            )
        if found.last_used_at is None or now - found.last_used_at >= LAST_USED_PRECISION:
            ApiToken.objects.filter(pk=found.pk).update(last_used_at=now)
        request.user = found.user
        return found.user
