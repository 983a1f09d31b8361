"""Small helpers for pages that answer both full requests and htmx partial requests."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django_htmx.http import HTMX_STOP_POLLING

# htmx stops an `every Ns` trigger when the answer has this status (and still swaps it).
STOP_POLLING = HTMX_STOP_POLLING


def wants_partial(request: HttpRequest) -> bool:
    """An htmx request asks for a fragment; a history restore after a cache miss needs the
    whole page even though htmx sent it."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.history_restore_request


def triggered_by(request: HttpRequest, element_id: str) -> bool:
    """True when the htmx request came from the element with this id (e.g. a poller)."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and htmx.trigger == element_id


def render_page_or_partial(
    request: HttpRequest,
    *,
    page: str,
    partial: str,
    context: dict,
    status: int = 200,
) -> HttpResponse:
    """The whole page for a normal request, only `partial` for an htmx request. The
    answer varies on HX-Request so a cache never serves a fragment as a page."""
    template = partial if wants_partial(request) else page
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def stop_polling(response: HttpResponse) -> HttpResponse:
    """Mark a poller's answer as the last one: htmx swaps it, then stops polling."""
    response.status_code = STOP_POLLING
    return response
