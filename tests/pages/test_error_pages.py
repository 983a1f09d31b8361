"""The 404 and 500 pages are in the layout, and the site has a favicon of its own."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import path

from opscenter import urls as site_urls


def broken_view(request):
    raise RuntimeError("a bug in some view")


# The site's own URLs with one that raises, to reach handler500 as production does.
urlpatterns = [path("tests/broken/", broken_view), *site_urls.urlpatterns]
handler500 = site_urls.handler500


def test_a_missing_page_is_the_layouts_404(client, users, settings):
    assert settings.DEBUG is False  # tests run with production settings
    client.force_login(users["olga"])
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert 'data-error="404"' in html and "This page does not exist" in html
    assert 'class="mainnav"' in html and "olga" in html  # the whole layout, user menu too
    assert "/no/such/page/" in html and 'href="/"' in html
    # A missing object in a known address is the same page.
    response = client.get("/instances/999999/")
    assert response.status_code == 404 and 'data-error="404"' in response.content.decode()


def test_the_api_keeps_answering_json_for_a_missing_path(client, users):
    client.force_login(users["olga"])
    response = client.get("/api/no/such/thing")
    assert response.status_code == 404 and response["Content-Type"].startswith("application/json")


@pytest.mark.urls(__name__)
def test_a_view_that_raises_is_the_layouts_500_without_the_database(users):
    client = Client(raise_request_exception=False)
    client.force_login(users["olga"])
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/tests/broken/")
    assert response.status_code == 500
    html = response.content.decode()
    assert 'data-error="500"' in html and "Something went wrong on our side" in html
    assert "/static/css/opscenter.css" in html and 'class="brand"' in html
    assert "a bug in some view" not in html  # nothing of the error is shown
    # The page itself asked nothing of the database (the session and user did, before).
    assert not [q for q in queries.captured_queries if "opscenter_project" in q["sql"]]


def test_the_500_page_renders_with_no_request_at_all(db):
    from opscenter.views import server_error

    response = server_error(None)
    assert response.status_code == 500 and 'data-error="500"' in response.content.decode()


def test_the_500_handler_falls_back_to_bare_html_when_the_template_breaks(settings, db):
    from opscenter.views import BARE_500, server_error

    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [], "APP_DIRS": False, "OPTIONS": {}},
    ]
    response = server_error(None)
    assert response.status_code == 500 and response.content.decode() == BARE_500


def test_favicon_is_linked_and_served(client, users):
    client.force_login(users["olga"])
    html = client.get("/instances/").content.decode()
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in html
    response = client.get("/favicon.ico")
    assert response.status_code == 302 and response["Location"] == "/static/favicon.svg"
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon["Content-Type"] == "image/svg+xml"
    body = b"".join(icon.streaming_content)
    assert body.startswith(b"<svg") and b"viewBox" in body
    # Anonymous browsers ask for it too (before logging in).
    client.logout()
    assert client.get("/favicon.ico").status_code == 302
