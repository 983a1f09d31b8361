"""B4 instance list over the history (5M instances at full scale): the page
(/instances/) and the API (/api/instances), unfiltered and filtered on biz date, state
and node, pages 1 and 10,000.

Page 10,000 is asked for with the cursor the list itself would hand out there: the
(scheduled_at, id) of the row at offset 50 * 9,999 - 1 in the list's order.

Baseline: the raw SQL of the same page (the same rows and joins, a row-value keyset).
"""

import datetime

from django.db import connection
from django.test import Client

from apps.core.pagination import _encode

from . import common

WORKLOAD = "instance list"
PAGE_SIZE = 50
DEEP_PAGE = {"tiny": 3, "small": 1_000, "full": 10_000}
REPEAT = {"tiny": 3, "small": 20, "full": 40}

BASE_SQL = """
SELECT i.id, i.kind, i.biz_date, i.scheduled_at, i.state, i.wait_reason, i.paused,
       i.forced, i.priority, i.started_at, i.finished_at, n.name, p.code, g.name, v.number
FROM instances_instance i
JOIN nodes_node n ON n.id = i.node_id
JOIN projects_project p ON p.id = i.project_id
JOIN configuration_resourcegroup g ON g.id = i.resource_group_id
JOIN nodes_nodeversion v ON v.id = i.version_id
WHERE {where}
ORDER BY i.scheduled_at DESC, i.id DESC
LIMIT {limit}
"""


def _cursor_at(where: str, params: list, offset: int) -> tuple[str, list]:
    """The cursor of the page after `offset` rows, as the list encodes it, and the
    keyset values for the raw SQL."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT i.scheduled_at, i.id FROM instances_instance i WHERE {where} "
            "ORDER BY i.scheduled_at DESC, i.id DESC LIMIT 1 OFFSET %s",
            [*params, offset - 1],
        )
        row = cursor.fetchone()
    if row is None:
        return "", []
    scheduled_at, pk = row
    if isinstance(scheduled_at, str):  # SQLite without converters
        scheduled_at = datetime.datetime.fromisoformat(scheduled_at)
    return _encode(scheduled_at, pk), [scheduled_at, pk]


def _raw(where: str, params: list, keyset: list):
    if keyset:
        if common.is_postgresql():
            where += " AND (i.scheduled_at, i.id) < (%s, %s)"
            params = [*params, *keyset]
        else:
            where += " AND (i.scheduled_at < %s OR (i.scheduled_at = %s AND i.id < %s))"
            params = [*params, keyset[0], keyset[0], keyset[1]]
    sql = BASE_SQL.format(where=where, limit=PAGE_SIZE + 1)

    def query():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    return query


def _get(client: Client, url: str, query: dict, headers: dict):
    def request():
        response = client.get(url, query, headers=headers)
        assert response.status_code == 200, (url, query, response.status_code)
        return response

    return request


def run(scale: str) -> list[dict]:
    project = common.history(scale)
    # The page as a signed-in operator sees it; the API as its clients call it, with a
    # bearer token.
    client = Client()
    client.force_login(common.bench_user())
    from apps.accounts.models import ApiToken

    _token, key = ApiToken.issue(user=common.bench_user(), name="bench")
    auth = {"API": {"Authorization": f"Bearer {key}"}, "page": {}}
    repeat = REPEAT[scale]
    deep = DEEP_PAGE[scale]
    from apps.instances.models import Instance

    busiest = (
        Instance.objects.filter(project=project, node__cron="*/15 * * * *")
        .values_list("node_id", flat=True)
        .first()
    )
    day = common.HISTORY_END - datetime.timedelta(days=3)
    cases = [
        ("no filter", {}, "TRUE", []),
        ("biz date", {"biz_date": day.isoformat()}, "i.biz_date = %s", [day]),
        ("state succeeded", {"state": "succeeded"}, "i.state = %s", ["succeeded"]),
        ("node", {"node": str(busiest)}, "i.node_id = %s", [busiest]),
        (
            "biz date + state + node",
            {"biz_date": day.isoformat(), "state": "succeeded", "node": str(busiest)},
            "i.biz_date = %s AND i.state = %s AND i.node_id = %s",
            [day, "succeeded", busiest],
        ),
    ]
    # The deep page of the lists long enough to have one.
    deep_cases = {"no filter", "state succeeded"}
    rows = []
    for surface, url in (("API", "/api/instances"), ("page", "/instances/")):
        # The first requests of a process import and compile what later ones reuse.
        for _ in range(5):
            _get(client, url, {"limit": PAGE_SIZE}, auth[surface])()
        first_page_ms = {}
        for label, query, where, params in cases:
            pages = [1] + ([deep] if label in deep_cases else [])
            for number in pages:
                cursor, keyset = ("", [])
                if number > 1:
                    cursor, keyset = _cursor_at(where, params, PAGE_SIZE * (number - 1))
                    assert cursor, f"{label}: fewer than {number} pages"
                asked = dict(query, limit=PAGE_SIZE, **({"cursor": cursor} if cursor else {}))
                value = common.p95(_get(client, url, asked, auth[surface]), repeat=repeat)
                baseline = common.p95(_raw(where, params, keyset), repeat=repeat)
                rows.append(
                    common.result(
                        id="B4",
                        workload=WORKLOAD,
                        figure=f"{surface} {label}, page {number:,} p95",
                        value=value,
                        baseline=baseline,
                        unit="ms",
                        goal="<= 3x",
                        met=value <= 3 * baseline,
                    )
                )
                if number == 1:
                    first_page_ms[label] = value
                else:
                    ratio = value / first_page_ms[label]
                    rows.append(
                        common.result(
                            id="B4",
                            workload=WORKLOAD,
                            figure=f"{surface} {label}: page {number:,} vs page 1",
                            value=value,
                            baseline=first_page_ms[label],
                            unit="ms",
                            goal="<= 1.5x page 1",
                            met=ratio <= 1.5,
                        )
                    )
        # For information: what the surface costs around an empty page (a filter no
        # instance matches), i.e. without the rows the baseline reads.
        empty = {"biz_date": (common.HISTORY_END + datetime.timedelta(days=30)).isoformat()}
        value = common.p95(
            _get(client, url, dict(empty, limit=PAGE_SIZE), auth[surface]), repeat=repeat
        )
        rows.append(
            common.result(
                id="B4",
                workload=WORKLOAD,
                figure=f"{surface} with no rows (its fixed cost) p95",
                value=value,
                baseline=None,
                unit="ms",
                goal="none: for information",
                met=None,
            )
        )
    total = Instance.objects.filter(project=project).count()
    rows[0]["note"] = f"{total:,} instances"
    return rows
