"""The JSON API: one NinjaAPI, a Router per app, domain errors mapped here once."""

from django.core.exceptions import ValidationError as DjangoValidationError
from ninja import NinjaAPI
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
)


def _error(request, status: int, detail: str, errors: list | None = None):
    return api.create_response(request, {"detail": detail, "errors": errors or []}, status=status)


@api.exception_handler(OpscenterError)
def on_domain_error(request, exc: OpscenterError):
    return _error(request, exc.status_code, exc.detail, exc.errors)


@api.exception_handler(NinjaValidationError)
def on_validation_error(request, exc: NinjaValidationError):
    errors = []
    for err in exc.errors:
        loc = [str(part) for part in err.get("loc", []) if part not in ("body", "payload")]
        errors.append({"field": ".".join(loc), "message": err.get("msg", "invalid")})
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
    return _error(request, exc.status_code, str(exc))


def _add_routers() -> None:
    from apps.instances.api import router as instances_router
    from apps.nodes.api import router as nodes_router
    from apps.projects.api import router as projects_router

    api.add_router("/projects", projects_router)
    api.add_router("/nodes", nodes_router)
    api.add_router("/instances", instances_router)


_add_routers()
