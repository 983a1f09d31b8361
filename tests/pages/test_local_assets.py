"""Nothing a page needs comes from outside: every script, stylesheet and icon is served
by opscenter itself (a machine without internet sees the same pages)."""

import json
import re
from html.parser import HTMLParser

import pytest


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "iframe") and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])


def assets_of(html: str) -> list[str]:
    parser = _Assets()
    parser.feed(html)
    return parser.urls


def assert_all_local_and_served(client, html: str) -> list[str]:
    urls = assets_of(html)
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"loaded from outside: {url}"
        response = client.get(url)
        assert response.status_code == 200, url
        # WhiteNoise answers with a file stream; read it so the file is closed.
        b"".join(response.streaming_content) if response.streaming else response.content
    return urls


def test_api_docs_load_swagger_ui_from_opscenter(client, db):
    response = client.get("/api/docs")
    assert response.status_code == 200
    html = response.content.decode()
    urls = assert_all_local_and_served(client, html)
    assert any(url.endswith("swagger-ui-bundle.js") for url in urls)
    assert any(url.endswith("swagger-ui.css") for url in urls)
    # Swagger UI's settings: the spec from opscenter, and no online validator badge.
    settings = json.loads(re.search(r'id="swagger-settings">(.*?)</script>', html, re.S)[1])
    assert settings["url"] == "/api/openapi.json"
    assert settings["validatorUrl"] is None
    assert client.get(settings["url"]).status_code == 200


@pytest.mark.parametrize("path", ["/login/"])
def test_anonymous_pages_load_only_local_assets(client, db, path):
    response = client.get(path)
    assert response.status_code == 200
    assert assert_all_local_and_served(client, response.content.decode())


@pytest.mark.parametrize("path", ["/overview/", "/instances/", "/nodes/", "/backfills/"])
def test_pages_load_only_local_assets(client, users, project, path):
    client.force_login(users["olga"])
    response = client.get(path)
    assert response.status_code == 200
    assert assert_all_local_and_served(client, response.content.decode())
