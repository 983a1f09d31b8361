"""An operator reads a failed attempt's log in the browser: the diagnosis quotes its
error lines, the panel's search box finds a word with it marked, the tail and the
download work."""

import datetime

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.instances.models import Attempt, Instance
from tests.factories import instance_create, node_create
from tests.pages.builders import log_append

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def failed(users, project):
    start = timezone.now() - datetime.timedelta(minutes=30)
    node = node_create(project, "load_orders", owner=users["alice"], type="shell")
    instance = instance_create(
        node, start, state="failed", attempt_count=1, started_at=start, finished_at=start
    )
    attempt = Attempt.objects.create(
        instance=instance, number=1, state="failed", started_at=start, finished_at=start
    )
    log_append(
        attempt,
        "connecting to the warehouse\nloading orders <2026>\n",
        "ERROR: relation orders_raw does not exist\nexit 1\n",
    )
    return Instance.objects.get(pk=instance.pk)


def test_search_tail_and_download_a_failed_log(page, login, failed, live_server):
    login("olga", f"/instances/{failed.id}/")
    excerpt = page.locator('#instance-diagnosis [data-note="error_excerpt"] .log-error')
    expect(excerpt).to_have_text("ERROR: relation orders_raw does not exist")
    expect(page.locator("#log-text .log-error")).to_have_text(
        "ERROR: relation orders_raw does not exist\n"
    )

    page.fill("#log-panel-q", "orders")
    page.press("#log-panel-q", "Enter")
    page.wait_for_url(f"**/instances/{failed.id}/log/view?attempt=1&q=orders")
    expect(page.locator("#log-summary")).to_contain_text("2 lines of 4 hold")
    expect(page.locator("#log-lines mark")).to_have_count(2)
    expect(page.locator('#log-lines [data-line="2"]')).to_contain_text("loading orders <2026>")

    page.fill("#log-tail", "1")
    page.fill("#log-q", "")
    page.click("#log-view button[type=submit]")
    expect(page.locator("#log-lines .log-line")).to_have_count(1)
    expect(page.locator("#log-lines .log-line")).to_contain_text("exit 1")

    with page.expect_download() as info:
        page.click("text=Download")
    download = info.value
    assert download.suggested_filename == f"load_orders-{failed.id}-attempt-1.log"
    text = open(download.path()).read()
    assert text.startswith("connecting") and text.endswith("exit 1\n")
