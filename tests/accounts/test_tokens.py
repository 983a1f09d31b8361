import datetime
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from apps.accounts.models import ApiToken
from apps.audit.models import OperationLog

T0 = datetime.datetime(2026, 11, 21, 18, 0, tzinfo=datetime.UTC)


def token_create(username: str) -> str:
    out = StringIO()
    call_command("opscenter", "token", "create", username, stdout=out)
    return out.getvalue().strip()


def test_token_create_prints_a_token_that_opens_the_api(project):
    key = token_create("vera")
    assert key.startswith("ops_") and "\n" not in key
    token = ApiToken.objects.get(user__username="vera")
    assert token.key_hash != key and key not in token.key_hash  # only the hash is kept
    response = Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/projects")
    assert response.status_code == 200
    assert [p["code"] for p in response.json()["items"]] == ["acme"]


def test_token_create_for_unknown_or_inactive_user_is_a_clear_error(users):
    with pytest.raises(CommandError, match="unknown user 'ghost'"):
        token_create("ghost")
    users["vera"].is_active = False
    users["vera"].save()
    with pytest.raises(CommandError, match="inactive"):
        token_create("vera")


def test_token_list_and_revoke(project):
    key = token_create("vera")
    out = StringIO()
    call_command("opscenter", "token", "list", "vera", stdout=out)
    assert key[:10] in out.getvalue() and key not in out.getvalue()
    with pytest.raises(CommandError, match="at least 6"):
        call_command("opscenter", "token", "revoke", "vera", "ops_")
    call_command("opscenter", "token", "revoke", "vera", key[:10], stdout=StringIO())
    assert Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/projects").status_code == 401
    with pytest.raises(CommandError, match="no token"):
        call_command("opscenter", "token", "revoke", "vera", key[:10])


def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_token_from_the_real_command_line_works_against_the_api(project):
    env = {**os.environ, "DATABASE_URL": _database_url()}
    done = subprocess.run(
        [sys.executable, "manage.py", "opscenter", "token", "create", "olga"],
        cwd=Path(settings.BASE_DIR),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    response = Client(HTTP_AUTHORIZATION=f"Bearer {key}").get("/api/projects/acme")
    assert response.status_code == 200
    assert response.json()["role"] == "operator"


def test_last_used_is_recorded_without_a_write_per_request(project):
    key = token_create("vera")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    with time_machine.travel(T0, tick=False):
        client.get("/api/projects")
    assert ApiToken.objects.get().last_used_at == T0
    with time_machine.travel(T0 + datetime.timedelta(seconds=30), tick=False):
        client.get("/api/projects")
    assert ApiToken.objects.get().last_used_at == T0
    with time_machine.travel(T0 + datetime.timedelta(minutes=2), tick=False):
        client.get("/api/projects")
    assert ApiToken.objects.get().last_used_at == T0 + datetime.timedelta(minutes=2)


def api_get(key: str, path: str = "/api/projects"):
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}").get(path)


def test_token_lifetime_defaults_to_the_setting_and_can_be_chosen(project, settings):
    with time_machine.travel(T0, tick=False):
        key = token_create("vera")
        default = ApiToken.objects.get(key_hash=ApiToken.hash_key(key))
        assert default.expires_at == T0 + datetime.timedelta(days=settings.OPSCENTER_TOKEN_DAYS)
        assert settings.OPSCENTER_TOKEN_DAYS == 90
        out = StringIO()
        call_command("opscenter", "token", "create", "vera", "--days", "7", stdout=out)
        week = ApiToken.objects.get(key_hash=ApiToken.hash_key(out.getvalue().strip()))
        assert week.expires_at == T0 + datetime.timedelta(days=7)
        out = StringIO()
        call_command("opscenter", "token", "create", "vera", "--days", "0", stdout=out)
        never = ApiToken.objects.get(key_hash=ApiToken.hash_key(out.getvalue().strip()))
        assert never.expires_at is None
        settings.OPSCENTER_TOKEN_DAYS = 0
        never_by_default = ApiToken.objects.get(key_hash=ApiToken.hash_key(token_create("vera")))
        assert never_by_default.expires_at is None


def test_token_create_refuses_a_bad_lifetime_and_makes_nothing(project):
    for days in ["-1", "3651"]:
        with pytest.raises(CommandError, match="days: whole days from 1 to 3650, or 0 for never"):
            call_command("opscenter", "token", "create", "vera", "--days", days)
    with pytest.raises(CommandError, match="name"):
        call_command("opscenter", "token", "create", "vera", "--name", "  ")
    assert not ApiToken.objects.exists()


def test_a_revoked_token_stops_working_at_once(project):
    key = token_create("vera")
    assert api_get(key).status_code == 200
    call_command("opscenter", "token", "revoke", "vera", key[:10], stdout=StringIO())
    response = api_get(key)
    assert response.status_code == 401
    body = response.json()
    assert body["detail"].startswith(f"this API token ({key[:10]}…) was revoked at ")
    assert body["errors"] == [{"field": "Authorization", "message": "revoked token"}]
    # Also on writes, and the row is kept (revoked, not deleted).
    assert (
        Client(HTTP_AUTHORIZATION=f"Bearer {key}")
        .post("/api/projects", {"code": "x"}, content_type="application/json")
        .status_code
        == 401
    )
    assert ApiToken.objects.get().revoked_at is not None


def test_an_expired_token_stops_working_at_its_time(project):
    with time_machine.travel(T0, tick=False):
        out = StringIO()
        call_command("opscenter", "token", "create", "vera", "--days", "1", stdout=out)
        key = out.getvalue().strip()
    with time_machine.travel(T0 + datetime.timedelta(days=1, seconds=-1), tick=False):
        assert api_get(key).status_code == 200
    with time_machine.travel(T0 + datetime.timedelta(days=1), tick=False):
        response = api_get(key)
    assert response.status_code == 401
    assert response.json()["detail"] == (
        f"this API token ({key[:10]}…) expired at 2026-11-22T18:00:00+00:00: make a new one"
    )
    assert response.json()["errors"] == [{"field": "Authorization", "message": "expired token"}]


def test_unknown_and_inactive_users_tokens_answer_401(project, users):
    assert api_get("ops_not-a-token").status_code == 401
    key = token_create("vera")
    users["vera"].is_active = False
    users["vera"].save()
    assert api_get(key).status_code == 401


def test_token_list_shows_state_expiry_and_revocation(project, users):
    with time_machine.travel(T0, tick=False):
        first = token_create("vera")
        call_command("opscenter", "token", "create", "vera", "--days", "0", stdout=StringIO())
        call_command("opscenter", "token", "revoke", "vera", first[:10], stdout=StringIO())
        out = StringIO()
        call_command("opscenter", "token", "list", "vera", stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    revoked = next(line for line in lines if line.startswith(first[:10]))
    assert "  revoked  " in revoked
    assert "expires 2027-02-19T18:00:00+00:00" in revoked
    assert revoked.endswith("revoked 2026-11-21T18:00:00+00:00")
    active = next(line for line in lines if not line.startswith(first[:10]))
    assert "  active  " in active and "expires never" in active
    # A user who left: their tokens can still be listed and revoked.
    users["vera"].is_active = False
    users["vera"].save()
    out = StringIO()
    call_command("opscenter", "token", "list", "vera", stdout=out)
    assert len(out.getvalue().splitlines()) == 2


def test_revoke_is_recorded_once_and_refuses_a_second_time(project):
    key = token_create("vera")
    call_command("opscenter", "token", "revoke", "vera", key[:10], stdout=StringIO())
    with pytest.raises(CommandError, match="no token starting with .* left to revoke"):
        call_command("opscenter", "token", "revoke", "vera", key[:10])
    actions = list(
        OperationLog.objects.filter(object_type="api_token").values_list("action", "source")
    )
    assert sorted(actions) == [("token.create", "cli"), ("token.revoke", "cli")]


def test_the_key_is_never_stored_in_clear(project):
    key = token_create("vera")
    token = ApiToken.objects.get()
    assert token.key_hash == ApiToken.hash_key(key)
    assert token.prefix == key[:10] and len(key) > 40
    stored = [str(value) for value in ApiToken.objects.values().get().values()]
    stored += [str(row) for row in OperationLog.objects.values_list("detail", "object_id")]
    assert not any(key in value or key[10:] in value for value in stored)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apitoken")
        assert not any(key[10:] in str(cell) for row in cursor.fetchall() for cell in row)
