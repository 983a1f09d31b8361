"""Baseline pages and the panels on other pages: the list (at-risk first), a baseline's
page (status, Gantt chart of the critical path with its lines, key instances, on-time
rate, history, alerts), the overview's baselines at risk, an instance's baselines and
lending, the instance list's baseline instances, a backfill preview's competition, the
admin."""

import re

import pytest
import time_machine
from django.test import Client

from apps.baselines import cycles
from apps.baselines.models import Baseline, BaselineCycle
from apps.configuration.models import ResourceGroup
from tests.factories import instance_create, node_create

from .builders import BIZ_DATE, at, baseline_make, diamond, finish, run, start

HTMX = {"HTTP_HX_REQUEST": "true"}
NOW = at(9)


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def day(project, users):
    """The diamond with a running since 08:55 (d predicted at 09:43:30): "late report"
    commits 10:00 (warning), "early report" 12:00 (safe); "blocked" waits on a failed x."""
    d = diamond(project, users["alice"])
    start(d["instances"]["a"], at(8, 55))
    x = node_create(project, "x", owner=users["alice"])
    ix = instance_create(x, at(2))
    run(ix, at(2), at(2, 5))
    from apps.instances.models import Instance

    Instance.objects.filter(pk=ix.pk).update(state="failed")
    late = baseline_make(project, [d["nodes"]["d"]], name="late report", committed_time="10:00")
    early = baseline_make(project, [d["nodes"]["d"]], name="early report", committed_time="12:00")
    blocked = baseline_make(project, [x], name="blocked", committed_time="12:00")
    cycles.baselines_check(now=NOW)
    return {**d, "late": late, "early": early, "blocked": blocked, "x": ix}


def test_the_list_shows_todays_status_at_risk_first(as_user, day):
    html = as_user("vera").get("/baselines/").content.decode()
    order = re.findall(r'<tr data-baseline="(\d+)" data-status="(\w+)"', html)
    assert order == [
        (str(day["blocked"].pk), "broken"),
        (str(day["late"].pk), "warning"),
        (str(day["early"].pk), "safe"),
    ]
    # The list of every project's baselines is in the server's zone; the project chosen,
    # in the project's (Asia/Shanghai), like the cycle's committed 10:00.
    html = as_user("vera").get("/baselines/?project=acme").content.decode()
    assert "09:43" in html and "11-20 10:00" in html
    assert "43m 30s late" not in html  # predicted before the committed time
    assert "16m 30s to spare" in html  # 10:00 - 09:43:30
    assert ">blocked</span>" in html
    assert 'href="/baselines/' in html


def test_the_list_of_a_stranger_is_empty_and_needs_a_login(client, as_user, day):
    assert client.get("/baselines/").status_code == 302
    html = as_user("stranger").get("/baselines/").content.decode()
    assert "No baselines" in html and "data-baseline=" not in html
    assert as_user("stranger").get(f"/baselines/{day['late'].pk}/").status_code == 404


def test_a_baseline_page_draws_the_gantt_of_its_critical_path(as_user, day):
    html = as_user("vera").get(f"/baselines/{day['late'].pk}/").content.decode()
    assert 'id="gantt"' in html and "<svg" in html
    bars = re.findall(r'<g class="bar" data-instance="(\d+)" data-state="(\w+)"', html)
    i = day["instances"]
    assert bars == [
        (str(i["a"].pk), "running"),
        (str(i["c"].pk), "pending"),
        (str(i["d"].pk), "pending"),
    ]
    # a has a real part (since 08:55) and a predicted part; c and d are predicted only.
    assert html.count('class="bar-real"') == 1 and html.count('class="bar-predicted"') == 3
    for line in ("warning", "committed", "now"):
        assert f'data-line="{line}"' in html
    assert "warning 09:30" in html and "committed 10:00" in html and "now 09:00" in html
    # The critical path's table and the prediction.
    steps = re.findall(r'<tr data-step="(\d)" data-instance="(\d+)"', html)
    assert [s[1] for s in steps] == [str(i["a"].pk), str(i["c"].pk), str(i["d"].pk)]
    assert "2026-11-20 09:43" in html and 'data-status="warning"' in html
    assert f'<tr data-instance="{i["d"].pk}">' in html  # the key instances
    assert 'data-on-time="0/0"' in html
    alerts = re.findall(r'<tr data-alert="(\d+)"', html)
    assert len(alerts) == 1


def test_a_blocked_cycle_names_its_blocker_and_a_finished_one_its_history(as_user, day, users):
    html = as_user("vera").get(f"/baselines/{day['blocked'].pk}/").content.decode()
    assert 'id="blocked-by"' in html and f'data-instance="{day["x"].pk}"' in html
    assert "unknown" in html
    # Finish the diamond on time: the page shows the stored finish, the rate counts it.
    i = day["instances"]
    finish(i["a"], at(9, 1))
    run(i["b"], at(9, 1), at(9, 10))
    run(i["c"], at(9, 1), at(9, 20))
    run(i["d"], at(9, 21), at(9, 25))
    cycles.baselines_check(now=at(9, 26))
    html = as_user("vera").get(f"/baselines/{day['early'].pk}/").content.decode()
    assert 'data-status="finished_on_time"' in html and 'data-on-time="1/1"' in html
    assert "100%" in html
    assert f'data-cycle="{BIZ_DATE.isoformat()}"' in html


def test_a_baseline_page_refuses_a_bad_cycle_and_says_when_there_is_none(as_user, day):
    response = as_user("vera").get(f"/baselines/{day['late'].pk}/?biz_date=soon")
    assert response.status_code == 422
    assert 'data-field="biz_date"' in response.content.decode()
    response = as_user("vera").get(f"/baselines/{day['late'].pk}/?biz_date=2020-01-01")
    assert response.status_code == 200
    assert "has no key instance" in response.content.decode()


def test_the_overview_lists_the_baselines_at_risk(as_user, day, api_as):
    html = as_user("vera").get("/overview/").content.decode()
    panel = html.split('id="baselines-at-risk"')[1].split("</section>")[0]
    rows = re.findall(r'<tr data-baseline="(\d+)" data-status="(\w+)"', panel)
    assert rows == [(str(day["blocked"].pk), "broken"), (str(day["late"].pk), "warning")]
    body = api_as("vera").get("/api/overview").json()
    at_risk = body["baselines_at_risk"]
    assert [(b["name"], b["status"], b["blocked"]) for b in at_risk] == [
        ("blocked", "broken", True),
        ("late report", "warning", False),
    ]
    assert at_risk[1]["committed_at"] == "2026-11-20T10:00:00+08:00"
    assert at_risk[1]["predicted_finish"] == "2026-11-20T09:43:30+08:00"


def test_an_instance_page_says_which_baselines_it_is_on_and_what_it_lends(as_user, day):
    i = day["instances"]
    html = as_user("vera").get(f"/instances/{i['c'].pk}/").content.decode()
    panel = html.split('id="instance-baselines"')[1].split("</section>")[0]
    on = re.findall(r'<li data-baseline="(\d+)" data-status="(\w+)"', panel)
    assert sorted(on) == sorted([(str(day["late"].pk), "warning"), (str(day["early"].pk), "safe")])
    assert "on the path" in panel
    # "late report" is at risk: it lends its priority 8 to c.
    assert 'data-lent-priority="8"' in panel and "late report" in panel
    assert "Dispatched at priority <strong>8</strong> (its own is 3)" in panel
    assert "lent 8 by late report" in html
    key = as_user("vera").get(f"/instances/{i['d'].pk}/").content.decode()
    assert "a key instance" in key
    # Diagnosis says so too.
    diagnosis = as_user("vera").get(f"/instances/{i['c'].pk}/diagnosis").content.decode()
    assert 'data-note="lent_priority"' in diagnosis
    stray = instance_create(
        node_create(day["nodes"]["a"].project, "stray", owner=i["a"].node.owner), at(2)
    )
    assert (
        'id="instance-baselines"'
        not in as_user("vera").get(f"/instances/{stray.pk}/").content.decode()
    )


def test_the_instance_list_has_the_baseline_instances_view(as_user, day):
    client = as_user("vera")
    html = client.get("/instances/").content.decode()
    assert 'data-kind="baseline-instances"' in html and "Baseline instances" in html
    assert f'<option value="{day["late"].pk}">acme.late report</option>' in html
    html = client.get("/instances/?baseline=any").content.decode()
    listed = set(re.findall(r'data-instance="(\d+)"', html))
    i = day["instances"]
    expected = {str(i[n].pk) for n in "abcd"} | {str(day["x"].pk)}
    assert expected <= listed
    html = client.get(
        f"/instances/?baseline={day['blocked'].pk}&state=failed", **HTMX
    ).content.decode()
    assert set(re.findall(r'data-instance="(\d+)"', html)) == {str(day["x"].pk)}
    response = client.get("/instances/?baseline=nope")
    assert response.status_code == 422


def test_a_backfill_preview_warns_of_the_baselines_it_would_compete_with(
    as_user, day, project, users
):
    ResourceGroup.objects.create(name="elsewhere")
    data = {
        "nodes": [day["nodes"]["a"].id],
        "downstream": "none",
        "start_date": "2026-11-01",
        "end_date": "2026-11-02",
        "order": "serial",
        "parallelism": "",
        "direction": "ascending",
        "action": "preview",
    }
    html = as_user("olga").post("/backfills/new/", data, **HTMX).content.decode()
    assert 'id="baseline-competition"' in html
    named = re.findall(r'<li data-baseline="(\d+)"', html)
    # Both diamond baselines run their unfinished path in "default" before their committed
    # time; "blocked" has nothing unfinished there.
    assert sorted(named) == sorted([str(day["late"].pk), str(day["early"].pk)])
    assert "in default" in html
    alone = node_create(project, "alone", owner=users["alice"], resource_group="elsewhere")
    html = (
        as_user("olga")
        .post("/backfills/new/", {**data, "nodes": [alone.id]}, **HTMX)
        .content.decode()
    )
    assert 'id="backfill-preview"' in html and 'id="baseline-competition"' not in html


def test_every_admin_page_opens_and_checks_as_the_api(users, day):
    client = Client()
    client.force_login(users["root"])
    cycle = BaselineCycle.objects.first()
    for url in [
        "/admin/baselines/baseline/",
        "/admin/baselines/baseline/add/",
        f"/admin/baselines/baseline/{day['late'].pk}/change/",
        "/admin/baselines/baselinecycle/",
        f"/admin/baselines/baselinecycle/{cycle.pk}/change/",
    ]:
        assert client.get(url).status_code == 200, url
    response = client.post(
        "/admin/baselines/baseline/add/",
        {
            "project": day["late"].project_id,
            "name": "from admin",
            "cycle": "daily",
            "committed_time": "24:61",
            "margin_minutes": "30",
            "priority": "9",
            "key_nodes": [day["nodes"]["d"].pk],
            "recipients": "{}",
            "enabled": "on",
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "is not a time HH:MM" in page and "a whole number from 1" in page
    assert not Baseline.objects.filter(name="from admin").exists()


def test_a_baseline_alert_opens_and_the_alerts_api_names_its_baseline(as_user, day, api_as):
    from apps.monitoring.models import Alert

    alert = Alert.objects.get(source="baseline", target_id=str(day["late"].pk))
    html = as_user("vera").get(f"/alerts/{alert.pk}/").content.decode()
    assert "Baseline acme.late report is at risk (biz date 2026-11-19)" in html
    items = api_as("vera").get("/api/alerts?project=acme").json()["items"]
    found = {item["id"]: item for item in items}[alert.pk]
    assert (found["source"], found["trigger"], found["severity"]) == (
        "baseline",
        "warning",
        "warning",
    )
    assert (found["baseline"], found["target_type"], found["node"], found["instance"]) == (
        day["late"].pk,
        "baseline",
        None,
        None,
    )
