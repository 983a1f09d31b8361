from .selectors import projects_visible_to


def projects(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        # Lazy: read only by the switcher, so htmx partials (table refreshes every few
        # seconds while instances run) do not pay the query.
        "visible_projects": projects_visible_to(user).only("code", "name"),
        "current_project": getattr(request, "project", None),
    }
