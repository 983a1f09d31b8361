import datetime

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.accounts.models import ApiToken
from apps.projects.models import Membership, Project


@pytest.fixture
def users(db):
    """A superuser and one member per role of `project`, plus a stranger."""
    User = get_user_model()
    made = {"root": User.objects.create_superuser("root", "root@example.com", "pw-root-123")}
    for name in ["alice", "olga", "dave", "vera", "stranger"]:
        made[name] = User.objects.create_user(name, f"{name}@example.com", f"pw-{name}-123")
    return made


@pytest.fixture
def project(users):
    """Project "acme" in a non-UTC timezone, to catch timezone mistakes."""
    project = Project.objects.create(
        code="acme", name="Acme Data", timezone="Asia/Shanghai",
        generation_time=datetime.time(23, 0),
    )
    for name, role in [("alice", "admin"), ("olga", "operator"), ("dave", "developer"), ("vera", "viewer")]:
        Membership.objects.create(project=project, user=users[name], role=role)
    return project


@pytest.fixture
def api_as(users):
    """api_as("olga") -> a test Client that sends olga's bearer token."""

    def make(username: str) -> Client:
        _, key = ApiToken.issue(user=users[username], name="tests")
        return Client(HTTP_AUTHORIZATION=f"Bearer {key}")

    return make
