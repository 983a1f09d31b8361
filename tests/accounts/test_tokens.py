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
