"""Shared helpers of the server-rendered forms: a service's field errors put back next to
the inputs they name, the status a refused form answers with, and where a saved form goes
(a plain post is redirected; an htmx post is told to go there)."""

from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django_htmx.http import HttpResponseClientRedirect

from .errors import OpscenterError
from .htmx import wants_partial


def field_errors(errors: list[dict]) -> dict[str, list[str]]:
    """{"field": [messages]} for the inputs; errors naming no field stay in the list on
    top of the form."""
    by_field: dict[str, list[str]] = {}
    for error in errors:
        if error.get("field"):
            by_field.setdefault(error["field"], []).append(error["message"])
    return by_field


def nul_errors(post: QueryDict) -> list[dict]:
    """The posted inputs holding a NUL character, which PostgreSQL cannot store: refused
    by name before a service sees them."""
    return [
        {"field": name, "message": "contains a NUL character"}
        for name, values in post.lists()
        if any("\x00" in value for value in values)
    ]


def refusal_errors(exc: OpscenterError) -> list[dict]:
    """A service's refusal as the form's error list: its field errors, else its detail."""
    return exc.errors or [{"field": "", "message": exc.detail}]


def refusal_status(exc: OpscenterError) -> int:
    """The status a form answers a refusal with: bad input is 422, never a bare 400."""
    return exc.status_code if exc.status_code != 400 else 422


def form_done(request: HttpRequest, url: str) -> HttpResponse:
    return HttpResponseClientRedirect(url) if wants_partial(request) else redirect(url)
