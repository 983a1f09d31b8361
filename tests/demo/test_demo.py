import datetime
import sqlite3
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.demo.services import RESOURCES_DIR
from apps.instances.diagnosis import diagnose
from apps.instances.models import Attempt, GenerationRun, Instance, InstanceDependency
from apps.instances.operations import instance_rerun
from apps.instances.selectors import attempt_log
from apps.instances.worker import drain
from apps.monitoring.models import Alert
from apps.monitoring.selectors import overview_get
from apps.nodes.models import Node, NodeVersion
from apps.projects.models import Membership, Project
from apps.resources.models import ResourceVersion

ONE_DAY = datetime.timedelta(days=1)


@pytest.fixture
def var_dir(settings, tmp_path):
    """The demo's warehouse and scratch files go to a directory of this test's own."""
    settings.VAR_DIR = tmp_path
    return tmp_path


def demo(*args: str) -> str:
    out = StringIO()
    call_command("opscenter", "demo", *args, stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    return {
        "nodes": Node.objects.count(),
        "versions": NodeVersion.objects.count(),
        "instances": Instance.objects.count(),
        "edges": InstanceDependency.objects.count(),
    }


# The demo really runs its pipelines through drain, so the rows must be visible to its
# worker threads' own connections: a committed (transactional) test database.
@pytest.mark.django_db(transaction=True)
def test_demo_runs_real_pipelines_and_is_idempotent(var_dir):
    output = demo("--days", "1")

    project = Project.objects.get(code="demo")
    assert "dana / dana-demo" in output  # the demo users are printed
    assert set(
        Membership.objects.filter(project=project).values_list("user__username", "role")
    ) == {
        ("dana", "developer"),
        ("oscar", "operator"),
        ("vicky", "viewer"),
    }
    types = set(Node.objects.filter(project=project).values_list("type", flat=True))
    assert types == {"sql", "shell", "python", "virtual"}
    schedules = dict(Node.objects.filter(project=project).values_list("name", "schedule_type"))
    assert (schedules["reprocess_region"], schedules["order_stream"]) == ("one_time", "realtime")
    # The streaming node waits, stopped, for an operator to start it; the manual task
    # has not run.
    stream = Instance.objects.get(node__name="order_stream")
    assert (stream.kind, stream.state) == ("realtime", "stopped")
    assert not Instance.objects.filter(node__name="reprocess_region").exists()

    # "Today" as the demo saw it: the last day it generated is tomorrow.
    today = GenerationRun.objects.filter(project=project).latest("run_date").run_date - ONE_DAY
    # Yesterday's instances (business date the day before) are history: all finished.
    history_date = today - 2 * ONE_DAY
    history = Instance.objects.filter(project=project, biz_date=history_date)
    states = dict(history.values_list("node__name", "state").order_by())
    assert history.filter(node__name="ingest_orders").count() == 24
    # Everything ran but the returns branch, which a late partner file broke (below).
    others = history.exclude(node__name__in=["load_returns", "rpt_returns"])
    assert set(others.values_list("state", flat=True)) <= {"succeeded", "skipped"}, states
    for name in [
        "start_daily",
        "stg_orders",
        "fact_orders",
        "rpt_daily_sales",
        "quality_check",
        "export_report",
    ]:
        assert states[name] == "succeeded", (name, states)

    # The flaky node failed once and succeeded on its retry.
    flaky = history.get(node__name="sync_partner_feed")
    assert flaky.state == "succeeded"
    assert list(Attempt.objects.filter(instance=flaky).values_list("number", "state")) == [
        (1, "failed"),
        (2, "succeeded"),
    ]

    # The SQL nodes wrote real rows for the business date.
    day = history_date.isoformat()
    with sqlite3.connect(var_dir / "demo_warehouse.sqlite3") as db:
        raw = db.execute("SELECT count(*) FROM raw_orders WHERE biz_date = ?", (day,)).fetchone()
        facts, revenue = db.execute(
            "SELECT count(*), sum(amount) FROM fact_orders WHERE biz_date = ?", (day,)
        ).fetchone()
        report = db.execute(
            "SELECT sum(orders), round(sum(revenue), 2) FROM rpt_daily_sales WHERE biz_date = ?",
            (day,),
        ).fetchone()
    assert raw[0] == 24 * 5
    assert 0 < facts <= raw[0]
    assert report == (facts, round(revenue, 2))
    bundle = var_dir / "demo_scratch" / "exports" / history_date.strftime("%Y/%m/%d")
    assert (bundle / "MANIFEST").exists()
    # export_report names a project file (resources:), found in its work directory.
    readme = (RESOURCES_DIR / "export_readme.txt").read_text()
    assert (bundle / "README.txt").read_text() == readme

    # Tomorrow's instances are generated and wait for their time.
    tomorrow = Instance.objects.filter(project=project, biz_date=today)
    assert tomorrow.filter(node__name="ingest_orders").count() == 24
    assert set(tomorrow.values_list("state", flat=True)) == {"pending"}

    before = counts()
    second = demo("--days", "1")
    assert "0 created, 0 updated" in second
    assert counts() == before
    assert Attempt.objects.filter(instance=flaky).count() == 2
    # The same file uploaded again is no new version, so nothing was republished.
    assert list(
        ResourceVersion.objects.filter(resource__project=project).values_list(
            "resource__name", "number"
        )
    ) == [("export_readme.txt", 1)]


@pytest.mark.django_db(transaction=True)
def test_demo_history_has_a_failure_to_diagnose_and_repair(var_dir, users):
    """The latest day of history has one instance that stays failed, with the real error
    in its log, and its downstream waiting for it: what a new user diagnoses first."""
    demo("--days", "1")
    project = Project.objects.get(code="demo")
    today = GenerationRun.objects.filter(project=project).latest("run_date").run_date - ONE_DAY
    history_date = today - 2 * ONE_DAY

    failed = Instance.objects.get(
        project=project, node__name="load_returns", biz_date=history_date, kind="recurring"
    )
    assert failed.state == "failed"
    (attempt,) = Attempt.objects.filter(instance=failed)
    assert (attempt.state, attempt.exit_code) == ("failed", 1)
    log = attempt_log(attempt=attempt)[0]
    feed = f"{history_date:%Y%m%d}.csv"
    assert "FileNotFoundError" in log and feed in log, log

    waiting = Instance.objects.get(
        project=project, node__name="rpt_returns", biz_date=history_date, kind="recurring"
    )
    assert (waiting.state, waiting.wait_reason) == ("pending", "waiting_upstream")
    diagnosis = diagnose(waiting)
    (blocker,) = diagnosis.blockers
    assert blocker.kind == "waiting_upstream"
    assert blocker.detail["root_causes"][0]["id"] == failed.pk
    assert any(a["action"] == "rerun" and a["target"] == failed.pk for a in blocker.actions)

    # The overview shows it at once: first in the failure ranking, its child among the
    # waiting; the flaky feed, rescued by its retries, after it and among the flaky nodes.
    overview = overview_get(user=users["root"], project=project)
    assert [rank.node_name for rank in overview.failure_ranking] == [
        "load_returns",
        "sync_partner_feed",
    ]
    assert [rank.node_name for rank in overview.flaky_ranking] == ["sync_partner_feed"]
    assert waiting in overview.waiting_longest

    # The monitor paged about it: a firing alert for the failed instance.
    alert = Alert.objects.get(instance=failed, trigger="retries_exhausted")
    assert alert.state == "firing" and alert.rule.name == "Failures"
    assert alert.deliveries.filter(kind="email").exists()
    # The daily report has its baseline, computed by the monitor's pass.
    from apps.baselines.models import Baseline

    baseline = Baseline.objects.get(project=project)
    assert [n.name for n in baseline.key_nodes.all()] == ["rpt_daily_sales"]
    assert (baseline.committed_time, baseline.priority) == ("09:00", 8)

    # The file has arrived since: a rerun with downstream repairs the branch.
    instance_rerun(instance=failed, by=users["root"], source="ui", downstream=True)
    drain(timeout=30)
    failed.refresh_from_db()
    waiting.refresh_from_db()
    assert (failed.state, waiting.state) == ("succeeded", "succeeded")
    call_command("opscenter", "monitor", stdout=StringIO())
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolved_by is None
    with sqlite3.connect(var_dir / "demo_warehouse.sqlite3") as db:
        returns = db.execute(
            "SELECT count(*) FROM raw_returns WHERE biz_date = ?", (history_date.isoformat(),)
        ).fetchone()[0]
    assert returns > 0


def test_demo_refuses_negative_days():
    with pytest.raises(CommandError, match="days"):
        demo("--days", "-1")
