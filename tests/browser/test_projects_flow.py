"""A superuser sets up a project in a real browser without the Django admin: creates it,
adds a PostgreSQL datasource and tests its connection for real, adds a variable (after a
refused name) and a member."""

import pytest
from playwright.sync_api import expect

from apps.projects.models import Datasource, Membership, Project, Variable

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PG_DSN = "host=127.0.0.1 port=5432 dbname=postgres user=postgres"


def test_create_a_project_add_a_datasource_test_it_add_a_variable_and_a_member(
    page, login, users, live_server, screenshots
):
    login("root", "/projects/")
    page.click("nav.mainnav >> text=System")
    page.click("nav.mainnav >> text=Projects")
    page.wait_for_url(f"{live_server.url}/projects/")

    # The project.
    page.click("[data-action=new-project]")
    page.fill("#p-code", "sales")
    page.fill("#p-name", "Sales Analytics")
    page.fill("#p-timezone", "Europe/Berlin")
    page.select_option("#p-env-mode", "dev_prod")
    page.fill("#p-generation-time", "22:30")
    page.click("#project-form [data-action=save]")
    page.wait_for_url(f"{live_server.url}/projects/sales/")
    expect(page.locator("h1")).to_contain_text("Sales Analytics")
    page.screenshot(path=str(screenshots / "project-settings.png"), full_page=True)
    project = Project.objects.get(code="sales")
    assert project.timezone == "Europe/Berlin" and project.env_mode == "dev_prod"

    # A PostgreSQL datasource: the SQLite file input hides while PostgreSQL is chosen.
    page.click("nav.tabs >> text=Datasources")
    page.click("[data-action=new-datasource]")
    page.fill("#ds-name", "warehouse")
    page.select_option("#ds-kind", "sqlite")
    expect(page.locator("#ds-dsn")).to_be_hidden()
    page.select_option("#ds-kind", "postgresql")
    expect(page.locator("#ds-path")).to_be_hidden()
    page.fill("#ds-dsn", PG_DSN)
    page.fill("#ds-password", "pw-kept-secret")
    page.click("#datasource-form [data-action=save-datasource]")
    page.wait_for_url(f"{live_server.url}/projects/sales/datasources/warehouse/")
    expect(page.locator("dd [data-password=set]")).to_be_visible()
    assert Datasource.objects.get(name="warehouse").get_password() == "pw-kept-secret"

    # Test connection: connects to the real server and says so in place.
    page.click(".section-head [data-action=test-connection]")
    outcome = page.locator("#test-result .test-outcome")
    expect(outcome).to_have_attribute("data-ok", "true", timeout=20_000)
    expect(outcome).to_contain_text("Connected")
    expect(outcome).to_contain_text("PostgreSQL database postgres on 127.0.0.1:5432")
    assert "pw-kept-secret" not in page.content()
    page.screenshot(path=str(screenshots / "project-datasource-connected.png"), full_page=True)

    # A variable: a bad name is refused next to its input, then a good one is added.
    page.click("nav.tabs >> text=Variables")
    page.click("[data-action=new-variable]")
    page.fill("#v-name", "9lives")
    page.fill("#v-value", "ods")
    page.click("#variable-form [data-action=save-variable]")
    expect(page.locator("[data-field=name] .field-error")).to_contain_text(
        "not starting with a digit"
    )
    assert not Variable.objects.exists()
    page.fill("#v-name", "target_schema")
    page.click("#variable-form [data-action=save-variable]")
    expect(page.locator("tr[data-variable=target_schema]")).to_contain_text("${var.target_schema}")
    assert Variable.objects.get(project=project).value == "ods"

    # A member.
    page.click("nav.tabs >> text=Members")
    page.fill("#m-username", "vera")
    page.select_option("#m-role", "operator")
    page.click("[data-action=add-member]")
    expect(page.locator("tr[data-member=vera]")).to_have_attribute("data-role", "operator")
    assert Membership.objects.get(project=project, user=users["vera"]).role == "operator"
    page.screenshot(path=str(screenshots / "project-members.png"), full_page=True)
