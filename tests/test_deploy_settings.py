"""Production settings: `check --deploy` is clean with the documented production
environment (deploy/production.env.example), DEBUG off means secure cookies and headers,
and each of them can be changed through the environment."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)
ENV_EXAMPLE = BASE_DIR / "deploy" / "production.env.example"
# What the test process's own environment must not lend the subprocesses (the browser
# tests set DJANGO_ALLOW_ASYNC_UNSAFE, which a deployment must not).
OWN_VARIABLES = (
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "X_FRAME_",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)
OWN_PREFIXES = ("SECURE_", "SESSION_", "CSRF_", "OPSCENTER_")
SHOWN = [
    "DEBUG",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_AGE",
    "SESSION_COOKIE_SAMESITE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_SSL_REDIRECT",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_CONTENT_TYPE_NOSNIFF",
    "SECURE_REFERRER_POLICY",
    "X_FRAME_OPTIONS",
    "OPSCENTER_PROXY_COUNT",
]


def clean_environment(var_dir: Path, **values: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(OWN_VARIABLES + OWN_PREFIXES)
    }
    env.update(
        SECRET_KEY=secrets.token_urlsafe(50),
        OPSCENTER_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        OPSCENTER_VAR_DIR=str(var_dir),
    )
    env.update(values)
    return env


def documented_production_environment(var_dir: Path) -> dict[str, str]:
    """The example file's variables, its <placeholders> filled as its comments say."""
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    assert values["SECRET_KEY"] == "<long random value>"
    assert values["OPSCENTER_ENCRYPTION_KEY"] == "<Fernet key>"
    del values["SECRET_KEY"], values["OPSCENTER_ENCRYPTION_KEY"]  # made by clean_environment
    values["DATABASE_URL"] = values["DATABASE_URL"].replace("<password>", "secret")
    assert not any("<" in value for value in values.values()), values
    return clean_environment(var_dir, **values)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def settings_under(env: dict[str, str]) -> dict:
    code = (
        "import json, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'opscenter.settings'\n"
        "from django.conf import settings\n"
        f"print(json.dumps({{k: getattr(settings, k, None) for k in {SHOWN!r}}}))"
    )
    done = run(env, "-c", code)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_check_deploy_is_clean_with_the_documented_production_settings(tmp_path):
    done = run(
        documented_production_environment(tmp_path),
        "manage.py",
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout
    assert "WARNING" not in done.stderr and "ERROR" not in done.stderr, done.stderr


def test_documented_settings_are_what_the_settings_module_reads(tmp_path):
    seen = settings_under(documented_production_environment(tmp_path))
    assert seen["DEBUG"] is False
    assert seen["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert seen["SECURE_SSL_REDIRECT"] is True
    assert seen["SECURE_HSTS_PRELOAD"] is True
    assert seen["OPSCENTER_PROXY_COUNT"] == 1


def test_production_defaults_are_secure_and_check_names_only_the_proxy_choices(tmp_path):
    env = clean_environment(tmp_path, ALLOWED_HOSTS="ops.example.com")
    assert settings_under(env) == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_AGE": 12 * 3600,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SECURE_HSTS_SECONDS": 365 * 24 * 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": False,
        "SECURE_SSL_REDIRECT": False,
        "SECURE_PROXY_SSL_HEADER": None,
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "SECURE_REFERRER_POLICY": "same-origin",
        "X_FRAME_OPTIONS": "DENY",
        "OPSCENTER_PROXY_COUNT": 0,
    }
    # Without the documented choices, the deploy check asks for exactly them.
    done = run(env, "manage.py", "check", "--deploy")
    warnings = sorted(
        line.split(")")[0].split("(")[1]
        for line in done.stderr.splitlines()
        if "(security." in line
    )
    assert warnings == ["security.W008", "security.W021"], done.stderr


def test_debug_development_keeps_cookies_usable_over_plain_http(tmp_path):
    seen = settings_under(clean_environment(tmp_path, DEBUG="1"))
    assert seen["SESSION_COOKIE_SECURE"] is False and seen["CSRF_COOKIE_SECURE"] is False
    assert seen["SECURE_HSTS_SECONDS"] == 0


def test_each_setting_can_be_changed_by_its_environment_variable(tmp_path):
    seen = settings_under(
        clean_environment(
            tmp_path,
            SESSION_COOKIE_SECURE="false",
            CSRF_COOKIE_SECURE="false",
            SESSION_COOKIE_AGE="3600",
            SECURE_HSTS_SECONDS="0",
            SECURE_SSL_REDIRECT="yes",
            SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_SSL, on",
            SECURE_CONTENT_TYPE_NOSNIFF="false",
            X_FRAME_OPTIONS="SAMEORIGIN",
        )
    )
    assert seen["SESSION_COOKIE_SECURE"] is False and seen["CSRF_COOKIE_SECURE"] is False
    assert seen["SESSION_COOKIE_AGE"] == 3600 and seen["SECURE_HSTS_SECONDS"] == 0
    assert seen["SECURE_SSL_REDIRECT"] is True
    assert seen["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_SSL", "on"]
    assert seen["SECURE_CONTENT_TYPE_NOSNIFF"] is False
    assert seen["X_FRAME_OPTIONS"] == "SAMEORIGIN"


@pytest.mark.parametrize("value", ["X-Forwarded-Proto", "HTTP_X_FORWARDED_PROTO", "https"])
def test_a_malformed_proxy_header_refuses_to_start(tmp_path, value):
    done = run(clean_environment(tmp_path, SECURE_PROXY_SSL_HEADER=value), "manage.py", "check")
    assert done.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER: give the header as Django names it" in done.stderr


# In the test process itself: the suite runs with production settings (DEBUG off).


def test_answers_carry_the_security_headers(client, db):
    response = client.get("/login/")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response  # only ever sent over HTTPS
    secure = client.get("/login/", secure=True)
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_session_and_csrf_cookies_are_secure_and_the_session_lasts_a_working_day(client, users):
    page = client.get("/login/")
    assert page.cookies["csrftoken"]["secure"] is True
    response = client.post("/login/", {"username": "olga", "password": "pw-olga-123"})
    assert response.status_code == 302
    session = response.cookies["sessionid"]
    assert session["secure"] is True and session["httponly"] is True
    assert session["samesite"] == "Lax"
    assert session["max-age"] == 12 * 3600


def test_ssl_redirect_trusts_the_proxy_header(client, db, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    plain = client.get("/login/", HTTP_HOST="localhost")
    assert plain.status_code == 301 and plain["Location"] == "https://localhost/login/"
    proxied = client.get("/login/", HTTP_HOST="localhost", HTTP_X_FORWARDED_PROTO="https")
    assert proxied.status_code == 200
    assert proxied["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
