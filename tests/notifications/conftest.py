import pytest

from apps.accounts.models import Profile
from apps.notifications import services


@pytest.fixture
def people(users):
    """olga and dave with phones and chat ids; vera with an email only."""
    Profile.objects.create(
        user=users["olga"],
        phone="+86 138 0000 1111",
        dingtalk_id="13800001111",
        feishu_id="ou_olga",
        wecom_id="olga.w",
        slack_id="U0OLGA",
    )
    Profile.objects.create(
        user=users["dave"], phone="13900002222", dingtalk_id="dave-staff-id", slack_id="U0DAVE"
    )
    return users


@pytest.fixture
def make_channel(users):
    """make_channel("webhook", url=..., secrets={"secret": ...}, project=None): a channel
    created through the service (so its config is validated)."""

    def make(kind: str, *, project=None, name=None, secrets=None, enabled=True, **config):
        return services.channel_create(
            by=users["root"],
            project=project,
            name=name or f"{kind}-channel",
            kind=kind,
            config=config,
            secrets=secrets,
            enabled=enabled,
        )

    return make
