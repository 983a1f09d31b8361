"""A user's own profile page (email, phone, chat ids), reachable from the user menu; what
notifications read of it."""

import pytest

from apps.accounts.models import Profile
from apps.accounts.services import profile_update
from apps.audit.models import OperationLog
from apps.core.errors import ValidationFailed
from apps.notifications.services import recipients_of


def test_user_menu_links_to_the_profile(client, users):
    client.force_login(users["olga"])
    html = client.get("/notifications/channels/").content.decode()
    assert 'href="/account/profile/"' in html


def test_profile_page_shows_and_saves_contact_details(client, users):
    client.force_login(users["olga"])
    html = client.get("/account/profile/").content.decode()
    assert 'value="olga@example.com"' in html and 'name="slack_id"' in html
    assert not Profile.objects.exists()  # reading makes no row
    response = client.post(
        "/account/profile/",
        {
            "email": "olga@ops.example.com",
            "phone": "+86 138 0000 1111",
            "dingtalk_id": "13800001111",
            "feishu_id": "ou_abc123",
            "wecom_id": "olga.w",
            "slack_id": "U024BE7LH",
        },
        follow=True,
    )
    assert "Profile saved." in response.content.decode()
    (olga,) = recipients_of(["olga"])
    assert olga.email == "olga@ops.example.com" and olga.phone == "+86 138 0000 1111"
    assert olga.chat_ids == {
        "dingtalk": "13800001111",
        "feishu": "ou_abc123",
        "wecom": "olga.w",
        "slack": "U024BE7LH",
    }
    log = OperationLog.objects.get(action="profile.update")
    assert log.username == "olga" and "email" in log.detail["changed"]


def test_bad_profile_input_is_422_naming_each_field_and_saves_nothing(client, users):
    client.force_login(users["olga"])
    response = client.post(
        "/account/profile/",
        {
            "email": "not-an-address",
            "phone": "call me",
            "dingtalk_id": "has spaces",
            "feishu_id": "",
            "wecom_id": "",
            "slack_id": "olga",
        },
    )
    assert response.status_code == 422
    html = response.content.decode()
    for field in ["email", "phone", "dingtalk_id", "slack_id"]:
        assert f"<strong>{field}</strong>" in html
    assert 'value="call me"' in html  # what was typed stays in the form
    users["olga"].refresh_from_db()
    assert users["olga"].email == "olga@example.com"
    assert not Profile.objects.filter(user=users["olga"]).exclude(phone="").exists()


def test_profile_update_clears_and_refuses_unknown_fields(users):
    profile_update(user=users["dave"], fields={"phone": "13900002222"})
    profile_update(user=users["dave"], fields={"phone": "  "})
    assert Profile.of(users["dave"]).phone == ""
    with pytest.raises(ValidationFailed) as refused:
        profile_update(user=users["dave"], fields={"is_superuser": "1"})
    assert refused.value.errors == [{"field": "is_superuser", "message": "unknown field"}]


def test_anonymous_profile_goes_to_login(client, db):
    response = client.get("/account/profile/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
