"""Relative ages beside the moments where they help: how long an instance has run, when a
token was last used, how long ago an alert last fired."""

import datetime

import time_machine

from apps.accounts.models import ApiToken
from tests.pages.builders import T0, running_instance


def test_a_running_instance_says_how_long_ago_it_started(client, users, project):
    instance = running_instance(project, users["alice"])
    client.force_login(users["olga"])
    with time_machine.travel(T0 + datetime.timedelta(minutes=7, seconds=5), tick=False):
        html = client.get(f"/instances/{instance.pk}/").content.decode()
    assert "2026-11-22 02:00:00 CST" in html and "(7 min ago)" in html


def test_the_tokens_page_says_how_long_ago_a_token_was_used(client, users):
    token, _key = ApiToken.issue(user=users["olga"], name="ci")
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=T0)
    client.force_login(users["olga"])
    with time_machine.travel(T0 + datetime.timedelta(hours=3, minutes=10), tick=False):
        html = client.get("/account/tokens/").content.decode()
    assert ">3 h 10 min ago</time>" in html and 'title="2026-11-21 18:00:00 UTC"' in html
