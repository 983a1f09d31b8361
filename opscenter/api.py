"""The JSON API: one NinjaAPI, a Router per app, domain errors mapped here once."""

import json

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.http import Http404
from ninja import NinjaAPI, Swagger
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from apps.accounts.auth import BearerTokenAuth, SessionAuth
from apps.core.errors import OpscenterError

api = NinjaAPI(
    title="opscenter API",
    version="1",
    description="Operation Center for data pipelines. Lists use keyset pagination: "
    "`?limit=&cursor=` answering `{items, next_cursor}`.",
    auth=[BearerTokenAuth(), SessionAuth()],
    urls_namespace="api",
    # No online validator badge: the docs page asks nothing of the internet.
    docs=Swagger(settings={"validatorUrl": None}),
)


def _error(request, status: int, detail: str, errors: list | None = None):
    return api.create_response(request, {"detail": detail, "errors": errors or []}, status=status)


@api.exception_handler(OpscenterError)
def on_domain_error(request, exc: OpscenterError):
    return _error(request, exc.status_code, exc.detail, exc.errors)


def _field_of(loc) -> str:
    """("body", "payload", "nodes", 0, "name") -> "nodes.0.name"; ("query", "limit") -> "limit"."""
    parts = [str(part) for part in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie", "form", "file"):
        where = parts.pop(0)
        if where == "body" and parts:
            parts.pop(0)  # the endpoint's argument name
        if not parts:
            return where
    return ".".join(parts)


@api.exception_handler(NinjaValidationError)
def on_validation_error(request, exc: NinjaValidationError):
    errors = []
    for err in exc.errors:
        errors.append(
            {"field": _field_of(err.get("loc", [])), "message": err.get("msg", "invalid")}
        )
    fields = ", ".join(e["field"] for e in errors if e["field"]) or "request"
    return _error(request, 422, f"invalid input: {fields}", errors)


@api.exception_handler(DjangoValidationError)
def on_django_validation_error(request, exc: DjangoValidationError):
    if hasattr(exc, "message_dict"):
        errors = [
            {"field": field, "message": " ".join(messages)}
            for field, messages in exc.message_dict.items()
        ]
    else:
        errors = [{"field": "", "message": m} for m in exc.messages]
    return _error(request, 422, "invalid input", errors)


@api.exception_handler(AuthenticationError)
def on_auth_error(request, exc):
    return _error(request, 401, "authentication required: a session or a bearer token")


@api.exception_handler(HttpError)
def on_http_error(request, exc: HttpError):
    errors = []
    if exc.status_code == 400 and str(exc).startswith("Cannot parse request body"):
        errors = [{"field": "body", "message": "not valid JSON"}]
    return _error(request, exc.status_code, str(exc), errors)


@api.exception_handler(Http404)
def on_not_found(request, exc: Http404):
    return _error(request, 404, str(exc) or "not found")


def _fields_with_nul(request) -> list[str]:
    values = dict(getattr(request.resolver_match, "kwargs", None) or {})
    values.update(request.GET.items())
    try:
        body = json.loads(request.body or b"{}")
    except Exception:  # unreadable or not JSON: nothing to name there
        body = None
    if isinstance(body, dict):
        values.update(body)
    return [name for name, value in values.items() if "\x00" in str(value)]


@api.exception_handler(DataError)
def on_data_error(request, exc: DataError):
    # The database refused a value it cannot store (PostgreSQL keeps no NUL characters):
    # bad input, not a server fault.
    errors = [
        {"field": f, "message": "contains a NUL character"} for f in _fields_with_nul(request)
    ]
    return _error(request, 422, "invalid input: a value the database cannot store", errors)


def _add_routers() -> None:
    from apps.instances.api import router as instances_router
    from apps.nodes.api import publish_router
    from apps.nodes.api import router as nodes_router
    from apps.projects.api import router as projects_router

    api.add_router("/projects", projects_router)
    api.add_router("/projects", publish_router)
    api.add_router("/nodes", nodes_router)
    api.add_router("/instances", instances_router)
    api.add_router("/backfills", "apps.backfills.api.router")
    api.add_router("/overview", "apps.monitoring.api.router")


_add_routers()
