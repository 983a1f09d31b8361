"""The viewer's timezone: a profile setting every page's times follow; without one, the
project's zone on a page about one project, else the server's TIME_ZONE."""

import pytest

from apps.accounts.models import Profile
from apps.accounts.services import profile_update
from apps.core.errors import ValidationFailed
from tests.factories import instance_create, node_create
from tests.pages.builders import T0  # 02:00 on 2026-11-22 in Asia/Shanghai


def profile_post(client, **fields):
    values = {"email": "olga@example.com", **fields}
    return client.post("/account/profile/", values)


def test_profile_sets_the_zone_every_page_uses(client, users, project, settings):
    settings.TIME_ZONE = "UTC"
    client.force_login(users["olga"])
    assert "Now: UTC." in client.get("/account/profile/").content.decode()
    response = profile_post(client, timezone="Europe/Berlin")
    assert response.status_code == 302
    assert Profile.of(users["olga"]).timezone == "Europe/Berlin"
    html = client.get("/account/profile/").content.decode()
    assert 'value="Europe/Berlin"' in html and "Now: CET (Europe/Berlin)." in html
    # The chosen project's zone no longer applies: the viewer's own does.
    html = client.get("/account/profile/?project=acme").content.decode()
    assert "Now: CET (Europe/Berlin)." in html
    # Cleared: back to the project's zone while the project is chosen.
    profile_post(client, timezone="")
    assert "Now: CST (Asia/Shanghai)." in client.get("/account/profile/").content.decode()


def test_without_a_zone_a_project_page_is_in_the_projects_zone(client, users, project, settings):
    settings.TIME_ZONE = "UTC"
    node = node_create(project, "load_orders", owner=users["alice"])
    instance = instance_create(node, T0, state="succeeded", started_at=T0, finished_at=T0)
    client.force_login(users["olga"])
    html = client.get(f"/instances/{instance.pk}/").content.decode()
    assert "2026-11-22 02:00:00 CST" in html
    profile_update(user=users["olga"], fields={"timezone": "Europe/Berlin"})
    # Another session (a new login) reads the new zone.
    client.logout()
    client.force_login(users["olga"])
    html = client.get(f"/instances/{instance.pk}/").content.decode()
    assert "2026-11-21 19:00:00 CET" in html and "02:00:00 CST" not in html


def test_a_bad_zone_is_422_naming_the_field_and_changes_nothing(client, users):
    client.force_login(users["olga"])
    response = profile_post(client, timezone="Mars/Olympus_Mons", phone="+86 138 0000 1111")
    assert response.status_code == 422
    html = response.content.decode()
    assert "<strong>timezone</strong>" in html and "unknown timezone" in html
    assert 'value="Mars/Olympus_Mons"' in html
    assert not Profile.objects.filter(user=users["olga"]).exists()
    with pytest.raises(ValidationFailed) as refused:
        profile_update(user=users["olga"], fields={"timezone": "../../etc/passwd"})
    assert [e["field"] for e in refused.value.errors] == ["timezone"]


def test_the_zone_costs_no_query_once_the_session_knows_it(client, users, project):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    profile_update(user=users["olga"], fields={"timezone": "Europe/Berlin"})
    client.force_login(users["olga"])  # the session learns the zone at the login
    with CaptureQueriesContext(connection) as queries:
        html = client.get("/instances/").content.decode()
    assert not [q for q in queries.captured_queries if "accounts_profile" in q["sql"]]
    assert "CET (Europe/Berlin)" in html
