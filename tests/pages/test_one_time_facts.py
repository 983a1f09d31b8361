"""A one-time run's instance shows what it was started with: the parameters given at Run
(and the node's defaults that applied), the biz date chosen and who ran it; the API's
instance detail answers the parameters too."""

import datetime
import re

import pytest

from apps.instances.models import Instance
from apps.nodes import operations as node_ops
from tests.factories import instance_create, node_create

SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)


@pytest.fixture
def manual(project, users):
    return node_create(
        project,
        "fix_orders",
        owner=users["alice"],
        schedule_type="one_time",
        type="shell",
        content="echo ${region} ${limit}",
        params={"region": "eu", "limit": "10"},
    )


def facts(html: str) -> dict[str, str]:
    """The facts panel as {term: text}, tags stripped, spaces collapsed."""
    panel = html[html.index('<dl class="facts">') :]
    panel = panel[: panel.index("</dl>")]
    pairs = re.findall(r"<dt>(.*?)</dt><dd[^>]*>(.*?)</dd>", panel, re.S)
    return {term: " ".join(re.sub(r"<[^>]+>", " ", text).split()) for term, text in pairs}


def test_api_run_answers_and_keeps_the_parameters_given(api_as, manual):
    client = api_as("olga")
    response = client.post(
        f"/api/nodes/{manual.pk}/run",
        {"biz_date": "2026-05-06", "params": {"limit": 50}},
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["biz_date"], body["params"]) == ("2026-05-06", {"limit": "50"})
    again = client.get(f"/api/instances/{body['id']}").json()
    assert again["params"] == {"limit": "50"} and again["created_by"] == "olga"


def test_instance_detail_answers_no_parameters_for_a_scheduled_instance(api_as, project, users):
    node = node_create(project, "daily", owner=users["alice"], params={"region": "eu"})
    instance = instance_create(node, SCHEDULED)
    body = api_as("vera").get(f"/api/instances/{instance.pk}").json()
    assert (body["params"], body["created_by"]) == ({}, None)


def test_the_facts_panel_shows_the_run_parameters_and_biz_date(client, users, manual):
    instance = node_ops.node_run(
        node=manual,
        by=users["olga"],
        source="ui",
        biz_date=datetime.date(2026, 5, 6),
        params={"limit": "50"},
    )
    client.force_login(users["vera"])
    html = client.get(f"/instances/{instance.pk}/").content.decode()
    shown = facts(html)
    assert shown["Biz date"].startswith("2026-05-06")
    assert shown["Run by"].startswith("olga")
    # Given at Run first, then the node's defaults that applied.
    assert shown["Run parameters"] == "limit=50 given region=eu default"
    assert '<span class="mono param" data-param="limit" data-given>limit=50</span>' in html


def test_a_run_without_parameters_says_the_defaults_applied(client, users, manual):
    instance = node_ops.node_run(
        node=manual, by=users["olga"], source="api", biz_date=datetime.date(2026, 5, 6)
    )
    client.force_login(users["olga"])
    live = client.get(f"/instances/{instance.pk}/live", HTTP_HX_REQUEST="true")
    assert facts(live.content.decode())["Run parameters"] == "limit=10 default region=eu default"


def test_a_scheduled_instance_has_no_run_facts(client, users, project):
    node = node_create(project, "daily", owner=users["alice"])
    instance = instance_create(node, SCHEDULED)
    client.force_login(users["vera"])
    shown = facts(client.get(f"/instances/{instance.pk}/").content.decode())
    assert "Run parameters" not in shown and "Run by" not in shown
    assert Instance.objects.get(pk=instance.pk).params == {}
