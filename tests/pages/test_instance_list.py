"""The instance list: tabs per kind, sorting, CSV export and batch operations."""

import csv
import datetime
import io
import re

import pytest

from apps.audit.models import OperationLog
from apps.instances.models import Instance
from apps.projects.models import Project
from tests.factories import instance_create, node_create
from tests.pages.builders import T0

HTMX = {"HTTP_HX_REQUEST": "true"}
POLL_TABLE = {**HTMX, "HTTP_HX_TRIGGER": "instance-table"}


@pytest.fixture
def olga(client, users):
    client.force_login(users["olga"])
    return client


def rows(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-instance="(\d+)"', html)]


def hour(h: int) -> datetime.datetime:
    return T0 + datetime.timedelta(hours=h)


@pytest.fixture
def kinds(users, project):
    node = node_create(project, "load", owner=users["alice"], cron="0 * * * *")
    return {
        "recurring": instance_create(node, hour(0), state="failed"),
        "backfill": instance_create(node, hour(1), kind="backfill", state="running"),
        "one_time": instance_create(node, hour(2), kind="one_time", state="succeeded"),
        "realtime": instance_create(node, hour(3), kind="realtime", state="stopped"),
    }


# --- tabs per kind ---------------------------------------------------------------------


def test_tabs_list_one_kind_each(olga, kinds):
    html = olga.get("/instances/").content.decode()
    assert sorted(rows(html)) == sorted(i.id for i in kinds.values())
    assert '<a href="/instances/" data-kind="" class="active" aria-current="page">All kinds' in html
    for kind, instance in kinds.items():
        html = olga.get(f"/instances/?kind={kind}").content.decode()
        assert rows(html) == [instance.id]
        assert f'data-kind="{kind}" class="active" aria-current="page"' in html
    assert "<title>Backfill instances" in olga.get("/instances/?kind=backfill").content.decode()


def test_tab_links_keep_the_filters_but_not_the_page(olga, kinds):
    html = olga.get("/instances/?kind=backfill&state=running&cursor=abc&limit=5").content.decode()
    tabs = dict(re.findall(r'<a href="([^"]+)" data-kind="(\w*)"', html)[i][::-1] for i in range(5))
    assert tabs[""] == "/instances/?state=running&amp;limit=5"
    assert tabs["one_time"] == "/instances/?kind=one_time&amp;state=running&amp;limit=5"
    # The filters form carries the tab and the sort with it.
    assert '<input type="hidden" name="kind" value="backfill" form="instance-filters">' in html


def test_a_filter_change_brings_the_tabs_again_a_poll_does_not(olga, kinds):
    html = olga.get("/instances/?kind=backfill&state=running", **HTMX).content.decode()
    assert (
        '<nav id="kind-tabs" class="tabs" aria-label="Instance kinds" hx-swap-oob="true">' in html
    )
    html = olga.get("/instances/?kind=backfill", **POLL_TABLE).content.decode()
    assert "kind-tabs" not in html


# --- sorting ---------------------------------------------------------------------------


@pytest.fixture
def spread(users, project):
    """Five instances differing in priority and biz date."""
    node = node_create(project, "load", owner=users["alice"], cron="0 * * * *")
    return [
        instance_create(node, T0 + datetime.timedelta(days=d), priority=p)
        for d, p in [(0, 2), (1, 5), (2, 1), (3, 5), (4, 3)]
    ]


def test_default_order_is_latest_scheduled_first_with_its_arrow(olga, spread):
    html = olga.get("/instances/").content.decode()
    assert rows(html) == [i.id for i in reversed(spread)]
    assert re.search(r'aria-sort="descending"[^>]*>\s*<a href="\?sort=scheduled_at"', html)


@pytest.mark.parametrize(
    "sort, expected",
    [
        ("priority", [2, 0, 4, 1, 3]),  # ascending priority, then id
        ("-priority", [3, 1, 4, 0, 2]),
        ("biz_date", [0, 1, 2, 3, 4]),
        ("-biz_date", [4, 3, 2, 1, 0]),
        ("id", [0, 1, 2, 3, 4]),
        ("scheduled_at", [0, 1, 2, 3, 4]),
    ],
)
def test_sort_orders_every_page_of_the_keyset(olga, spread, sort, expected):
    seen, url = [], f"/instances/?sort={sort}&limit=2"
    while url:
        html = olga.get(url).content.decode()
        seen += rows(html)
        match = re.search(r'<a class="btn" href="([^"]+)"[^>]*>Next page', html)
        url = "/instances/" + match.group(1).replace("&amp;", "&") if match else None
    assert seen == [spread[i].id for i in expected]


def test_sort_header_links_turn_the_order_round(olga, spread):
    html = olga.get("/instances/?sort=-priority&state=pending").content.decode()
    assert 'href="?sort=priority&amp;state=pending"' in html  # the current column, reversed
    assert 'href="?sort=-biz_date&amp;state=pending"' in html  # another column, descending
    html = olga.get("/instances/?sort=priority").content.decode()
    assert 'href="?sort=-priority"' in html
    assert '<span class="sort-arrow" aria-hidden="true">↑</span>' in html


def test_bad_sort_names_the_field(olga, spread):
    response = olga.get("/instances/?sort=duration")
    assert response.status_code == 422
    assert "<strong>sort</strong>" in response.content.decode()


# --- CSV export ------------------------------------------------------------------------


def read_csv(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def test_export_streams_every_matching_row_in_batches(olga, users, project, monkeypatch):
    from apps.instances import exports

    monkeypatch.setattr(exports, "BATCH_ROWS", 2)  # five rows: three batches
    node = node_create(project, "hourly", owner=users["olga"], cron="0 * * * *")
    made = [
        instance_create(node, hour(h), state="failed", attempt_count=2, priority=4)
        for h in range(5)
    ]
    instance_create(node, hour(9), state="succeeded")  # filtered out
    Instance.objects.filter(pk=made[0].pk).update(
        started_at=hour(0), finished_at=hour(0) + datetime.timedelta(seconds=90.5)
    )
    # The list's page size and cursor do not limit an export.
    response = olga.get("/instances/export.csv?state=failed&limit=1&sort=scheduled_at")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.match(
        r'attachment; filename="instances-\d{8}-\d{6}\.csv"', response["Content-Disposition"]
    )
    lines = read_csv(response)
    assert [int(r["id"]) for r in lines] == [i.id for i in made]
    first = lines[0]
    assert first == {
        "id": str(made[0].id),
        "project": "acme",
        "node": "hourly",
        "env": "prod",
        "kind": "recurring",
        "biz_date": "2026-11-21",
        "scheduled_at": "2026-11-22T02:00:00+08:00",
        "state": "failed",
        "wait_reason": "",
        "paused": "false",
        "forced": "false",
        "dry_run": "false",
        "priority": "4",
        "resource_group": "default",
        "owner": "olga",
        "attempts": "2",
        "started_at": "2026-11-22T02:00:00+08:00",
        "finished_at": "2026-11-22T02:01:30.500000+08:00",
        "duration_seconds": "90.5",
    }


def test_export_link_carries_the_filters_not_the_page(olga, kinds, users, project):
    instance_create(node_create(project, "other", owner=users["alice"]), T0, state="failed")
    first = olga.get("/instances/?state=failed&limit=1&sort=priority").content.decode()
    cursor = re.search(r"cursor=([\w-]+)", first).group(1)
    html = olga.get(f"/instances/?state=failed&cursor={cursor}&limit=1&sort=priority")
    html = html.content.decode()
    assert 'href="/instances/export.csv?state=failed&amp;sort=priority" download' in html


def test_export_refuses_a_bad_filter_before_streaming(olga, kinds):
    response = olga.get("/instances/export.csv?biz_date=today")
    assert response.status_code == 422
    assert "biz_date" in response.content.decode()
    assert olga.get("/instances/export.csv?sort=nope").status_code == 422


def test_export_shows_only_what_the_user_may_see(client, users, kinds):
    client.force_login(users["stranger"])
    response = client.get("/instances/export.csv")
    assert response.status_code == 200
    assert read_csv(response) == []


def test_export_needs_login(client, db):
    response = client.get("/instances/export.csv")
    assert response.status_code == 302 and "/login/" in response["Location"]


# --- batches -----------------------------------------------------------------------------


def test_checkboxes_only_for_those_who_may_operate(client, users, kinds):
    client.force_login(users["olga"])
    html = client.get("/instances/").content.decode()
    assert 'id="batch-form"' in html and 'name="ids"' in html
    assert html.count('form="batch-form"') == len(kinds)  # one checkbox per row
    for option in ["rerun", "stop", "set_success", "pause", "resume"]:
        assert f'<option value="{option}">' in html
    client.force_login(users["vera"])  # a viewer
    html = client.get("/instances/").content.decode()
    assert 'id="batch-form"' not in html and 'name="ids"' not in html


@pytest.fixture
def batch(users, project):
    alice = users["alice"]
    node = node_create(project, "load", owner=alice, cron="0 * * * *")
    other = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    return {
        "failed": instance_create(node, hour(0), state="failed", attempt_count=1),
        "stopped": instance_create(node, hour(1), state="stopped", attempt_count=1),
        "running": instance_create(node, hour(2), state="running", attempt_count=1),
        "pending": instance_create(node, hour(3), state="pending"),
        "hidden": instance_create(node_create(other, "secret", owner=alice), hour(0)),
    }


def post_batch(client, action, *instances, confirm=False, extra=None, **headers):
    data = {"action": action, "ids": [i if isinstance(i, int) else i.id for i in instances]}
    if confirm:
        data["confirm"] = "1"
    data["next"] = "/instances/?state=failed"
    data.update(extra or {})
    return client.post("/instances/batch/", data, **headers)


def test_batch_confirmation_lists_what_will_change_and_what_would_be_refused(olga, batch):
    response = post_batch(
        olga,
        "rerun",
        batch["failed"],
        batch["running"],
        batch["stopped"],
        batch["hidden"],
        999999,
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html
    assert "<h1>Rerun 2 instances?</h1>" in html
    change = re.search(r'<table class="data batch-change">(.*?)</table>', html, re.S).group(1)
    assert rows(change) == [batch["failed"].id, batch["stopped"].id]
    refused = re.search(r'<table class="data batch-refused">(.*?)</table>', html, re.S).group(1)
    assert rows(refused) == [batch["running"].id, batch["hidden"].id, 999999]
    assert f"instance {batch['running'].id} is running: rerun needs a finished instance" in refused
    assert refused.count("not found") == 2
    assert "secret" not in html  # an instance of a project olga is not in stays unnamed
    # The apply form sends exactly the instances that will change.
    form = re.search(r'<form method="post" action="/instances/batch/".*?</form>', html, re.S).group(
        0
    )
    assert re.findall(r'name="ids" value="(\d+)"', form) == [
        str(batch["failed"].id),
        str(batch["stopped"].id),
    ]
    assert 'name="confirm" value="1"' in form and "csrfmiddlewaretoken" in form
    assert 'href="/instances/?state=failed">Cancel' in html
    # Nothing changed and nothing was recorded yet.
    assert Instance.objects.get(pk=batch["failed"].pk).state == "failed"
    assert not OperationLog.objects.exists()


def test_batch_confirmation_as_an_htmx_request_is_the_block_alone(olga, batch):
    response = post_batch(olga, "stop", batch["running"], **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and '<section id="batch" class="batch">' in html
    assert "<h1>Stop 1 instance?</h1>" in html


def test_batch_with_nothing_to_change_offers_no_apply(olga, batch):
    html = post_batch(olga, "resume", batch["pending"]).content.decode()
    assert "<h1>Resume 0 instances?</h1>" in html
    assert f"instance {batch['pending'].id} is not paused" in html
    assert 'name="confirm"' in html and "Resume 0" in html
    assert not re.search(r'<button type="submit"[^>]*>Resume', html)
    assert "Back to the list" in html


def test_batch_applied_shows_a_result_per_instance(olga, batch):
    # Between the confirmation and the click, one of them was set to succeeded elsewhere.
    Instance.objects.filter(pk=batch["stopped"].pk).update(state="succeeded", forced=True)
    response = post_batch(
        olga, "set_success", batch["failed"], batch["stopped"], batch["pending"], confirm=True
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Set success: 2 of 3 instances changed</h1>" in html
    results = dict(re.findall(r'<tr data-instance="(\d+)" data-ok="(true|false)">', html))
    assert results == {
        str(batch["failed"].id): "true",
        str(batch["stopped"].id): "false",
        str(batch["pending"].id): "true",
    }
    assert f"instance {batch['stopped'].id} has succeeded" in html
    assert '<span class="badge badge-orange" data-result="refused">Refused</span>' in html
    assert '<span class="badge badge-green" data-result="ok">OK</span>' in html
    assert 'href="/instances/?state=failed">Back to the list' in html
    assert Instance.objects.get(pk=batch["failed"].pk).state == "succeeded"
    logs = OperationLog.objects.filter(action="set_success")
    assert sorted(logs.values_list("result", flat=True)) == ["ok", "ok", "refused"]
    assert set(logs.values_list("source", flat=True)) == {"ui"}


def test_batch_applied_as_an_htmx_request(olga, batch):
    response = post_batch(olga, "pause", batch["pending"], confirm=True, **HTMX)
    html = response.content.decode()
    assert "<html" not in html and "Pause: 1 of 1 instance changed" in html
    assert Instance.objects.get(pk=batch["pending"].pk).paused is True


def test_batch_refuses_what_the_role_does_not_allow(client, users, batch):
    client.force_login(users["vera"])  # viewer
    html = post_batch(client, "rerun", batch["failed"]).content.decode()
    assert "needs the operator role in project &#x27;acme&#x27;" in html
    html = post_batch(client, "rerun", batch["failed"], confirm=True).content.decode()
    assert "0 of 1 instance changed" in html
    assert Instance.objects.get(pk=batch["failed"].pk).state == "failed"


def test_batch_on_dev_instances_needs_only_the_developer_role(client, users, project):
    alice = users["alice"]
    dev = instance_create(node_create(project, "job", owner=alice, env="dev"), T0, state="failed")
    prod = instance_create(node_create(project, "job", owner=alice), T0, state="failed")
    client.force_login(users["dave"])  # developer
    html = client.get("/instances/").content.decode()
    assert 'id="batch-form"' in html
    html = post_batch(client, "set_success", dev, prod).content.decode()
    assert rows(re.search(r"batch-change(.*?)</table>", html, re.S).group(1)) == [dev.id]
    assert "needs the operator role" in html


@pytest.mark.parametrize(
    "data, message",
    [
        ({"action": "rerun"}, "select at least one instance"),
        ({"action": "explode", "ids": ["1"]}, "Select a valid choice"),
        ({"ids": ["1"]}, "choose an action"),
        ({"action": "rerun", "ids": ["x1"]}, "is not an instance id"),
    ],
)
def test_batch_bad_input_goes_back_with_a_message(olga, batch, data, message):
    response = olga.post("/instances/batch/", {**data, "next": "/instances/?kind=backfill"})
    assert response.status_code == 302
    assert response["Location"] == "/instances/?kind=backfill"
    html = olga.get(response["Location"]).content.decode()
    assert message in html


def test_batch_goes_back_only_to_a_local_address(olga, batch):
    response = olga.post(
        "/instances/batch/", {"action": "rerun", "next": "https://evil.example/phish"}
    )
    assert response["Location"] == "/instances/"


def test_batch_is_post_only(olga, batch):
    assert olga.get("/instances/batch/").status_code == 405
