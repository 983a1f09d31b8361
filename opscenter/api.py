"""The JSON API: one NinjaAPI, a Router per app, errors mapped here once.

Every error under /api answers `{"detail", "errors": [{"field", "message"}]}` (ErrorOut):
domain errors and ninja's own through the exception handlers below, and what the layers
around ninja answer (an unknown path, a wrong method, a body Django refused to read)
through JsonErrorsMiddleware. The OpenAPI document lists for every operation the error
answers any request may get (`error_answers`); operations declare their own refusals
(`response={200: X, **errors(409)}`).
"""

import json
from collections.abc import Callable, Iterator
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.http import Http404, JsonResponse
from ninja import NinjaAPI, Swagger
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.openapi.schema import REF_TEMPLATE
from ninja.schema import NinjaGenerateJsonSchema

from apps.accounts.auth import BearerTokenAuth, SessionAuth
from apps.core.errors import OpscenterError
from apps.core.schemas import ErrorOut

UNSAFE_METHODS = ("post", "put", "patch", "delete")


def error_answers(method: str, operation: dict) -> dict[int, str]:
    """The error answers any request to an operation may get, whatever the operation
    does, from what its OpenAPI entry says it takes."""
    where = {parameter["in"] for parameter in operation.get("parameters", [])}
    has_body = "requestBody" in operation
    answers = {401: "no session and no valid bearer token"}
    if where or has_body:
        answers[422] = "input that does not validate; `errors` names each field"
    if has_body:
        answers[400] = "the body is not JSON"
        answers[413] = "the body is larger than the server accepts"
    if "path" in where:
        answers[404] = "no such object, or one the caller may not see"
    if method in UNSAFE_METHODS:
        answers[403] = "a role the caller lacks, or a session write without its CSRF token"
    return answers


class OpscenterAPI(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix=None, path_params=None):
        document = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        error = ErrorOut.model_json_schema(
            ref_template=REF_TEMPLATE,
            schema_generator=NinjaGenerateJsonSchema,
            mode="serialization",
        )
        components = document["components"]["schemas"]
        components.update(error.pop("$defs", {}))
        components["ErrorOut"] = error
        content = {"application/json": {"schema": {"$ref": REF_TEMPLATE.format(model="ErrorOut")}}}
        for methods in document["paths"].values():
            for method, operation in methods.items():
                responses = operation["responses"]
                for status, description in error_answers(method, operation).items():
                    if status not in responses and str(status) not in responses:
                        responses[status] = {"description": description, "content": content}
        return document


api = OpscenterAPI(
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


def _too_big() -> tuple[str, list[dict]]:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return (
        "the request body is larger than the server accepts",
        [{"field": "body", "message": f"at most {limit} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)"}],
    )


@api.exception_handler(RequestDataTooBig)
def on_request_too_big(request, exc: RequestDataTooBig):
    detail, errors = _too_big()
    return _error(request, 413, detail, errors)


def _request_values(request) -> Iterator[tuple[str, object]]:
    """Every value a request carries as (field, value): path and query parameters, and
    the JSON body's values named by their dotted path ("nodes.0.name")."""
    yield from (getattr(request.resolver_match, "kwargs", None) or {}).items()
    yield from request.GET.items()
    try:
        body = json.loads(request.body or b"null")
    except Exception:  # unreadable or not JSON: nothing to name there
        return
    yield from _leaves("", body)


def _leaves(path: str, value) -> Iterator[tuple[str, object]]:
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            yield from _leaves(f"{path}.{key}" if path else str(key), item)
    elif path:
        yield path, value


def _fields_where(request, wrong: Callable[[object], bool]) -> list[str]:
    try:
        return list(dict.fromkeys(n for n, value in _request_values(request) if wrong(value)))
    except RecursionError:  # a body nested past Python's limit: name nothing
        return []


@api.exception_handler(DataError)
def on_data_error(request, exc: DataError):
    # The database refused a value it cannot store (PostgreSQL keeps no NUL characters):
    # bad input, not a server fault.
    errors = [
        {"field": f, "message": "contains a NUL character"}
        for f in _fields_where(request, lambda value: "\x00" in str(value))
    ]
    return _error(request, 422, "invalid input: a value the database cannot store", errors)


def _beyond_64_bits(value) -> bool:
    try:
        return not -(2**63) <= int(str(value)) < 2**63
    except ValueError:
        return False


@api.exception_handler(OverflowError)
def on_overflow(request, exc: OverflowError):
    # A number no 64-bit column holds (SQLite refuses to bind it; the schemas bound the
    # ids they know): bad input, not a server fault.
    errors = [
        {"field": f, "message": "a number out of range"}
        for f in _fields_where(request, _beyond_64_bits)
    ]
    return _error(request, 422, "invalid input: a number out of range", errors)


class JsonErrorsMiddleware:
    """Errors under /api that come from around ninja (no operation at that path, a method
    the path does not take, a body Django refused to read, a server error) answer the
    API's JSON error shape too, with the status that says what went wrong."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not (request.path == "/api" or request.path.startswith("/api/"))
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        status, errors = response.status_code, []
        if status == 404:
            detail = f"no API operation at {request.path}"
        elif status == 405:
            detail = f"{request.method} is not allowed here; allowed: {response.get('Allow', '')}"
        elif status == 400 and _declared_length(request) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            status = 413
            detail, errors = _too_big()
        else:
            try:
                detail = HTTPStatus(status).phrase.lower()
            except ValueError:
                detail = "error"
        answer = JsonResponse({"detail": detail, "errors": errors}, status=status)
        if "Allow" in response:
            answer["Allow"] = response["Allow"]
        return answer


def _declared_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _add_routers() -> None:
    from apps.instances.api import router as instances_router
    from apps.nodes.api import publish_router
    from apps.nodes.api import router as nodes_router
    from apps.projects.api import router as projects_router

    api.add_router("/projects", projects_router)
    api.add_router("/projects", publish_router)
    api.add_router("/projects", "apps.resources.api.router")
    api.add_router("/nodes", nodes_router)
    api.add_router("/node-groups", "apps.nodes.group_api.router")
    api.add_router("/instances", instances_router)
    api.add_router("/instances", "apps.instances.log_api.router")
    api.add_router("/backfills", "apps.backfills.api.router")
    api.add_router("/overview", "apps.monitoring.api.router")
    api.add_router("/monitor-rules", "apps.monitoring.api_rules.rules_router")
    api.add_router("/on-call", "apps.monitoring.api_rules.on_call_router")
    api.add_router("/alerts", "apps.monitoring.api_alerts.router")
    api.add_router("/baselines", "apps.baselines.api.router")
    api.add_router("/channels", "apps.notifications.api.channels_router")
    api.add_router("/notifications", "apps.notifications.api.deliveries_router")
    api.add_router("/resource-groups", "apps.configuration.api_capacity.groups_router")
    api.add_router("/throttle-rules", "apps.configuration.api_capacity.rules_router")
    api.add_router("/runtime-config", "apps.configuration.runtime_api.router")
    api.add_router("/resources", "apps.monitoring.resources_api.router")
    api.add_router("/field-rules", "apps.quality.api.router")
    api.add_router("/health", "apps.health.api.router")
    api.add_router("/backups", "apps.backups.api.router")


_add_routers()
