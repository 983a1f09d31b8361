"""An overview's worth of instances, built directly, with the numbers they must give."""

import datetime

from apps.projects.models import Membership, Project
from tests.factories import instance_create, node_create

# 10:00 on 2026-11-22 in Asia/Shanghai (the `project` fixture's timezone): today's
# business day there is 2026-11-21.
NOW = datetime.datetime(2026, 11, 22, 2, 0, tzinfo=datetime.UTC)
D = datetime.date(2026, 11, 21)
# 02:00 on 2026-11-22 in Asia/Shanghai: a recurring instance of biz date D.
T0 = datetime.datetime(2026, 11, 21, 18, 0, tzinfo=datetime.UTC)


def day(offset: int) -> datetime.date:
    return D + datetime.timedelta(days=offset)


def finished(node, scheduled_at, *, state, seconds, biz_date=None, kind="recurring"):
    fields = {"kind": kind}
    if biz_date is not None:
        fields["biz_date"] = biz_date
    return instance_create(
        node,
        scheduled_at,
        state=state,
        started_at=scheduled_at,
        finished_at=scheduled_at + datetime.timedelta(seconds=seconds),
        attempt_count=1,
        **fields,
    )


def overview_data(project, users) -> dict:
    """Today (biz date D): recurring ingest succeeded (60s), report failed (30s), flaky
    running, flaky_child pending on its upstream, late pending on its time; a one-time
    ingest run succeeded (120s). Earlier: D-1 ingest succeeded (100s) and report failed
    (10s); a backfill of report failed for D-3 (40s); report failed on D-10."""
    owner = users["alice"]
    ingest = node_create(project, "ingest", owner=owner)
    report = node_create(project, "report", owner=owner, upstream=[ingest])
    flaky = node_create(project, "flaky", owner=owner, type="shell")
    child = node_create(project, "flaky_child", owner=owner, upstream=[flaky])
    late = node_create(project, "late", owner=owner, cron="0 20 * * *")
    yesterday = T0 - datetime.timedelta(days=1)
    made = {
        "ingest": finished(ingest, T0, state="succeeded", seconds=60),
        "report": finished(report, T0, state="failed", seconds=30),
        "flaky": instance_create(
            flaky,
            T0,
            state="running",
            started_at=T0 + datetime.timedelta(minutes=5),
            attempt_count=1,
        ),
        "late": instance_create(
            late, T0 + datetime.timedelta(hours=18), state="pending", wait_reason="waiting_time"
        ),
        "one_time": finished(
            ingest,
            NOW - datetime.timedelta(hours=1),
            state="succeeded",
            seconds=120,
            biz_date=D,
            kind="one_time",
        ),
        "ingest_d1": finished(ingest, yesterday, state="succeeded", seconds=100),
        "report_d1": finished(report, yesterday, state="failed", seconds=10),
        "backfill": finished(
            report,
            NOW - datetime.timedelta(hours=2),
            state="failed",
            seconds=40,
            biz_date=day(-3),
            kind="backfill",
        ),
        "report_d10": finished(report, T0 - datetime.timedelta(days=10), state="failed", seconds=5),
    }
    made["child"] = instance_create(
        child, T0, state="pending", wait_reason="waiting_upstream", upstream=[made["flaky"]]
    )
    made.update(ingest=ingest, report=report, flaky_node=flaky)
    return made


def other_project(users, *, code="beta", timezone="UTC"):
    """Another project that only alice belongs to, with a failure of today's biz date
    there."""
    other = Project.objects.create(code=code, name=f"{code.title()} Lake", timezone=timezone)
    Membership.objects.create(project=other, user=users["alice"], role="operator")
    node = node_create(other, f"{code}_load", owner=users["alice"])
    biz_date = NOW.astimezone(other.tz).date() - datetime.timedelta(days=1)
    finished(node, T0, state="failed", seconds=15, biz_date=biz_date)
    return other
