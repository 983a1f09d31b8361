import pytest

from apps.configuration.models import ResourceGroup
from apps.nodes.models import Node
from apps.nodes.specs import SPEC_DEFAULTS
from apps.projects.models import Datasource, Membership, Project
from tests.factories import node_create

from .helpers import fields_of, publish, publish_errors, spec


@pytest.fixture
def dave(users):
    return users["dave"]


def only_error(errors: list[dict]) -> dict:
    assert len(errors) == 1, errors
    return errors[0]


def test_canonical_spec_fills_every_default(project, dave):
    publish(project, dave, {"name": "a", "schedule": "0 2 * * *", "content": "echo hi"})
    stored = Node.objects.get(name="a").current_version.spec
    assert set(stored) == {"name", *SPEC_DEFAULTS}
    assert stored["type"] == "shell"
    assert stored["schedule"] == {"type": "recurring", "cron": "0 2 * * *"}
    assert stored["owner"] == "dave"  # the publisher, when not given
    assert stored["resource_group"] == "default"
    assert stored["priority"] == 3 and stored["params"] == {}
    # Runtime settings not given are left to the project's and the global level.
    assert stored["retries"] is None and stored["timeout_seconds"] is None
    assert stored["timeout_action"] is None and stored["rerun_policy"] is None


def test_values_are_normalised(project, dave):
    publish(
        project,
        dave,
        spec("a", schedule={"cron": " 0  2 * * * "}, params={"n": 5, "flag": True, "empty": None}),
        spec("h", type="http", content="https://example.com/hook"),
        spec("b", upstream=["acme.a"]),
    )
    stored = {
        n.name: n.current_version.spec for n in Node.objects.select_related("current_version")
    }
    assert stored["a"]["schedule"]["cron"] == "0 2 * * *"
    assert stored["a"]["params"] == {"n": "5", "flag": "true", "empty": ""}
    assert stored["h"]["content"] == {
        "url": "https://example.com/hook",
        "method": "GET",
        "headers": {},
        "body": None,
    }
    # Naming this project in full is the same as naming the node alone.
    assert stored["b"]["upstream"] == ["a"]


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"bogus": 1}, "bogus", "unknown field"),
        ({"type": "perl"}, "type", "one of shell"),
        (
            {"schedule": {"type": "hourly", "cron": "0 * * * *"}},
            "schedule.type",
            "one of recurring",
        ),
        ({"schedule": {"type": "recurring"}}, "schedule.cron", "required"),
        ({"schedule": {"type": "recurring", "cron": "0 2 * *"}}, "schedule.cron", "5 fields"),
        (
            {"schedule": {"type": "recurring", "cron": "0 25 * * *"}},
            "schedule.cron",
            "not a valid cron",
        ),
        (
            {"schedule": {"type": "one_time", "cron": "0 2 * * *"}},
            "schedule.cron",
            "only recurring",
        ),
        ({"schedule": {"cron": "0 2 * * *", "tz": "UTC"}}, "schedule.tz", "unknown field"),
        ({"schedule": 5}, "schedule", "must be an object"),
        ({"priority": 6}, "priority", "from 1 to 5"),
        ({"priority": True}, "priority", "from 1 to 5"),
        ({"timeout_seconds": "1h"}, "timeout_seconds", "whole number"),
        ({"retries": -1}, "retries", "whole number"),
        ({"retry_interval_seconds": 1.5}, "retry_interval_seconds", "whole number"),
        ({"self_dependent": "yes"}, "self_dependent", "true or false"),
        ({"paused": 1}, "paused", "true or false"),
        ({"cpu": 0}, "cpu", "positive"),
        ({"memory_mb": "1G"}, "memory_mb", "positive"),
        ({"description": ["x"]}, "description", "must be a string"),
        ({"owner": 7}, "owner", "must be a name"),
        ({"upstream": {"a": 1}}, "upstream", "must be a list"),
        ({"upstream": [""]}, "upstream[0]", "node name"),
        ({"params": ["x"]}, "params", "must be an object"),
        ({"params": {"bizdate": "1"}}, "params.bizdate", "built in"),
        ({"params": {"1x": "1"}}, "params.1x", "parameter name"),
        ({"params": {"x": {"y": 1}}}, "params.x", "string or a number"),
        ({"type": "shell"}, "content", "needs its script"),
        ({"type": "shell", "content": ["echo"]}, "content", "must be a script"),
        ({"type": "python", "content": "   "}, "content", "needs its script"),
        ({"type": "sql", "content": "select 1"}, "datasource", "needs the name of a datasource"),
        ({"type": "shell", "content": "ls", "datasource": "wh"}, "datasource", "only sql nodes"),
        ({"type": "http", "content": 5}, "content", "URL or an object"),
        ({"type": "http", "content": "ftp://x"}, "content.url", "http://"),
        (
            {"type": "http", "content": {"url": "http://x", "method": "FETCH"}},
            "content.method",
            "one of GET",
        ),
        (
            {"type": "http", "content": {"url": "http://x", "headers": ["a"]}},
            "content.headers",
            "header",
        ),
        (
            {"type": "http", "content": {"url": "http://x", "verb": "GET"}},
            "content.verb",
            "unknown field",
        ),
        ({"type": "http", "content": {"method": "GET"}}, "content.url", "needs a URL"),
    ],
)
def test_each_bad_field_is_named(project, dave, fields, field, words):
    error = only_error(publish_errors(project, dave, spec("a", **fields)))
    assert (error["node"], error["field"]) == ("a", field)
    assert words in error["message"]


def test_names_must_be_present_valid_and_unique(project, dave):
    errors = publish_errors(
        project,
        dave,
        {"type": "virtual", "schedule": "0 2 * * *"},
        spec("x.y"),
        spec("dup"),
        spec("dup"),
        "not a spec",
    )
    assert fields_of(errors) == {
        ("nodes[0]", "name"),
        ("nodes[1]", "name"),
        ("dup", "name"),
        ("nodes[4]", ""),
    }
    assert any("more than once" in e["message"] for e in errors)


def test_batch_shape_and_env(project, dave):
    assert fields_of(publish_errors(project, dave)) == {(None, "nodes")}
    assert fields_of(publish_errors(project, dave, spec("a"), env="test")) == {(None, "env")}
    # "acme" is prod only.
    error = only_error(publish_errors(project, dave, spec("a"), env="dev"))
    assert error["field"] == "env" and "prod only" in error["message"]


def test_dev_is_allowed_in_dev_prod_projects(project, dave):
    Project.objects.filter(pk=project.pk).update(env_mode="dev_prod")
    project.refresh_from_db()
    result = publish(project, dave, spec("a"), env="dev")
    assert result.created == ["a"]
    assert Node.objects.get(name="a").env == "dev"


def test_unknown_references(project, dave, users):
    users["olga"].is_active = False
    users["olga"].save()
    errors = publish_errors(
        project,
        dave,
        spec("a", owner="nobody"),
        spec("b", owner="stranger"),
        spec("c", owner="olga"),
        spec("d", resource_group="gpu"),
        spec("e", type="sql", content="select 1", datasource="warehouse"),
    )
    assert fields_of(errors) == {
        ("a", "owner"),
        ("b", "owner"),
        ("c", "owner"),
        ("d", "resource_group"),
        ("e", "datasource"),
    }
    messages = {e["node"]: e["message"] for e in errors}
    assert "unknown owner" in messages["a"]
    assert "not a member" in messages["b"]
    assert "unknown owner" in messages["c"]  # inactive users own nothing
    assert "unknown resource group 'gpu'" in messages["d"]
    assert "unknown datasource 'warehouse'" in messages["e"]


def test_known_references_are_accepted(project, dave, users):
    ResourceGroup.objects.create(name="etl")
    Datasource.objects.create(project=project, name="warehouse", kind="sqlite", path="/tmp/w.db")
    result = publish(
        project,
        dave,
        spec("a", owner="vera", resource_group="etl"),
        spec("b", owner="root"),  # superusers belong everywhere
        spec("c", type="sql", content="select 1", datasource="warehouse"),
    )
    assert sorted(result.created) == ["a", "b", "c"]
    node = Node.objects.get(name="a")
    assert (node.owner.username, node.resource_group.name) == ("vera", "etl")


def test_upstream_errors(project, dave):
    node_create(project, "old", owner=dave)
    Node.objects.filter(name="old").update(status="offline")
    errors = publish_errors(
        project,
        dave,
        spec("a", upstream=["a"]),
        spec("b", upstream=["missing", "c", "c"]),
        spec("c", upstream=["old"]),
        spec("d", upstream=["nosuch.x"]),
    )
    assert fields_of(errors) == {
        ("a", "upstream[0]"),
        ("b", "upstream[0]"),
        ("b", "upstream[2]"),
        ("c", "upstream[0]"),
        ("d", "upstream[0]"),
    }
    messages = {(e["node"], e["field"]): e["message"] for e in errors}
    assert "own upstream" in messages[("a", "upstream[0]")]
    assert "unknown upstream 'missing'" in messages[("b", "upstream[0]")]
    assert "listed twice" in messages[("b", "upstream[2]")]
    assert "offline" in messages[("c", "upstream[0]")]
    assert "unknown upstream 'nosuch.x'" in messages[("d", "upstream[0]")]


def test_upstream_may_be_published_or_in_the_batch(project, dave):
    published = node_create(project, "published", owner=dave)
    publish(project, dave, spec("b", upstream=["a", "published"]), spec("a"))
    b = Node.objects.get(name="b")
    a = Node.objects.get(name="a")
    assert b.current_version.upstream_ids == [a.id, published.id]


def test_cycle_in_the_batch_names_its_path(project, dave):
    errors = publish_errors(
        project,
        dave,
        spec("a", upstream=["c"]),
        spec("b", upstream=["a"]),
        spec("c", upstream=["b"]),
        spec("free"),
    )
    error = only_error(errors)
    assert (error["node"], error["field"]) == ("a", "upstream")
    assert "a -> c -> b -> a" in error["message"]


def test_cycle_through_published_nodes(project, dave):
    a = node_create(project, "a", owner=dave)
    b = node_create(project, "b", owner=dave, upstream=[a])
    node_create(project, "c", owner=dave, upstream=[b])
    error = only_error(publish_errors(project, dave, spec("a", upstream=["c"])))
    assert "a -> c -> b -> a" in error["message"]


def test_cycle_across_projects(project, dave):
    other = Project.objects.create(code="beta", name="Beta")
    Membership.objects.create(project=other, user=dave, role="developer")
    a = node_create(project, "a", owner=dave)
    node_create(other, "x", owner=dave, upstream=[a])
    error = only_error(publish_errors(project, dave, spec("a", upstream=["beta.x"])))
    assert "a -> beta.x -> a" in error["message"]


def test_two_separate_cycles_are_both_reported(project, dave):
    errors = publish_errors(
        project,
        dave,
        spec("a", upstream=["b"]),
        spec("b", upstream=["a"]),
        spec("c", upstream=["d"]),
        spec("d", upstream=["c"]),
    )
    assert sorted(e["message"].split(" (")[0] for e in errors) == [
        "dependency cycle: a -> b -> a",
        "dependency cycle: c -> d -> c",
    ]


def test_every_error_of_the_batch_at_once(project, dave):
    errors = publish_errors(
        project,
        dave,
        spec("a", schedule={"cron": "bad"}, owner="nobody"),
        spec("b", upstream=["ghost"], priority=0),
        spec("c", upstream=["d"]),
        spec("d", upstream=["c"]),
    )
    assert fields_of(errors) == {
        ("a", "schedule.cron"),
        ("a", "owner"),
        ("b", "upstream[0]"),
        ("b", "priority"),
        ("c", "upstream"),
    }
    assert all(set(e) == {"node", "field", "message"} for e in errors)
