"""The backfill pages: the runs list, the New backfill form and its preview, one run's
page with its grid, and the Stop / Rerun failed buttons by role."""

import datetime
import re

import pytest
import time_machine
from django.conf import settings

from apps.audit.models import OperationLog
from apps.backfills import services
from apps.backfills.models import Backfill
from apps.instances.models import Instance
from tests.factories import node_create

HTMX = {"HTTP_HX_REQUEST": "true"}
# 10:00 on 2026-11-22 in Asia/Shanghai.
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
def graph(project, users):
    """extract -> load -> report, and an hourly sibling; one one-time node."""
    alice = users["alice"]
    extract = node_create(project, "extract", owner=alice)
    load = node_create(project, "load", owner=alice, upstream=[extract])
    report = node_create(project, "report", owner=alice, upstream=[load])
    hourly = node_create(project, "hourly", owner=alice, cron="0 * * * *", upstream=[extract])
    manual = node_create(project, "manual_fix", owner=alice, schedule_type="one_time")
    return {"extract": extract, "load": load, "report": report, "hourly": hourly, "manual": manual}


def form(roots, **fields) -> dict:
    data = {
        "nodes": [n.id for n in roots],
        "downstream": "none",
        "start_date": "2026-11-01",
        "end_date": "2026-11-03",
        "order": "serial",
        "parallelism": "",
        "direction": "ascending",
    }
    data.update(fields)
    return data


def run(graph, users, **fields) -> Backfill:
    values = dict(
        by=users["olga"],
        source="ui",
        nodes=[graph["extract"]],
        downstream=[graph["load"].id],
        start=datetime.date(2026, 11, 1),
        end=datetime.date(2026, 11, 2),
    )
    values.update(fields)
    return services.backfill_create(**values)


# --- the runs list -----------------------------------------------------------------------


def test_list_empty_page_offers_a_new_backfill(as_user, graph):
    html = as_user("vera").get("/backfills/").content.decode()
    assert "<html" in html and 'href="/backfills/" class="active"' in html
    assert "No backfill runs" in html and 'href="/backfills/new/"' in html


def test_list_shows_runs_newest_first_with_progress(as_user, graph, users):
    first = run(graph, users)
    second = run(graph, users, downstream="none", end=datetime.date(2026, 11, 1))
    Instance.objects.filter(backfill=first, node=graph["extract"]).update(state="succeeded")
    Instance.objects.filter(backfill=first, node=graph["load"], biz_date="2026-11-01").update(
        state="failed"
    )
    response = as_user("vera").get("/backfills/")
    assert response.status_code == 200
    html = response.content.decode()
    assert re.findall(r'<tr data-backfill="(\d+)">', html) == [str(second.id), str(first.id)]
    row = html.split(f'<tr data-backfill="{first.id}">')[1].split("</tr>")[0]
    assert 'data-state="succeeded" data-count="2"' in row
    assert 'data-state="failed" data-count="1"' in row
    assert 'data-state="pending" data-count="1"' in row
    assert "3/4" in row and "2026-11-01 → 2026-11-02" in row
    assert ">extract</a>" in row and "+1 downstream" in row
    # Something runs: the table polls itself.
    assert 'hx-trigger="every 5s"' in html


def test_list_htmx_answers_the_table_and_stops_polling_when_nothing_runs(as_user, graph, users):
    backfill = run(graph, users)
    live = as_user("vera").get("/backfills/", **HTMX)
    assert live.status_code == 200
    assert "<html" not in live.content.decode() and 'id="backfill-runs"' in live.content.decode()
    Backfill.objects.filter(pk=backfill.pk).update(state="succeeded")
    done = as_user("vera").get("/backfills/", **HTMX)
    assert done.status_code == 286
    assert "hx-trigger" not in done.content.decode()


def test_list_pages_with_a_cursor(as_user, graph, users):
    made = [run(graph, users, downstream="none") for _ in range(3)]
    html = as_user("vera").get("/backfills/?limit=2").content.decode()
    assert re.findall(r'<tr data-backfill="(\d+)">', html) == [str(made[2].id), str(made[1].id)]
    cursor = re.search(r'href="\?cursor=([^"]+)"', html).group(1)
    rest = as_user("vera").get(f"/backfills/?limit=2&cursor={cursor}", **HTMX).content.decode()
    assert re.findall(r'<tr data-backfill="(\d+)">', rest) == [str(made[0].id)]
    bad = as_user("vera").get("/backfills/?limit=x")
    assert bad.status_code == 422 and "limit" in bad.content.decode()


def test_list_hides_other_projects_runs(as_user, graph, users):
    run(graph, users)
    html = as_user("stranger").get("/backfills/").content.decode()
    assert "data-backfill=" not in html


# --- the New backfill form -------------------------------------------------------------------


def test_new_form_preselects_the_node_from_its_page(as_user, graph):
    html = as_user("olga").get(f"/backfills/new/?node={graph['load'].id}").content.decode()
    assert f'<option value="{graph["load"].id}" selected>load</option>' in html
    # Only recurring online nodes are offered.
    assert ">manual_fix<" not in html
    # Its downstream nodes are offered for a subset; the last week up to yesterday.
    assert f'name="downstream_nodes" value="{graph["report"].id}"' in html
    assert 'name="start_date" value="2026-11-15"' in html
    assert 'name="end_date" value="2026-11-21"' in html
    assert 'data-action="start"' in html


def test_node_page_offers_backfill_to_operators_only(as_user, graph):
    html = as_user("olga").get(f"/nodes/{graph['load'].id}/").content.decode()
    assert f'href="/backfills/new/?node={graph["load"].id}"' in html
    assert (
        'data-action="backfill"'
        not in as_user("vera").get(f"/nodes/{graph['load'].id}/").content.decode()
    )
    manual = as_user("olga").get(f"/nodes/{graph['manual'].id}/").content.decode()
    assert 'data-action="backfill"' not in manual


def test_downstream_choices_load_for_the_roots(as_user, graph):
    client = as_user("olga")
    html = client.get(
        f"/backfills/new/downstream?nodes={graph['extract'].id}"
        f"&downstream_nodes={graph['report'].id}",
        **HTMX,
    ).content.decode()
    boxes = re.findall(r'name="downstream_nodes" value="(\d+)"( checked)?', html)
    assert boxes == [
        (str(graph["hourly"].id), ""),
        (str(graph["load"].id), ""),
        (str(graph["report"].id), " checked"),
    ]
    leaf = client.get(f"/backfills/new/downstream?nodes={graph['report'].id}").content.decode()
    assert "No node depends on the chosen nodes" in leaf


def test_preview_shows_the_plan_and_creates_nothing(as_user, graph):
    data = form(
        [graph["extract"]],
        downstream="subset",
        downstream_nodes=[graph["hourly"].id],
        order="parallel",
        parallelism="2",
        direction="descending",
        action="preview",
    )
    response = as_user("olga").post("/backfills/new/", data, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and 'id="backfill-preview"' in html
    # extract once and hourly 24 times per date, newest date first.
    assert "<strong data-plan-total>75</strong>" in html
    assert re.findall(r'data-plan-date="([\d-]+)"', html) == [
        "2026-11-03",
        "2026-11-02",
        "2026-11-01",
    ]
    assert '<td class="num">25</td>' in html
    assert "data-dag" in html and "/backfills/new/plan.json?" in html
    assert Backfill.objects.count() == 0 and Instance.objects.count() == 0
    assert not OperationLog.objects.filter(action="backfill_create").exists()


def test_plan_graph_json_is_the_dag_of_one_date(as_user, graph):
    client = as_user("olga")
    query = (
        f"nodes={graph['extract'].id}&downstream=all&start_date=2026-11-01"
        "&end_date=2026-11-02&order=serial&direction=ascending&up=0&down=0"
    )
    data = client.get(f"/backfills/new/plan.json?{query}").json()
    names = {n["id"]: n["label"] for n in data["nodes"]}
    assert sorted(names.values()) == ["extract", "hourly", "load", "report"]
    edges = {(names[e["source"]], names[e["target"]]) for e in data["edges"]}
    assert edges == {("extract", "load"), ("load", "report"), ("extract", "hourly")}
    assert [n["label"] for n in data["nodes"] if n["focus"]] == ["extract"]
    bad = client.get("/backfills/new/plan.json?nodes=&start_date=x")
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} >= {"nodes", "start_date"}
    assert Instance.objects.count() == 0


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"start_date": "2026-11-40"}, "start_date", "a date as YYYY-MM-DD"),
        ({"end_date": "2026-10-01"}, "end_date", "before the first"),
        ({"order": "parallel", "parallelism": "0"}, "parallelism", "at least 1"),
        ({"order": "parallel", "parallelism": ""}, "parallelism", "how many dates"),
        ({"downstream": "subset"}, "downstream_nodes", "choose the downstream nodes"),
        ({"nodes": []}, "nodes", "choose at least one node"),
        ({"nodes": ["999999"]}, "nodes", "999999 does not exist"),
        ({"end_date": "2028-01-01"}, "end_date", "at most"),
    ],
)
def test_bad_input_names_the_field(as_user, graph, fields, field, message):
    data = form([graph["extract"]], action="start", **fields)
    response = as_user("olga").post("/backfills/new/", data, **HTMX)
    assert response.status_code == 422
    html = response.content.decode()
    assert f"<strong>{field}</strong>:" in html and message in html
    assert Backfill.objects.count() == 0


def test_a_node_the_service_refuses_is_named(as_user, graph):
    """The form offers only recurring nodes; one posted anyway is refused by the plan."""
    data = form([graph["manual"]], action="preview")
    response = as_user("olga").post("/backfills/new/", data, **HTMX)
    assert response.status_code == 422
    assert "<strong>nodes</strong>:" in response.content.decode()
    assert "only recurring nodes" in response.content.decode()


def test_start_creates_the_run_and_opens_it(as_user, graph):
    data = form(
        [graph["extract"]],
        downstream="subset",
        downstream_nodes=[graph["load"].id],
        ignore_schedule_time="on",
        action="start",
    )
    response = as_user("olga").post("/backfills/new/", data)
    backfill = Backfill.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/backfills/{backfill.id}/"
    assert backfill.ignore_schedule_time and backfill.order == "serial"
    assert backfill.parallelism == 1 and backfill.created_by.username == "olga"
    assert Instance.objects.filter(backfill=backfill).count() == 6
    entry = OperationLog.objects.get(action="backfill_create")
    assert entry.source == "ui"
    # Through htmx the browser is sent there.
    htmx = as_user("olga").post("/backfills/new/", data, **HTMX)
    assert htmx.status_code == 200 and htmx["HX-Redirect"].startswith("/backfills/")


def test_a_viewer_may_preview_but_not_start(as_user, graph):
    client = as_user("vera")
    page = client.get(f"/backfills/new/?node={graph['extract'].id}").content.decode()
    assert 'data-action="start"' not in page and "needs the operator role" in page
    response = client.post("/backfills/new/", form([graph["extract"]], action="start"), **HTMX)
    assert response.status_code == 422
    assert Backfill.objects.count() == 0


# --- one run ---------------------------------------------------------------------------


def test_run_page_has_the_grid_of_dates_by_nodes(as_user, graph, users):
    backfill = run(graph, users, downstream=[graph["hourly"].id])
    extract = Instance.objects.get(backfill=backfill, node=graph["extract"], biz_date="2026-11-01")
    Instance.objects.filter(pk=extract.pk).update(state="failed")
    response = as_user("vera").get(f"/backfills/{backfill.id}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and f"Backfill {backfill.id}" in html
    assert re.findall(r'<tr data-date="([\d-]+)">', html) == ["2026-11-01", "2026-11-02"]
    assert re.findall(r'<th scope="col" class="node-head" title="(\w+)">', html) == [
        "extract",
        "hourly",
    ]
    assert (
        f'<a class="grid-cell seg-red" href="/instances/{extract.id}/" '
        f'data-instance="{extract.id}" data-state="failed"'
    ) in html
    # The hourly node's cell holds its 24 instances of the date.
    row = html.split('<tr data-date="2026-11-02">')[1].split("</tr>")[0]
    assert row.count('class="grid-cell seg-gray"') == 25
    assert 'hx-trigger="every 2s"' in html and "live" in html
    # A viewer sees no buttons.
    assert 'data-action="stop"' not in html and 'data-action="rerun_failed"' not in html


def test_run_page_buttons_by_role_and_state(as_user, graph, users):
    backfill = run(graph, users)
    Instance.objects.filter(backfill=backfill, node=graph["load"]).update(state="failed")
    html = as_user("olga").get(f"/backfills/{backfill.id}/").content.decode()
    assert 'data-action="stop"' in html and 'data-action="rerun_failed"' in html
    dev = as_user("dave").get(f"/backfills/{backfill.id}/").content.decode()
    assert 'data-action="stop"' not in dev
    assert as_user("stranger").get(f"/backfills/{backfill.id}/").status_code == 404


def test_live_panel_polls_until_the_run_is_finished(as_user, graph, users):
    backfill = run(graph, users)
    client = as_user("vera")
    live = client.get(f"/backfills/{backfill.id}/", **HTMX)
    assert live.status_code == 200
    html = live.content.decode()
    assert "<html" not in html and 'id="backfill-live"' in html and "hx-trigger" in html
    Instance.objects.filter(backfill=backfill).update(state="succeeded")
    Backfill.objects.filter(pk=backfill.pk).update(state="succeeded")
    done = client.get(f"/backfills/{backfill.id}/", **HTMX)
    assert done.status_code == 286
    html = done.content.decode()
    assert "hx-trigger" not in html and 'data-backfill-state="succeeded"' in html
    assert "<strong data-percent>100%</strong>" in html


def bar_segments(html: str) -> list[dict]:
    """The first progress bar of the page, segment by segment."""
    bar = html.split('<div class="progress"')[1].split("</div>")[0]
    return [
        {"class": m[0], "state": m[1], "done": m[2], "width": float(m[3])}
        for m in re.findall(
            r'class="progress-seg (seg-[\w-]+)" data-state="(\w+)" data-count="\d+" '
            r'data-done="(\w+)" style="width: ([\d.]+)%"',
            bar,
        )
    ]


def test_a_run_finished_with_skipped_instances_is_drawn_all_done(as_user, graph, users):
    """17 succeeded and 3 skipped is 100%: the bar is drawn done from end to end, not
    85% green and the rest in the colour of what still waits."""
    backfill = run(graph, users, end=datetime.date(2026, 11, 10))
    ids = list(
        Instance.objects.filter(backfill=backfill).order_by("id").values_list("id", flat=True)
    )
    assert len(ids) == 20
    Instance.objects.filter(pk__in=ids[:17]).update(state="succeeded")
    Instance.objects.filter(pk__in=ids[17:]).update(state="skipped")
    Backfill.objects.filter(pk=backfill.pk).update(state="succeeded")

    html = as_user("vera").get(f"/backfills/{backfill.id}/").content.decode()
    assert "<strong data-percent>100%</strong>" in html
    segments = bar_segments(html)
    assert [(s["state"], s["width"]) for s in segments] == [("succeeded", 85.0), ("skipped", 15.0)]
    assert all(s["done"] == "true" for s in segments)
    # Waiting states are drawn gray and light: a finished one never is.
    skipped = segments[1]
    assert skipped["class"] not in ("seg-gray", "seg-light")
    css = (settings.BASE_DIR / "static" / "css" / "opscenter.css").read_text()
    assert re.search(rf"\.{skipped['class']}\s*{{[^}}]*#2f9e55", css), "drawn in green"
    # The grid's squares of skipped instances are drawn the same way.
    assert html.count(f'class="grid-cell {skipped["class"]}"') == 3


def test_the_bar_of_a_running_run_tells_done_from_waiting(as_user, graph, users):
    backfill = run(graph, users)
    first = Instance.objects.filter(backfill=backfill).order_by("id").first()
    Instance.objects.filter(pk=first.pk).update(state="skipped")
    html = as_user("vera").get(f"/backfills/{backfill.id}/").content.decode()
    assert [(s["state"], s["done"]) for s in bar_segments(html)] == [
        ("skipped", "true"),
        ("pending", "false"),
    ]
    assert "<strong data-percent>25%</strong>" in html


def test_stop_button_stops_the_run(as_user, graph, users):
    backfill = run(graph, users)
    response = as_user("olga").post(f"/backfills/{backfill.id}/stop")
    assert response.status_code == 302 and response["Location"] == f"/backfills/{backfill.id}/"
    assert Backfill.objects.get(pk=backfill.pk).state == "stopped"
    assert not Instance.objects.filter(backfill=backfill, state="pending").exists()
    page = as_user("olga").get(f"/backfills/{backfill.id}/").content.decode()
    assert f"Backfill {backfill.id} stopped." in page and 'data-action="stop"' not in page


def test_stop_refused_for_a_viewer_with_a_message(as_user, graph, users):
    backfill = run(graph, users)
    response = as_user("vera").post(f"/backfills/{backfill.id}/stop", follow=True)
    assert "was not stopped" in response.content.decode()
    assert Backfill.objects.get(pk=backfill.pk).state == "running"
    assert as_user("olga").get(f"/backfills/{backfill.id}/stop").status_code == 405


def test_rerun_failed_button(as_user, graph, users):
    backfill = run(graph, users)
    failed = Instance.objects.filter(backfill=backfill, node=graph["load"]).first()
    Instance.objects.filter(pk=failed.pk).update(state="failed", attempt_count=1)
    Backfill.objects.filter(pk=backfill.pk).update(state="failed")
    response = as_user("olga").post(f"/backfills/{backfill.id}/rerun-failed", follow=True)
    assert "is rerunning its failed instances" in response.content.decode()
    assert Instance.objects.get(pk=failed.pk).state == "pending"
    assert Backfill.objects.get(pk=backfill.pk).state == "running"
    # Nothing failed any more: refused, with the reason.
    again = as_user("olga").post(f"/backfills/{backfill.id}/rerun-failed", follow=True)
    assert "has no failed instance" in again.content.decode()
