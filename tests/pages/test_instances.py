import datetime
import re

import pytest

from apps.configuration.models import ResourceGroup
from apps.instances.models import Attempt, Instance
from apps.projects.models import Membership, Project
from tests.factories import instance_create, node_create
from tests.pages.builders import T0, attempt_finish, log_append, running_instance

HTMX = {"HTTP_HX_REQUEST": "true"}
POLL_TABLE = {**HTMX, "HTTP_HX_TRIGGER": "instance-table"}


@pytest.fixture
def olga(client, users):
    client.force_login(users["olga"])
    return client


def rows(html: str) -> list[int]:
    """Instance ids in the order the table lists them."""
    return [int(i) for i in re.findall(r'<tr data-instance="(\d+)"', html)]


# --- list ------------------------------------------------------------------------------


def test_list_full_page_shows_columns_in_the_viewers_timezone(olga, users, project):
    node = node_create(project, "load_orders", owner=users["alice"], type="shell")
    instance = instance_create(node, T0, state="failed", attempt_count=2, priority=4)
    response = olga.get("/instances/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and 'id="instance-filters"' in html
    assert rows(html) == [instance.id]
    assert "load_orders" in html
    # Every project's instances: in the server's zone (UTC), which the table names.
    assert "2026-11-21 18:00" in html and "times in UTC" in html
    assert "2026-11-21" in html
    # With the project chosen: 18:00 UTC is 02:00 the next day in Asia/Shanghai; the
    # biz date is the day before that.
    html = olga.get("/instances/?project=acme").content.decode()
    assert "2026-11-22 02:00" in html and "times in CST (Asia/Shanghai)" in html
    assert '<span class="badge badge-red" data-state="failed">Failed</span>' in html


def test_list_htmx_request_renders_only_the_table(olga, users, project):
    node = node_create(project, "load_orders", owner=users["alice"])
    instance = instance_create(node, T0)
    response = olga.get("/instances/?state=&node=load_orders", **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and 'id="instance-filters"' not in html
    assert 'id="instance-table"' in html
    assert rows(html) == [instance.id]
    # The address bar keeps the filters that mean something, not the empty ones.
    assert response["HX-Push-Url"] == "/instances/?node=load_orders"
    assert "HX-Request" in response["Vary"]


def test_only_the_full_page_reads_the_project_switcher(olga, users, project):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    switcher = '"projects_project"."name" FROM "projects_project"'
    with CaptureQueriesContext(connection) as full:
        olga.get("/instances/")
    with CaptureQueriesContext(connection) as partial:
        olga.get("/instances/", **POLL_TABLE)
    assert any(switcher in q["sql"] for q in full.captured_queries)
    assert not any(switcher in q["sql"] for q in partial.captured_queries)


def test_list_pending_shows_wait_reason(olga, users, project):
    node = node_create(project, "load_orders", owner=users["alice"])
    instance_create(node, T0, state="pending", wait_reason="waiting_upstream")
    html = olga.get("/instances/").content.decode()
    assert 'data-wait="waiting_upstream">Waiting for upstream</span>' in html


@pytest.fixture
def mixed(users, project):
    """Instances differing in every filtered column."""
    alice, olga = users["alice"], users["olga"]
    ResourceGroup.objects.create(name="heavy")
    a = node_create(project, "ingest", owner=alice)
    b = node_create(project, "report", owner=olga, resource_group="heavy")
    day2 = T0 + datetime.timedelta(days=1)
    return {
        "a1": instance_create(a, T0, state="succeeded"),
        "a2": instance_create(a, day2, state="pending", wait_reason="waiting_time"),
        "b1": instance_create(b, T0, state="pending", wait_reason="waiting_upstream"),
        "b2": instance_create(b, day2, state="running", kind="backfill"),
    }


@pytest.mark.parametrize(
    "query, expected",
    [
        ("biz_date=2026-11-21", ["a1", "b1"]),
        ("state=pending", ["a2", "b1"]),
        ("state=waiting_upstream", ["b1"]),
        ("node=report", ["b2", "b1"]),
        ("kind=backfill", ["b2"]),
        ("resource_group=heavy", ["b2", "b1"]),
        ("owner=alice", ["a2", "a1"]),
        ("owner=olga&state=running", ["b2"]),
    ],
)
def test_list_filters(olga, mixed, query, expected):
    html = olga.get(f"/instances/?{query}", **HTMX).content.decode()
    assert sorted(rows(html)) == sorted(mixed[key].id for key in expected)


def test_list_orders_latest_scheduled_first(olga, mixed):
    html = olga.get("/instances/").content.decode()
    listed = rows(html)
    assert listed.index(mixed["a2"].id) < listed.index(mixed["a1"].id)
    assert listed.index(mixed["b2"].id) < listed.index(mixed["b1"].id)


@pytest.mark.parametrize(
    "query, field",
    [("biz_date=21.11.2026", "biz_date"), ("state=sleeping", "state"), ("kind=weekly", "kind")],
)
def test_list_bad_filter_names_the_field(olga, mixed, query, field):
    for extra in ({}, HTMX):
        response = olga.get(f"/instances/?{query}", **extra)
        assert response.status_code == 422
        html = response.content.decode()
        assert f"<strong>{field}</strong>" in html
        assert rows(html) == []


def test_list_bad_cursor_names_the_field(olga, mixed):
    response = olga.get("/instances/?cursor=garbage!")
    assert response.status_code == 422
    assert "<strong>cursor</strong>" in response.content.decode()


def test_list_keyset_pagination_carries_cursor_and_filters(olga, users, project):
    node = node_create(project, "hourly", owner=users["alice"], cron="0 * * * *")
    made = [instance_create(node, T0 + datetime.timedelta(hours=h)) for h in range(5)]
    newest_first = [i.id for i in reversed(made)]

    html = olga.get("/instances/?node=hourly&limit=2").content.decode()
    assert rows(html) == newest_first[:2]
    assert "First page" not in html
    next_url = re.search(r'<a class="btn" href="([^"]+)"[^>]*>Next page', html).group(1)
    next_url = next_url.replace("&amp;", "&")
    assert "node=hourly" in next_url and "limit=2" in next_url and "cursor=" in next_url
    # The link swaps the table in place.
    assert re.search(r'hx-target="#instance-table"[^>]*>Next page', html)

    response = olga.get(f"/instances/{next_url}", **HTMX)
    html = response.content.decode()
    assert rows(html) == newest_first[2:4]
    assert "First page" in html
    assert "cursor=" in response["HX-Push-Url"]
    last_url = re.search(r'href="([^"]+)"[^>]*>Next page', html).group(1).replace("&amp;", "&")
    html = olga.get(f"/instances/{last_url}").content.decode()
    assert rows(html) == newest_first[4:]
    assert "Next page" not in html
    first_url = re.search(r'href="([^"]+)"[^>]*>« First page', html).group(1).replace("&amp;", "&")
    assert "cursor" not in first_url
    assert rows(olga.get(f"/instances/{first_url}").content.decode()) == newest_first[:2]


def test_list_polls_while_something_runs(olga, users, project):
    node = node_create(project, "ingest", owner=users["alice"])
    instance = instance_create(node, T0, state="running")
    html = olga.get("/instances/").content.decode()
    assert 'hx-trigger="every 5s"' in html
    response = olga.get("/instances/", **POLL_TABLE)
    assert response.status_code == 200
    assert 'hx-trigger="every 5s"' in response.content.decode()
    # The poller does not push its address into the history.
    assert "HX-Push-Url" not in response

    Instance.objects.filter(pk=instance.pk).update(state="succeeded")
    response = olga.get("/instances/", **POLL_TABLE)
    assert response.status_code == 286
    assert "hx-trigger" not in response.content.decode()
    html = olga.get("/instances/").content.decode()
    # Nothing on the list polls (the top bar's alert badge always does).
    assert 'hx-trigger="every' not in html[html.index("<main") :]


def test_list_hides_projects_user_is_not_member_of(client, users, project):
    other = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    mine = instance_create(node_create(project, "ingest", owner=users["alice"]), T0)
    theirs = instance_create(node_create(other, "secret", owner=users["alice"]), T0)
    client.force_login(users["stranger"])
    assert rows(client.get("/instances/").content.decode()) == []
    client.force_login(users["olga"])
    assert rows(client.get("/instances/").content.decode()) == [mine.id]
    client.force_login(users["root"])
    assert sorted(rows(client.get("/instances/").content.decode())) == sorted([mine.id, theirs.id])


def test_list_is_scoped_to_the_chosen_project(client, users, project):
    other = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    Membership.objects.create(project=other, user=users["olga"], role="viewer")
    mine = instance_create(node_create(project, "ingest", owner=users["alice"]), T0)
    theirs = instance_create(node_create(other, "ingest", owner=users["alice"]), T0)
    client.force_login(users["olga"])
    assert sorted(rows(client.get("/instances/").content.decode())) == sorted([mine.id, theirs.id])
    assert rows(client.get("/instances/?project=beta").content.decode()) == [theirs.id]
    # The choice sticks (session) until "All projects".
    assert rows(client.get("/instances/", **HTMX).content.decode()) == [theirs.id]
    assert len(rows(client.get("/instances/?project=").content.decode())) == 2


# --- detail ----------------------------------------------------------------------------


@pytest.fixture
def chain(users, project):
    """extract -> load_orders -> report, with load_orders failed once and then running."""
    alice = users["alice"]
    extract = node_create(project, "extract", owner=alice)
    load = node_create(project, "load_orders", owner=alice, type="shell", upstream=[extract])
    report = node_create(project, "report", owner=alice, upstream=[load])
    up = instance_create(extract, T0, state="succeeded")
    middle = instance_create(
        load, T0, upstream=[up], state="running", attempt_count=2, started_at=T0, priority=5
    )
    down = instance_create(
        report, T0, upstream=[middle], state="pending", wait_reason="waiting_upstream"
    )
    first = Attempt.objects.create(
        instance=middle,
        number=1,
        state="failed",
        started_at=T0,
        exit_code=3,
        finished_at=T0 + datetime.timedelta(seconds=12),
        reason="exit code 3",
    )
    log_append(first, "first try\n", "boom <b>bad</b>\n")
    second = Attempt.objects.create(
        instance=middle, number=2, state="running", started_at=T0 + datetime.timedelta(minutes=5)
    )
    log_append(second, "second try\n")
    return {"up": up, "middle": middle, "down": down, "first": first, "second": second}


def test_detail_shows_header_neighbours_attempts_and_latest_log(olga, chain):
    middle = chain["middle"]
    response = olga.get(f"/instances/{middle.id}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>load_orders" in html
    assert "Acme Data" in html and "2026-11-22 02:00:00" in html and "Asia/Shanghai" in html
    assert 'data-state="running"' in html
    assert f'href="/instances/{chain["up"].id}/">extract</a>' in html
    assert f'href="/instances/{chain["down"].id}/">report</a>' in html
    assert 'data-attempt="1"' in html and 'data-attempt="2"' in html
    assert "exit code 3" in html
    # The latest attempt's log, followed live.
    log = re.search(r'<pre id="log-text" class="log">\n(.*?)</pre>', html, re.S).group(1)
    assert log == "second try\n"
    assert f"/instances/{middle.id}/log?attempt=2&amp;offset=11" in html
    assert f"/instances/{middle.id}/live?seen=2" in html


def test_detail_selected_attempt_log_is_escaped_and_not_followed(olga, chain):
    middle = chain["middle"]
    html = olga.get(f"/instances/{middle.id}/?attempt=1").content.decode()
    log = re.search(r'<pre id="log-text" class="log">\n(.*?)</pre>', html, re.S).group(1)
    assert log == "first try\nboom &lt;b&gt;bad&lt;/b&gt;\n"
    assert "/log?attempt" not in html  # attempt 1 has finished: nothing to follow
    assert f"/instances/{middle.id}/live?seen=2&amp;attempt=1" in html
    assert '<tr data-attempt="1" class="selected">' in html


def test_detail_unknown_attempt_is_404(olga, chain):
    assert olga.get(f"/instances/{chain['middle'].id}/?attempt=7").status_code == 404
    assert olga.get(f"/instances/{chain['middle'].id}/?attempt=x").status_code == 404


def test_detail_of_an_instance_without_attempts(olga, chain):
    html = olga.get(f"/instances/{chain['down'].id}/").content.decode()
    assert "No attempt yet" in html
    assert 'data-wait="waiting_upstream"' in html
    assert 'hx-trigger="every 5s"' in html  # waiting: the state panel polls slowly


def test_detail_htmx_request_still_renders_the_page(olga, chain):
    response = olga.get(f"/instances/{chain['middle'].id}/", **HTMX)
    assert response.status_code == 200
    assert "<html" in response.content.decode()


def test_detail_upstream_in_a_hidden_project_is_counted_not_shown(olga, users, chain):
    other = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    hidden = instance_create(node_create(other, "secret", owner=users["root"]), T0)
    from apps.instances.models import InstanceDependency

    InstanceDependency.objects.create(downstream=chain["middle"], upstream=hidden)
    html = olga.get(f"/instances/{chain['middle'].id}/").content.decode()
    assert "secret" not in html
    assert "1 in project you are not a member of" in html


@pytest.mark.parametrize("suffix", ["/", "/live", "/log?attempt=1"])
def test_strangers_get_404(client, users, chain, suffix):
    client.force_login(users["stranger"])
    assert client.get(f"/instances/{chain['middle'].id}{suffix}").status_code == 404


def test_viewer_may_read_the_detail(client, users, chain):
    client.force_login(users["vera"])
    assert client.get(f"/instances/{chain['middle'].id}/").status_code == 200


def test_unknown_instance_is_404(olga, project):
    assert olga.get("/instances/999999/").status_code == 404


# --- live partials ---------------------------------------------------------------------


def test_log_partial_appends_from_offset(olga, users, project):
    instance = running_instance(project, users["alice"], log=["hello\n", "world\n"])
    url = f"/instances/{instance.id}/log?attempt=1"

    response = olga.get(f"{url}&offset=0", **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<span hx-swap-oob="beforeend:#log-text">hello\nworld\n</span>' in html
    assert 'hx-trigger="every 1s"' in html and "offset=12" in html

    html = olga.get(f"{url}&offset=8", **HTMX).content.decode()
    assert ">rld\n</span>" in html and "offset=12" in html

    # Nothing new yet: nothing to append, the poller keeps its offset.
    html = olga.get(f"{url}&offset=12", **HTMX).content.decode()
    assert "hx-swap-oob" not in html and "offset=12" in html

    log_append(instance.attempts.get(), "more\n")
    html = olga.get(f"{url}&offset=12", **HTMX).content.decode()
    assert ">more\n</span>" in html and "offset=17" in html


def test_log_partial_answers_286_with_the_rest_once_finished(olga, users, project):
    instance = running_instance(project, users["alice"], log=["hello\n"])
    log_append(instance.attempts.get(), "bye\n")
    attempt_finish(instance, state="failed", exit_code=2)
    response = olga.get(f"/instances/{instance.id}/log?attempt=1&offset=6", **HTMX)
    assert response.status_code == 286
    html = response.content.decode()
    assert ">bye\n</span>" in html
    assert "hx-trigger" not in html
    assert "End of log" in html and 'data-attempt="failed"' in html


@pytest.mark.parametrize(
    "query, status",
    [("attempt=1&offset=-3", 422), ("attempt=1&offset=abc", 422), ("attempt=9", 404), ("", 404)],
)
def test_log_partial_bad_parameters(olga, users, project, query, status):
    instance = running_instance(project, users["alice"], log=["x"])
    response = olga.get(f"/instances/{instance.id}/log?{query}", **HTMX)
    assert response.status_code == status
    if status == 422:
        assert "offset" in response.content.decode()


def test_live_partial_polls_while_running_and_stops_when_finished(olga, users, project):
    instance = running_instance(project, users["alice"])
    response = olga.get(f"/instances/{instance.id}/live?seen=1", **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="instance-live"' in html and 'hx-trigger="every 2s"' in html
    assert 'data-state="running"' in html
    assert "log-panel" not in html  # same attempt as the page already shows

    attempt_finish(instance)
    response = olga.get(f"/instances/{instance.id}/live?seen=1", **HTMX)
    assert response.status_code == 286
    html = response.content.decode()
    assert 'data-state="succeeded"' in html and "hx-trigger" not in html
    assert "1m 15s" in html and "42.5 MB" in html and "1.25" in html


def test_live_partial_swaps_log_panel_when_a_new_attempt_starts(olga, users, project):
    instance = running_instance(project, users["alice"], log=["try 1\n"])
    Attempt.objects.filter(instance=instance).update(state="failed", finished_at=T0)
    second = Attempt.objects.create(instance=instance, number=2, state="running", started_at=T0)
    log_append(second, "try 2\n")

    html = olga.get(f"/instances/{instance.id}/live?seen=1", **HTMX).content.decode()
    assert '<section id="log-panel" class="panel log-panel" hx-swap-oob="true">' in html
    assert "try 2\n</pre>" in html and "attempt=2&amp;offset=6" in html

    # A page showing a chosen attempt keeps it.
    html = olga.get(f"/instances/{instance.id}/live?seen=1&attempt=1", **HTMX).content.decode()
    assert "log-panel" not in html


def test_live_partial_bad_seen_is_422(olga, users, project):
    instance = running_instance(project, users["alice"])
    response = olga.get(f"/instances/{instance.id}/live?seen=lots", **HTMX)
    assert response.status_code == 422
    assert "seen" in response.content.decode()


def test_list_query_count_does_not_grow_with_rows(
    olga, users, project, django_assert_max_num_queries
):
    node = node_create(project, "hourly", owner=users["alice"], cron="0 * * * *")
    for h in range(30):
        instance_create(node, T0 + datetime.timedelta(hours=h), state="running", started_at=T0)
    with django_assert_max_num_queries(12):
        response = olga.get("/instances/")
    assert len(rows(response.content.decode())) == 30


def test_log_partial_sends_a_long_log_in_pieces_before_stopping(olga, users, project, monkeypatch):
    from apps.instances import views

    monkeypatch.setattr(views, "LOG_CHUNK_CHARS", 5)
    instance = running_instance(project, users["alice"], log=["hello ", "world\n"])
    attempt_finish(instance)
    url = f"/instances/{instance.id}/log?attempt=1"
    received, offset, statuses = "", 0, []
    while True:
        response = olga.get(f"{url}&offset={offset}", **HTMX)
        statuses.append(response.status_code)
        html = response.content.decode()
        piece = re.search(r'beforeend:#log-text">(.*?)</span>', html, re.S)
        received += piece.group(1) if piece else ""
        offset = int(re.search(r'data-offset="(\d+)"', html).group(1))
        if response.status_code == 286:
            break
        assert 'hx-trigger="load"' in html  # the rest comes at once, not a second later
    assert received == "hello world\n"
    assert statuses == [200, 200, 286]


def test_detail_opens_on_the_tail_of_a_long_log(olga, users, project, monkeypatch):
    from apps.instances import views

    monkeypatch.setattr(views, "LOG_CHUNK_CHARS", 6)
    instance = running_instance(project, users["alice"], log=["first line\n", "last\n"])
    html = olga.get(f"/instances/{instance.id}/").content.decode()
    log = re.search(r'<pre id="log-text" class="log">\n(.*?)</pre>', html, re.S).group(1)
    assert log == "\nlast\n"
    assert "the first 10 characters are not shown" in html
