"""The API tokens page (/account/tokens/): list, make (the key shown once), revoke with a
confirmation; and the Django admin, where superusers see and revoke anyone's tokens."""

import datetime
import re

import pytest
import time_machine
from django.test import Client

from apps.accounts.models import ApiToken
from apps.audit.models import OperationLog

T0 = datetime.datetime(2026, 11, 21, 18, 0, tzinfo=datetime.UTC)


@pytest.fixture
def as_user(users):
    def make(name: str) -> Client:
        client = Client()
        client.force_login(users[name])
        return client

    return make


def make_token(client: Client, name: str = "ci-deploy", days: str = "30") -> tuple[str, str]:
    """Posts the form; answers (the page's HTML, the key it shows)."""
    response = client.post("/account/tokens/", {"name": name, "days": days})
    assert response.status_code == 200
    html = response.content.decode()
    key = re.search(r'id="new-token-key" class="mono" value="(ops_[^"]+)"', html).group(1)
    return html, key


def test_anonymous_goes_to_login(client, db):
    for url in ["/account/tokens/", "/account/tokens/1/revoke/"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_user_menu_links_to_the_tokens_page(as_user, project):
    html = as_user("olga").get("/instances/").content.decode()
    assert '<a href="/account/tokens/">API tokens</a>' in html


def test_page_lists_only_my_tokens_with_their_facts(as_user, users, project):
    with time_machine.travel(T0, tick=False):
        mine, _ = ApiToken.issue(
            user=users["olga"], name="nightly", expires_at=T0 + datetime.timedelta(days=3)
        )
        revoked, _ = ApiToken.issue(user=users["olga"], name="old-ci")
        ApiToken.objects.filter(pk=revoked.pk).update(revoked_at=T0, last_used_at=T0)
        ApiToken.issue(user=users["vera"], name="veras-token")
        response = as_user("olga").get("/account/tokens/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "veras-token" not in html
    row = re.search(rf'<tr data-token="{mine.id}" data-state="active">(.*?)</tr>', html, re.S)
    assert row, html
    assert "nightly" in row.group(1) and f"{mine.prefix}…" in row.group(1)
    assert "2026-11-21 18:00" in row.group(1) and "2026-11-24 18:00" in row.group(1)
    assert f'href="/account/tokens/{mine.id}/revoke/"' in row.group(1)
    row = re.search(rf'<tr data-token="{revoked.id}" data-state="revoked">(.*?)</tr>', html, re.S)
    assert row and 'data-token="revoked"' in row.group(1)
    assert "/revoke/" not in row.group(1)  # nothing left to revoke
    assert "Times in UTC" in html
    assert 'name="days" value="90"' in html  # the default lifetime, OPSCENTER_TOKEN_DAYS


def test_making_a_token_shows_its_key_once_and_it_opens_the_api(as_user, users, project):
    client = as_user("olga")
    with time_machine.travel(T0, tick=False):
        response = client.post("/account/tokens/", {"name": "ci-deploy", "days": "30"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    html = response.content.decode()
    key = re.search(r'value="(ops_[^"]+)"', html).group(1)
    assert "copy its key now" in html and "2026-12-21 18:00 UTC" in html
    token = ApiToken.objects.get(user=users["olga"])
    assert token.name == "ci-deploy" and token.expires_at == T0 + datetime.timedelta(days=30)
    assert token.key_hash == ApiToken.hash_key(key)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/projects/acme").json()["role"] == "operator"
    # Never again, on any page.
    for url in ["/account/tokens/", f"/account/tokens/{token.id}/revoke/", "/instances/"]:
        page = client.get(url).content.decode()
        assert key not in page and key[10:20] not in page, url
        assert token.key_hash not in page, url
    log = OperationLog.objects.get(action="token.create")
    assert (log.username, log.source, log.object_id) == ("olga", "ui", token.prefix)


def test_a_token_that_never_expires(as_user, users, project):
    html, _ = make_token(as_user("olga"), days="0")
    assert "it never expires" in html
    assert ApiToken.objects.get().expires_at is None


@pytest.mark.parametrize(
    ("posted", "fields"),
    [
        ({"name": "", "days": "30"}, ["name"]),
        ({"name": "x" * 101, "days": "30"}, ["name"]),
        ({"name": "ci", "days": "-1"}, ["days"]),
        ({"name": "ci", "days": "3651"}, ["days"]),
        ({"name": "ci", "days": "soon"}, ["days"]),
        ({"name": "ci", "days": ""}, ["days"]),
        ({"name": " ", "days": "1.5"}, ["name", "days"]),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_makes_nothing(as_user, project, posted, fields):
    response = as_user("olga").post("/account/tokens/", posted)
    assert response.status_code == 422
    html = response.content.decode()
    for field in fields:
        assert f"<strong>{field}</strong>:" in html
        assert re.search(rf'data-field="{field}">.*?class="field-error"', html, re.S)
    assert "new-token-key" not in html
    assert not ApiToken.objects.exists()


def test_revoke_asks_first_then_the_token_stops_working_at_once(as_user, users, project):
    client = as_user("olga")
    _, key = make_token(client)
    token = ApiToken.objects.get()
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/projects").status_code == 200

    confirm = client.get(f"/account/tokens/{token.id}/revoke/")
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "Revoke it?" in html
    assert f'<form method="post" action="/account/tokens/{token.id}/revoke/"' in html
    assert ApiToken.objects.get().revoked_at is None  # asking changes nothing

    response = client.post(f"/account/tokens/{token.id}/revoke/")
    assert response.status_code == 302 and response["Location"] == "/account/tokens/"
    assert ApiToken.objects.get().revoked_at is not None
    assert api.get("/api/projects").status_code == 401
    page = client.get("/account/tokens/").content.decode()
    assert "revoked: it no longer opens the API" in page
    assert f'data-token="{token.id}" data-state="revoked"' in page

    # A second revoke changes nothing and says so.
    client.post(f"/account/tokens/{token.id}/revoke/")
    assert "was revoked already" in client.get("/account/tokens/").content.decode()
    assert OperationLog.objects.filter(action="token.revoke").count() == 1


def test_nobody_revokes_or_sees_another_users_token(as_user, users, project):
    token, key = ApiToken.issue(user=users["vera"], name="veras")
    for name in ["olga", "alice"]:  # an operator, a project admin
        client = as_user(name)
        assert client.get(f"/account/tokens/{token.id}/revoke/").status_code == 404
        assert client.post(f"/account/tokens/{token.id}/revoke/").status_code == 404
    assert ApiToken.objects.get().revoked_at is None
    assert Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/projects").status_code == 200


def test_superusers_see_and_revoke_any_token_in_the_admin_never_its_hash(as_user, users, project):
    olga = as_user("olga")
    _, key = make_token(olga)
    token = ApiToken.objects.get()
    admin = as_user("root")
    listing = admin.get("/admin/accounts/apitoken/")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert token.prefix in html and "ci-deploy" in html
    assert token.key_hash not in html and key not in html
    assert "/admin/accounts/apitoken/add/" not in html  # keys are made on the tokens page
    detail = admin.get(f"/admin/accounts/apitoken/{token.id}/change/")
    assert detail.status_code == 200
    assert token.key_hash not in detail.content.decode() and key not in detail.content.decode()
    assert admin.get("/admin/accounts/apitoken/add/").status_code == 403

    response = admin.post(
        "/admin/accounts/apitoken/",
        {"action": "revoke", "_selected_action": [str(token.id)]},
    )
    assert response.status_code == 302
    assert ApiToken.objects.get().revoked_at is not None
    assert Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/projects").status_code == 401
    log = OperationLog.objects.get(action="token.revoke")
    assert log.username == "root" and log.detail["user"] == "olga"


def test_staff_who_are_not_superusers_do_not_see_tokens_in_the_admin(users, project):
    users["alice"].is_staff = True
    users["alice"].save()
    ApiToken.issue(user=users["vera"], name="veras")
    client = Client()
    client.force_login(users["alice"])
    # The admin is for superusers only: staff are sent to its login.
    refused = client.get("/admin/accounts/apitoken/")
    assert refused.status_code == 302 and refused["Location"].startswith("/admin/login/")
    assert "apitoken" not in client.get("/admin/").content.decode()
