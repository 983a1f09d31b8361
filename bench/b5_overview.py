"""B5 O&M overview and run trend over the history (5M instances at full scale), read
through apps.monitoring.selectors.overview_get for 7 and 30 days.

Baseline: the raw aggregate SQL of the same numbers (today's counts by kind, state and
wait reason; the per-day trend; the failure ranking; the longest running and the
longest waiting instances).
"""

from django.db import connection

from apps.monitoring.selectors import LIST_LIMIT, overview_get

from . import common

WORKLOAD = "overview"
REPEAT = {"tiny": 3, "small": 10, "full": 20}

RAW = [
    """
    SELECT kind, state, wait_reason, COUNT(*) FROM instances_instance
    WHERE project_id = %(project)s AND biz_date = %(end)s GROUP BY kind, state, wait_reason
    """,
    """
    SELECT biz_date,
           COUNT(*) FILTER (WHERE state = 'succeeded'),
           COUNT(*) FILTER (WHERE state = 'failed'),
           AVG(finished_at - started_at) FILTER (
               WHERE started_at IS NOT NULL AND finished_at IS NOT NULL)
    FROM instances_instance
    WHERE project_id = %(project)s AND biz_date BETWEEN %(start)s AND %(end)s
      AND state IN ('succeeded', 'failed')
    GROUP BY biz_date
    """,
    """
    SELECT i.node_id, n.name, p.code, p.timezone, COUNT(*) AS failures,
           MAX(i.finished_at)
    FROM instances_instance i
    JOIN nodes_node n ON n.id = i.node_id JOIN projects_project p ON p.id = i.project_id
    WHERE i.project_id = %(project)s AND i.biz_date BETWEEN %(start)s AND %(end)s
      AND i.state = 'failed'
    GROUP BY i.node_id, n.name, p.code, p.timezone
    ORDER BY failures DESC, n.name, i.node_id LIMIT %(limit)s
    """,
    """
    SELECT i.*, n.name, p.code, g.name FROM instances_instance i
    JOIN nodes_node n ON n.id = i.node_id JOIN projects_project p ON p.id = i.project_id
    JOIN configuration_resourcegroup g ON g.id = i.resource_group_id
    WHERE i.project_id = %(project)s AND i.state = 'running'
    ORDER BY i.started_at, i.id LIMIT %(limit)s
    """,
    """
    SELECT i.*, n.name, p.code, g.name FROM instances_instance i
    JOIN nodes_node n ON n.id = i.node_id JOIN projects_project p ON p.id = i.project_id
    JOIN configuration_resourcegroup g ON g.id = i.resource_group_id
    WHERE i.project_id = %(project)s AND i.state = 'pending' AND i.scheduled_at <= %(now)s
    ORDER BY i.scheduled_at, i.id LIMIT %(limit)s
    """,
]


def _sqlite(sql: str) -> str:
    # SQLite has no FILTER on AVG of an interval: the baseline there only has to run.
    return sql.replace(
        "AVG(finished_at - started_at)", "AVG(julianday(finished_at) - julianday(started_at))"
    )


def _overview(user, project, days: int, now):
    return lambda: overview_get(user=user, project=project, days=days, now=now)


def _raw(statements: list[str], params: dict):
    def query():
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql, params)
                cursor.fetchall()

    return query


def run(scale: str) -> list[dict]:
    project = common.history(scale)
    user = common.bench_user()
    now = common.history_now()
    repeat = REPEAT[scale]
    rows = []
    for days in (7, 30):
        overview = overview_get(user=user, project=project, days=days, now=now)
        assert overview.end == common.HISTORY_END, overview.end
        assert overview.today.total > 0, "today's business day holds no instances"
        params = {
            "project": project.id,
            "start": overview.start,
            "end": overview.end,
            "now": now,
            "limit": LIST_LIMIT,
        }
        statements = RAW if common.is_postgresql() else [_sqlite(sql) for sql in RAW]

        value = common.p95(_overview(user, project, days, now), repeat=repeat)
        baseline = common.p95(_raw(statements, params), repeat=repeat)
        rows.append(
            common.result(
                id="B5",
                workload=WORKLOAD,
                figure=f"overview + {days}-day trend p95",
                value=value,
                baseline=baseline,
                unit="ms",
                goal="<= 2x",
                met=value <= 2 * baseline,
                note=f"{overview.today.total:,} instances today" if days == 7 else "",
            )
        )
    return rows
