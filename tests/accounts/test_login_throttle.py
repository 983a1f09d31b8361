"""Failed logins are throttled per username and address (django-axes): after
OPSCENTER_LOGIN_FAILURE_LIMIT failures that pair is locked for the cool-off, with a page
that says so; other users, other addresses and API tokens are not affected."""

import datetime

import pytest
import time_machine
from axes.exceptions import AxesBackendRequestParameterRequired
from django.conf import settings
from django.contrib.auth import authenticate
from django.test import Client, RequestFactory

from apps.accounts.models import ApiToken
from apps.accounts.throttle import client_ip

T0 = datetime.datetime(2026, 11, 21, 9, 0, tzinfo=datetime.UTC)
LIMIT = settings.OPSCENTER_LOGIN_FAILURE_LIMIT
COOLOFF = datetime.timedelta(minutes=settings.OPSCENTER_LOGIN_COOLOFF_MINUTES)


def login(client: Client, username: str, password: str):
    return client.post("/login/", {"username": username, "password": password})


def fail_until_locked(client: Client, username: str = "vera"):
    """LIMIT - 1 failures say "wrong password"; the LIMIT-th locks."""
    for _ in range(LIMIT - 1):
        response = login(client, username, "wrong")
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.content.decode()
    return login(client, username, "wrong")


def test_defaults_are_five_failures_and_fifteen_minutes():
    assert LIMIT == 5 and COOLOFF == datetime.timedelta(minutes=15)
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]


def test_failures_lock_the_user_at_this_address_with_a_clear_page(users):
    client = Client()
    with time_machine.travel(T0, tick=False):
        response = fail_until_locked(client)
    assert response.status_code == 429
    html = response.content.decode()
    assert "Login locked for a while" in html
    assert "Too many failed logins as <strong>vera</strong> from your" in html
    assert f"({LIMIT} in a row)" in html
    assert "Try again in 15 minutes, after 09:15 UTC" in html
    assert 'href="/login/"' in html  # in the layout, with a way back
    assert "<title>Login locked" in html
    assert response["Retry-After"] == "900"


def test_right_password_is_refused_until_the_cool_off_has_passed(users):
    client = Client()
    with time_machine.travel(T0, tick=False):
        assert fail_until_locked(client).status_code == 429
    # Refused while locked, and trying does not extend the lock.
    with time_machine.travel(T0 + COOLOFF - datetime.timedelta(seconds=30), tick=False):
        response = login(client, "vera", "pw-vera-123")
        assert response.status_code == 429
        assert "Try again in 1 minute," in response.content.decode()
        assert client.get("/instances/").status_code == 302  # not logged in
    with time_machine.travel(T0 + COOLOFF + datetime.timedelta(seconds=1), tick=False):
        response = login(client, "vera", "pw-vera-123")
        assert response.status_code == 302
        assert client.get("/instances/").status_code == 200


def test_the_lock_holds_for_one_user_at_one_address_only(users):
    with time_machine.travel(T0, tick=False):
        assert fail_until_locked(Client(REMOTE_ADDR="10.0.0.1")).status_code == 429
        # Another user from the same address, and the same user from another address.
        assert login(Client(REMOTE_ADDR="10.0.0.1"), "olga", "pw-olga-123").status_code == 302
        assert login(Client(REMOTE_ADDR="10.0.0.2"), "vera", "pw-vera-123").status_code == 302
        assert login(Client(REMOTE_ADDR="10.0.0.1"), "vera", "pw-vera-123").status_code == 429


def test_a_successful_login_starts_the_count_again(users):
    client = Client()
    with time_machine.travel(T0, tick=False):
        for _ in range(LIMIT - 1):
            assert login(client, "vera", "wrong").status_code == 200
        assert login(client, "vera", "pw-vera-123").status_code == 302
        client.post("/logout/")
        for _ in range(LIMIT - 1):
            assert login(client, "vera", "wrong").status_code == 200
        assert login(client, "vera", "pw-vera-123").status_code == 302


def test_unknown_usernames_are_throttled_too(users):
    with time_machine.travel(T0, tick=False):
        response = fail_until_locked(Client(), username="nobody")
    assert response.status_code == 429


def test_admin_login_is_throttled_by_the_same_count(users):
    client = Client()
    with time_machine.travel(T0, tick=False):
        for _ in range(LIMIT - 1):
            assert login(client, "root", "wrong").status_code == 200
        response = client.post(
            "/admin/login/", {"username": "root", "password": "pw-root-123", "next": "/admin/"}
        )
        assert response.status_code == 302  # a success resets the count
        client.post("/logout/")
        for _ in range(LIMIT - 1):
            client.post("/admin/login/", {"username": "root", "password": "wrong"})
        assert login(client, "root", "wrong").status_code == 429
        response = client.post("/admin/login/", {"username": "root", "password": "pw-root-123"})
        assert response.status_code == 429
        assert "Login locked for a while" in response.content.decode()


def test_bearer_tokens_work_while_the_user_is_locked_out(project):
    _, key = ApiToken.issue(user=project.memberships.get(role="viewer").user, name="t")
    with time_machine.travel(T0, tick=False):
        assert fail_until_locked(Client()).status_code == 429
        response = Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/projects")
    assert response.status_code == 200
    assert [p["code"] for p in response.json()["items"]] == ["acme"]


def test_authenticate_without_a_request_is_refused(users):
    """Every login goes through a request (axes counts by its address); code that would
    check a password without one fails loudly instead of skipping the throttle."""
    with pytest.raises(AxesBackendRequestParameterRequired):
        authenticate(username="vera", password="pw-vera-123")


def test_client_address_behind_trusted_proxies(settings):
    factory = RequestFactory()
    request = factory.get("/", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="6.6.6.6, 1.2.3.4")
    settings.OPSCENTER_PROXY_COUNT = 0
    assert client_ip(request) == "10.9.9.9"  # no proxy trusted: the connection's
    settings.OPSCENTER_PROXY_COUNT = 1
    assert client_ip(request) == "1.2.3.4"  # what the proxy saw, not what the client said
    settings.OPSCENTER_PROXY_COUNT = 2
    assert client_ip(request) == "6.6.6.6"
    settings.OPSCENTER_PROXY_COUNT = 3
    assert client_ip(request) == "10.9.9.9"  # fewer entries than proxies: not trusted
    settings.OPSCENTER_PROXY_COUNT = 1
    garbage = factory.get("/", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="not-an-ip")
    assert client_ip(garbage) == "10.9.9.9"
