"""The top bar stays one line on a laptop screen, and its menus open, close and lead on."""

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("width", [1280, 1440])
def test_the_top_bar_fits_one_line_with_every_entry(
    page, login, users, project, live_server, width
):
    page.set_viewport_size({"width": width, "height": 800})
    # A chosen project adds its settings link to the bar: the widest it gets.
    login("root", f"/overview/?project={project.code}")
    bar = page.locator("header.topbar").bounding_box()
    assert bar["height"] <= 49
    # Nothing runs past the right edge: the page does not scroll sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    right = page.locator("header.topbar details.usermenu").bounding_box()
    assert right["x"] + right["width"] <= width


def test_menus_open_one_at_a_time_and_lead_to_their_pages(page, login, users, live_server):
    login("root", "/overview/")
    backups = page.locator("nav.mainnav >> text=Backups")
    assert not backups.is_visible()

    page.click("nav.mainnav >> text=Monitoring")
    assert page.locator("nav.mainnav >> text=Notifications").is_visible()
    page.click("nav.mainnav >> text=System")
    assert backups.is_visible()
    # Opening one menu closed the other.
    assert not page.locator("nav.mainnav >> text=Notifications").is_visible()

    # A click elsewhere closes it; Escape too.
    page.click("main")
    assert not backups.is_visible()
    page.click("nav.mainnav >> text=System")
    page.keyboard.press("Escape")
    assert not backups.is_visible()

    page.click("nav.mainnav >> text=System")
    backups.click()
    page.wait_for_url(f"{live_server.url}/backups/")
    # The menu holding the current page is marked, and so is the page in it.
    assert "active" in page.locator("details.navmenu", has_text="System").get_attribute("class")
    page.click("nav.mainnav >> text=System")
    assert page.locator("nav.mainnav a.active", has_text="Backups").is_visible()
