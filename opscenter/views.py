"""Answers of the site itself rather than of one app: the server error page and the
favicon at the address browsers ask for without reading the page."""

import logging

from django.http import HttpResponseServerError
from django.template import loader
from django.templatetags.static import static
from django.views.generic import RedirectView

logger = logging.getLogger(__name__)

# What is left when even the template fails (a broken installation): plain HTML.
BARE_500 = (
    "<!doctype html><title>Server error · opscenter</title>"
    "<h1>Server error</h1><p>The error has been logged. Reload the page in a moment.</p>"
)


def server_error(request):
    """handler500: the layout's 500 page, rendered without the request, so no context
    processor, session or database is asked while something may be broken."""
    try:
        html = loader.get_template("500.html").render()
    except Exception:
        logger.exception("the 500 page could not be rendered")
        html = BARE_500
    return HttpResponseServerError(html)


class FaviconView(RedirectView):
    """/favicon.ico: the SVG icon that base.html links (for clients that ask by habit)."""

    permanent = False

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("favicon.svg")
