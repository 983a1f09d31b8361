from .selectors import projects_visible_to

SESSION_KEY = "opscenter_project"


class CurrentProjectMiddleware:
    """Sets request.project: the project chosen in the switcher (?project=CODE, kept in
    the session), or None for "all my projects"."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.project = None
        if request.path.startswith("/api/"):
            # The API names projects in its parameters; reading the session (and the
            # user behind it) here would cost a token-authenticated call two queries.
            return self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            code = request.GET.get("project")
            if code is not None:
                request.session[SESSION_KEY] = code
            code = request.session.get(SESSION_KEY) or ""
            if code:
                request.project = projects_visible_to(user).filter(code=code).first()
        return self.get_response(request)
