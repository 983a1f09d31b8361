"""Secrets at rest: a key of their own, several keys at once, and rotation by a command.
Also: production settings refuse the built-in SECRET_KEY and a missing encryption key."""

import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.core import crypto
from apps.notifications.models import Channel
from apps.projects.models import Datasource

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def _stored(project) -> tuple[Datasource, Channel]:
    datasource = Datasource(project=project, name="warehouse", kind="postgresql", dsn="host=db")
    datasource.set_password("ds-pass-1")
    datasource.save()
    channel = Channel(project=project, name="robot", kind="webhook", config={"url": "http://x"})
    channel.set_secret("secret", "robot-secret-1")
    channel.save()
    return datasource, channel


def _read(datasource: Datasource, channel: Channel) -> tuple[str, str]:
    datasource.refresh_from_db()
    channel.refresh_from_db()
    return datasource.get_password(), channel.get_secret("secret")


def test_the_encryption_key_is_not_derived_from_secret_key(settings, project):
    settings.OPSCENTER_ENCRYPTION_KEYS = [OLD_KEY]
    datasource, channel = _stored(project)
    # Knowing SECRET_KEY (any developer of the deployment may) decrypts nothing.
    settings.OPSCENTER_ENCRYPTION_KEYS = []
    with pytest.raises(ValueError, match="cannot be decrypted"):
        _read(datasource, channel)
    # The key itself does.
    assert Fernet(OLD_KEY).decrypt(datasource.password_encrypted.encode()) == b"ds-pass-1"


def test_rotation_reencrypts_every_secret_and_old_values_decrypt_meanwhile(settings, project):
    settings.OPSCENTER_ENCRYPTION_KEYS = [OLD_KEY]
    datasource, channel = _stored(project)

    # A new key goes in front: what was stored still decrypts, new values use the new key.
    settings.OPSCENTER_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    assert _read(datasource, channel) == ("ds-pass-1", "robot-secret-1")
    assert Fernet(NEW_KEY).decrypt(crypto.encrypt("fresh").encode()) == b"fresh"

    out = _call("encryption", "rotate")
    assert "re-encrypted 1 datasource passwords" in out
    assert "re-encrypted 1 channel secrets" in out

    # The old key can go: everything decrypts with the new one alone...
    settings.OPSCENTER_ENCRYPTION_KEYS = [NEW_KEY]
    assert _read(datasource, channel) == ("ds-pass-1", "robot-secret-1")
    # ...and nothing with the old one any more.
    settings.OPSCENTER_ENCRYPTION_KEYS = [OLD_KEY]
    with pytest.raises(ValueError):
        _read(datasource, channel)


def test_values_stored_before_any_key_was_set_are_rotated_to_the_key(settings, project):
    settings.OPSCENTER_ENCRYPTION_KEYS = []  # the development default: derived from SECRET_KEY
    datasource, channel = _stored(project)
    settings.OPSCENTER_ENCRYPTION_KEYS = [NEW_KEY]
    assert _read(datasource, channel) == ("ds-pass-1", "robot-secret-1")
    _call("encryption", "rotate")
    settings.SECRET_KEY = "another-secret-key-entirely"
    assert _read(datasource, channel) == ("ds-pass-1", "robot-secret-1")


def test_rotation_names_secrets_no_key_decrypts_and_keeps_them(settings, project):
    settings.OPSCENTER_ENCRYPTION_KEYS = [OLD_KEY]
    datasource, channel = _stored(project)
    settings.OPSCENTER_ENCRYPTION_KEYS = [NEW_KEY]
    before = datasource.password_encrypted
    with pytest.raises(CommandError) as failure:
        _call("encryption", "rotate")
    message = str(failure.value)
    assert "2 secret(s) no key decrypts" in message
    assert f"datasource {datasource}: password" in message
    assert "channel robot: secret" in message
    datasource.refresh_from_db()
    assert datasource.password_encrypted == before


def _call(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("opscenter", *args, stdout=out)
    return out.getvalue()


def _manage_check(**env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SECRET_KEY", "OPSCENTER_ENCRYPTION_KEY", "DEBUG")
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=django_settings.BASE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_settings_refuse_the_built_in_secret_key():
    refused = _manage_check(OPSCENTER_ENCRYPTION_KEY=NEW_KEY)
    assert refused.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set" in refused.stderr
    assert _manage_check(DEBUG="1").returncode == 0  # development may
    assert _manage_check(SECRET_KEY="k" * 50, OPSCENTER_ENCRYPTION_KEY=NEW_KEY).returncode == 0


def test_production_settings_refuse_a_missing_or_malformed_encryption_key():
    missing = _manage_check(SECRET_KEY="k" * 50)
    assert "ImproperlyConfigured: OPSCENTER_ENCRYPTION_KEY is not set" in missing.stderr
    bad = _manage_check(SECRET_KEY="k" * 50, OPSCENTER_ENCRYPTION_KEY=f"{NEW_KEY},not-a-key")
    assert "OPSCENTER_ENCRYPTION_KEY: key 2 is not a Fernet key" in bad.stderr
