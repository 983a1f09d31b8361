"""The real-time panel on a node's page follows its process without a reload: Start,
then Starting turns to Running by itself once a supervisor claims it; Stop likewise."""

import pytest
from playwright.sync_api import expect

from tests.realtime.conftest import publish_realtime, realtime_spec, start_supervisor

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

__all__ = ["publish_realtime", "start_supervisor"]  # fixtures used below


# Ignores SIGTERM: "Stopping" lasts the kill grace, long enough to be seen.
STUBBORN = 'trap "echo got TERM" TERM\nwhile true; do echo alive; sleep 0.1 || true; done\n'


def test_panel_moves_from_starting_to_running_without_a_reload(
    page, login, live_server, publish_realtime, start_supervisor, settings
):
    (node,) = publish_realtime(realtime_spec(content=STUBBORN))
    login("olga", f"/nodes/{node.pk}/")
    panel = page.locator("#realtime")
    start = panel.locator("button[data-realtime-action=start]")
    stop = panel.locator("button[data-realtime-action=stop]")
    expect(panel.locator("[data-state]")).to_have_text("Stopped")
    expect(start).to_be_enabled()
    expect(stop).to_be_disabled()

    with page.expect_navigation():
        start.click()  # a form post; the page comes back with the panel polling
    expect(panel.locator("[data-state]")).to_have_text("Starting")
    expect(start).to_be_disabled()
    expect(stop).to_be_enabled()
    # A mark on this very document: a reload would wipe it.
    page.evaluate("window.sameDocument = true")

    start_supervisor()
    expect(panel.locator("[data-state]")).to_have_text("Running", timeout=20_000)
    expect(panel.locator("[data-attempt=running]")).to_be_visible()
    expect(start).to_be_disabled()
    expect(stop).to_be_enabled()
    assert page.evaluate("window.sameDocument") is True

    settings.OPSCENTER_KILL_GRACE_SECONDS = 4
    with page.expect_navigation():
        stop.click()
    expect(panel.locator("[data-state]")).to_have_text("Stopping")
    page.evaluate("window.sameDocument = true")
    expect(panel.locator("[data-state]")).to_have_text("Stopped", timeout=20_000)
    expect(start).to_be_enabled()
    expect(stop).to_be_disabled()
    assert page.evaluate("window.sameDocument") is True
