"""A user's own account: the profile (how notifications reach them) and API tokens."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render

from apps.core import clock
from apps.core.errors import ValidationFailed

from .models import Profile
from .selectors import tokens_of
from .services import (
    PROFILE_FIELDS,
    TOKEN_MAX_DAYS,
    profile_update,
    token_create,
    token_revoke,
)
from .timezones import remember as remember_timezone
from .timezones import timezone_names


@login_required
def profile(request):
    """GET: the form; POST: save it (422 with the errors next to their fields)."""
    # Read only: a profile row is made when there is something to keep in it.
    current = Profile.objects.filter(user=request.user).first() or Profile(user=request.user)
    values = {name: getattr(current, name, "") for name in PROFILE_FIELDS if name != "email"}
    values["email"] = request.user.email
    errors: list[dict] = []
    status = 200
    if request.method == "POST":
        posted = {name: request.POST.get(name, "") for name in PROFILE_FIELDS}
        try:
            saved = profile_update(user=request.user, fields=posted)
        except ValidationFailed as exc:
            errors, values, status = exc.errors, posted, 422
        else:
            remember_timezone(request, saved.timezone)
            messages.success(request, "Profile saved.")
            return redirect("profile")
    by_field: dict[str, list[str]] = {}
    for error in errors:
        by_field.setdefault(error["field"], []).append(error["message"])
    return render(
        request,
        "accounts/profile.html",
        {
            "values": values,
            "errors": errors,
            "field_errors": by_field,
            "timezone_names": timezone_names(),
            "server_timezone": settings.TIME_ZONE,
        },
        status=status,
    )


@login_required
def tokens(request):
    """The user's API tokens. GET: the list and the form; POST: make one, and show its
    key on this answer only (422 with the errors next to their fields)."""
    default_days = settings.OPSCENTER_TOKEN_DAYS
    values = {"name": "", "days": str(default_days)}
    errors: list[dict] = []
    created = key = None
    status = 200
    if request.method == "POST":
        values = {
            "name": request.POST.get("name", ""),
            "days": request.POST.get("days", "").strip(),
        }
        try:
            days = int(values["days"])
        except ValueError:
            days = values["days"]  # refused by token_create, with its message
        try:
            created, key = token_create(
                user=request.user, name=values["name"], days=days, by=request.user
            )
        except ValidationFailed as exc:
            errors, status = exc.errors, 422
        else:
            values = {"name": "", "days": str(default_days)}
    by_field: dict[str, list[str]] = {}
    for error in errors:
        by_field.setdefault(error["field"], []).append(error["message"])
    now = clock.now()
    rows = [{"token": token, "state": token.state(now)} for token in tokens_of(user=request.user)]
    response = render(
        request,
        "accounts/tokens.html",
        {
            "rows": rows,
            "values": values,
            "errors": errors,
            "field_errors": by_field,
            "created": created,
            "key": key,
            "default_days": default_days,
            "max_days": TOKEN_MAX_DAYS,
        },
        status=status,
    )
    # The key is on this answer alone: no cache may keep a copy.
    response["Cache-Control"] = "no-store"
    return response


@login_required
def token_revoke_view(request, token_id: int):
    """GET: ask to confirm; POST: revoke at once. Only the user's own tokens (others 404)."""
    token = get_object_or_404(tokens_of(user=request.user), pk=token_id)
    if request.method == "POST":
        if token_revoke(token=token, by=request.user):
            messages.success(
                request,
                f"Token {token.name} ({token.prefix}…) revoked: it no longer opens the API.",
            )
        else:
            messages.info(request, f"Token {token.name} ({token.prefix}…) was revoked already.")
        return redirect("tokens")
    return render(
        request,
        "accounts/token_revoke.html",
        {"token": token, "state": token.state(clock.now())},
    )
