"""The baseline pages that write: New baseline, Edit, Delete. They post to the services
the API uses (apps.baselines.services): the admin role, the whole baseline checked, a
refusal shown next to its field with nothing changed, the operation log written with
source "ui" (the audit log's "Page")."""

import pytest
from django.contrib.auth.models import Group

from apps.audit.models import OperationLog
from apps.baselines.models import Baseline
from apps.monitoring.models import OnCallSchedule
from apps.notifications.models import Channel
from apps.projects.models import Project
from tests.factories import node_create

from .builders import baseline_make

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def setup(project, users):
    """acme's nodes (two online recurring prod nodes, an offline one, a manual one, a dev
    one), beta's node, a channel of each project and a global one, "orders ready"."""
    alice = users["alice"]
    nodes = {
        name: node_create(project, name, owner=alice)
        for name in ("extract_orders", "publish_orders", "load_users")
    }
    nodes["retired"] = node_create(project, "retired", owner=alice)
    nodes["retired"].status = "offline"
    nodes["retired"].save(update_fields=["status"])
    nodes["manual"] = node_create(project, "manual_fix", owner=alice, schedule_type="one_time")
    nodes["dev"] = node_create(project, "dev_only", owner=alice, env="dev")
    beta = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    nodes["beta"] = node_create(beta, "beta_node", owner=alice)
    channels = {
        "acme": Channel.objects.create(
            project=project, name="acme-hook", kind="webhook", config={"url": "http://x"}
        ),
        "global": Channel.objects.create(
            project=None, name="all-hook", kind="webhook", config={"url": "http://x"}
        ),
        "beta": Channel.objects.create(
            project=beta, name="beta-hook", kind="webhook", config={"url": "http://x"}
        ),
    }
    Group.objects.create(name="data-team")
    OnCallSchedule.objects.create(
        name="primary", project=project, users=["alice"], handover="09:00", start_date="2026-01-01"
    )
    baseline = baseline_make(project, [nodes["publish_orders"]], name="orders ready")
    return {"nodes": nodes, "channels": channels, "baseline": baseline, "beta": beta}


def _form(setup, **changes) -> dict:
    nodes = setup["nodes"]
    post = {
        "baseline_project": "acme",
        "name": "users loaded",
        "cycle": "daily",
        "committed_time": "06:30",
        "margin_minutes": "20",
        "priority": "6",
        "key_nodes": [nodes["extract_orders"].pk, nodes["load_users"].pk],
        "recipients_owner": "on",
        "recipients_users": ["olga"],
        "recipients_groups": ["data-team"],
        "recipients_on_call": "primary",
        "channels": [setup["channels"]["acme"].pk, setup["channels"]["global"].pk],
        "enabled": "on",
    }
    post.update(changes)
    return {k: v for k, v in post.items() if v is not None}


def _snapshot():
    return [
        (b.pk, b.name, b.committed_time, b.priority, sorted(n.pk for n in b.key_nodes.all()))
        for b in Baseline.objects.order_by("pk")
    ]


# --- GET ------------------------------------------------------------------------------


def test_the_list_offers_new_baseline_to_admins_only(as_user, setup):
    assert 'data-action="new-baseline"' in as_user("alice").get("/baselines/").content.decode()
    assert 'data-action="new-baseline"' in as_user("root").get("/baselines/").content.decode()
    for name in ("vera", "olga", "stranger"):
        html = as_user(name).get("/baselines/").content.decode()
        assert 'data-action="new-baseline"' not in html, name


def test_the_detail_page_offers_edit_and_delete_to_admins_only(as_user, setup):
    url = f"/baselines/{setup['baseline'].pk}/"
    html = as_user("alice").get(url).content.decode()
    assert f'href="/baselines/{setup["baseline"].pk}/edit/"' in html
    assert 'data-action="delete-baseline"' in html and "data-confirm=" in html
    html = as_user("vera").get(url).content.decode()
    assert "edit-baseline" not in html and "delete-baseline" not in html
    assert as_user("stranger").get(url).status_code == 404


def test_the_new_form_offers_the_projects_online_recurring_prod_nodes(as_user, setup):
    nodes = setup["nodes"]
    response = as_user("alice").get("/baselines/new/?baseline_project=acme")
    assert response.status_code == 200
    html = response.content.decode()
    for name in ("extract_orders", "publish_orders", "load_users"):
        assert f'data-node="{nodes[name].pk}"' in html
    for name in ("retired", "manual", "dev", "beta"):
        assert f'data-node="{nodes[name].pk}"' not in html, name
    assert "acme-hook" in html and "all-hook" in html and "beta-hook" not in html
    assert 'value="data-team"' in html and 'value="primary"' in html
    assert "The key nodes' owners" in html
    # The committed time's format follows the cycle: each option carries its own.
    assert 'data-format="HH:MM"' in html and 'data-format="MM"' in html
    assert 'placeholder="HH:MM"' in html


def test_the_new_form_for_a_viewer_is_read_only_and_a_stranger_gets_404(as_user, setup):
    html = as_user("vera").get("/baselines/new/?baseline_project=acme").content.decode()
    assert "needs its admin role" in html and "<fieldset disabled" in html
    assert 'data-action="save"' not in html
    html = as_user("vera").get("/baselines/new/").content.decode()
    assert "Creating a baseline needs the admin role in a project." in html
    response = as_user("stranger").get("/baselines/new/?baseline_project=acme")
    assert response.status_code == 404
    assert as_user("stranger").get("/baselines/new/").status_code == 200


def test_the_edit_form_shows_the_stored_baseline(as_user, setup):
    baseline = setup["baseline"]
    retired = setup["nodes"]["retired"]
    baseline.key_nodes.add(retired)
    url = f"/baselines/{baseline.pk}/edit/"
    html = as_user("alice").get(url).content.decode()
    assert 'value="orders ready"' in html and 'value="10:00"' in html
    # A key node that went offline stays offered, checked.
    assert f'name="key_nodes" value="{retired.pk}" checked' in html
    html = as_user("vera").get(url).content.decode()
    assert "<fieldset disabled" in html and 'data-action="save"' not in html
    assert "delete-baseline" not in html
    assert as_user("stranger").get(url).status_code == 404


def test_the_pages_need_a_login(client, setup):
    for url in ("/baselines/new/", f"/baselines/{setup['baseline'].pk}/edit/"):
        assert client.get(url).status_code == 302
    assert client.post(f"/baselines/{setup['baseline'].pk}/delete/").status_code == 302
    assert Baseline.objects.count() == 1


# --- create, edit, delete ---------------------------------------------------------------


def test_an_admin_creates_a_baseline(as_user, setup):
    nodes, channels = setup["nodes"], setup["channels"]
    response = as_user("alice").post("/baselines/new/", _form(setup))
    baseline = Baseline.objects.get(name="users loaded")
    assert response.status_code == 302 and response.url == f"/baselines/{baseline.pk}/"
    assert baseline.project.code == "acme"
    assert (baseline.cycle, baseline.committed_time) == ("daily", "06:30")
    assert (baseline.margin_minutes, baseline.priority, baseline.enabled) == (20, 6, True)
    assert {n.pk for n in baseline.key_nodes.all()} == {
        nodes["extract_orders"].pk,
        nodes["load_users"].pk,
    }
    assert {c.pk for c in baseline.channels.all()} == {
        channels["acme"].pk,
        channels["global"].pk,
    }
    assert baseline.recipients == {
        "owner": True,
        "users": ["olga"],
        "groups": ["data-team"],
        "on_call": "primary",
    }
    entry = OperationLog.objects.get(action="baseline.create")
    assert (entry.source, entry.get_source_display(), entry.username) == ("ui", "Page", "alice")
    assert entry.object_id == str(baseline.pk) and entry.result == "ok"
    # From htmx the answer tells the browser where to go.
    response = as_user("alice").post("/baselines/new/", _form(setup, name="second"), **HTMX)
    second = Baseline.objects.get(name="second")
    assert response.status_code == 200 and response["HX-Redirect"] == f"/baselines/{second.pk}/"


def test_an_hourly_baseline_takes_a_minute(as_user, setup):
    form = _form(setup, cycle="hourly", committed_time="45", margin_minutes="10")
    assert as_user("root").post("/baselines/new/", form).status_code == 302
    assert Baseline.objects.get(name="users loaded").committed_time == "45"


def test_an_admin_edits_a_baseline(as_user, setup):
    baseline = setup["baseline"]
    form = _form(setup, name="orders ready", committed_time="07:15", enabled=None)
    del form["baseline_project"]
    response = as_user("alice").post(f"/baselines/{baseline.pk}/edit/", form)
    assert response.status_code == 302 and response.url == f"/baselines/{baseline.pk}/"
    baseline.refresh_from_db()
    assert (baseline.committed_time, baseline.priority, baseline.enabled) == ("07:15", 6, False)
    entry = OperationLog.objects.get(action="baseline.update")
    assert entry.source == "ui" and entry.object_id == str(baseline.pk)
    assert entry.detail["changed"]["committed_time"] == "07:15"


def test_an_admin_deletes_a_baseline(as_user, setup):
    baseline = setup["baseline"]
    response = as_user("alice").post(f"/baselines/{baseline.pk}/delete/")
    assert response.status_code == 302 and response.url == "/baselines/"
    assert not Baseline.objects.exists()
    entry = OperationLog.objects.get(action="baseline.delete")
    assert (entry.source, entry.object_id) == ("ui", str(baseline.pk))
    assert as_user("alice").get(f"/baselines/{baseline.pk}/delete/").status_code == 405


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"committed_time": "25:00"}, "committed_time", "is not a time HH:MM"),
        ({"cycle": "hourly", "committed_time": "06:30"}, "committed_time", "is not a minute MM"),
        ({"cycle": "weekly"}, "cycle", "one of daily, hourly"),
        ({"priority": "9"}, "priority", "from 1 (lowest) to 8 (highest)"),
        ({"priority": "high"}, "priority", "from 1 (lowest) to 8 (highest)"),
        ({"name": "   "}, "name", "a name is required"),
        ({"name": "orders ready"}, "name", "project acme has a baseline"),
        ({"name": "x" * 101}, "name", "at most 100 characters"),
        ({"margin_minutes": "-3"}, "margin_minutes", "0 or more"),
        ({"margin_minutes": "1440"}, "margin_minutes", "less than the cycle"),
        ({"margin_minutes": "9" * 40}, "margin_minutes", "a whole number of minutes"),
        ({"key_nodes": []}, "key_nodes", "a non-empty list of node ids"),
        ({"key_nodes": ["abc"]}, "key_nodes", "a non-empty list of node ids"),
        ({"key_nodes": ["9" * 30]}, "key_nodes", "a non-empty list of node ids"),
        ({"recipients_users": ["nobody"]}, "recipients.users", "no user"),
        ({"recipients_groups": ["nope"]}, "recipients.groups", "no group"),
        ({"recipients_on_call": "nope"}, "recipients.on_call", "no on-call schedule"),
        ({"channels": ["999999"]}, "channels", "no channel 999999"),
        ({"channels": ["x"]}, "channels", "a list of channel ids"),
        ({"name": "a\x00b"}, "name", "contains a NUL character"),
        ({"committed_time": "0\x00:00"}, "committed_time", "contains a NUL character"),
    ],
)
def test_bad_input_is_refused_next_to_its_field(as_user, setup, changes, field, message):
    before = _snapshot()
    response = as_user("alice").post("/baselines/new/", _form(setup, **changes))
    assert response.status_code == 422
    html = response.content.decode()
    assert f"<strong>{field}</strong>" in html
    assert message in html.replace("&#x27;", "'")
    assert _snapshot() == before
    assert not OperationLog.objects.filter(action="baseline.create", result="ok").exists()


def test_a_node_of_another_project_is_refused_like_a_missing_one(as_user, setup):
    beta_node = setup["nodes"]["beta"]
    form = _form(setup, key_nodes=[setup["nodes"]["load_users"].pk, beta_node.pk])
    response = as_user("alice").post("/baselines/new/", form)
    assert response.status_code == 422
    html = response.content.decode()
    assert f"no node {beta_node.pk} in project acme" in html
    assert "beta_node" not in html  # nothing is told about it
    # The form comes back with what was typed, the refused field's error beside it.
    assert 'value="users loaded"' in html
    assert '<div class="form-field" data-field="key_nodes">' in html
    assert not Baseline.objects.filter(name="users loaded").exists()


def test_a_channel_of_another_project_and_a_dev_node_are_refused(as_user, setup):
    form = _form(setup, channels=[setup["channels"]["beta"].pk])
    html = as_user("alice").post("/baselines/new/", form).content.decode()
    assert "belongs to another project" in html
    form = _form(setup, key_nodes=[setup["nodes"]["dev"].pk])
    html = as_user("alice").post("/baselines/new/", form).content.decode()
    assert "is a dev node" in html
    assert Baseline.objects.count() == 1


def test_a_bad_edit_changes_nothing(as_user, setup):
    baseline = setup["baseline"]
    baseline_make(baseline.project, [setup["nodes"]["load_users"]], name="users")
    before = _snapshot()
    url = f"/baselines/{baseline.pk}/edit/"
    for changes, field in [
        ({"name": "users"}, "name"),
        ({"committed_time": "7:5"}, "committed_time"),
        ({"priority": "9"}, "priority"),
        ({"name": ""}, "name"),
        ({"key_nodes": [setup["nodes"]["beta"].pk]}, "key_nodes"),
    ]:
        response = as_user("alice").post(url, _form(setup, **changes), **HTMX)
        assert response.status_code == 422, changes
        html = response.content.decode()
        assert html.lstrip().startswith('<div id="baseline-form-block">'), changes
        assert f"<strong>{field}</strong>" in html, changes
    assert _snapshot() == before
    assert not OperationLog.objects.filter(action="baseline.update", result="ok").exists()


def test_garbage_in_every_field_answers_422_never_500(as_user, setup):
    garbage = {
        key: ["\x01'\"<x>", "-1", "", "9" * 25]
        for key in (
            "baseline_project",
            "name",
            "cycle",
            "committed_time",
            "margin_minutes",
            "priority",
            "key_nodes",
            "recipients_owner",
            "recipients_users",
            "recipients_groups",
            "recipients_on_call",
            "channels",
            "enabled",
        )
    }
    garbage["baseline_project"] = "acme"
    response = as_user("alice").post("/baselines/new/", garbage)
    assert response.status_code == 422
    edit = {k: v for k, v in garbage.items() if k != "baseline_project"}
    response = as_user("alice").post(f"/baselines/{setup['baseline'].pk}/edit/", edit)
    assert response.status_code == 422
    response = as_user("alice").post("/baselines/new/", {"baseline_project": "no such"})
    assert response.status_code == 404
    assert Baseline.objects.count() == 1


# --- permissions ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vera", "olga", "dave"])
def test_below_admin_a_post_is_refused_403(as_user, setup, name):
    baseline = setup["baseline"]
    before = _snapshot()
    client = as_user(name)
    assert client.post("/baselines/new/", _form(setup)).status_code == 403
    assert client.post(f"/baselines/{baseline.pk}/edit/", _form(setup)).status_code == 403
    assert client.post(f"/baselines/{baseline.pk}/delete/").status_code == 403
    assert _snapshot() == before
    refused = OperationLog.objects.filter(result="refused", source="ui", username=name)
    assert refused.count() == 3


def test_a_stranger_gets_404_for_every_write(as_user, setup):
    baseline = setup["baseline"]
    client = as_user("stranger")
    assert client.post("/baselines/new/", _form(setup)).status_code == 404
    assert client.post(f"/baselines/{baseline.pk}/edit/", _form(setup)).status_code == 404
    assert client.post(f"/baselines/{baseline.pk}/delete/").status_code == 404
    assert _snapshot() == [
        (baseline.pk, "orders ready", "10:00", 8, [setup["nodes"]["publish_orders"].pk])
    ]


def test_the_new_form_with_no_project_asks_for_one(as_user, setup):
    response = as_user("stranger").post("/baselines/new/", {"name": "x"})
    assert response.status_code == 422
    assert "choose a project you administer" in response.content.decode()
