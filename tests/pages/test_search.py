"""Global search from the top bar: an instance id, a node name (with completion) and a
biz date each jump to their object, finding only what the user may see."""

import datetime
import re

import pytest

from apps.projects.models import Project
from tests.factories import instance_create, node_create

SCHEDULED = datetime.datetime(2026, 11, 21, 18, 0, tzinfo=datetime.UTC)


@pytest.fixture
def known(project, users):
    alice = users["alice"]
    ingest = node_create(project, "ingest_orders", owner=alice)
    report = node_create(project, "daily_report", owner=alice, upstream=[ingest])
    orders_report = node_create(project, "orders_report", owner=alice)
    other = Project.objects.create(code="other", name="Other", timezone="UTC")
    secret = node_create(other, "orders_secret", owner=users["root"])
    return {
        "ingest": ingest,
        "report": report,
        "orders_report": orders_report,
        "secret": secret,
        "instance": instance_create(report, SCHEDULED),
        "hidden_instance": instance_create(secret, SCHEDULED),
    }


def test_search_box_is_in_the_top_bar(client, users, known):
    client.force_login(users["vera"])
    html = client.get("/nodes/").content.decode()
    assert 'action="/search/"' in html and 'hx-get="/search/nodes"' in html


def test_instance_id_jumps_to_the_instance(client, users, known):
    client.force_login(users["vera"])
    instance = known["instance"]
    for q in (str(instance.id), f"#{instance.id}", f" {instance.id} "):
        response = client.get("/search/", {"q": q})
        assert response.status_code == 302 and response["Location"] == f"/instances/{instance.id}/"


def test_hidden_or_missing_instance_is_not_found(client, users, known):
    client.force_login(users["vera"])
    hidden = known["hidden_instance"]
    response = client.get("/search/", {"q": str(hidden.id)})
    assert response.status_code == 200
    assert f"No instance {hidden.id} that you may see." in response.content.decode()
    client.force_login(users["root"])
    response = client.get("/search/", {"q": str(hidden.id)})
    assert response["Location"] == f"/instances/{hidden.id}/"


def test_node_name_jumps_to_the_node_and_a_part_lists_matches(client, users, known):
    client.force_login(users["vera"])
    response = client.get("/search/", {"q": "DAILY_report"})
    assert response.status_code == 302 and response["Location"] == f"/nodes/{known['report'].id}/"
    response = client.get("/search/", {"q": "orders"})
    assert response.status_code == 200
    listed = re.findall(r'<tr data-node="(\d+)">', response.content.decode())
    # Prefix matches first; the other project's node is not found.
    assert listed == [
        str(known["orders_report"].id),
        str(known["ingest"].id),
    ]
    response = client.get("/search/", {"q": "nothing_like_it"})
    assert "Nothing matches" in response.content.decode()


def test_biz_date_jumps_to_the_filtered_instance_list(client, users, known):
    client.force_login(users["vera"])
    for q in ("2026-11-21", "20261121"):
        response = client.get("/search/", {"q": q})
        assert response.status_code == 302
        assert response["Location"] == "/instances/?biz_date=2026-11-21"
    html = client.get("/instances/?biz_date=2026-11-21").content.decode()
    assert f'<tr data-instance="{known["instance"].id}">' in html
    # Not a real date: taken as an instance id, which is not there.
    response = client.get("/search/", {"q": "20261341"})
    assert response.status_code == 200 and "No instance 20261341" in response.content.decode()


def test_empty_search_asks_for_something(client, users, known):
    client.force_login(users["vera"])
    response = client.get("/search/", {"q": "  "})
    assert response.status_code == 422
    assert "instance id, a node name or a biz date" in response.content.decode()


def test_completion_lists_matching_visible_nodes(client, users, known):
    client.force_login(users["vera"])
    response = client.get("/search/nodes", {"q": "ord"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r'href="/nodes/(\d+)/" data-node', html) == [
        str(known["orders_report"].id),
        str(known["ingest"].id),
    ]
    assert "orders_secret" not in html
    html = client.get("/search/nodes", {"q": "20261121"}).content.decode()
    assert 'data-biz-date="2026-11-21"' in html
    assert client.get("/search/nodes", {"q": ""}).content.decode().strip() == ""
    client.force_login(users["stranger"])
    assert "data-node" not in client.get("/search/nodes", {"q": "ord"}).content.decode()


def test_search_needs_login(client, known):
    assert client.get("/search/", {"q": "x"}).status_code == 302
    assert client.get("/search/nodes", {"q": "x"}).status_code == 302
