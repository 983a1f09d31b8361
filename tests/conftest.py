import datetime
import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client

from apps.accounts.models import ApiToken
from apps.configuration.models import ResourceGroup
from apps.projects.models import Membership, Project
from tests.receivers import closed_port, http_receiver, smtp_server  # noqa: F401 (fixtures)


def pytest_configure(config):
    # Parallel workers (pytest-xdist) have databases of their own but would share the
    # runtime directory, where attempts of equal instance ids would meet: one each.
    # Worker clusters started by tests inherit it through the environment.
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        django_settings.VAR_DIR = Path(django_settings.VAR_DIR) / worker
        django_settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        os.environ["OPSCENTER_VAR_DIR"] = str(django_settings.VAR_DIR)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # PBKDF2's deliberate slowness is for production; here it only slows every test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def users(db):
    """A superuser and one member per role of `project`, plus a stranger. Log them in with
    `client.force_login(user)`, or through the login form (`client.post("/login/", ...)`):
    `client.login()` calls authenticate() without a request, which the login throttle
    (django-axes, which counts failures per address) refuses."""
    # Transactional tests flush every table, the migration-made "default" group included.
    ResourceGroup.objects.get_or_create(name=ResourceGroup.DEFAULT)
    User = get_user_model()
    made = {"root": User.objects.create_superuser("root", "root@example.com", "pw-root-123")}
    for name in ["alice", "olga", "dave", "vera", "stranger"]:
        made[name] = User.objects.create_user(name, f"{name}@example.com", f"pw-{name}-123")
    return made


@pytest.fixture
def project(users):
    """Project "acme" in a non-UTC timezone, to catch timezone mistakes."""
    project = Project.objects.create(
        code="acme",
        name="Acme Data",
        timezone="Asia/Shanghai",
        generation_time=datetime.time(23, 0),
    )
    for name, role in [
        ("alice", "admin"),
        ("olga", "operator"),
        ("dave", "developer"),
        ("vera", "viewer"),
    ]:
        Membership.objects.create(project=project, user=users[name], role=role)
    return project


@pytest.fixture
def api_as(users):
    """api_as("olga") -> a test Client that sends olga's bearer token."""

    def make(username: str) -> Client:
        _, key = ApiToken.issue(user=users[username], name="tests")
        return Client(HTTP_AUTHORIZATION=f"Bearer {key}")

    return make
