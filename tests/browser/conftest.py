"""Real headless chromium (Debian's) driven by Playwright against pytest-django's live
server. Every test here is marked `browser`."""

import os
from pathlib import Path

import pytest
from django.conf import settings

# Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from
# a thread with a running loop unless told it is safe (it is: the calls are synchronous).
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def login(page, live_server):
    """login("olga") logs in through the login form and leaves the page on the list."""

    def log_in(username: str, next_path: str = "/instances/"):
        page.goto(f"{live_server.url}{next_path}")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", f"pw-{username}-123")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}{next_path}")
        return page

    return log_in


@pytest.fixture
def screenshots() -> Path:
    path = Path(settings.VAR_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path
