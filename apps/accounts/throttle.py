"""Failed-login throttling, as django-axes calls it (settings AXES_*): whose address a
login comes from, and the page a locked-out login answers."""

import datetime
import ipaddress
import math

from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Max
from django.shortcuts import render

from apps.core import clock


def client_ip(request) -> str | None:
    """The client's address: the connection's, or behind OPSCENTER_PROXY_COUNT trusted
    proxies the one the nearest of them saw (X-Forwarded-For entries further left are
    whatever the client claimed, so they are never trusted)."""
    remote = request.META.get("REMOTE_ADDR")
    count = settings.OPSCENTER_PROXY_COUNT
    if count <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < count:
        return remote
    candidate = forwarded[-count]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


def unlocked_at(*, username: str, ip_address: str | None) -> datetime.datetime | None:
    """When this username may log in from this address again: the cool-off counted from
    the last failure recorded (failures while locked are not recorded)."""
    cool_off = get_cool_off()
    if cool_off is None:
        return None
    last = AccessAttempt.objects.filter(username=username, ip_address=ip_address).aggregate(
        last=Max("attempt_time")
    )["last"]
    return (last or clock.now()) + cool_off


def lockout_response(request, original_response, credentials):
    """The login page's answer while locked (429): what happened, for how long, and that
    other users and addresses are not affected."""
    username = get_client_username(request, credentials) or ""
    until = unlocked_at(username=username, ip_address=getattr(request, "axes_ip_address", None))
    minutes = None
    if until is not None:
        minutes = max(1, math.ceil((until - clock.now()).total_seconds() / 60))
    response = render(
        request,
        "accounts/locked.html",
        {
            "username": username,
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "until": until,
            "minutes": minutes,
        },
        status=429,
    )
    if minutes is not None:
        response["Retry-After"] = str(minutes * 60)
    return response
