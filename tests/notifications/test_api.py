"""/api/channels and /api/notifications: CRUD, Test, the delivery log, roles, bad input,
and secrets that never come back."""

import json

import pytest

from apps.audit.models import OperationLog
from apps.monitoring.models import MonitorRule
from apps.notifications import services
from apps.notifications.models import Channel, Delivery
from apps.projects.models import Membership, Project

from .helpers import NOW, SECRET, message


def post(client, path, body):
    return client.post(path, data=json.dumps(body), content_type="application/json")


def patch(client, path, body):
    return client.patch(path, data=json.dumps(body), content_type="application/json")


def fields_of(response) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


@pytest.fixture
def other(users):
    """Project "beta": the stranger is its admin; nobody of acme is a member."""
    beta = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    Membership.objects.create(project=beta, user=users["stranger"], role="admin")
    return beta


# --- create, read, change, delete ---------------------------------------------------------


def test_admin_creates_a_project_channel_and_secrets_never_come_back(
    api_as, project, http_receiver
):
    alice = api_as("alice")
    response = post(
        alice,
        "/api/channels",
        {
            "name": "ops-robot",
            "project": "acme",
            "kind": "dingtalk",
            "config": {"url": http_receiver.url_for("/robot/send?access_token=t1")},
            "secrets": {"secret": SECRET},
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["project"] == "acme" and body["kind"] == "dingtalk" and body["enabled"] is True
    assert body["secrets_set"] == ["secret"]
    assert body["target"] == http_receiver.url
    assert SECRET not in response.content.decode()
    channel = Channel.objects.get(pk=body["id"])
    assert channel.get_secret("secret") == SECRET
    assert SECRET not in json.dumps(channel.secrets)  # encrypted at rest
    for path in [f"/api/channels/{channel.pk}", "/api/channels", "/api/channels?project=acme"]:
        answer = alice.get(path)
        assert answer.status_code == 200 and SECRET not in answer.content.decode()
    log = OperationLog.objects.get(action="channel.create")
    assert log.project == project and SECRET not in json.dumps(log.detail)
    assert "access_token" not in json.dumps(log.detail)


def test_patch_changes_fields_sets_and_removes_secrets(api_as, project, make_channel):
    channel = make_channel(
        "webhook", project=project, url="http://127.0.0.1:9/hook", secrets={"secret": SECRET}
    )
    alice = api_as("alice")
    response = patch(alice, f"/api/channels/{channel.pk}", {"name": "renamed", "enabled": False})
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "renamed" and response.json()["enabled"] is False
    assert response.json()["secrets_set"] == ["secret"]  # untouched
    response = patch(alice, f"/api/channels/{channel.pk}", {"secrets": {"secret": None}})
    assert response.json()["secrets_set"] == []
    response = patch(alice, f"/api/channels/{channel.pk}", {"secrets": {"secret": "new-one"}})
    assert response.json()["secrets_set"] == ["secret"]
    assert Channel.objects.get(pk=channel.pk).get_secret("secret") == "new-one"
    response = patch(alice, f"/api/channels/{channel.pk}", {"secrets": {"secret": ""}})
    assert response.json()["secrets_set"] == []
    # config replaces the whole config
    response = patch(
        alice,
        f"/api/channels/{channel.pk}",
        {"config": {"url": "https://hooks.example.com/x", "headers": {"X-A": "1"}}},
    )
    assert response.json()["config"] == {
        "url": "https://hooks.example.com/x",
        "headers": {"X-A": "1"},
    }


def test_changing_kind_drops_secrets_the_new_kind_has_no_use_for(api_as, project, make_channel):
    channel = make_channel(
        "webhook", project=project, url="http://127.0.0.1:9/hook", secrets={"secret": SECRET}
    )
    response = patch(api_as("alice"), f"/api/channels/{channel.pk}", {"kind": "slack"})
    assert response.status_code == 200, response.content
    assert response.json()["kind"] == "slack" and response.json()["secrets_set"] == []


def test_delete_and_refused_while_a_rule_uses_it(api_as, project, make_channel):
    channel = make_channel("email", project=project, to=["a@example.com"])
    rule = MonitorRule.objects.create(project=project, name="failures")
    rule.channels.add(channel)
    alice = api_as("alice")
    response = alice.delete(f"/api/channels/{channel.pk}")
    assert response.status_code == 409
    assert "failures" in response.json()["detail"]
    rule.channels.clear()
    assert alice.delete(f"/api/channels/{channel.pk}").status_code == 204
    assert not Channel.objects.filter(pk=channel.pk).exists()
    assert alice.get(f"/api/channels/{channel.pk}").status_code == 404


def test_list_filters_and_pages(api_as, project, make_channel):
    for index in range(3):
        make_channel("email", project=project, name=f"mail-{index}")
    make_channel("slack", name="global-slack", url="https://hooks.slack.com/services/T/B/x")
    vera = api_as("vera")
    first = vera.get("/api/channels?limit=2").json()
    assert [c["name"] for c in first["items"]] == ["global-slack", "mail-0"]
    second = vera.get(f"/api/channels?limit=2&cursor={first['next_cursor']}").json()
    assert [c["name"] for c in second["items"]] == ["mail-1", "mail-2"]
    assert second["next_cursor"] is None
    only_acme = vera.get("/api/channels?project=acme&kind=email").json()["items"]
    assert {c["project"] for c in only_acme} == {"acme"} and len(only_acme) == 3


# --- roles --------------------------------------------------------------------------------


def test_roles_viewer_reads_admin_writes_superuser_for_global(api_as, project, make_channel):
    channel = make_channel("email", project=project, to=["a@example.com"])
    glob = make_channel("email", name="global-mail", to=["b@example.com"])
    body = {"name": "x", "project": "acme", "kind": "email", "config": {"to": ["c@example.com"]}}
    for who in ["vera", "olga", "dave"]:
        client = api_as(who)
        assert client.get(f"/api/channels/{channel.pk}").status_code == 200
        assert client.get(f"/api/channels/{glob.pk}").status_code == 200
        response = post(client, "/api/channels", body)
        assert response.status_code == 403, who
        assert "admin" in response.json()["detail"]
        assert patch(client, f"/api/channels/{channel.pk}", {"name": "y"}).status_code == 403
        assert client.delete(f"/api/channels/{channel.pk}").status_code == 403
        assert client.post(f"/api/channels/{channel.pk}/test").status_code == 403
    # A project admin does not change global channels; a superuser does.
    alice = api_as("alice")
    assert patch(alice, f"/api/channels/{glob.pk}", {"name": "z"}).status_code == 403
    assert post(alice, "/api/channels", {**body, "project": None}).status_code == 403
    assert patch(api_as("root"), f"/api/channels/{glob.pk}", {"name": "z"}).status_code == 200
    assert Channel.objects.filter(name="x").count() == 0


def test_a_stranger_sees_nothing_of_another_project(api_as, project, other, make_channel):
    channel = make_channel("webhook", project=project, url="http://127.0.0.1:9/hook")
    services.notify(alert_id=None, message=message(), channels=[channel], recipients=[], now=NOW)
    stranger = api_as("stranger")
    assert stranger.get(f"/api/channels/{channel.pk}").status_code == 404
    assert patch(stranger, f"/api/channels/{channel.pk}", {"name": "x"}).status_code == 404
    assert stranger.post(f"/api/channels/{channel.pk}/test").status_code == 404
    assert stranger.get("/api/channels").json()["items"] == []
    assert stranger.get("/api/notifications").json()["items"] == []
    assert stranger.get(f"/api/notifications?channel={channel.pk}").json()["items"] == []
    response = post(stranger, "/api/channels", {"name": "x", "project": "acme", "kind": "email"})
    assert response.status_code == 404 and fields_of(response) == ["project"]
    assert stranger.get("/api/channels?project=acme").status_code == 404
    # ... while acme's viewer sees them.
    assert len(api_as("vera").get("/api/notifications").json()["items"]) == 1


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, fields",
    [
        ({"name": "x", "kind": "pager", "project": "acme"}, ["kind"]),
        ({"name": "x", "kind": "webhook", "project": "acme"}, ["config.url"]),
        (
            {"name": "x", "kind": "dingtalk", "project": "acme", "config": {"url": "ftp://x"}},
            ["config.url"],
        ),
        ({"name": "x", "kind": "webhook", "project": "acme", "config": {"url": 5}}, ["config.url"]),
        (
            {
                "name": "x",
                "kind": "webhook",
                "project": "acme",
                "config": {"url": "http://h/", "headers": ["a"]},
            },
            ["config.headers"],
        ),
        (
            {
                "name": "x",
                "kind": "webhook",
                "project": "acme",
                "config": {"url": "http://h/", "headers": {"X-A": 1}},
            },
            ["config.headers.X-A"],
        ),
        (
            {"name": "x", "kind": "email", "project": "acme", "config": {"to": ["nope"]}},
            ["config.to.0"],
        ),
        ({"name": "x", "kind": "email", "project": "acme", "config": {"to": 5}}, ["config.to"]),
        (
            {"name": "x", "kind": "email", "project": "acme", "config": {"url": "http://h/"}},
            ["config.url"],
        ),
        (
            {"name": "x", "kind": "email", "project": "acme", "secrets": {"secret": "s"}},
            ["secrets.secret"],
        ),
        (
            {
                "name": "x",
                "kind": "webhook",
                "project": "acme",
                "config": {"url": "http://h/", "secret": "s"},
            },
            ["config.secret"],
        ),
        (
            {
                "name": "x",
                "kind": "sms",
                "project": "acme",
                "config": {"url": "http://h/", "body_template": "hi"},
            },
            ["config.body_template"],
        ),
        (
            {
                "name": "x",
                "kind": "sms",
                "project": "acme",
                "config": {"url": "http://h/", "method": "DELETE", "body_template": "{phone}"},
            },
            ["config.method"],
        ),
        (
            {
                "name": "x",
                "kind": "sms",
                "project": "acme",
                "config": {"url": "http://h/", "body_template": '{"to": {phone}}'},
            },
            ["config.body_template"],
        ),
        ({"name": "", "kind": "email", "project": "acme"}, ["name"]),
        ({"kind": "email", "project": "acme"}, ["name"]),
        ({"name": "x", "kind": "email", "project": "acme", "config": "x"}, ["config"]),
        (
            {"name": "x", "kind": "email", "project": "acme", "secrets": {"token": 5}},
            ["secrets.token"],
        ),
        ({"name": "x", "kind": "email", "project": "acme", "enabled": "maybe"}, ["enabled"]),
        ({"name": "x", "kind": "email", "project": "acme", "colour": "red"}, ["colour"]),
    ],
)
def test_bad_channel_input_is_422_naming_the_field_and_creates_nothing(
    api_as, project, body, fields
):
    response = post(api_as("alice"), "/api/channels", body)
    assert response.status_code == 422, response.content
    assert fields_of(response) == fields, response.json()
    assert response.json()["detail"]
    assert not Channel.objects.exists()


def test_duplicate_name_in_a_project_is_refused(api_as, project, make_channel):
    make_channel("email", project=project, name="mail")
    response = post(
        api_as("alice"), "/api/channels", {"name": "mail", "project": "acme", "kind": "email"}
    )
    assert response.status_code == 422 and fields_of(response) == ["name"]


def test_bad_patch_changes_nothing(api_as, project, make_channel):
    channel = make_channel("webhook", project=project, url="http://127.0.0.1:9/hook")
    alice = api_as("alice")
    response = patch(alice, f"/api/channels/{channel.pk}", {"project": "beta"})
    assert response.status_code == 422 and fields_of(response) == ["project"]
    response = patch(alice, f"/api/channels/{channel.pk}", {"config": {"url": ""}, "name": "n"})
    assert response.status_code == 422 and fields_of(response) == ["config.url"]
    response = patch(alice, f"/api/channels/{channel.pk}", {"config": None})
    assert response.status_code == 422 and fields_of(response) == ["config"]
    channel.refresh_from_db()
    assert channel.name == "webhook-channel" and channel.config["url"] == "http://127.0.0.1:9/hook"


# --- Test ---------------------------------------------------------------------------------


def test_test_sends_now_and_answers_the_delivery(api_as, project, make_channel, http_receiver):
    channel = make_channel(
        "webhook",
        project=project,
        url=http_receiver.url_for("/hook?token=qs-secret"),
        secrets={"secret": SECRET},
    )
    response = api_as("alice").post(f"/api/channels/{channel.pk}/test")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "sent" and body["tries"] == 1 and body["last_status"] == 200
    assert body["event"] == "test" and body["alert"] is None and body["channel"] == channel.pk
    assert body["recipient"] == "#webhook-channel"
    (request,) = http_receiver.requests
    sent = request.json
    assert sent["event"] == "test" and sent["recipients"][0]["username"] == "alice"
    assert sent["url"] == f"http://localhost:8000/notifications/channels/{channel.pk}/"
    assert request.header("X-Opscenter-Signature").startswith("sha256=")
    assert SECRET not in response.content.decode()


def test_a_failing_test_answers_the_error_once_without_retry(
    api_as, project, make_channel, http_receiver
):
    http_receiver.script((503, f"down, secret={SECRET}"))
    channel = make_channel(
        "webhook", project=project, url=http_receiver.url_for(), secrets={"secret": SECRET}
    )
    body = api_as("alice").post(f"/api/channels/{channel.pk}/test").json()
    assert body["state"] == "failed" and body["tries"] == 1 and body["last_status"] == 503
    assert "answered 503" in body["last_error"] and SECRET not in body["last_error"]
    assert len(http_receiver.requests) == 1


def test_test_of_an_email_channel_goes_to_the_tester(api_as, project, make_channel, smtp_server):
    channel = make_channel("email", project=project, to=["team@example.com"])
    body = api_as("alice").post(f"/api/channels/{channel.pk}/test").json()
    assert body["state"] == "sent" and body["recipient"] == "alice@example.com"
    assert [m.envelope_to for m in smtp_server.messages] == [["alice@example.com"]]
    assert smtp_server.messages[0]["Subject"] == "[TEST] Test of channel email-channel"


# --- the delivery log ---------------------------------------------------------------------


def test_notifications_list_filters_and_pages(api_as, project, make_channel):
    mail = make_channel("email", project=project, to=["a@example.com", "b@example.com"])
    hook = make_channel("webhook", project=project, url="http://127.0.0.1:9/h")
    services.notify(alert_id=None, message=message(), channels=[mail, hook], recipients=[], now=NOW)
    services.notify(
        alert_id=None, message=message(), channels=[hook], recipients=[], suppressed=True, now=NOW
    )
    vera = api_as("vera")
    items = vera.get("/api/notifications").json()["items"]
    assert len(items) == 4
    assert set(items[0]) >= {
        "id",
        "alert",
        "channel",
        "kind",
        "recipient",
        "state",
        "tries",
        "last_error",
        "created_at",
        "sent_at",
    }
    assert items[0]["created_at"] == NOW.isoformat()
    assert [i["id"] for i in items] == sorted((i["id"] for i in items), reverse=True)
    assert [
        i["state"] for i in vera.get("/api/notifications?state=suppressed").json()["items"]
    ] == ["suppressed"]
    by_channel = vera.get(f"/api/notifications?channel={mail.pk}").json()["items"]
    assert [i["recipient"] for i in by_channel] == ["b@example.com", "a@example.com"]
    first = vera.get("/api/notifications?limit=3").json()
    rest = vera.get(f"/api/notifications?limit=3&cursor={first['next_cursor']}").json()
    assert len(first["items"]) == 3 and len(rest["items"]) == 1 and rest["next_cursor"] is None
    assert vera.get("/api/notifications?alert=1").json()["items"] == []


@pytest.mark.parametrize(
    "query, field",
    [
        ("state=lost", "state"),
        ("alert=x", "alert"),
        ("channel=x", "channel"),
        ("limit=0", "limit"),
        ("cursor=zz", "cursor"),
    ],
)
def test_bad_notification_filters_are_422(api_as, project, query, field):
    response = api_as("vera").get(f"/api/notifications?{query}")
    assert response.status_code == 422 and field in fields_of(response)


def test_deliveries_of_a_global_channel_follow_the_alert_project(
    api_as, project, other, make_channel
):
    from apps.monitoring.models import Alert

    glob = make_channel("webhook", url="http://127.0.0.1:9/h")
    alert = Alert.objects.create(
        project=other,
        trigger="failure",
        severity="critical",
        title="t",
        target_type="instance",
        target_id="1",
        dedup_key="k",
        first_at=NOW,
        last_at=NOW,
    )
    services.notify(alert_id=alert.pk, message=message(), channels=[glob], recipients=[], now=NOW)
    assert api_as("vera").get("/api/notifications").json()["items"] == []
    (item,) = api_as("stranger").get("/api/notifications").json()["items"]
    assert item["alert"] == alert.pk
    assert Delivery.objects.get().project == other
