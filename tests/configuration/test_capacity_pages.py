"""Resource group and throttling rule pages: lists with live usage (and their htmx
refresh), a group's page (capacity, slot holders, queue in start order, workers), the
forms posting to the services with their errors next to the fields, enable/disable,
delete (refused while in use), who may do what, and the admin."""

import datetime
import re
from html import unescape

import pytest
from django.test import Client

from apps.audit.models import OperationLog
from apps.configuration.models import ResourceGroup, ThrottleRule
from apps.instances.models import Instance
from apps.projects.models import Project
from tests.factories import instance_create, node_create

HTMX = {"HTTP_HX_REQUEST": "true"}
NOW = datetime.datetime(2026, 11, 21, 10, 0, tzinfo=datetime.UTC)


@pytest.fixture
def as_user(users):
    """as_user("vera") -> a client of its own, signed in as vera."""

    def login(name: str) -> Client:
        client = Client()
        client.force_login(users[name])
        return client

    return login


@pytest.fixture
def etl(project, users):
    """Group etl (2 slots): one running and one queued instance of acme, one running of a
    project vera is not a member of, and three due instances waiting in start order."""
    group = ResourceGroup.objects.create(name="etl", max_concurrency=3, cpu_capacity=4)
    alice = users["alice"]
    node = node_create(project, "load", owner=alice, resource_group="etl", cpu=1)
    other = Project.objects.create(code="beta", name="Beta")
    secret = node_create(other, "secret_job", owner=users["stranger"], resource_group="etl")
    made = {
        "group": group,
        "running": instance_create(node, NOW - datetime.timedelta(hours=2), state="running"),
        "queued": instance_create(node, NOW - datetime.timedelta(hours=1), state="queued"),
        "hidden": instance_create(secret, NOW - datetime.timedelta(hours=1), state="running"),
        "late": instance_create(node, NOW - datetime.timedelta(minutes=5)),
        "early": instance_create(node, NOW - datetime.timedelta(minutes=30)),
        "urgent": instance_create(node, NOW - datetime.timedelta(minutes=1), priority=5),
    }
    Instance.objects.filter(pk=made["late"].pk).update(wait_reason="waiting_resources")
    return made


def test_the_group_list_shows_capacity_and_live_usage(as_user, etl):
    page = as_user("vera").get("/configuration/resource-groups/")
    assert page.status_code == 200
    html = page.content.decode()
    row = re.search(r'<tr data-group="etl" data-in-use="(\d+)">(.*?)</tr>', html, re.S)
    assert row and row[1] == "3"
    assert 'data-used="3" data-total="3"' in row[2]  # slots: full
    assert 'data-used="2" data-total="4"' in row[2]  # CPU: two of its instances allocate 1
    assert 'data-waiting="1"' in row[2]
    assert "New resource group" not in html  # vera is no superuser
    # The live table alone, for the poller.
    partial = as_user("vera").get(
        "/configuration/resource-groups/", HTTP_HX_TRIGGER="groups-live", **HTMX
    )
    assert partial.status_code == 200 and "<html" not in partial.content.decode()
    assert 'data-group="etl"' in partial.content.decode()
    assert 'href="/configuration/resource-groups/"' in html  # the nav entry


def test_a_group_page_shows_holders_queue_in_start_order_and_workers(as_user, etl, monkeypatch):
    from apps.configuration import clusters

    with monkeypatch.context() as patched:
        patched.setattr(clusters, "clusters", lambda: [])
        page = as_user("vera").get("/configuration/resource-groups/etl/")
    assert page.status_code == 200
    html = page.content.decode()
    holders = re.search(r'id="group-holders"(.*?)</section>', html, re.S)[1]
    assert set(re.findall(r'data-instance="(\d+)"', holders)) == {
        str(etl[k].pk) for k in ("running", "queued", "hidden")
    }
    assert "secret_job" not in html
    assert f"instance {etl['hidden'].pk} of a project you are not a member of" in holders
    queue = re.search(r'id="group-queue"(.*?)</section>', html, re.S)[1]
    assert re.findall(r'data-instance="(\d+)" data-position="(\d+)"', queue) == [
        (str(etl["urgent"].pk), "1"),
        (str(etl["early"].pk), "2"),
        (str(etl["late"].pk), "3"),
    ]
    assert "No cluster serves this queue now" in html
    assert "Q_CLUSTER_NAME=etl" in html
    assert 'data-action="edit-group"' not in html
    assert as_user("vera").get("/configuration/resource-groups/nope/").status_code == 404


def test_a_superuser_creates_and_edits_a_group_through_the_form(as_user):
    root = as_user("root")
    form = root.get("/configuration/resource-groups/new/")
    assert form.status_code == 200 and 'name="max_concurrency"' in form.content.decode()
    bad = root.post(
        "/configuration/resource-groups/new/",
        {"name": "etl", "max_concurrency": "0", "cpu_capacity": "lots"},
        **HTMX,
    )
    assert bad.status_code == 422
    html = bad.content.decode()
    assert 'id="group-form-block"' in html and "<html" not in html
    assert re.search(r'data-field="max_concurrency".*?field-error">a whole number', html, re.S)
    assert re.search(r'data-field="cpu_capacity".*?field-error">a number of cores', html, re.S)
    assert not ResourceGroup.objects.filter(name="etl").exists()

    made = root.post(
        "/configuration/resource-groups/new/",
        {"name": "etl", "max_concurrency": "5", "memory_capacity_mb": "2048", "description": "x"},
    )
    assert made.status_code == 302 and made["Location"] == "/configuration/resource-groups/etl/"
    group = ResourceGroup.objects.get(name="etl")
    assert (group.max_concurrency, group.memory_capacity_mb, group.cpu_capacity) == (5, 2048, None)

    edited = root.post(
        "/configuration/resource-groups/etl/edit/",
        {"max_concurrency": "7", "memory_capacity_mb": "", "description": "nightly"},
    )
    assert edited.status_code == 302
    group.refresh_from_db()
    assert (group.max_concurrency, group.memory_capacity_mb, group.description) == (
        7,
        None,
        "nightly",
    )
    assert list(
        OperationLog.objects.filter(object_type="resource_group", source="ui")
        .order_by("id")
        .values_list("action", "result")
    ) == [
        ("resource_group.create", "refused"),
        ("resource_group.create", "ok"),
        ("resource_group.update", "ok"),
    ]


def test_the_group_form_refuses_who_is_not_a_superuser(as_user):
    alice = as_user("alice")
    form = alice.get("/configuration/resource-groups/new/").content.decode()
    assert "needs a superuser" in form and "<fieldset disabled" in form
    refused = alice.post(
        "/configuration/resource-groups/new/", {"name": "x", "max_concurrency": "2"}
    )
    assert refused.status_code == 403 and not ResourceGroup.objects.filter(name="x").exists()


def test_deleting_a_group_in_use_is_refused_with_a_message(as_user, etl):
    root = as_user("root")
    refused = root.post("/configuration/resource-groups/etl/delete/", follow=True)
    assert refused.redirect_chain[-1][0] == "/configuration/resource-groups/etl/"
    assert "not deleted" in refused.content.decode()
    assert "2 node(s) use it" in refused.content.decode()
    assert ResourceGroup.objects.filter(name="etl").exists()

    ResourceGroup.objects.create(name="spare")
    done = root.post("/configuration/resource-groups/spare/delete/")
    assert done.status_code == 302 and not ResourceGroup.objects.filter(name="spare").exists()


# --- throttling rules ------------------------------------------------------------------


def rule_form(**overrides) -> dict:
    return {
        "name": "acme-two",
        "scope_kind": "project",
        "scope_value": "acme",
        "max_concurrency": "2",
        "window_start": "",
        "window_end": "",
        "enabled": "on",
        **overrides,
    }


def test_a_project_admin_creates_a_rule_and_the_list_shows_its_usage(as_user, project, users):
    alice = as_user("alice")
    form = alice.get("/configuration/throttle-rules/new/").content.decode()
    assert 'name="scope_value"' in form and '<option value="acme"' in form
    made = alice.post("/configuration/throttle-rules/new/", rule_form())
    assert made.status_code == 302, made.content.decode()[:2000]
    rule = ThrottleRule.objects.get()
    assert (rule.project, rule.max_concurrency, rule.enabled) == (project, 2, True)

    node = node_create(project, "n", owner=users["alice"])
    instance_create(node, NOW, state="running")
    instance_create(node, NOW + datetime.timedelta(hours=1), wait_reason="throttled")
    html = alice.get("/configuration/throttle-rules/").content.decode()
    row = re.search(rf'<tr data-rule="{rule.pk}"[^>]*>', html)[0]
    assert 'data-in-use="1"' in row and 'data-throttled="1"' in row
    assert 'data-in-force="true"' in html


@pytest.mark.parametrize(
    "change, field, message",
    [
        ({"max_concurrency": "0"}, "max_concurrency", "a whole number from 1"),
        ({"window_start": "7:60", "window_end": "08:00"}, "window_start", "is not a time HH:MM"),
        ({"scope_value": "nope"}, "scope_value", "no project 'nope'"),
        ({"scope_kind": "datasource", "scope_value": "acme.nope"}, "scope_value", "no datasource"),
    ],
)
def test_the_rule_form_shows_errors_next_to_their_fields(as_user, project, change, field, message):
    response = as_user("root").post(
        "/configuration/throttle-rules/new/", rule_form(**change), **HTMX
    )
    assert response.status_code == 422
    html = unescape(response.content.decode())
    where = (
        rf'data-error-for="{field}">'
        if field.startswith("window")
        else rf'data-field="{field}".*?field-error">'
    )
    assert re.search(rf"{where}[^<]*{re.escape(message)}", html, re.S)
    assert not ThrottleRule.objects.exists()


def test_enable_disable_in_place_and_edit_and_delete(as_user, project):
    alice = as_user("alice")
    alice.post("/configuration/throttle-rules/new/", rule_form())
    rule = ThrottleRule.objects.get()
    row = alice.post(
        f"/configuration/throttle-rules/{rule.pk}/toggle/", {"enabled": "off"}, **HTMX
    ).content.decode()
    assert row.startswith(f'\n<tr data-rule="{rule.pk}" data-enabled="false"') or (
        f'data-rule="{rule.pk}" data-enabled="false"' in row and "<html" not in row
    )
    rule.refresh_from_db()
    assert rule.enabled is False

    page = alice.get(f"/configuration/throttle-rules/{rule.pk}/").content.decode()
    assert 'id="rule-holders"' in page and "project acme, max 2" in page
    edited = alice.post(
        f"/configuration/throttle-rules/{rule.pk}/",
        rule_form(max_concurrency="3", window_start="22:00", window_end="06:00"),
    )
    assert edited.status_code == 302
    rule.refresh_from_db()
    assert (rule.max_concurrency, rule.window_start, rule.window_end, rule.enabled) == (
        3,
        datetime.time(22, 0),
        datetime.time(6, 0),
        True,
    )
    vera = as_user("vera")
    read_only = vera.get(f"/configuration/throttle-rules/{rule.pk}/").content.decode()
    assert (
        "<fieldset disabled" in read_only
        and 'data-action="toggle"'
        not in vera.get("/configuration/throttle-rules/").content.decode()
    )
    assert vera.post(f"/configuration/throttle-rules/{rule.pk}/delete/").status_code == 302
    assert ThrottleRule.objects.exists()  # refused, with a message
    alice = as_user("alice")
    assert alice.post(f"/configuration/throttle-rules/{rule.pk}/delete/").status_code == 302
    assert not ThrottleRule.objects.exists()
    actions = list(
        OperationLog.objects.filter(object_type="throttle_rule")
        .order_by("id")
        .values_list("action", "result")
    )
    assert actions == [
        ("throttle_rule.create", "ok"),
        ("throttle_rule.update", "ok"),
        ("throttle_rule.update", "ok"),
        ("throttle_rule.delete", "refused"),
        ("throttle_rule.delete", "ok"),
    ]


def test_a_stranger_sees_global_rules_only(as_user, project):
    ResourceGroup.objects.get_or_create(name="default")
    root = as_user("root")
    root.post("/configuration/throttle-rules/new/", rule_form(name="acme-rule"))
    root.post(
        "/configuration/throttle-rules/new/",
        rule_form(name="shells", scope_kind="node_type", scope_value="shell"),
    )
    html = as_user("stranger").get("/configuration/throttle-rules/").content.decode()
    assert "shells" in html and "acme-rule" not in html
    acme_rule = ThrottleRule.objects.get(name="acme-rule")
    assert (
        as_user("stranger").get(f"/configuration/throttle-rules/{acme_rule.pk}/").status_code == 404
    )


def test_the_diagnosis_panel_links_the_full_rule(as_user, project, users):
    node = node_create(project, "n", owner=users["alice"])
    instance_create(node, NOW, state="running")
    waiting = instance_create(node, NOW - datetime.timedelta(minutes=1))
    as_user("root").post("/configuration/throttle-rules/new/", rule_form(max_concurrency="1"))
    rule = ThrottleRule.objects.get()
    html = as_user("olga").get(f"/instances/{waiting.pk}/").content.decode()
    assert 'data-blocker="throttled"' in html
    assert f'href="/configuration/throttle-rules/{rule.pk}/" data-rule="{rule.pk}"' in html


# --- admin -----------------------------------------------------------------------------


def test_the_admin_writes_through_the_services(as_user, project, users):
    root = as_user("root")
    added = root.post(
        "/admin/configuration/resourcegroup/add/",
        {"name": "etl", "description": "", "max_concurrency": "3"},
    )
    assert added.status_code == 302
    assert OperationLog.objects.get(action="resource_group.create").source == "admin"
    zero = root.post(
        "/admin/configuration/resourcegroup/add/",
        {"name": "zero", "description": "", "max_concurrency": "0"},
    )
    assert zero.status_code == 200 and not ResourceGroup.objects.filter(name="zero").exists()

    node_create(project, "n", owner=users["alice"], resource_group="etl")
    group = ResourceGroup.objects.get(name="etl")
    refused = root.post(
        f"/admin/configuration/resourcegroup/{group.pk}/delete/", {"post": "yes"}, follow=True
    )
    assert "1 node(s) use it" in refused.content.decode()
    assert ResourceGroup.objects.filter(name="etl").exists()

    rule = root.post(
        "/admin/configuration/throttlerule/add/",
        {
            "name": "r",
            "scope_kind": "project",
            "scope_value": "acme",
            "max_concurrency": "2",
            "window_start": "7:60",
            "window_end": "",
            "enabled": "on",
        },
    )
    assert rule.status_code == 200 and not ThrottleRule.objects.exists()
    assert "is not a time HH:MM" in rule.content.decode()
    rule = root.post(
        "/admin/configuration/throttlerule/add/",
        {
            "name": "r",
            "scope_kind": "project",
            "scope_value": "acme",
            "max_concurrency": "2",
            "window_start": "22:00",
            "window_end": "06:00",
            "enabled": "on",
        },
    )
    assert rule.status_code == 302
    made = ThrottleRule.objects.get()
    assert (made.project, made.window_start) == (project, datetime.time(22, 0))
    assert OperationLog.objects.get(action="throttle_rule.create").source == "admin"
