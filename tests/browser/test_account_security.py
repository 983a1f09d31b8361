"""In a real browser: a locked-out login says so; an API token is made from the user
menu, its key copied once, used, and revoked after a confirmation."""

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from apps.accounts.models import ApiToken

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_too_many_failed_logins_show_the_lockout_page(page, live_server, users, screenshots):
    page.goto(f"{live_server.url}/login/")
    for _ in range(settings.OPSCENTER_LOGIN_FAILURE_LIMIT - 1):
        page.fill("input[name=username]", "olga")
        page.fill("input[name=password]", "not-her-password")
        page.click("button[type=submit]")
        expect(page.locator(".alert-error")).to_contain_text("Please enter a correct username")
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", "not-her-password")
    page.click("button[type=submit]")
    locked = page.locator("#login-locked")
    expect(locked).to_contain_text("Login locked for a while")
    expect(locked).to_contain_text("Try again in 15 minutes")
    page.screenshot(path=str(screenshots / "login-locked.png"))
    # The right password does not help while locked.
    locked.get_by_role("link", name="Back to the login page").click()
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", "pw-olga-123")
    page.click("button[type=submit]")
    expect(page.locator("#login-locked")).to_be_visible()


def test_make_use_and_revoke_a_token_from_the_user_menu(login, project, screenshots):
    page = login("olga")
    page.locator(".usermenu summary").click()
    page.get_by_role("link", name="API tokens").click()
    expect(page.locator("h1")).to_contain_text("API tokens")
    expect(page.locator("#token-table")).to_contain_text("No tokens yet")

    page.fill("#t-name", "ci-deploy")
    page.fill("#t-days", "30")
    page.click("[data-action=create]")
    key_field = page.locator("#new-token-key")
    expect(key_field).to_be_visible()
    key = key_field.input_value()
    assert key.startswith("ops_")
    page.locator("[data-copy]").click()
    expect(page.locator("[data-copy]")).not_to_have_text("Copy")
    page.screenshot(path=str(screenshots / "api-tokens-created.png"), full_page=True)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/projects/acme").status_code == 200

    # Shown once: the list, reloaded, has the token but not its key.
    page.goto(page.url)
    expect(page.locator("#new-token-key")).to_have_count(0)
    row = page.locator("tr[data-state=active]")
    expect(row).to_contain_text("ci-deploy")
    assert key not in page.content()

    row.locator("[data-action=revoke]").click()
    expect(page.locator("#token-revoke")).to_contain_text("Revoke it?")
    page.click("[data-action=confirm-revoke]")
    expect(page.locator("tr[data-state=revoked]")).to_contain_text("ci-deploy")
    expect(page.locator(".messages")).to_contain_text("no longer opens the API")
    page.screenshot(path=str(screenshots / "api-tokens-revoked.png"), full_page=True)
    assert ApiToken.objects.get().revoked_at is not None
    assert api.get("/api/projects/acme").status_code == 401
