"""Node group pages: the groups list, a group's page with its nodes and actions, pausing
and resuming a group from it, Backfill this group, and the group on the node pages."""

import re
from urllib.parse import parse_qs, urlparse

import pytest

from apps.audit.models import OperationLog
from apps.nodes.models import Node
from apps.nodes.operations import node_offline, node_pause
from apps.nodes.services import nodes_publish
from apps.projects.models import Project
from tests.nodes.helpers import spec

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def as_user(client, users):
    """as_user("olga") -> the test client, logged in as olga."""
    return lambda name: client.force_login(users[name]) or client


@pytest.fixture
def sales(project, users):
    """acme/sales: extract -> load (recurring), fix (one-time); acme/misc: cleanup."""
    nodes_publish(
        project=project,
        env="prod",
        user=users["alice"],
        specs=[
            spec("extract", group="sales"),
            spec("load", group="sales", upstream=["extract"]),
            spec("fix", group="sales", schedule={"type": "one_time"}),
            spec("cleanup", group="misc"),
            spec("loose"),
        ],
    )
    return {n.name: n for n in Node.objects.filter(project=project)}


def group_rows(html: str) -> list[tuple[str, str, str, str]]:
    return re.findall(
        r'<tr data-group="([^"]+)" data-project="([^"]+)">.*?data-count="nodes">(\d+)<.*?'
        r'data-count="paused">(.*?)</td>',
        html,
        re.S,
    )


def test_the_groups_page_lists_groups_with_their_counts(as_user, sales, users):
    node_pause(node=sales["load"], by=users["olga"], source="ui")
    response = as_user("vera").get("/nodes/groups/")
    assert response.status_code == 200
    html = response.content.decode()
    assert [(g, p, n) for g, p, n, _ in group_rows(html)] == [
        ("misc", "acme", "1"),
        ("sales", "acme", "3"),
    ]
    assert '<span class="flag flag-strong">1 paused</span>' in html
    assert 'href="/nodes/groups/acme/sales/"' in html
    # The node list links to it.
    assert (
        'href="/nodes/groups/" data-link="groups"'
        in as_user("vera").get("/nodes/").content.decode()
    )


def test_the_groups_page_pages_and_hides_other_projects(as_user, sales, users):
    other = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    nodes_publish(project=other, env="prod", user=users["root"], specs=[spec("x", group="secret")])
    first = as_user("vera").get("/nodes/groups/?limit=1").content.decode()
    assert [g for g, *_ in group_rows(first)] == ["misc"]
    cursor = re.search(r'href="\?[^"]*cursor=([^"&]+)', first).group(1)
    second = as_user("vera").get(f"/nodes/groups/?limit=1&cursor={cursor}", **HTMX)
    assert [g for g, *_ in group_rows(second.content.decode())] == ["sales"]
    assert "<html" not in second.content.decode()
    bad = as_user("vera").get("/nodes/groups/?cursor=garbage")
    assert bad.status_code == 422 and "cursor" in bad.content.decode()
    assert "secret" not in as_user("vera").get("/nodes/groups/").content.decode()
    assert "secret" in as_user("root").get("/nodes/groups/").content.decode()


def test_a_group_page_shows_its_nodes_and_the_operator_its_actions(as_user, sales):
    response = as_user("olga").get("/nodes/groups/acme/sales/")
    assert response.status_code == 200
    html = response.content.decode()
    names = re.findall(r'<td class="node-cell">\s*<a href="/nodes/\d+/">([^<]+)</a>', html)
    assert names == ["extract", "fix", "load"]
    assert 'data-count="nodes">3<' in html
    for action in ("group-pause", "group-resume", "group-backfill"):
        assert f'data-action="{action}"' in html
    # Backfill this group: the New backfill form with its recurring nodes chosen.
    link = re.search(
        r'href="([^"]+)" data-action="group-backfill"|data-action="group-backfill" href="([^"]+)"',
        html,
    )
    url = (link.group(1) or link.group(2)).replace("&amp;", "&")
    query = parse_qs(urlparse(url).query)
    assert urlparse(url).path == "/backfills/new/"
    assert sorted(int(i) for i in query["node"]) == sorted([sales["extract"].id, sales["load"].id])
    form = as_user("olga").get(url).content.decode()
    for name in ("extract", "load"):
        node_id = sales[name].id
        assert f'<option value="{node_id}" selected>{name}</option>' in form


def test_a_viewer_sees_the_group_but_not_its_actions(as_user, sales):
    html = as_user("vera").get("/nodes/groups/acme/sales/").content.decode()
    assert "extract" in html and 'data-action="group-pause"' not in html
    assert "needs the operator role in acme" in html


def test_a_group_page_is_not_found_for_strangers_and_unknown_groups(as_user, sales):
    assert as_user("stranger").get("/nodes/groups/acme/sales/").status_code == 404
    assert as_user("olga").get("/nodes/groups/acme/nothing/").status_code == 404
    assert as_user("olga").get("/nodes/groups/nope/sales/").status_code == 404
    assert as_user("stranger").post("/nodes/groups/acme/sales/pause").status_code == 404


def test_pause_and_resume_a_group_from_its_page(as_user, sales, users):
    node_offline(node=sales["fix"], by=users["olga"], source="ui")
    client = as_user("olga")
    response = client.post("/nodes/groups/acme/sales/pause", follow=True)
    assert response.redirect_chain == [("/nodes/groups/acme/sales/", 302)]
    html = response.content.decode()
    assert "Group sales: 2 nodes paused." in html
    assert set(Node.objects.filter(paused=True).values_list("name", flat=True)) == {
        "extract",
        "load",
    }
    assert OperationLog.objects.get(object_type="node_group").source == "ui"
    again = client.post("/nodes/groups/acme/sales/pause", follow=True).content.decode()
    assert (
        "Group sales was not paused: node group sales of acme: every online node is already paused"
        in again
    )
    html = client.post("/nodes/groups/acme/sales/resume", follow=True).content.decode()
    assert "Group sales: 2 nodes resumed." in html
    assert not Node.objects.filter(paused=True).exists()


def test_a_viewer_cannot_pause_a_group_from_the_page(as_user, sales):
    html = as_user("vera").post("/nodes/groups/acme/sales/pause", follow=True).content.decode()
    assert "Group sales was not paused" in html and "operator" in html
    assert not Node.objects.filter(paused=True).exists()
    record = OperationLog.objects.get(object_type="node_group")
    assert (record.username, record.result) == ("vera", "refused")


def test_the_node_list_filters_by_group_and_shows_it(as_user, sales):
    html = as_user("vera").get("/nodes/?group=sales").content.decode()
    names = re.findall(r'<td class="node-cell">\s*<a href="/nodes/\d+/">([^<]+)</a>', html)
    assert names == ["extract", "fix", "load"]
    assert '<a href="/nodes/groups/acme/sales/" data-group="sales">sales</a>' in html
    assert 'id="f-group" name="group" value="sales"' in html
    everything = as_user("vera").get("/nodes/").content.decode()
    assert "loose" in everything and 'data-group="misc"' in everything


def test_the_node_page_names_its_group(as_user, sales):
    html = as_user("vera").get(f"/nodes/{sales['load'].id}/").content.decode()
    assert (
        '<dt>Group</dt><dd><a href="/nodes/groups/acme/sales/" data-group="sales">sales</a>' in html
    )
    loose = as_user("vera").get(f"/nodes/{sales['loose'].id}/").content.decode()
    assert "<dt>Group</dt><dd>—</dd>" in loose
