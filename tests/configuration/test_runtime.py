"""Runtime configuration (SPEC 9): each level winning where it should, with its source;
GET/PUT /api/runtime-config; the pages; the operation log; rerun_policy refusing and
allowing; NodeSpec's new fields at publish; bad input changing nothing."""

import datetime

import pytest

from apps.audit.models import OperationLog
from apps.configuration.models import RuntimeConfig
from apps.configuration.runtime import BUILT_IN, Runtime, resolve, runtime_for, runtime_for_node
from apps.core.errors import Conflict
from apps.instances import operations
from apps.instances.models import Attempt, Instance
from apps.nodes.models import Node
from apps.nodes.services import nodes_publish
from tests.factories import instance_create, node_create

SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)


def sources(runtime: Runtime) -> dict[str, str]:
    return {key: item["source"] for key, item in runtime.as_dict().items()}


def values(runtime: Runtime) -> dict:
    return {key: item["value"] for key, item in runtime.as_dict().items()}


# --- the levels --------------------------------------------------------------------------


def test_nearest_level_wins_each_setting_on_its_own():
    runtime = resolve(
        node={"retries": 5},
        project={"retries": 2, "timeout_seconds": 600},
        global_={"timeout_seconds": 60, "rerun_policy": "never"},
    )
    assert values(runtime) == {
        "timeout_seconds": 600,
        "timeout_action": "fail",
        "retries": 5,
        "retry_interval_seconds": 60,
        "rerun_policy": "never",
    }
    assert sources(runtime) == {
        "timeout_seconds": "project",
        "timeout_action": "global",  # nobody sets it: the built-in default
        "retries": "node",
        "retry_interval_seconds": "global",
        "rerun_policy": "global",
    }


def test_zero_is_a_value_not_an_absence():
    runtime = resolve(node={"timeout_seconds": 0, "retries": 0}, project={"retries": 3}, global_={})
    assert runtime.timeout is None and runtime.timeout_seconds == 0
    assert runtime.source("timeout_seconds") == "node"
    assert runtime.retries == 0 and runtime.source("retries") == "node"


def test_runtime_for_reads_the_instance_version_its_project_and_global(project, users):
    RuntimeConfig.objects.create(project=None, timeout_seconds=120, retries=1)
    RuntimeConfig.objects.create(project=project, retries=4, timeout_action="alert_only")
    node = node_create(project, "a", owner=users["alice"], type="shell", rerun_policy="never")
    instance = instance_create(node, SCHEDULED)
    # A new version without the node's own policy: the instance keeps its snapshot's.
    node_create(project, "a", owner=users["alice"], type="shell")
    runtime = runtime_for(Instance.objects.select_related("version").get(pk=instance.pk))
    assert values(runtime) == {
        "timeout_seconds": 120,
        "timeout_action": "alert_only",
        "retries": 4,
        "retry_interval_seconds": 60,
        "rerun_policy": "never",
    }
    assert sources(runtime) == {
        "timeout_seconds": "global",
        "timeout_action": "project",
        "retries": "project",
        "retry_interval_seconds": "global",
        "rerun_policy": "node",
    }
    assert runtime_for_node(Node.objects.get(pk=node.pk)).source("rerun_policy") == "global"


def test_without_any_row_the_built_in_defaults_are_todays_behaviour(project, users):
    node = node_create(project, "a", owner=users["alice"], type="shell")
    runtime = runtime_for_node(node)
    assert values(runtime) == BUILT_IN
    assert set(sources(runtime).values()) == {"global"}


# --- the API -----------------------------------------------------------------------------


def test_get_answers_each_value_and_its_source_at_each_level(project, users, api_as):
    RuntimeConfig.objects.create(project=None, retries=1)
    RuntimeConfig.objects.create(project=project, timeout_seconds=900)
    node = node_create(project, "n", owner=users["alice"], type="shell", retry_interval_seconds=5)
    client = api_as("vera")

    global_ = client.get("/api/runtime-config").json()
    assert global_["retries"] == {"value": 1, "source": "global"}
    assert global_["timeout_seconds"] == {"value": 3600, "source": "global"}

    at_project = client.get("/api/runtime-config", {"project": "acme"}).json()
    assert at_project["timeout_seconds"] == {"value": 900, "source": "project"}
    assert at_project["retries"] == {"value": 1, "source": "global"}

    at_node = client.get("/api/runtime-config", {"project": "acme", "node": node.pk}).json()
    assert at_node == {
        "timeout_seconds": {"value": 900, "source": "project"},
        "timeout_action": {"value": "fail", "source": "global"},
        "retries": {"value": 1, "source": "global"},
        "retry_interval_seconds": {"value": 5, "source": "node"},
        "rerun_policy": {"value": "always", "source": "global"},
    }


def test_put_project_level_by_its_admin_is_logged_and_null_removes(project, api_as):
    client = api_as("alice")
    answer = client.put(
        "/api/runtime-config",
        {"level": "project", "project": "acme", "values": {"retries": 2, "rerun_policy": "never"}},
        content_type="application/json",
    )
    assert answer.status_code == 200, answer.content
    assert answer.json()["retries"] == {"value": 2, "source": "project"}
    assert answer.json()["rerun_policy"] == {"value": "never", "source": "project"}
    row = RuntimeConfig.objects.get(project=project)
    assert (row.retries, row.rerun_policy, row.timeout_seconds) == (2, "never", None)
    log = OperationLog.objects.get(action="runtime_config", result="ok")
    assert log.username == "alice" and log.project == project and log.source == "api"
    assert log.detail["changed"] == ["rerun_policy", "retries"]
    assert log.detail["after"] == {"retries": 2, "rerun_policy": "never"}

    removed = client.put(
        "/api/runtime-config",
        {"level": "project", "project": "acme", "values": {"retries": None}},
        content_type="application/json",
    )
    assert removed.json()["retries"] == {"value": 0, "source": "global"}
    assert removed.json()["rerun_policy"]["source"] == "project"  # untouched


def test_put_global_level_needs_a_superuser(project, api_as):
    body = {"level": "global", "values": {"timeout_seconds": 0}}
    refused = api_as("alice").put("/api/runtime-config", body, content_type="application/json")
    assert refused.status_code == 403
    assert not RuntimeConfig.objects.exists()
    assert OperationLog.objects.get(action="runtime_config").result == "refused"
    done = api_as("root").put("/api/runtime-config", body, content_type="application/json")
    assert done.status_code == 200
    assert done.json()["timeout_seconds"] == {"value": 0, "source": "global"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"level": "project", "project": "acme", "values": {"retries": "3"}}, "values.retries"),
        ({"level": "project", "project": "acme", "values": {"retries": -1}}, "values.retries"),
        ({"level": "project", "project": "acme", "values": {"retries": True}}, "values.retries"),
        (
            {"level": "project", "project": "acme", "values": {"timeout_seconds": 1.5}},
            "values.timeout_seconds",
        ),
        (
            {"level": "project", "project": "acme", "values": {"timeout_action": "explode"}},
            "values.timeout_action",
        ),
        (
            {"level": "project", "project": "acme", "values": {"rerun_policy": "sometimes"}},
            "values.rerun_policy",
        ),
        ({"level": "project", "project": "acme", "values": {"colour": 1}}, "values.colour"),
        ({"level": "project", "project": "acme", "values": [1]}, "values"),
        ({"level": "node", "values": {}}, "level"),
        ({"level": "project", "values": {}}, "project"),
        ({"level": "global", "project": "acme", "values": {}}, "project"),
        ({"level": "project", "project": "acme", "values": {}, "extra": 1}, "extra"),
    ],
)
def test_bad_input_is_422_naming_the_field_and_changes_nothing(project, api_as, body, field):
    RuntimeConfig.objects.create(project=project, retries=1)
    answer = api_as("root").put("/api/runtime-config", body, content_type="application/json")
    assert answer.status_code == 422, answer.content
    assert field in [e["field"] for e in answer.json()["errors"]]
    row = RuntimeConfig.objects.get(project=project)
    assert (row.retries, row.timeout_seconds, row.rerun_policy) == (1, None, "")


def test_several_wrong_values_are_named_at_once(project, api_as):
    answer = api_as("alice").put(
        "/api/runtime-config",
        {"level": "project", "project": "acme", "values": {"retries": -1, "timeout_action": 3}},
        content_type="application/json",
    )
    assert answer.status_code == 422
    assert {e["field"] for e in answer.json()["errors"]} == {
        "values.retries",
        "values.timeout_action",
    }


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"node": "x"}, 422, "node"),
        ({"node": "0"}, 422, "node"),
        ({"node": "99999999"}, 404, None),
        ({"project": "nope"}, 404, None),
    ],
)
def test_get_bad_input(project, api_as, params, status, field):
    answer = api_as("vera").get("/api/runtime-config", params)
    assert answer.status_code == status
    if field:
        assert [e["field"] for e in answer.json()["errors"]] == [field]


def test_get_node_of_another_project_is_refused(project, users, api_as):
    from apps.projects.models import Membership, Project

    other = Project.objects.create(code="other", name="Other")
    Membership.objects.create(project=other, user=users["vera"], role="viewer")
    node = node_create(other, "x", owner=users["alice"])
    answer = api_as("vera").get("/api/runtime-config", {"project": "acme", "node": node.pk})
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "node"
    assert api_as("stranger").get("/api/runtime-config", {"node": node.pk}).status_code == 404


# --- NodeSpec at publish -----------------------------------------------------------------


def test_publish_validates_and_keeps_the_new_fields(project, users):
    nodes_publish(
        project=project,
        env="prod",
        specs=[
            {
                "name": "n",
                "schedule": "0 2 * * *",
                "content": "true",
                "timeout_seconds": 0,
                "timeout_action": "kill_and_retry",
                "rerun_policy": "failed_only",
            }
        ],
        user=users["dave"],
    )
    spec = Node.objects.get(name="n").current_version.spec
    assert spec["timeout_action"] == "kill_and_retry" and spec["rerun_policy"] == "failed_only"
    assert spec["timeout_seconds"] == 0 and spec["retries"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout_action", "explode"),
        ("rerun_policy", "sometimes"),
        ("timeout_seconds", -1),
        ("retries", "2"),
        ("retry_interval_seconds", 1.5),
    ],
)
def test_publish_refuses_wrong_runtime_fields(project, users, api_as, field, value):
    answer = api_as("dave").post(
        "/api/projects/acme/publish",
        {"nodes": [{"name": "n", "schedule": "0 2 * * *", "content": "true", field: value}]},
        content_type="application/json",
    )
    assert answer.status_code == 422
    assert [(e["node"], e["field"]) for e in answer.json()["errors"]] == [("n", field)]
    assert not Node.objects.filter(name="n").exists()


# --- rerun_policy --------------------------------------------------------------------------


def finished(project, users, name, state, **spec):
    node = node_create(project, name, owner=users["alice"], type="shell", **spec)
    return instance_create(node, SCHEDULED, state=state, finished_at=SCHEDULED)


def test_failed_only_refuses_a_succeeded_instance_and_allows_a_failed_one(project, users, api_as):
    RuntimeConfig.objects.create(project=project, rerun_policy="failed_only")
    done = finished(project, users, "done", "succeeded")
    broken = finished(project, users, "broken", "failed")
    client = api_as("olga")

    refused = client.post(f"/api/instances/{done.pk}/rerun", {}, content_type="application/json")
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert "rerun_policy failed_only" in detail and "project level" in detail
    assert Instance.objects.get(pk=done.pk).state == "succeeded"
    log = OperationLog.objects.get(action="rerun", object_id=str(done.pk))
    assert log.result == "refused" and "failed_only" in log.message

    allowed = client.post(f"/api/instances/{broken.pk}/rerun", {}, content_type="application/json")
    assert allowed.status_code == 200 and allowed.json()["state"] == "pending"


def test_never_refuses_every_manual_rerun_and_the_node_level_wins(project, users, api_as):
    RuntimeConfig.objects.create(project=project, rerun_policy="never")
    locked = finished(project, users, "locked", "failed")
    free = finished(project, users, "free", "succeeded", rerun_policy="always")
    client = api_as("olga")
    answer = client.post(f"/api/instances/{locked.pk}/rerun", {}, content_type="application/json")
    assert answer.status_code == 409 and "never rerun by hand" in answer.json()["detail"]
    assert (
        client.post(
            f"/api/instances/{free.pk}/rerun", {}, content_type="application/json"
        ).status_code
        == 200
    )

    batch = client.post(
        "/api/instances/batch",
        {"ids": [locked.pk], "action": "rerun"},
        content_type="application/json",
    ).json()
    assert batch["results"][0]["ok"] is False and "never" in batch["results"][0]["message"]


def test_rerun_with_downstream_refuses_when_a_downstream_policy_forbids_it(project, users):
    owner = users["alice"]
    parent = node_create(project, "parent", owner=owner, type="shell")
    child = node_create(
        project, "child", owner=owner, type="shell", upstream=[parent], rerun_policy="never"
    )
    up = instance_create(parent, SCHEDULED, state="succeeded", finished_at=SCHEDULED)
    down = instance_create(
        child, SCHEDULED, upstream=[up], state="succeeded", finished_at=SCHEDULED
    )
    with pytest.raises(Conflict, match=f"instance {down.pk}: rerun_policy never"):
        operations.instance_rerun(instance=up, by=users["olga"], source="api", downstream=True)
    assert Instance.objects.get(pk=up.pk).state == "succeeded"
    operations.instance_rerun(instance=up, by=users["olga"], source="api")
    assert Instance.objects.get(pk=up.pk).state == "pending"


def test_instance_page_disables_rerun_with_the_reason(project, users, client):
    RuntimeConfig.objects.create(project=project, rerun_policy="failed_only")
    done = finished(project, users, "done", "succeeded")
    broken = finished(project, users, "broken", "failed")
    client.force_login(users["olga"])
    page = client.get(f"/instances/{done.pk}/").content.decode()
    assert "data-rerun-refused" in page and "a succeeded instance is not rerun by hand" in page
    assert 'disabled data-action="rerun"' in page
    assert 'name="action" value="rerun"' not in page
    other = client.get(f"/instances/{broken.pk}/").content.decode()
    assert 'name="action" value="rerun"' in other and "data-rerun-refused" not in other

    preview = client.post(
        "/instances/batch/", {"action": "rerun", "ids": [done.pk, broken.pk]}
    ).content.decode()
    assert "a succeeded instance is not rerun by hand" in preview


# --- pages ---------------------------------------------------------------------------------


def test_global_page_shows_values_and_only_a_superuser_changes_them(project, users, client):
    client.force_login(users["alice"])
    page = client.get("/configuration/runtime/")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'data-setting="timeout_seconds"' in text and "Only a superuser" in text
    assert 'name="timeout_seconds"' not in text
    refused = client.post("/configuration/runtime/", {"retries": "2"})
    assert refused.status_code == 403 and not RuntimeConfig.objects.exists()

    client.force_login(users["root"])
    saved = client.post(
        "/configuration/runtime/",
        {
            "timeout_seconds": "600",
            "timeout_action": "alert_only",
            "retries": "",
            "retry_interval_seconds": "",
            "rerun_policy": "",
        },
    )
    assert saved.status_code == 302
    row = RuntimeConfig.objects.get(project__isnull=True)
    assert (row.timeout_seconds, row.timeout_action, row.retries) == (600, "alert_only", None)
    shown = client.get("/configuration/runtime/").content.decode()
    assert "timeout_seconds" in shown and "600" in shown and "data-change=" in shown


def test_project_page_form_errors_name_the_field_and_change_nothing(project, users, client):
    client.force_login(users["alice"])
    answer = client.post(
        "/configuration/runtime/acme/",
        {"timeout_seconds": "soon", "retries": "-2", "rerun_policy": "sometimes"},
    )
    assert answer.status_code == 422
    text = answer.content.decode()
    assert "must be a whole number, not &#x27;soon&#x27;" in text
    assert not RuntimeConfig.objects.filter(project=project).exists()
    answer = client.post("/configuration/runtime/acme/", {"retries": "-2"})
    assert answer.status_code == 422 and "from 0 to 100" in answer.content.decode()
    answer = client.post("/configuration/runtime/acme/", {"rerun_policy": "sometimes"})
    assert answer.status_code == 422 and "must be one of" in answer.content.decode()

    saved = client.post("/configuration/runtime/acme/", {"retries": "3", "rerun_policy": "never"})
    assert saved.status_code == 302
    page = client.get("/configuration/runtime/acme/").content.decode()
    assert page.count('data-setting="') == 5
    assert OperationLog.objects.filter(action="runtime_config", result="ok").count() == 1


def test_project_page_is_read_only_for_a_viewer_and_hidden_from_strangers(project, users, client):
    client.force_login(users["vera"])
    page = client.get("/configuration/runtime/acme/").content.decode()
    assert "needs the admin role" in page and 'name="retries"' not in page
    client.force_login(users["stranger"])
    assert client.get("/configuration/runtime/acme/").status_code == 404


def test_node_page_shows_every_effective_value_and_its_level(project, users, client):
    RuntimeConfig.objects.create(project=project, retries=3)
    node = node_create(project, "n", owner=users["alice"], type="shell", timeout_seconds=45)
    client.force_login(users["vera"])
    page = client.get(f"/nodes/{node.pk}/").content.decode()
    section = page[page.index('id="node-runtime"') :]
    assert section.count('data-setting="') >= 5
    assert (
        'data-setting="timeout_seconds"><td class="mono">timeout_seconds</td><td class="mono" data-effective>45.0s</td><td><span class="badge badge-blue" data-runtime_level="node"'
        in section
    )
    assert (
        'data-setting="retries"><td class="mono">retries</td><td class="mono" data-effective>3</td><td><span class="badge badge-purple" data-runtime_level="project"'
        in section
    )


def test_an_attempt_keeps_the_settings_it_started_with(project, users):
    """The reaper and the finish read the attempt's settings, not today's."""
    from apps.configuration.runtime import runtime_of_attempt

    node = node_create(project, "a", owner=users["alice"], type="shell")
    instance = instance_create(node, SCHEDULED, state="running")
    kept = resolve(node={}, project={"retries": 1}, global_={}).as_dict()
    attempt = Attempt.objects.create(
        instance=instance, number=1, started_at=SCHEDULED, runtime=kept
    )
    RuntimeConfig.objects.create(project=project, retries=9)
    runtime = runtime_of_attempt(Attempt.objects.get(pk=attempt.pk))
    assert runtime.retries == 1 and runtime.source("retries") == "project"
