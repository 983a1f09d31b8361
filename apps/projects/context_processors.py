from .selectors import projects_visible_to


def projects(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "visible_projects": list(projects_visible_to(user).only("code", "name")),
        "current_project": getattr(request, "project", None),
    }
