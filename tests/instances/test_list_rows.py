"""The instance list's rows are read as plain values and written out without the
template engine or per-row validation (the busiest page and API call). These tests hold
them to what the API schema and the table promise."""

import datetime
import zoneinfo

import pytest
from django.utils import timezone

from apps.instances.models import Instance
from apps.instances.schemas import InstanceOut
from apps.instances.selectors import instance_rows_page
from apps.instances.tables import instance_rows_html
from apps.projects.models import Project
from tests.factories import instance_create, node_create

T0 = datetime.datetime(2026, 11, 21, 18, 0, tzinfo=datetime.UTC)


@pytest.fixture
def varied(project, users):
    """Instances that exercise every column: two timezones, dev, flags, wait reasons,
    running (no finish) and finished (a duration)."""
    owner = users["alice"]
    utc = Project.objects.create(code="utc_p", name="UTC project", timezone="UTC")
    shell = node_create(project, "load <orders>", owner=owner, type="shell")
    dev = node_create(project, "dev_node", owner=owner, env="dev")
    other = node_create(utc, "elsewhere", owner=owner, resource_group="etl")
    return [
        instance_create(shell, T0, state="pending", wait_reason="waiting_upstream"),
        instance_create(
            shell,
            T0 + datetime.timedelta(hours=1),
            state="succeeded",
            forced=True,
            attempt_count=2,
            started_at=T0,
            finished_at=T0 + datetime.timedelta(seconds=125.5),
        ),
        instance_create(dev, T0, state="running", started_at=T0, paused=True),
        instance_create(other, T0, state="pending", dry_run=True, wait_reason="waiting_time"),
    ]


def test_api_rows_are_what_the_schema_would_write(varied):
    page = instance_rows_page(Instance.objects.all(), cursor=None, limit=50)
    by_id = {row.id: row.as_api() for row in page.items}
    assert len(by_id) == len(varied)
    for instance in Instance.objects.select_related("project", "node", "version", "resource_group"):
        expected = InstanceOut.from_orm(instance).model_dump(mode="json")
        assert by_id[instance.pk] == expected


def test_the_api_list_answers_the_same_rows(client, users, varied):
    client.force_login(users["root"])
    items = client.get("/api/instances").json()["items"]
    assert [item["id"] for item in items] == [
        i.pk for i in Instance.objects.order_by("-scheduled_at", "-id")
    ]
    first = next(item for item in items if item["state"] == "succeeded")
    assert first["duration_seconds"] == 125.5
    assert first["scheduled_at"] == "2026-11-22T03:00:00+08:00"


def test_table_rows_show_every_column_escaped(varied):
    pending, finished, running, elsewhere = varied
    rows = instance_rows_page(Instance.objects.all(), cursor=None, limit=50).items
    # Times are in the viewer's zone (the page names it above the table), not each
    # row's project zone.
    with timezone.override(zoneinfo.ZoneInfo("Asia/Shanghai")):
        html = str(instance_rows_html(rows, may_batch=True, show_project=True))
    by_id = {int(chunk.split('"', 1)[0]): chunk for chunk in html.split('<tr data-instance="')[1:]}

    assert "load &lt;orders&gt;" in by_id[pending.pk] and "<orders>" not in html
    assert '<span class="tag">acme</span>' in by_id[pending.pk]
    assert 'data-wait="waiting_upstream"' in by_id[pending.pk]
    assert f'value="{pending.pk}" form="batch-form"' in by_id[pending.pk]
    assert f'href="/instances/{pending.pk}/"' in by_id[pending.pk]
    # Asia/Shanghai: 18:00 UTC is 02:00 the next day, for the UTC project's row too.
    assert '<td class="mono">2026-11-22 02:00</td>' in by_id[pending.pk]
    assert '<td class="mono">2026-11-22 02:00</td>' in by_id[elsewhere.pk]
    assert "dry run" in by_id[elsewhere.pk] and "<td>etl</td>" in by_id[elsewhere.pk]

    assert 'title="Set to succeeded by an operator">forced' in by_id[finished.pk]
    assert "data-wait" not in by_id[finished.pk]  # a wait reason only while pending
    assert '<td class="num">2</td>' in by_id[finished.pk]  # attempts
    assert '<td class="num mono">2m 06s</td>' in by_id[finished.pk]
    assert '<td class="mono">11-22 02:00:00</td>' in by_id[finished.pk]  # started

    assert '<span class="tag tag-dev">dev</span>' in by_id[running.pk]
    assert 'title="Paused">paused' in by_id[running.pk]
    assert 'data-state="running"' in by_id[running.pk]


def test_table_rows_follow_the_active_zone(varied):
    pending, _, _, elsewhere = varied
    rows = instance_rows_page(Instance.objects.all(), cursor=None, limit=50).items
    with timezone.override(datetime.UTC):
        html = str(instance_rows_html(rows, may_batch=False, show_project=True))
    by_id = {int(chunk.split('"', 1)[0]): chunk for chunk in html.split('<tr data-instance="')[1:]}
    assert '<td class="mono">2026-11-21 18:00</td>' in by_id[pending.pk]
    assert '<td class="mono">2026-11-21 18:00</td>' in by_id[elsewhere.pk]


def test_table_rows_without_batch_or_project_column(varied):
    rows = instance_rows_page(Instance.objects.all(), cursor=None, limit=50).items
    html = str(instance_rows_html(rows, may_batch=False, show_project=False))
    assert 'type="checkbox"' not in html
    assert 'class="tag"' not in html
    assert html.count("<tr ") == len(varied)


def test_a_token_call_of_the_list_costs_two_queries(client, users, varied):
    """The token (with its user) and the page: no session, no second user read."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.accounts.models import ApiToken

    _token, key = ApiToken.issue(user=users["root"], name="t")
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/instances", headers=headers).status_code == 200  # notes last use
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/instances", headers=headers)
    assert len(response.json()["items"]) == len(varied)
    assert len(queries.captured_queries) == 2
