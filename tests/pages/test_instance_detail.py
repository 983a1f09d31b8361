"""The instance detail: operation buttons per state and role, operations posted from it,
the diagnosis panel, the live partials and the operation log."""

import datetime
import re

import pytest
import time_machine

from apps.audit.models import OperationLog
from apps.configuration.models import ResourceGroup
from apps.instances.models import Instance, InstanceDependency
from apps.nodes.models import Node
from apps.projects.models import Project
from tests.factories import instance_create, node_create
from tests.pages.builders import T0

HTMX = {"HTTP_HX_REQUEST": "true"}
NOW = T0 + datetime.timedelta(hours=1)  # every instance scheduled at T0 is due


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def olga(client, users):
    client.force_login(users["olga"])
    return client


def buttons(html: str, within: str = "instance-actions") -> list[str]:
    """The operations offered as buttons in the element with this id."""
    block = re.search(rf'<(\w+) id="{within}".*?</\1>', html, re.S)
    return re.findall(r'data-action="(\w+)"', block.group(0)) if block else []


def make(project, owner, state: str, name: str = "load", **fields) -> Instance:
    node = node_create(project, name, owner=owner, env=fields.pop("env", "prod"))
    if state in ("running", "succeeded", "failed", "stopped"):
        fields.setdefault("started_at", T0)
        fields.setdefault("attempt_count", 1)
    if state in ("succeeded", "failed", "stopped", "skipped"):
        fields.setdefault("finished_at", T0 + datetime.timedelta(minutes=1))
    return instance_create(node, T0, state=state, **fields)


def detail(client, instance, **extra) -> str:
    response = client.get(f"/instances/{instance.id}/", **extra)
    assert response.status_code == 200
    return response.content.decode()


# --- buttons per state and role ------------------------------------------------------------


@pytest.mark.parametrize(
    "state, fields, expected",
    [
        ("pending", {}, ["set_success", "run_now", "pause", "stop", "change_resource_group"]),
        ("pending", {"paused": True}, ["set_success", "resume", "stop", "change_resource_group"]),
        ("pending", {"run_now": True}, ["set_success", "pause", "stop", "change_resource_group"]),
        ("queued", {}, ["pause", "stop"]),
        ("running", {}, ["pause", "stop"]),
        ("running", {"paused": True}, ["resume", "stop"]),
        ("succeeded", {}, ["rerun", "rerun_downstream"]),
        ("failed", {}, ["rerun", "rerun_downstream", "set_success"]),
        ("stopped", {}, ["rerun", "rerun_downstream", "set_success"]),
        ("skipped", {}, ["rerun", "rerun_downstream"]),
    ],
)
def test_buttons_follow_the_state(olga, users, project, state, fields, expected):
    ResourceGroup.objects.create(name="heavy")
    instance = make(project, users["alice"], state, **fields)
    assert buttons(detail(olga, instance)) == expected


def test_a_paused_node_offers_resume_node_and_no_run_now(olga, users, project):
    instance = make(project, users["alice"], "pending")
    Node.objects.filter(pk=instance.node_id).update(paused=True)
    html = detail(olga, instance)
    assert buttons(html) == ["set_success", "pause", "resume_node", "stop"]
    assert "node paused" in html


def test_a_realtime_instance_offers_no_batch_operations(olga, users, project):
    instance = make(project, users["alice"], "stopped", kind="realtime")
    assert buttons(detail(olga, instance)) == []


@pytest.mark.parametrize(
    "username, env, offered",
    [
        ("olga", "prod", True),  # operator
        ("alice", "prod", True),  # admin
        ("root", "prod", True),  # superuser
        ("dave", "prod", False),  # developer: prod needs an operator
        ("dave", "dev", True),  # developer on a dev instance
        ("vera", "prod", False),  # viewer
        ("vera", "dev", False),
    ],
)
def test_buttons_follow_the_role(client, users, project, username, env, offered):
    instance = make(project, users["alice"], "failed", env=env)
    client.force_login(users[username])
    html = detail(client, instance)
    assert (buttons(html) == ["rerun", "rerun_downstream", "set_success"]) is offered
    if not offered:
        assert buttons(html) == []
        role = "developer" if env == "dev" else "operator"
        assert f"Operations on this instance need the {role} role." in html


def test_each_button_is_a_post_form_with_csrf_and_destructive_ones_ask_first(olga, users, project):
    instance = make(project, users["alice"], "running")
    html = detail(olga, instance)
    forms = re.findall(
        rf'<form method="post" action="/instances/{instance.id}/operate" class="op-form"'
        r"([^>]*)>(.*?)</form>",
        html,
        re.S,
    )
    by_action = {
        re.search(r'name="action" value="(\w+)"', body).group(1): (attrs, body)
        for attrs, body in forms
    }
    assert set(by_action) == {"pause", "stop"}
    for _attrs, body in by_action.values():
        assert "csrfmiddlewaretoken" in body
        assert f'name="next" value="/instances/{instance.id}/"' in body
    assert 'data-confirm="Stop load? A running attempt is killed' in by_action["stop"][0]
    assert "btn-danger" in by_action["stop"][1]
    assert "data-confirm" not in by_action["pause"][0]
    assert "js/instances.js" in html


# --- posting an operation ----------------------------------------------------------------


def operate(client, instance, action, follow=True, **data):
    return client.post(
        f"/instances/{instance.id}/operate", {"action": action, **data}, follow=follow
    )


def test_rerun_with_downstream_from_the_page(olga, users, project):
    alice = users["alice"]
    up = instance_create(node_create(project, "up", owner=alice), T0, state="failed")
    down = instance_create(
        node_create(project, "down", owner=alice), T0, upstream=[up], state="succeeded"
    )
    response = operate(olga, up, "rerun_downstream", follow=False)
    assert response.status_code == 302 and response["Location"] == f"/instances/{up.id}/"
    html = olga.get(response["Location"]).content.decode()
    assert f"up #{up.id} and its finished downstream will run again: now pending." in html
    assert Instance.objects.get(pk=down.pk).state == "pending"
    record = OperationLog.objects.get(object_id=str(up.id))
    assert (record.action, record.result, record.source) == ("rerun", "ok", "ui")
    assert record.detail["downstream"] is True
    # The operation log panel shows it.
    log = re.search(r'<section id="instance-operations".*?</section>', html, re.S).group(0)
    assert 'data-operation="rerun"' in log and "olga" in log and "Page" in log
    assert '<span class="badge badge-green" data-result="ok">OK</span>' in log


def test_a_refused_operation_says_why_and_changes_nothing(olga, users, project):
    instance = make(project, users["alice"], "running")
    html = operate(olga, instance, "rerun").content.decode()
    assert (
        f"Rerun refused: instance {instance.id} is running: rerun needs a finished instance" in html
    )
    assert 'class="message message-error"' in html
    assert Instance.objects.get(pk=instance.pk).state == "running"
    record = OperationLog.objects.get(object_id=str(instance.id))
    assert record.result == "refused"


def test_a_viewer_is_refused_naming_the_role(client, users, project):
    instance = make(project, users["alice"], "failed")
    client.force_login(users["vera"])
    html = operate(client, instance, "set_success").content.decode()
    assert "Set success refused: this needs the operator role in project" in html
    assert Instance.objects.get(pk=instance.pk).state == "failed"


@pytest.mark.parametrize(
    "action, state, fields, check",
    [
        ("set_success", "failed", {}, lambda i: i.state == "succeeded" and i.forced),
        ("stop", "queued", {}, lambda i: i.state == "stopped"),
        ("pause", "pending", {}, lambda i: i.paused),
        ("resume", "pending", {"paused": True}, lambda i: not i.paused),
        ("run_now", "pending", {}, lambda i: i.run_now),
    ],
)
def test_each_operation_from_the_page(olga, users, project, action, state, fields, check):
    instance = make(project, users["alice"], state, **fields)
    response = operate(olga, instance, action)
    assert response.redirect_chain == [(f"/instances/{instance.id}/", 302)]
    assert 'class="message message-success"' in response.content.decode()
    assert check(Instance.objects.get(pk=instance.pk))
    assert OperationLog.objects.get(object_id=str(instance.id)).action == action


def test_change_resource_group_from_the_page(olga, users, project):
    ResourceGroup.objects.create(name="heavy")
    instance = make(project, users["alice"], "pending")
    html = detail(olga, instance)
    assert '<option value="heavy">heavy</option>' in html
    assert '<option value="default">' not in html  # it is there already
    html = operate(olga, instance, "change_resource_group", resource_group="heavy")
    assert f"load #{instance.id} moved to resource group heavy." in html.content.decode()
    assert Instance.objects.get(pk=instance.pk).resource_group.name == "heavy"
    html = operate(olga, instance, "change_resource_group").content.decode()
    assert "resource_group: choose the resource group to move it to" in html
    html = operate(olga, instance, "change_resource_group", resource_group="nope").content
    assert "unknown resource group &#x27;nope&#x27;" in html.decode()


def test_remove_a_dependency_from_the_upstream_list(olga, users, project):
    alice = users["alice"]
    up = instance_create(node_create(project, "up", owner=alice), T0, state="failed")
    done = instance_create(node_create(project, "done", owner=alice), T0, state="succeeded")
    down = instance_create(node_create(project, "down", owner=alice), T0, upstream=[up, done])
    html = detail(olga, down)
    panel = re.search(r'<section class="panel neighbours" id="upstream">.*?</section>', html, re.S)
    # Only the upstream that still blocks can be removed.
    assert re.findall(r'name="upstream" value="(\d+)"', panel.group(0)) == [str(up.id)]
    html = operate(olga, down, "remove_dependency", upstream=up.id).content.decode()
    assert f"down #{down.id} no longer waits for instance {up.id}." in html
    assert InstanceDependency.objects.get(upstream=up, downstream=down).removed is True
    panel = re.search(r'<section class="panel neighbours" id="upstream">.*?</section>', html, re.S)
    assert "removed" in panel.group(0) and 'name="upstream"' not in panel.group(0)
    html = operate(olga, down, "remove_dependency").content.decode()
    assert "upstream: name the upstream instance" in html


def test_resume_the_node_from_the_instance(olga, users, project):
    instance = make(project, users["alice"], "pending")
    Node.objects.filter(pk=instance.node_id).update(paused=True)
    html = operate(olga, instance, "resume_node").content.decode()
    assert "Node load was resumed." in html
    assert Node.objects.get(pk=instance.node_id).paused is False
    assert OperationLog.objects.get(object_type="node").action == "node_resume"


def test_an_operation_goes_back_where_it_was_asked(olga, users, project):
    instance = make(project, users["alice"], "failed")
    response = operate(olga, instance, "set_success", follow=False, next="/instances/?state=failed")
    assert response["Location"] == "/instances/?state=failed"
    response = operate(olga, instance, "rerun", follow=False, next="https://evil.example/")
    assert response["Location"] == f"/instances/{instance.id}/"


def test_operate_is_post_only_and_hidden_from_strangers(client, users, project):
    instance = make(project, users["alice"], "failed")
    client.force_login(users["olga"])
    assert client.get(f"/instances/{instance.id}/operate").status_code == 405
    client.force_login(users["stranger"])
    assert operate(client, instance, "rerun", follow=False).status_code == 404
    assert Instance.objects.get(pk=instance.pk).state == "failed"


def test_unknown_action_is_a_message_not_a_500(olga, users, project):
    instance = make(project, users["alice"], "failed")
    html = operate(olga, instance, "explode").content.decode()
    assert "action: Select a valid choice" in html


# --- diagnosis ---------------------------------------------------------------------------


@pytest.fixture
def deep(users, project):
    """root (failed) -> a -> b -> leaf, all pending: the leaf's root cause is 3 levels up."""
    alice = users["alice"]
    root = instance_create(node_create(project, "root", owner=alice), T0, state="failed")
    a = instance_create(node_create(project, "a", owner=alice), T0, upstream=[root])
    b = instance_create(node_create(project, "b", owner=alice), T0, upstream=[a])
    leaf = instance_create(node_create(project, "leaf", owner=alice), T0, upstream=[b])
    Instance.objects.filter(state="pending").update(wait_reason="waiting_upstream")
    return {"root": root, "a": a, "b": b, "leaf": leaf}


def diagnosis_of(html: str) -> str:
    return re.search(r'<section id="instance-diagnosis".*?</section>', html, re.S).group(0)


def test_diagnosis_names_the_root_cause_three_levels_up_with_its_operations(olga, deep):
    panel = diagnosis_of(detail(olga, deep["leaf"]))
    assert "Why is it not running?" in panel
    assert 'data-blocker="waiting_upstream"' in panel
    cause = re.search(r'<li class="ref root-cause" data-instance="(\d+)">(.*?)</li>', panel, re.S)
    assert int(cause.group(1)) == deep["root"].id
    assert f'href="/instances/{deep["root"].id}/">root</a>' in cause.group(2)
    assert "failed" in cause.group(2) and "3 levels up" in cause.group(2)
    # Rerun and set success act on the root cause and come back here.
    forms = re.findall(
        r'action="(/instances/\d+/operate)".*?name="action" value="(\w+)".*?'
        r'name="next" value="([^"]+)"',
        cause.group(2),
        re.S,
    )
    assert forms == [
        (f"/instances/{deep['root'].id}/operate", "rerun", f"/instances/{deep['leaf'].id}/"),
        (f"/instances/{deep['root'].id}/operate", "set_success", f"/instances/{deep['leaf'].id}/"),
    ]
    # The edge it waits on can be removed, or it can run without dependencies.
    assert f'name="upstream" value="{deep["b"].id}"' in panel
    assert 'data-action="run_now"' in panel
    assert "waiting for 1h 00m" in panel
    # Following the root cause's rerun button repairs it from here.
    response = olga.post(
        f"/instances/{deep['root'].id}/operate",
        {"action": "rerun", "next": f"/instances/{deep['leaf'].id}/"},
    )
    assert response["Location"] == f"/instances/{deep['leaf'].id}/"
    assert Instance.objects.get(pk=deep["root"].pk).state == "pending"


def test_a_viewer_reads_the_diagnosis_without_buttons(client, users, deep):
    client.force_login(users["vera"])
    panel = diagnosis_of(detail(client, deep["leaf"]))
    assert "3 levels up" in panel and f'href="/instances/{deep["root"].id}/">root</a>' in panel
    assert "data-action" not in panel


def test_diagnosis_of_a_root_cause_in_a_hidden_project_names_no_one(olga, users, deep):
    other = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    secret = instance_create(node_create(other, "secret", owner=users["root"]), T0, state="failed")
    InstanceDependency.objects.create(upstream=secret, downstream=deep["leaf"])
    panel = diagnosis_of(detail(olga, deep["leaf"]))
    assert "secret" not in panel
    assert f"instance {secret.id} of a project you are not a member of" in panel
    assert f"/instances/{secret.id}/operate" not in panel


def test_diagnosis_of_waiting_for_its_time(olga, users, project):
    node = node_create(project, "later", owner=users["alice"])
    instance = instance_create(node, NOW + datetime.timedelta(hours=2, minutes=5))
    panel = diagnosis_of(detail(olga, instance))
    assert 'data-blocker="waiting_time"' in panel
    assert "Scheduled at" in panel and "2026-11-22 05:05:00" in panel and "in 2h 05m" in panel
    assert 'data-action="run_now"' in panel


def test_diagnosis_of_a_full_resource_group_names_who_holds_it(olga, users, project):
    ResourceGroup.objects.create(name="tiny", max_concurrency=1)
    ResourceGroup.objects.create(name="spare")
    alice = users["alice"]
    holder = instance_create(
        node_create(project, "holder", owner=alice, resource_group="tiny"), T0, state="running"
    )
    first = instance_create(node_create(project, "first", owner=alice, resource_group="tiny"), T0)
    second = instance_create(
        node_create(project, "second", owner=alice, resource_group="tiny"), NOW
    )
    panel = diagnosis_of(detail(olga, second))
    assert 'data-blocker="waiting_resources"' in panel
    assert "Resource group <strong>tiny</strong>" in panel and "1 of 1 slot in use" in panel
    assert "<strong>position 2</strong> in the queue (1 ahead)" in panel
    assert f'href="/instances/{holder.id}/">holder</a>' in panel
    assert '<option value="spare">spare</option>' in panel
    assert first.id != second.id


def test_diagnosis_of_a_frozen_instance_offers_resume(olga, users, project):
    instance = make(project, users["alice"], "pending", paused=True)
    panel = diagnosis_of(detail(olga, instance))
    assert 'data-blocker="frozen"' in panel
    assert re.findall(r'data-action="(\w+)"', panel) == ["resume"]
    Node.objects.filter(pk=instance.node_id).update(paused=True)
    Instance.objects.filter(pk=instance.pk).update(paused=False)
    panel = diagnosis_of(detail(olga, instance))
    assert re.findall(r'data-action="(\w+)"', panel) == ["resume_node"]


def test_diagnosis_of_a_finished_instance_is_a_summary(olga, users, project):
    instance = make(project, users["alice"], "succeeded", forced=True)
    panel = diagnosis_of(detail(olga, instance))
    assert "<h2>Diagnosis</h2>" in panel
    assert "Finished: set to succeeded by an operator" in panel
    assert "hx-trigger" not in panel


def test_diagnosis_partial_polls_while_pending_then_stops(olga, deep):
    url = f"/instances/{deep['leaf'].id}/diagnosis"
    response = olga.get(url, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and 'hx-trigger="every 5s"' in html
    Instance.objects.filter(pk=deep["leaf"].pk).update(state="running")
    response = olga.get(url, **HTMX)
    assert response.status_code == 286
    assert "hx-trigger" not in response.content.decode()
    assert olga.get(url).status_code == 286  # a plain request is answered the same


# --- live partials -------------------------------------------------------------------------


def test_live_panel_brings_buttons_and_diagnosis_again_when_the_state_changed(olga, users, project):
    instance = make(project, users["alice"], "running")
    html = detail(olga, instance)
    live = re.search(r'hx-get="(/instances/\d+/live\?[^"]+)"', html).group(1).replace("&amp;", "&")
    assert "shown=running" in live
    # Nothing changed: only the state panel.
    html = olga.get(live, **HTMX).content.decode()
    assert "instance-actions" not in html and "instance-diagnosis" not in html
    assert "instance-neighbours" not in html
    Instance.objects.filter(pk=instance.pk).update(state="failed", finished_at=NOW)
    response = olga.get(live, **HTMX)
    assert response.status_code == 286
    html = response.content.decode()
    assert '<div id="instance-actions" class="op-bar" hx-swap-oob="true">' in html
    assert buttons(html) == ["rerun", "rerun_downstream", "set_success"]
    assert 'id="instance-diagnosis" class="panel diagnosis" hx-swap-oob="true"' in html
    assert '<div id="instance-neighbours" class="neighbours-block" hx-swap-oob="true">' in html
    # The graph on the page is asked to refresh now.
    assert response["HX-Trigger"] == "opscenter:graph-refresh"


def test_neighbours_partial_polls_while_a_neighbour_is_unfinished(olga, deep):
    url = f"/instances/{deep['a'].id}/neighbours"
    response = olga.get(url, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert 'id="upstream"' in html and 'id="downstream"' in html
    assert 'hx-trigger="every 5s"' in html
    # Only the instances listed count: the instance's own changes come with its live panel.
    Instance.objects.exclude(pk=deep["a"].pk).update(state="succeeded")
    for extra in (HTMX, {}):
        response = olga.get(url, **extra)
        assert response.status_code == 286
        assert "hx-trigger" not in response.content.decode()


def test_operation_log_panel_pages_through_older_entries(olga, users, project, monkeypatch):
    from apps.instances import views

    monkeypatch.setattr(views, "OPERATIONS_PAGE", 2)
    instance = make(project, users["alice"], "pending")
    for action in ["pause", "resume", "pause"]:
        operate(olga, instance, action, follow=False)
    html = detail(olga, instance)
    log = re.search(r'<section id="instance-operations".*?</section>', html, re.S).group(0)
    assert re.findall(r'data-operation="(\w+)"', log) == ["pause", "resume"]
    older = re.search(r'hx-get="([^"]+)"[^>]*>Older', log).group(1)
    assert olga.get(older).status_code == 200
    response = olga.get(older, **HTMX)
    html = response.content.decode()
    assert "<html" not in html
    assert re.findall(r'data-operation="(\w+)"', html) == ["pause"]
    assert ">Newest</a>" in html and "Older" not in html
    assert olga.get(f"/instances/{instance.id}/operations?cursor=bad!", **HTMX).status_code == 422


def test_refused_operations_show_their_reason_in_the_log(olga, users, project):
    instance = make(project, users["alice"], "running")
    operate(olga, instance, "resume")
    html = detail(olga, instance)
    log = re.search(r'<section id="instance-operations".*?</section>', html, re.S).group(0)
    assert '<span class="badge badge-orange" data-result="refused">Refused</span>' in log
    assert f"instance {instance.id} is not paused" in log


# --- the page around them ----------------------------------------------------------------


def test_detail_embeds_the_graph_of_the_instance(olga, deep):
    for extra in ({}, HTMX):
        html = detail(olga, deep["a"], **extra)
        assert "<html" in html
        assert f'data-url="/instances/{deep["a"].id}/graph" data-up="2" data-down="2"' in html
        assert f'href="/instances/{deep["a"].id}/dag/"' in html
        assert "js/dag.js" in html


@pytest.mark.parametrize("suffix", ["diagnosis", "neighbours", "operations", "graph", "dag/"])
def test_strangers_get_404_from_every_partial(client, users, deep, suffix):
    client.force_login(users["stranger"])
    assert client.get(f"/instances/{deep['a'].id}/{suffix}").status_code == 404


@pytest.mark.parametrize("suffix", ["diagnosis", "neighbours", "operations", "graph", "dag/"])
def test_partials_need_login(client, deep, suffix):
    response = client.get(f"/instances/{deep['a'].id}/{suffix}")
    assert response.status_code == 302 and "/login/" in response["Location"]
