"""The timezone a page shows its times in: the viewer's own (their profile's), else the
project's where the page is about one project, else the server's TIME_ZONE.

The middleware activates it for the request (django.utils.timezone.activate), so every
`when` filter and `localtime` writes the same zone. A view about one project (an
instance, a node, a backfill...) calls `project_page` with it: without a zone of their
own, the viewer then reads that project's clock, the one its schedules are written in.
"""

import functools
import zoneinfo

from django.utils import timezone

# The viewer's choice ("" for none) is kept in the session from the login on, so a page
# costs no query for it; saving the profile updates the session it was saved from (the
# user's other sessions read it at their next login).
SESSION_KEY = "opscenter_timezone"


@functools.cache
def timezone_names() -> tuple[str, ...]:
    """Every IANA zone name this machine knows, sorted: the profile form's choices."""
    return tuple(sorted(zoneinfo.available_timezones()))


@functools.cache
def _timezone_name_set() -> frozenset[str]:
    return frozenset(timezone_names())


def is_timezone_name(value: str) -> bool:
    return value in _timezone_name_set()


def viewer_timezone(request) -> str:
    """The zone the signed-in viewer chose, or ""."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return ""
    session = getattr(request, "session", None)
    if session is None:
        return _profile_timezone(user)
    name = session.get(SESSION_KEY)
    if name is None:
        name = _profile_timezone(user)
        session[SESSION_KEY] = name
    return name if is_timezone_name(name) else ""


def remember_at_login(sender, request, user, **kwargs) -> None:
    """The session learns the zone when it is made, so no page has to write it later."""
    session = getattr(request, "session", None)
    if session is not None:
        session[SESSION_KEY] = _profile_timezone(user)


def remember(request, name: str) -> None:
    """After the viewer changed their zone: this session uses it from the next page on."""
    request.session[SESSION_KEY] = name
    request.viewer_timezone = name


def project_page(request, project) -> None:
    """This page is about `project`: its times are in the project's zone, unless the
    viewer chose a zone of their own."""
    if project is not None and not getattr(request, "viewer_timezone", ""):
        timezone.activate(project.tz)


def _profile_timezone(user) -> str:
    from .models import Profile

    return Profile.objects.filter(user=user).values_list("timezone", flat=True).first() or ""


class ViewerTimezoneMiddleware:
    """Activates the page's timezone for the request (after CurrentProjectMiddleware: a
    chosen project's zone applies to every page while it is chosen). The API answers ISO
    8601 with offsets and is left alone."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/"):
            return self.get_response(request)
        request.viewer_timezone = viewer_timezone(request)
        project = getattr(request, "project", None)
        if request.viewer_timezone:
            timezone.activate(zoneinfo.ZoneInfo(request.viewer_timezone))
        elif project is not None:
            timezone.activate(project.tz)
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
