"""The realtime panel on a node's page and its Start / Stop / resources forms."""

import pytest
from django.test import Client

from apps.instances.models import Instance
from apps.realtime.models import RealtimeSettings

from .conftest import realtime_spec

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_panel_buttons_and_resources_form(publish_realtime, users):
    (node,) = publish_realtime(realtime_spec())
    olga = client_for(users["olga"])
    page = olga.get(f"/nodes/{node.pk}/").content.decode()
    assert 'id="realtime"' in page and "take effect at the next start" in page
    assert f"/nodes/{node.pk}/realtime/start" in page

    answer = olga.post(f"/nodes/{node.pk}/realtime/start", follow=True)
    assert "is starting" in answer.content.decode()
    assert Instance.objects.get(node=node).state == "starting"

    answer = olga.post(
        f"/nodes/{node.pk}/realtime/resources", {"cpu": "2", "memory_mb": "512"}, follow=True
    )
    assert "take effect at the next start" in answer.content.decode()
    row = RealtimeSettings.objects.get(node=node)
    assert (row.cpu, row.memory_mb) == (2.0, 512)

    answer = olga.post(f"/nodes/{node.pk}/realtime/resources", {"memory_mb": "lots"}, follow=True)
    assert "memory_mb" in answer.content.decode()

    olga.post(f"/nodes/{node.pk}/realtime/stop")
    assert Instance.objects.get(node=node).state == "stopped"


def test_viewer_sees_the_state_but_no_buttons(publish_realtime, users):
    (node,) = publish_realtime(realtime_spec())
    vera = client_for(users["vera"])
    page = vera.get(f"/nodes/{node.pk}/").content.decode()
    assert 'id="realtime"' in page and "/realtime/start" not in page
    vera.post(f"/nodes/{node.pk}/realtime/start")
    assert Instance.objects.get(node=node).state == "stopped"
    assert client_for(users["stranger"]).post(f"/nodes/{node.pk}/realtime/start").status_code == 404
