"""A new user's first five minutes with the demo, in a real browser: log in as the demo's
operator, find the failed instance from the overview, read its diagnosis with the error
from its log, rerun it with its downstream (the partner's late file has arrived since),
watch the branch turn green without reloading, and see the day's timeline. Every step
asserts what the page shows, and no page shows a time as a machine writes it."""

import datetime
import re
from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from apps.instances.models import Instance
from tests.browser.test_operations_flow import Drain

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RAW_TIME = re.compile(
    r"\d{2}:\d{2}:\d{2}\.\d+|\dT\d{2}:\d{2}|\d{2}:\d{2}(:\d{2})?[+-]\d{2}:\d{2}\b"
)


def assert_readable_times(page) -> None:
    """What the browser shows (scripts' output included) holds no raw ISO time."""
    text = page.evaluate("document.body.innerText")
    assert not RAW_TIME.search(text), RAW_TIME.search(text)


@pytest.fixture
def demo(settings, tmp_path):
    settings.VAR_DIR = tmp_path  # the demo's warehouse and the attempts' files
    call_command("opscenter", "demo", "--days", "1", stdout=StringIO())
    failed = Instance.objects.get(node__name="load_returns", state="failed", kind="recurring")
    waiting = Instance.objects.get(node__name="rpt_returns", biz_date=failed.biz_date)
    return {"failed": failed, "waiting": waiting}


def test_a_new_users_first_five_minutes(screenshots, page, live_server, demo):
    failed, waiting = demo["failed"], demo["waiting"]
    biz_date = f"{failed.biz_date:%Y-%m-%d}"
    page.on("dialog", lambda dialog: dialog.accept())

    # The address opens the login; the demo's operator logs in with the printed password.
    page.goto(f"{live_server.url}/")
    page.fill("input[name=username]", "oscar")
    page.fill("input[name=password]", "oscar-demo")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/overview/")

    # 1. The overview: the failure ranking leads with load_returns, failed once.
    ranking = page.locator("#failure-ranking")
    first = ranking.locator("tbody tr").first
    expect(first).to_contain_text("load_returns")
    expect(first.locator("[data-failures]")).to_have_text("1")
    assert_readable_times(page)
    page.screenshot(path=str(screenshots / "first-minutes-1-overview.png"), full_page=True)

    # 2. Its failure count lists the failed instance; the user opens it.
    first.locator("[data-failures]").click()
    page.wait_for_url(re.compile(r".*/instances/\?.*state=failed.*"))
    rows = page.locator("#instance-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(biz_date)
    rows.first.locator("a:text('load_returns')").first.click()
    page.wait_for_url(f"{live_server.url}/instances/{failed.id}/")

    # 3. The instance says which day it processed and when it was due, then why it
    #    failed: the diagnosis quotes the error of its log (the partner's file missing).
    heading = page.locator("h1 [data-instance-when]")
    expect(heading).to_contain_text(f"biz date {biz_date}")
    scheduled = f"{failed.scheduled_at.astimezone(datetime.UTC):%Y-%m-%d %H:%M} UTC"
    expect(heading).to_contain_text(f"scheduled {scheduled}")
    expect(page.locator("#instance-live .status-line")).to_contain_text("Failed")
    excerpt = page.locator("#instance-diagnosis [data-note='error_excerpt']")
    expect(excerpt).to_contain_text("FileNotFoundError")
    expect(excerpt.locator(".log-error").first).to_be_visible()
    expect(excerpt).to_contain_text(f"{failed.biz_date:%Y%m%d}.csv")
    expect(page.locator(f"#downstream li[data-instance='{waiting.id}']")).to_contain_text("Pending")
    assert_readable_times(page)
    page.screenshot(path=str(screenshots / "first-minutes-2-diagnosis.png"), full_page=True)

    # 4. The file has arrived since: rerun it with its downstream, from the page.
    page.click("#instance-actions [data-action='rerun_downstream']")
    page.wait_for_url(f"{live_server.url}/instances/{failed.id}/")
    expect(page.locator(".messages")).to_contain_text("will run again")
    page.evaluate("window.notReloaded = true")
    drain = Drain(timeout=10)
    expect(page.locator("#instance-live .status-line")).to_contain_text("Succeeded", timeout=60_000)
    expect(page.locator(f"#downstream li[data-instance='{waiting.id}']")).to_contain_text(
        "Succeeded", timeout=60_000
    )
    expect(page.locator("table.attempts tbody tr")).to_have_count(2)
    assert page.evaluate("window.notReloaded") is True
    assert_readable_times(page)
    page.screenshot(path=str(screenshots / "first-minutes-3-rerun.png"), full_page=True)
    drain.join()

    # 5. The day's timeline, from the biz date in the header: both runs of the branch
    #    are there, now succeeded, on an axis in the viewer's zone.
    heading.locator("a[data-biz-date]").click()
    page.wait_for_url(re.compile(rf".*/instances/timeline/\?biz_date={biz_date}"))
    expect(page.locator("h1")).to_contain_text(f"Timeline of biz date {biz_date}")
    timeline = page.locator("#day-timeline")
    expect(timeline.locator(f"a[data-instance='{failed.id}']")).to_have_attribute(
        "data-state", "succeeded"
    )
    expect(timeline.locator(f"a[data-instance='{waiting.id}']")).to_have_attribute(
        "data-state", "succeeded"
    )
    expect(timeline.locator(".panel-head")).to_contain_text("UTC")
    assert timeline.locator("a[data-instance]").count() > 20  # the whole day, not the branch
    # The demo's day ran in minutes: its time axis tells its ticks apart by the second.
    ticks = timeline.locator("text.axis").all_text_contents()
    assert len(set(ticks)) == len(ticks) == 7, ticks
    assert_readable_times(page)
    page.screenshot(path=str(screenshots / "first-minutes-4-timeline.png"), full_page=True)
