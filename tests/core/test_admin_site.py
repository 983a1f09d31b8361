"""The Django admin is for superusers only, and records only opscenter writes
(instances, attempts, publish's versions...) have no Add there."""

import datetime

import pytest
from django.apps import apps
from django.contrib import admin
from django.test import Client, RequestFactory

from tests.factories import instance_create, node_create

# Written by opscenter alone: instances and attempts (the engine), their dependencies and
# generation runs, events, alerts, deliveries, results; nodes, versions and their
# dependencies (publish); backfill runs (planned with their instances).
NOT_ADDABLE = [
    "instances.Instance",
    "instances.Attempt",
    "instances.InstanceDependency",
    "instances.GenerationRun",
    "nodes.Node",
    "nodes.NodeVersion",
    "nodes.NodeDependency",
    "backfills.Backfill",
    "monitoring.Alert",
    "monitoring.AlertEvent",
    "notifications.Delivery",
    "baselines.BaselineCycle",
    "quality.FieldRuleResult",
    "audit.OperationLog",
]


@pytest.fixture
def staff(users):
    """alice: staff (the old way into the admin), not a superuser."""
    users["alice"].is_staff = True
    users["alice"].save()
    return users["alice"]


def superuser_request(users):
    request = RequestFactory().get("/admin/")
    request.user = users["root"]
    return request


def test_a_superuser_opens_the_admin(users):
    client = Client()
    client.force_login(users["root"])
    response = client.get("/admin/")
    assert response.status_code == 200
    assert "opscenter administration" in response.content.decode()


def test_staff_who_are_not_superusers_are_refused_everywhere(staff, project):
    client = Client()
    client.force_login(staff)
    for url in ["/admin/", "/admin/projects/project/", f"/admin/projects/project/{project.pk}/"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/"), url
    login_page = client.get("/admin/login/?next=/admin/")
    assert "not authorized to access this page" in login_page.content.decode()


def test_the_admin_login_refuses_staff_and_lets_superusers_in(staff, users):
    client = Client()
    refused = client.post(
        "/admin/login/?next=/admin/",
        {"username": "alice", "password": "pw-alice-123", "next": "/admin/"},
    )
    assert refused.status_code == 200
    assert "The administration is for superusers only" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302
    root = Client()
    admitted = root.post(
        "/admin/login/?next=/admin/",
        {"username": "root", "password": "pw-root-123", "next": "/admin/"},
    )
    assert admitted.status_code == 302 and root.get("/admin/").status_code == 200


def test_the_user_menu_offers_the_admin_to_superusers_only(staff, users, project):
    client = Client()
    client.force_login(staff)
    assert 'href="/admin/"' not in client.get("/projects/").content.decode()
    client.force_login(users["root"])
    assert 'href="/admin/"' in client.get("/projects/").content.decode()


@pytest.mark.parametrize("label", NOT_ADDABLE)
def test_records_opscenter_writes_have_no_add(users, label):
    model = apps.get_model(label)
    model_admin = admin.site._registry[model]
    assert not model_admin.has_add_permission(superuser_request(users))
    client = Client()
    client.force_login(users["root"])
    meta = model._meta
    assert client.get(f"/admin/{meta.app_label}/{meta.model_name}/add/").status_code == 403
    assert client.get(f"/admin/{meta.app_label}/{meta.model_name}/").status_code == 200


def test_an_instance_page_offers_no_attempt_to_add(users, project):
    node = node_create(project, "load", owner=users["alice"])
    instance = instance_create(node, datetime.datetime(2026, 11, 21, 2, tzinfo=datetime.UTC))
    client = Client()
    client.force_login(users["root"])
    html = client.get(f"/admin/instances/instance/{instance.pk}/change/").content.decode()
    # The inline's formset takes no new attempt (the admin draws no "Add another" row).
    assert 'name="attempts-MAX_NUM_FORMS" value="0"' in html
