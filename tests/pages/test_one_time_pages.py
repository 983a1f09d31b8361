"""The one-time task list: manual nodes with their last run and a Run button that asks
the biz date and parameter values, then opens the new instance."""

import datetime
import re

import pytest
import time_machine

from apps.instances.models import Instance
from tests.factories import instance_create, node_create

HTMX = {"HTTP_HX_REQUEST": "true"}
NOW = datetime.datetime(2026, 11, 22, 2, 0, tzinfo=datetime.UTC)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def as_user(client, users):
    def login(name: str):
        client.force_login(users[name])
        return client

    return login


@pytest.fixture
def manual(project, users):
    alice = users["alice"]
    fix = node_create(
        project,
        "fix_orders",
        owner=alice,
        schedule_type="one_time",
        type="shell",
        content="echo ${region}",
        params={"region": "eu"},
    )
    node_create(project, "cleanup", owner=alice, schedule_type="one_time")
    node_create(project, "daily", owner=alice)
    return fix


def names(html: str) -> list[str]:
    return re.findall(r'<td class="node-cell"><a href="/nodes/\d+/">([^<]+)</a>', html)


def test_lists_only_one_time_nodes_with_their_last_run(as_user, manual):
    last = instance_create(
        manual, NOW, kind="one_time", state="failed", biz_date=datetime.date(2026, 11, 2)
    )
    response = as_user("olga").get("/nodes/one-time/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and 'href="/nodes/" class="active"' in html
    assert names(html) == ["cleanup", "fix_orders"]
    row = html.split(f'<tr data-node="{manual.id}">')[1].split("</tr>")[0]
    assert f'href="/instances/{last.id}/"' in row and 'data-state="failed"' in row
    assert "2026-11-02" in row and "region=eu" in row
    assert f'hx-get="/nodes/{manual.id}/run"' in row
    # Reached from the node list.
    assert 'href="/nodes/one-time/"' in as_user("olga").get("/nodes/").content.decode()


def test_search_answers_the_table(as_user, manual):
    response = as_user("olga").get("/nodes/one-time/?q=fix", **HTMX)
    html = response.content.decode()
    assert "<html" not in html and names(html) == ["fix_orders"]
    assert as_user("olga").get("/nodes/one-time/?limit=0").status_code == 422


def test_viewers_and_strangers(as_user, manual):
    viewer = as_user("vera").get("/nodes/one-time/").content.decode()
    assert names(viewer) == ["cleanup", "fix_orders"] and 'data-action="run"' not in viewer
    assert names(as_user("stranger").get("/nodes/one-time/").content.decode()) == []


def test_run_form_loads_and_runs_with_the_given_values(as_user, manual):
    client = as_user("olga")
    form = client.get(f"/nodes/{manual.id}/run", **HTMX).content.decode()
    assert 'id="run-form"' in form and 'name="param.region" value="eu"' in form
    response = client.post(
        f"/nodes/{manual.id}/run", {"biz_date": "2026-11-05", "param.region": "us"}, **HTMX
    )
    instance = Instance.objects.get(node=manual)
    assert response["HX-Redirect"] == f"/instances/{instance.id}/"
    assert instance.kind == "one_time" and instance.biz_date == datetime.date(2026, 11, 5)
    assert instance.params == {"region": "us"}
