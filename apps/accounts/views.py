"""A user's own profile: how notifications reach them."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from apps.core.errors import ValidationFailed

from .models import Profile
from .services import PROFILE_FIELDS, profile_update


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
            profile_update(user=request.user, fields=posted)
        except ValidationFailed as exc:
            errors, values, status = exc.errors, posted, 422
        else:
            messages.success(request, "Profile saved.")
            return redirect("profile")
    by_field: dict[str, list[str]] = {}
    for error in errors:
        by_field.setdefault(error["field"], []).append(error["message"])
    return render(
        request,
        "accounts/profile.html",
        {"values": values, "errors": errors, "field_errors": by_field},
        status=status,
    )
