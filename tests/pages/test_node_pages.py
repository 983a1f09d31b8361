import datetime
import json
import re

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import OperationLog
from apps.instances.models import Instance
from apps.nodes.models import Node
from apps.projects.models import Membership, Project
from tests.factories import instance_create, node_create
from tests.pages.builders import T0

HTMX = {"HTTP_HX_REQUEST": "true"}
# 10:00 on 2026-11-22 in Asia/Shanghai.
NOW = datetime.datetime(2026, 11, 22, 2, 0, tzinfo=datetime.UTC)


@pytest.fixture
def as_user(client, users):
    def login(name: str):
        client.force_login(users[name])
        return client

    return login


@pytest.fixture
def nodes(project, users):
    alice, dave = users["alice"], users["dave"]
    ingest = node_create(project, "ingest", owner=alice, type="shell", content="echo in")
    report = node_create(
        project, "report", owner=dave, upstream=[ingest], type="python", description="daily KPIs"
    )
    manual = node_create(
        project,
        "manual_fix",
        owner=alice,
        schedule_type="one_time",
        type="shell",
        content="echo ${region}",
        params={"region": "eu", "limit": "10"},
    )
    Node.objects.filter(pk=report.pk).update(description="daily KPIs")
    paused = node_create(project, "paused_one", owner=alice, paused=True)
    Node.objects.filter(pk=paused.pk).update(paused=True)
    return {"ingest": ingest, "report": report, "manual": manual, "paused": paused}


def rows(html: str) -> list[str]:
    return re.findall(
        r'<tr data-node="\d+">\s*(?:<td class="check">.*?</td>)?\s*<td class="node-cell">\s*<a href="/nodes/\d+/">([^<]+)</a>',
        html,
        re.S,
    )


# --- list --------------------------------------------------------------------------------


def test_list_full_page(as_user, nodes):
    response = as_user("olga").get("/nodes/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and 'id="node-filters"' in html
    assert 'href="/nodes/" class="active"' in html
    assert rows(html) == ["ingest", "manual_fix", "paused_one", "report"]
    assert 'data-node="online">Online</span>' in html
    assert "One-time (manual)" in html and "0 2 * * *" in html


def test_list_htmx_request_renders_only_the_table(as_user, nodes):
    response = as_user("olga").get("/nodes/?type=shell&q=", **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and 'id="node-filters"' not in html
    assert rows(html) == ["ingest", "manual_fix"]
    assert response["HX-Push-Url"] == "/nodes/?type=shell"


@pytest.mark.parametrize(
    "query, expected",
    [
        ("q=KPI", ["report"]),
        ("q=fix", ["manual_fix"]),
        ("owner=dave", ["report"]),
        ("paused=true", ["paused_one"]),
        ("paused=false", ["ingest", "manual_fix", "report"]),
        ("schedule_type=one_time", ["manual_fix"]),
        ("type=python", ["report"]),
        ("env=dev", []),
        ("status=online", ["ingest", "manual_fix", "paused_one", "report"]),
    ],
)
def test_list_filters(as_user, nodes, query, expected):
    assert rows(as_user("olga").get(f"/nodes/?{query}").content.decode()) == expected


def test_list_bad_filter_names_the_field(as_user, nodes):
    response = as_user("olga").get("/nodes/?paused=maybe", **HTMX)
    assert response.status_code == 422
    assert "<strong>paused</strong>: true or false" in response.content.decode()


def test_list_keyset_pages(as_user, nodes):
    client = as_user("olga")
    first = client.get("/nodes/?limit=3").content.decode()
    assert rows(first) == ["ingest", "manual_fix", "paused_one"]
    cursor = re.search(r'href="\?limit=3&amp;cursor=([^"]+)"', first).group(1)
    second = client.get(f"/nodes/?limit=3&cursor={cursor}").content.decode()
    assert rows(second) == ["report"]
    assert "Next page" not in second and "First page" in second
    # The links swap the table in place.
    assert re.search(r'hx-target="#node-table"[^>]*>Next page', first)
    assert re.search(r'hx-target="#node-table"[^>]*>« First page', second)


def test_list_is_scoped_to_visible_and_chosen_projects(as_user, nodes, users):
    other = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    Membership.objects.create(project=other, user=users["alice"], role="viewer")
    node_create(other, "beta_only", owner=users["alice"])
    assert "beta_only" not in as_user("olga").get("/nodes/").content.decode()
    client = as_user("alice")
    assert "beta_only" in client.get("/nodes/").content.decode()
    assert rows(client.get("/nodes/?project=beta").content.decode()) == ["beta_only"]


def test_viewer_sees_no_batch_actions(as_user, nodes):
    html = as_user("vera").get("/nodes/").content.decode()
    assert 'name="ids"' not in html and 'value="pause"' not in html
    html = as_user("olga").get("/nodes/").content.decode()
    assert f'name="ids" value="{nodes["ingest"].id}"' in html
    assert 'name="action" value="change_owner"' in html


# --- batch -------------------------------------------------------------------------------


def test_batch_asks_for_confirmation_first(as_user, nodes):
    ids = [nodes["ingest"].id, nodes["paused"].id]
    response = as_user("olga").post("/nodes/batch", {"action": "pause", "ids": ids}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="batch-confirm"' in html and "Pause 2 nodes?" in html
    assert "<strong>paused</strong>: its instances will not start" in html
    assert "already paused" in html
    assert 'name="confirm" value="yes"' in html
    # Nothing changed yet.
    assert not Node.objects.get(pk=nodes["ingest"].pk).paused
    assert not OperationLog.objects.exists()


def test_batch_confirmed_answers_per_item(as_user, nodes):
    ids = [nodes["ingest"].id, nodes["paused"].id]
    response = as_user("olga").post(
        "/nodes/batch", {"action": "pause", "ids": ids, "confirm": "yes"}, **HTMX
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "Pause: 1 of 2 done" in html
    ok = re.search(rf'<tr data-result="{nodes["ingest"].id}">(.*?)</tr>', html, re.S).group(1)
    refused = re.search(rf'<tr data-result="{nodes["paused"].id}">(.*?)</tr>', html, re.S).group(1)
    assert 'data-result="ok"' in ok
    assert 'data-result="refused"' in refused and "already paused" in refused
    assert Node.objects.get(pk=nodes["ingest"].pk).paused
    assert json.loads(response["HX-Trigger"]) == {"nodes-changed": {}}
    results = set(OperationLog.objects.values_list("action", "object_id", "result", "source"))
    assert results == {
        ("node_pause", str(nodes["ingest"].id), "ok", "ui"),
        ("node_pause", str(nodes["paused"].id), "refused", "ui"),
    }


def test_batch_change_owner(as_user, nodes):
    ids = [nodes["ingest"].id, nodes["report"].id]
    client = as_user("olga")
    confirm = client.post("/nodes/batch", {"action": "change_owner", "owner": "dave", "ids": ids})
    html = confirm.content.decode()
    assert "<html" in html  # without htmx, a page of its own
    assert "owner alice" in html and "owner <strong>dave</strong>" in html and "unchanged" in html
    done = client.post(
        "/nodes/batch", {"action": "change_owner", "owner": "dave", "ids": ids, "confirm": "yes"}
    )
    assert "Change owner: 2 of 2 done" in done.content.decode()
    assert set(Node.objects.filter(pk__in=ids).values_list("owner__username", flat=True)) == {
        "dave"
    }


def test_batch_refuses_bad_input_naming_the_field(as_user, nodes):
    client = as_user("olga")
    response = client.post("/nodes/batch", {"action": "explode", "ids": [nodes["ingest"].id]})
    assert response.status_code == 422
    assert (
        "<strong>action</strong>: one of pause, resume, change_owner" in response.content.decode()
    )
    response = client.post("/nodes/batch", {"action": "pause"}, **HTMX)
    assert "<strong>ids</strong>: choose at least one node" in response.content.decode()
    response = client.post("/nodes/batch", {"action": "change_owner", "ids": [nodes["ingest"].id]})
    assert "<strong>owner</strong>: the username of the new owner" in response.content.decode()
    response = client.post(
        "/nodes/batch",
        {
            "action": "change_owner",
            "owner": "nobody",
            "ids": [nodes["ingest"].id],
            "confirm": "yes",
        },
    )
    assert response.status_code == 422
    assert "<strong>owner</strong>: no active user &#x27;nobody&#x27;" in response.content.decode()
    assert Node.objects.get(pk=nodes["ingest"].pk).owner.username == "alice"


def test_batch_by_a_viewer_is_refused_per_item(as_user, nodes):
    response = as_user("vera").post(
        "/nodes/batch", {"action": "pause", "ids": [nodes["ingest"].id], "confirm": "yes"}
    )
    html = response.content.decode()
    assert "Pause: 0 of 1 done" in html and "needs the operator role" in html
    assert not Node.objects.get(pk=nodes["ingest"].pk).paused


def test_batch_leaves_out_nodes_one_cannot_see(as_user, nodes):
    response = as_user("stranger").post(
        "/nodes/batch", {"action": "pause", "ids": [nodes["ingest"].id]}
    )
    assert response.status_code == 422
    assert "none of these nodes exists" in response.content.decode()


# --- detail ------------------------------------------------------------------------------


def test_detail_full_page(as_user, nodes):
    report = nodes["report"]
    instance = instance_create(report, T0, state="failed")
    response = as_user("olga").get(f"/nodes/{report.id}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and "<h1" in html and "report" in html
    assert "daily KPIs" in html
    # Configuration from the current version's spec.
    config = html[html.index('id="configuration"') : html.index('id="node-versions"')]
    assert "Python" in config and "0 2 * * *" in config and "dave" in config
    assert "Asia/Shanghai" in config and "1h 00m" in config  # the default timeout
    # Upstream with a link; the graph from the shared component.
    upstream = html[html.index('id="upstream"') :]
    assert f'<a href="/nodes/{nodes["ingest"].id}/">ingest</a>' in upstream
    assert f'data-url="/nodes/{report.id}/dag.json"' in html
    # Its instances, with state badges and links.
    assert f'<a href="/instances/{instance.id}/">{instance.id}</a>' in html
    assert 'data-state="failed">Failed</span>' in html
    assert f'href="/instances/?node={report.id}"' in html


def test_detail_shows_content_and_params(as_user, nodes):
    html = as_user("olga").get(f"/nodes/{nodes['manual'].id}/").content.decode()
    assert '<pre class="log code" id="node-content">\necho ${region}</pre>' in html
    assert "region=eu" in html and "limit=10" in html


def test_detail_downstream_and_hidden_neighbours(as_user, nodes, users):
    other = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    Membership.objects.create(project=other, user=users["alice"], role="viewer")
    node_create(other, "beta_child", owner=users["alice"], upstream=[nodes["ingest"]])
    html = as_user("olga").get(f"/nodes/{nodes['ingest'].id}/").content.decode()
    downstream = html[html.index('id="downstream"') :]
    assert f'<a href="/nodes/{nodes["report"].id}/">report</a>' in downstream
    assert "beta_child" not in html
    assert "1 in project you are not a member of" in downstream


def test_detail_stranger_gets_404(as_user, nodes):
    assert as_user("stranger").get(f"/nodes/{nodes['ingest'].id}/").status_code == 404
    assert as_user("stranger").get(f"/nodes/{nodes['ingest'].id}/dag.json").status_code == 404
    assert as_user("olga").get("/nodes/999999/").status_code == 404


def test_detail_actions_by_role(as_user, nodes):
    manual = nodes["manual"]
    html = as_user("vera").get(f"/nodes/{manual.id}/").content.decode()
    assert 'data-action="' not in html and 'id="run-form"' not in html
    assert "operating it needs the operator role" in html
    html = as_user("dave").get(f"/nodes/{manual.id}/").content.decode()
    assert 'data-action="' not in html  # a developer does not operate prod nodes
    html = as_user("olga").get(f"/nodes/{manual.id}/").content.decode()
    for action in ("pause", "run", "offline"):
        assert f'data-action="{action}"' in html
    assert 'id="run-form"' in html
    # Run is for one-time and dev nodes only.
    html = as_user("olga").get(f"/nodes/{nodes['ingest'].id}/").content.decode()
    assert 'data-action="pause"' in html and 'data-action="run"' not in html
    html = as_user("olga").get(f"/nodes/{nodes['paused'].id}/").content.decode()
    assert 'data-action="resume"' in html and 'data-action="pause"' not in html


def test_dev_nodes_are_run_by_developers(as_user, nodes, project, users):
    project.env_mode = "dev_prod"
    project.save()
    dev = node_create(project, "ingest", owner=users["dave"], env="dev")
    html = as_user("dave").get(f"/nodes/{dev.id}/").content.decode()
    assert 'data-action="run"' in html and 'data-action="pause"' in html


# --- versions and their diff ----------------------------------------------------------------


@pytest.fixture
def versioned(project, users):
    node_create(project, "load", owner=users["alice"], type="shell", content="echo one\necho two")
    node_create(
        project, "load", owner=users["alice"], type="shell", content="echo one\necho 2", priority=5
    )
    return node_create(
        project,
        "load",
        owner=users["alice"],
        type="shell",
        content="echo one\necho 2",
        priority=4,
        retries=2,
    )


def test_versions_and_default_diff_of_the_last_two(as_user, versioned):
    html = as_user("olga").get(f"/nodes/{versioned.id}/").content.decode()
    assert re.findall(r'<tr data-version="(\d+)"', html) == ["3", "2", "1"]
    assert '<option value="2" selected>v2</option>' in html
    assert '<option value="3" selected>v3</option>' in html
    settings = re.search(r'<pre class="diff" data-diff="settings">(.*?)</pre>', html, re.S).group(1)
    assert '<span class="diff-del">-  &quot;priority&quot;: 5,</span>' in settings
    assert '<span class="diff-add">+  &quot;priority&quot;: 4,</span>' in settings
    assert '<span class="diff-add">+  &quot;retries&quot;: 2,</span>' in settings
    assert '<p class="empty-note" data-diff="content">No difference.</p>' in html


def test_diff_between_any_two_versions_htmx(as_user, versioned):
    response = as_user("olga").get(f"/nodes/{versioned.id}/?a=1&b=3", **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and html.lstrip().startswith("{") is False
    assert 'id="node-versions"' in html and 'id="configuration"' not in html
    content = re.search(r'<pre class="diff" data-diff="content">(.*?)</pre>', html, re.S).group(1)
    assert '<span class="diff-head">--- v1</span>' in content
    assert '<span class="diff-del">-echo two</span>' in content
    assert '<span class="diff-add">+echo 2</span>' in content
    assert '<span class="diff-ctx"> echo one</span>' in content


def test_diff_of_an_unknown_version_names_the_field(as_user, versioned):
    response = as_user("olga").get(f"/nodes/{versioned.id}/?a=9&b=x", **HTMX)
    assert response.status_code == 422
    html = response.content.decode()
    assert "<strong>a</strong>: node load has no version &#x27;9&#x27;" in html
    assert "<strong>b</strong>: node load has no version &#x27;x&#x27;" in html


# --- actions ------------------------------------------------------------------------------


def test_pause_and_resume(as_user, nodes):
    client = as_user("olga")
    ingest = nodes["ingest"]
    response = client.post(f"/nodes/{ingest.id}/pause", follow=True)
    assert Node.objects.get(pk=ingest.pk).paused
    html = response.content.decode()
    assert "ingest paused." in html and 'data-action="resume"' in html
    client.post(f"/nodes/{ingest.id}/resume")
    assert not Node.objects.get(pk=ingest.pk).paused
    assert list(OperationLog.objects.order_by("id").values_list("action", "result")) == [
        ("node_pause", "ok"),
        ("node_resume", "ok"),
    ]


def test_offline_refusal_is_shown(as_user, nodes):
    response = as_user("olga").post(f"/nodes/{nodes['ingest'].id}/offline", follow=True)
    html = response.content.decode()
    assert "ingest was not taken offline" in html and "acme.report" in html
    assert Node.objects.get(pk=nodes["ingest"].pk).status == "online"


def test_offline_takes_a_leaf_offline(as_user, nodes):
    response = as_user("olga").post(f"/nodes/{nodes['report'].id}/offline", follow=True)
    assert "report taken offline." in response.content.decode()
    assert Node.objects.get(pk=nodes["report"].pk).status == "offline"


def test_actions_by_a_viewer_are_refused(as_user, nodes):
    response = as_user("vera").post(f"/nodes/{nodes['ingest'].id}/pause", follow=True)
    assert "needs the operator role" in response.content.decode()
    assert not Node.objects.get(pk=nodes["ingest"].pk).paused
    assert as_user("stranger").post(f"/nodes/{nodes['ingest'].id}/pause").status_code == 404


def test_action_pages_want_post(as_user, nodes):
    assert as_user("olga").get(f"/nodes/{nodes['ingest'].id}/pause").status_code == 405


# --- run ----------------------------------------------------------------------------------


def test_run_form_page(as_user, nodes):
    with time_machine.travel(NOW, tick=False):
        response = as_user("olga").get(f"/nodes/{nodes['manual'].id}/run")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and 'id="run-form"' in html
    assert 'name="biz_date" value="2026-11-21"' in html  # yesterday in Asia/Shanghai
    assert 'name="param.region" value="eu"' in html
    partial = as_user("olga").get(f"/nodes/{nodes['manual'].id}/run", **HTMX).content.decode()
    assert "<html" not in partial and 'id="run-form"' in partial


def test_run_bad_date_names_the_field(as_user, nodes):
    response = as_user("olga").post(
        f"/nodes/{nodes['manual'].id}/run", {"biz_date": "2026-13-40", "param.region": "us"}, **HTMX
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "<strong>biz_date</strong>: &#x27;2026-13-40&#x27; is not a date as YYYY-MM-DD" in html
    assert 'value="2026-13-40"' in html and 'name="param.region" value="us"' in html
    assert not Instance.objects.exists()


def test_run_starts_a_one_time_instance(as_user, nodes):
    manual = nodes["manual"]
    with time_machine.travel(NOW, tick=False):
        response = as_user("olga").post(
            f"/nodes/{manual.id}/run",
            {"biz_date": "2026-11-01", "param.region": "us", "param.limit": "10"},
        )
    instance = Instance.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/instances/{instance.id}/"
    assert (instance.kind, instance.biz_date) == ("one_time", datetime.date(2026, 11, 1))
    assert instance.params == {"region": "us", "limit": "10"}
    assert instance.scheduled_at == NOW


def test_run_by_htmx_redirects_the_page_and_says_for_which_date(as_user, nodes):
    client = as_user("olga")
    with time_machine.travel(NOW, tick=False):
        response = client.post(
            f"/nodes/{nodes['manual'].id}/run", {"biz_date": "2026-11-21"}, **HTMX
        )
    instance = Instance.objects.get()
    assert response["HX-Redirect"] == f"/instances/{instance.id}/"
    assert instance.biz_date == datetime.date(2026, 11, 21)
    page = client.get(response["HX-Redirect"]).content.decode()
    assert f"manual_fix started as instance {instance.id} for biz date 2026-11-21." in page


def test_run_with_the_biz_date_cleared_asks_for_one(as_user, nodes):
    """A cleared date is not silently yesterday: the form says the date is needed, and
    which date it would have been, and nothing runs."""
    form = as_user("olga").get(f"/nodes/{nodes['manual'].id}/run", **HTMX).content.decode()
    assert re.search(r'<input type="date" id="run-biz-date" name="biz_date" [^>]*required', form)
    with time_machine.travel(NOW, tick=False):
        response = as_user("olga").post(
            f"/nodes/{nodes['manual'].id}/run", {"biz_date": " ", "param.region": "us"}, **HTMX
        )
    assert response.status_code == 422
    html = response.content.decode()
    assert (
        "<strong>biz_date</strong>: choose the business date to run for "
        "(yesterday: 2026-11-21)" in html
    )
    assert 'name="param.region" value="us"' in html
    assert not Instance.objects.exists()


def test_run_of_a_recurring_node_is_refused_with_the_reason(as_user, nodes):
    response = as_user("olga").post(
        f"/nodes/{nodes['ingest'].id}/run", {"biz_date": "2026-11-21"}, **HTMX
    )
    assert response.status_code == 422
    assert "Run is for one-time nodes and dev nodes" in response.content.decode()
    assert not Instance.objects.exists()


def test_run_by_a_viewer_is_refused(as_user, nodes):
    response = as_user("vera").post(f"/nodes/{nodes['manual'].id}/run", {"biz_date": "2026-11-21"})
    assert response.status_code == 422
    assert "needs the operator role" in response.content.decode()
    assert not Instance.objects.exists()


# --- DAG ----------------------------------------------------------------------------------


def test_dag_json_feeds_the_shared_component(as_user, nodes, project, users):
    report = nodes["report"]
    leaf = node_create(project, "leaf", owner=users["alice"], upstream=[report])
    Node.objects.filter(pk=leaf.pk).update(paused=True)
    body = as_user("olga").get(f"/nodes/{report.id}/dag.json").json()
    by_id = {n["id"]: n for n in body["nodes"]}
    assert set(by_id) == {nodes["ingest"].id, report.id, leaf.id}
    assert by_id[report.id] == {
        "id": report.id,
        "label": "report",
        "sublabel": "Python · 0 2 * * *",
        "color": "green",
        "badge": "Online",
        "paused": False,
        "url": f"/nodes/{report.id}/",
        "focus": True,
    }
    assert by_id[leaf.id]["color"] == "purple" and by_id[leaf.id]["badge"] == "Paused"
    assert not by_id[leaf.id]["focus"]
    assert sorted((e["source"], e["target"]) for e in body["edges"]) == sorted(
        [(nodes["ingest"].id, report.id), (report.id, leaf.id)]
    )
    assert all(e["removed"] is False for e in body["edges"])


def test_dag_json_depth(as_user, nodes):
    client = as_user("olga")
    report = nodes["report"]
    body = client.get(f"/nodes/{report.id}/dag.json?up=0&down=0").json()
    assert [n["id"] for n in body["nodes"]] == [report.id] and body["edges"] == []
    response = client.get(f"/nodes/{report.id}/dag.json?up=11")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "up"
    response = client.get(f"/nodes/{report.id}/dag.json?down=-1")
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "down"


def test_anonymous_node_pages_redirect_to_login(client, nodes):
    for url in [
        "/nodes/",
        f"/nodes/{nodes['ingest'].id}/",
        f"/nodes/{nodes['ingest'].id}/dag.json",
    ]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


# --- query counts -------------------------------------------------------------------------


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_list_query_count_does_not_grow_with_the_nodes(as_user, nodes, project, users):
    client = as_user("olga")
    before = count_queries(client, "/nodes/")
    for n in range(8):
        node_create(project, f"more_{n}", owner=users["dave"], upstream=[nodes["ingest"]])
    assert count_queries(client, "/nodes/") == before


def test_detail_query_count_does_not_grow_with_history(as_user, nodes, project, users):
    client = as_user("olga")
    report = nodes["report"]
    url = f"/nodes/{report.id}/"
    before = count_queries(client, url)
    for n in range(5):
        node_create(project, "report", owner=users["dave"], upstream=[nodes["ingest"]], retries=n)
        node_create(project, f"child_{n}", owner=users["dave"], upstream=[report])
        instance_create(report, T0 + datetime.timedelta(days=n), state="succeeded")
    assert count_queries(client, url) == before
