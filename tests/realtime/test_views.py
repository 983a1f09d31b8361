"""The realtime panel on a node's page and its Start / Stop / resources forms."""

import datetime
import re
import time

import pytest
from django.test import Client
from django.utils import timezone

from apps.instances.models import Instance
from apps.realtime.models import RealtimeSettings
from tests.factories import node_create

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


# --- the panel refreshes itself while the process moves ---------------------------------


def panel_buttons(html: str) -> dict[str, bool]:
    """{"start": enabled?, "stop": enabled?} as the panel draws them."""
    found = {}
    for action in ("start", "stop"):
        match = re.search(rf'<button[^>]*data-realtime-action="{action}"[^>]*>', html)
        assert match, f"no {action} button"
        found[action] = "disabled" not in match[0]
    return found


def polls(html: str) -> bool:
    section = re.search(r'<section class="panel" id="realtime"[^>]*>', html)[0]
    return 'hx-trigger="every 2s"' in section


def set_state(node, state: str) -> None:
    # Test setup only: put the instance where a live supervisor would have taken it.
    Instance.objects.filter(node=node).update(state=state)
    RealtimeSettings.objects.filter(node=node).update(
        supervisor="host:1", heartbeat_at=timezone.now()
    )


@pytest.mark.parametrize(
    "state, start, stop, polling",
    [
        ("stopped", True, False, False),
        ("starting", False, True, True),
        ("running", False, True, False),
        ("stopping", False, False, True),
        ("failed", True, False, False),
    ],
)
def test_panel_offers_only_what_the_state_allows_and_polls_while_it_moves(
    publish_realtime, users, state, start, stop, polling
):
    (node,) = publish_realtime(realtime_spec())
    set_state(node, state)
    olga = client_for(users["olga"])
    page = olga.get(f"/nodes/{node.pk}/").content.decode()
    assert panel_buttons(page) == {"start": start, "stop": stop}
    assert polls(page) is polling
    if polling:
        assert f'hx-get="/nodes/{node.pk}/realtime"' in page

    answer = olga.get(f"/nodes/{node.pk}/realtime", HTTP_HX_REQUEST="true")
    # htmx stops an `every 2s` poll when the answer is a 286: the state is stable.
    assert answer.status_code == (200 if polling else 286)
    html = answer.content.decode()
    assert html.lstrip().startswith('<section class="panel" id="realtime"')
    assert f'data-state="{state}"' in html
    assert panel_buttons(html) == {"start": start, "stop": stop}
    assert polls(html) is polling


def test_stopping_with_a_lost_supervisor_can_be_stopped_by_hand(publish_realtime, users):
    (node,) = publish_realtime(realtime_spec())
    set_state(node, "stopping")
    RealtimeSettings.objects.filter(node=node).update(
        heartbeat_at=timezone.now() - datetime.timedelta(hours=1)
    )
    olga = client_for(users["olga"])
    html = olga.get(f"/nodes/{node.pk}/realtime", HTTP_HX_REQUEST="true").content.decode()
    assert panel_buttons(html) == {"start": False, "stop": True}
    olga.post(f"/nodes/{node.pk}/realtime/stop")
    assert Instance.objects.get(node=node).state == "stopped"


def test_panel_partial_asks_for_a_member(publish_realtime, users, project):
    (node,) = publish_realtime(realtime_spec())
    anonymous = Client().get(f"/nodes/{node.pk}/realtime", HTTP_HX_REQUEST="true")
    assert anonymous.status_code == 302
    stranger = client_for(users["stranger"])
    assert stranger.get(f"/nodes/{node.pk}/realtime", HTTP_HX_REQUEST="true").status_code == 404
    vera = client_for(users["vera"]).get(f"/nodes/{node.pk}/realtime", HTTP_HX_REQUEST="true")
    assert vera.status_code == 286 and "data-realtime-action" not in vera.content.decode()
    batch = node_create(project, "daily_batch", owner=users["alice"])
    olga = client_for(users["olga"])
    assert olga.get(f"/nodes/{batch.pk}/realtime", HTTP_HX_REQUEST="true").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_panel_moves_from_starting_to_running_while_polled(
    publish_realtime, users, start_supervisor
):
    (node,) = publish_realtime(realtime_spec())
    olga = client_for(users["olga"])
    olga.post(f"/nodes/{node.pk}/realtime/start")
    first = olga.get(f"/nodes/{node.pk}/realtime", HTTP_HX_REQUEST="true")
    assert first.status_code == 200 and 'data-state="starting"' in first.content.decode()

    start_supervisor()
    deadline = time.monotonic() + 15
    answer = first
    while answer.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
        answer = olga.get(f"/nodes/{node.pk}/realtime", HTTP_HX_REQUEST="true")
    html = answer.content.decode()
    assert answer.status_code == 286, "the panel kept polling"
    assert 'data-state="running"' in html
    assert panel_buttons(html) == {"start": False, "stop": True}
    olga.post(f"/nodes/{node.pk}/realtime/stop")
