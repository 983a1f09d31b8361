"""The notification pages: channel list, new/edit form per kind, Test in place, delete,
the delivery log; roles; secrets never in any page; the admin."""

import pytest

from apps.notifications import services
from apps.notifications.models import Channel, Delivery

from .helpers import NOW, SECRET, message

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def as_user(client, users):
    def login(name: str):
        client.force_login(users[name])
        return client

    return login


@pytest.fixture
def robot(project, make_channel, http_receiver):
    return make_channel(
        "dingtalk",
        project=project,
        name="acme-robot",
        url=http_receiver.url_for("/robot/send?access_token=tok-123"),
        secrets={"secret": SECRET},
    )


# --- channels list ------------------------------------------------------------------------


def test_channel_list_shows_channels_with_test_buttons_for_admins(as_user, robot, make_channel):
    make_channel("slack", name="global-slack", url="https://hooks.slack.com/services/T/B/x")
    response = as_user("alice").get("/notifications/channels/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'href="/notifications/channels/" class="active"' in html  # the top bar
    assert "acme-robot" in html and "global-slack" in html
    assert f'hx-post="/notifications/channels/{robot.pk}/test"' in html
    # alice administers acme, not the global channel: one Test button.
    assert html.count('data-action="test"') == 1
    assert "secret set" in html
    assert SECRET not in html and "tok-123" not in html
    assert 'data-action="new-channel"' in html


def test_viewer_reads_the_list_without_buttons(as_user, robot):
    html = as_user("vera").get("/notifications/channels/").content.decode()
    assert "acme-robot" in html
    assert 'data-action="test"' not in html and 'data-action="new-channel"' not in html


def test_stranger_sees_no_channel_of_acme(as_user, robot):
    html = as_user("stranger").get("/notifications/channels/").content.decode()
    assert "acme-robot" not in html
    assert as_user("stranger").get(f"/notifications/channels/{robot.pk}/").status_code == 404


def test_index_redirects_and_anonymous_goes_to_login(client, as_user, db):
    for url in ["/notifications/channels/", "/notifications/deliveries/", "/account/profile/"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_notifications_index_goes_to_channels(as_user, users):
    response = as_user("vera").get("/notifications/")
    assert response.status_code == 302 and response["Location"] == "/notifications/channels/"


# --- new and edit -------------------------------------------------------------------------


def test_new_form_offers_every_kind_and_the_fields_of_one(as_user, project):
    html = as_user("alice").get("/notifications/channels/new/?kind=sms").content.decode()
    assert 'name="config.url"' in html and 'name="config.body_template"' in html
    assert 'name="secrets.token"' in html and 'type="password"' in html
    assert '<option value="acme"' in html
    assert 'value="">Global' not in html  # only superusers make global channels
    fields = as_user("alice").get("/notifications/channels/fields?kind=feishu", **HTMX)
    html = fields.content.decode()
    assert 'id="kind-fields"' in html and 'name="secrets.secret"' in html
    assert 'name="config.body_template"' not in html


def test_create_through_the_form(as_user, project, http_receiver):
    response = as_user("alice").post(
        "/notifications/channels/new/",
        {
            "name": "hook",
            "project": "acme",
            "kind": "webhook",
            "enabled": "on",
            "config.url": http_receiver.url_for("/in"),
            "config.headers": "X-Team: data\nAuthorization: Bearer abc",
            "secrets.secret": SECRET,
        },
    )
    channel = Channel.objects.get(name="hook")
    assert response.status_code == 302
    assert response["Location"] == f"/notifications/channels/{channel.pk}/"
    assert channel.project == project and channel.enabled
    assert channel.config["headers"] == {"X-Team": "data", "Authorization": "Bearer abc"}
    assert channel.get_secret("secret") == SECRET


def test_form_errors_name_the_field_and_create_nothing(as_user, project):
    response = as_user("alice").post(
        "/notifications/channels/new/",
        {
            "name": "",
            "project": "acme",
            "kind": "email",
            "config.to": "ops@example.com\nnot-an-address",
            "secrets.secret": SECRET,
        },
        **HTMX,
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "<strong>name</strong>" in html and "<strong>config.to.1</strong>" in html
    assert "not an email address" in html
    assert SECRET not in html
    assert not Channel.objects.exists()


def test_bad_header_lines_are_named(as_user, project):
    response = as_user("alice").post(
        "/notifications/channels/new/",
        {
            "name": "h",
            "project": "acme",
            "kind": "webhook",
            "config.url": "http://h/",
            "config.headers": "nocolon",
        },
    )
    assert response.status_code == 422
    assert "line 1: write it as Name: value" in response.content.decode()
    assert not Channel.objects.exists()


def test_viewer_cannot_create_through_the_form(as_user, project):
    client = as_user("vera")
    assert client.get("/notifications/channels/new/").status_code == 403
    response = client.post(
        "/notifications/channels/new/",
        {"name": "h", "project": "acme", "kind": "email", "config.to": "a@example.com"},
    )
    assert response.status_code == 403
    assert not Channel.objects.exists()


def test_an_admin_naming_a_project_they_do_not_administer_is_refused(as_user, project, users):
    from apps.projects.models import Membership, Project

    beta = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    Membership.objects.create(project=beta, user=users["alice"], role="viewer")
    response = as_user("alice").post(
        "/notifications/channels/new/",
        {"name": "h", "project": "beta", "kind": "email", "config.to": "a@example.com"},
    )
    assert response.status_code == 422
    assert "admin role in project" in response.content.decode()
    assert not Channel.objects.exists()


def test_edit_page_never_shows_the_secret_and_keeps_it_when_left_empty(as_user, robot):
    client = as_user("alice")
    html = client.get(f"/notifications/channels/{robot.pk}/").content.decode()
    assert 'name="secrets.secret" value=""' in html
    assert "set — leave empty to keep it" in html
    assert SECRET not in html
    response = client.post(
        f"/notifications/channels/{robot.pk}/",
        {
            "name": "acme-robot-2",
            "kind": "dingtalk",
            "enabled": "on",
            "config.url": robot.config["url"],
        },
    )
    assert response.status_code == 302
    robot.refresh_from_db()
    assert robot.name == "acme-robot-2" and robot.get_secret("secret") == SECRET
    client.post(
        f"/notifications/channels/{robot.pk}/",
        {
            "name": "acme-robot-2",
            "kind": "dingtalk",
            "config.url": robot.config["url"],
            "secrets.secret.clear": "1",
        },
    )
    robot.refresh_from_db()
    assert robot.secrets_set == [] and robot.enabled is False


def test_edit_errors_answer_422_in_place(as_user, robot):
    response = as_user("alice").post(
        f"/notifications/channels/{robot.pk}/",
        {"name": "x", "kind": "dingtalk", "config.url": "not a url"},
        **HTMX,
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert 'id="channel-form"' in html and "an http:// or https:// URL" in html
    robot.refresh_from_db()
    assert robot.name == "acme-robot"


def test_viewer_sees_the_channel_read_only(as_user, robot):
    html = as_user("vera").get(f"/notifications/channels/{robot.pk}/").content.decode()
    assert "acme-robot" in html and 'id="channel-form"' not in html
    assert 'data-action="test"' not in html and 'data-action="delete"' not in html
    assert "tok-123" not in html and SECRET not in html
    assert (
        as_user("vera").post(f"/notifications/channels/{robot.pk}/", {"name": "x"}).status_code
        == 404
    )


# --- Test in place ------------------------------------------------------------------------


def test_test_button_shows_the_result_in_place(as_user, robot, http_receiver):
    response = as_user("alice").post(f"/notifications/channels/{robot.pk}/test", **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-state="sent"' in html and ">200<" in html
    assert "<html" not in html
    assert http_receiver.requests[0].query["access_token"] == "tok-123"
    assert SECRET not in html


def test_failed_test_shows_status_and_error_without_secrets(as_user, robot, http_receiver):
    http_receiver.script((200, {"errcode": 310000, "errmsg": "sign not match"}))
    html = (
        as_user("alice").post(f"/notifications/channels/{robot.pk}/test", **HTMX).content.decode()
    )
    assert 'data-state="failed"' in html and "sign not match" in html
    assert "tok-123" not in html and SECRET not in html
    # ... and the channel page lists it.
    page = as_user("alice").get(f"/notifications/channels/{robot.pk}/").content.decode()
    assert "sign not match" in page and "tok-123" not in page.split('id="channel-form"')[0]


def test_test_without_htmx_redirects_with_a_message(as_user, robot):
    response = as_user("alice").post(f"/notifications/channels/{robot.pk}/test", follow=True)
    assert "Test of acme-robot: sent" in response.content.decode()


def test_viewer_cannot_test(as_user, robot, http_receiver):
    response = as_user("vera").post(f"/notifications/channels/{robot.pk}/test", **HTMX)
    assert response.status_code == 403
    assert http_receiver.requests == [] and not Delivery.objects.exists()


# --- delete -------------------------------------------------------------------------------


def test_delete_by_admin(as_user, robot):
    response = as_user("alice").post(f"/notifications/channels/{robot.pk}/delete", follow=True)
    assert "Channel acme-robot deleted." in response.content.decode()
    assert not Channel.objects.exists()


def test_delete_by_viewer_is_refused(as_user, robot):
    response = as_user("vera").post(f"/notifications/channels/{robot.pk}/delete", follow=True)
    assert "was not deleted" in response.content.decode()
    assert Channel.objects.filter(pk=robot.pk).exists()


# --- the delivery log ---------------------------------------------------------------------


def test_deliveries_page_filters_and_pages(as_user, project, robot, make_channel):
    mail = make_channel("email", project=project, to=["a@example.com", "b@example.com"])
    services.notify(
        alert_id=None, message=message(), channels=[mail, robot], recipients=[], now=NOW
    )
    services.notify(
        alert_id=None, message=message(), channels=[robot], recipients=[], suppressed=True, now=NOW
    )
    client = as_user("vera")
    html = client.get("/notifications/deliveries/").content.decode()
    assert html.count("data-delivery-id=") == 4
    assert 'href="/notifications/deliveries/" class="active"' in html
    # pending deliveries on the page: it polls
    assert 'hx-trigger="every 5s"' in html
    partial = client.get("/notifications/deliveries/?state=suppressed", **HTMX)
    assert partial.status_code == 286  # nothing pending: the poller stops
    assert partial.content.decode().count("data-delivery-id=") == 1
    by_channel = client.get(f"/notifications/deliveries/?channel={mail.pk}").content.decode()
    assert by_channel.count("data-delivery-id=") == 2
    first = client.get("/notifications/deliveries/?limit=3")
    assert first.context["page"].next_cursor
    second = client.get(
        f"/notifications/deliveries/?limit=3&cursor={first.context['page'].next_cursor}"
    )
    assert second.content.decode().count("data-delivery-id=") == 1
    assert "« First page" in second.content.decode()


def test_deliveries_bad_filters_are_422_naming_them(as_user, project):
    response = as_user("vera").get("/notifications/deliveries/?state=lost&alert=x")
    assert response.status_code == 422
    html = response.content.decode()
    assert "<strong>state</strong>" in html and "<strong>alert</strong>" in html


def test_stranger_sees_no_deliveries_of_acme(as_user, robot):
    services.notify(alert_id=None, message=message(), channels=[robot], recipients=[], now=NOW)
    html = as_user("stranger").get("/notifications/deliveries/").content.decode()
    assert "data-delivery-id=" not in html


def test_delivery_errors_in_the_log_hold_no_secret(as_user, robot, closed_port):
    robot.config["url"] = f"http://127.0.0.1:{closed_port}/robot/send?access_token=tok-123"
    robot.save()
    (delivery,) = services.notify(
        alert_id=None, message=message(), channels=[robot], recipients=[], now=NOW
    )
    services.delivery_send(delivery_id=delivery.pk, now=NOW)
    html = as_user("alice").get("/notifications/deliveries/").content.decode()
    assert "connection refused" in html
    assert "tok-123" not in html and SECRET not in html and "sign=" not in html


# --- admin --------------------------------------------------------------------------------


def test_admin_pages_never_show_secrets_and_set_them_write_only(as_user, robot):
    client = as_user("root")
    for url in [
        "/admin/notifications/channel/",
        f"/admin/notifications/channel/{robot.pk}/change/",
    ]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert SECRET not in response.content.decode()
    html = client.get(f"/admin/notifications/channel/{robot.pk}/change/").content.decode()
    assert "Secret (set)" in html
    response = client.post(
        f"/admin/notifications/channel/{robot.pk}/change/",
        {
            "project": robot.project_id,
            "name": "acme-robot",
            "kind": "dingtalk",
            "config": '{"url": "https://oapi.dingtalk.com/robot/send?access_token=t"}',
            "enabled": "on",
            "secret": "",
            "token": "",
        },
    )
    assert response.status_code == 302
    robot.refresh_from_db()
    assert robot.get_secret("secret") == SECRET  # kept
    response = client.post(
        f"/admin/notifications/channel/{robot.pk}/change/",
        {
            "project": robot.project_id,
            "name": "acme-robot",
            "kind": "dingtalk",
            "config": '{"url": "https://oapi.dingtalk.com/robot/send?access_token=t"}',
            "enabled": "on",
            "secret": "",
            "token": "tok",
        },
    )
    assert response.status_code == 200  # a token is not a DingTalk secret
    assert "secrets.token" in response.content.decode()


def test_admin_delivery_is_read_only_and_profile_is_listed(as_user, robot, people):
    services.notify(alert_id=None, message=message(), channels=[robot], recipients=[], now=NOW)
    delivery = Delivery.objects.get()
    client = as_user("root")
    assert client.get("/admin/notifications/delivery/").status_code == 200
    response = client.get(f"/admin/notifications/delivery/{delivery.pk}/change/")
    assert response.status_code == 200 and SECRET not in response.content.decode()
    assert client.get("/admin/notifications/delivery/add/").status_code == 403
    assert client.get("/admin/accounts/profile/").status_code == 200
