"""Runtime configuration on real processes (drain: the dispatcher and the worker in
process): the project's timeout and retries applied when the node gives none, each
timeout action on a real sleeping process, and a node's memory_mb enforced."""

import datetime
import threading
import time

import pytest
from django.db import connection

from apps.configuration.models import RuntimeConfig
from apps.core import clock
from apps.instances import worker
from apps.instances.models import Attempt, Instance
from apps.instances.selectors import attempt_log
from apps.monitoring import timepass
from apps.monitoring.models import Alert
from apps.monitoring.resources import resources_get, resources_scope
from tests.factories import instance_create, node_create

pytestmark = pytest.mark.django_db(transaction=True)

SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)


def attempts_of(instance) -> list[Attempt]:
    return list(Attempt.objects.filter(instance=instance).order_by("number"))


def log_of(attempt: Attempt) -> str:
    return attempt_log(attempt=attempt)[0]


def in_thread(target):
    done = threading.Event()

    def run():
        try:
            target()
        finally:
            connection.close()
            done.set()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, done


def test_the_projects_timeout_and_retries_apply_when_the_node_gives_none(project, users):
    RuntimeConfig.objects.create(
        project=project,
        timeout_seconds=1,
        timeout_action="kill_and_retry",
        retries=1,
        retry_interval_seconds=0,
    )
    node = node_create(project, "slow", owner=users["alice"], type="shell", content="sleep 30")
    instance = instance_create(node, SCHEDULED)

    started = time.monotonic()
    worker.drain(timeout=30)

    assert time.monotonic() - started < 20  # not 30 s of sleep
    instance.refresh_from_db()
    assert instance.state == "failed"
    first, second = attempts_of(instance)  # one retry, from the project
    for attempt in (first, second):
        assert attempt.state == "failed"
        assert attempt.reason == "timed out after 1s (timeout_action kill_and_retry)"
        assert attempt.killed_for == "timeout"
        assert attempt.runtime["timeout_seconds"] == {"value": 1, "source": "project"}
        assert attempt.runtime["retries"] == {"value": 1, "source": "project"}
        assert (attempt.finished_at - attempt.started_at).total_seconds() < 10
    assert (
        "runtime: timeout 1s, kill_and_retry (project/project); retries 1 every 0s (project)"
        in log_of(first)
    )


def test_the_node_level_beats_the_project(project, users):
    RuntimeConfig.objects.create(project=project, timeout_seconds=1, retries=3)
    node = node_create(
        project,
        "own",
        owner=users["alice"],
        type="shell",
        content="sleep 1.5; echo done",
        timeout_seconds=0,
        retries=0,
    )
    instance = instance_create(node, SCHEDULED)
    worker.drain(timeout=20)
    instance.refresh_from_db()
    assert instance.state == "succeeded"  # no timeout at the node level
    (attempt,) = attempts_of(instance)
    assert attempt.runtime["timeout_seconds"] == {"value": 0, "source": "node"}


def test_fail_fails_the_timed_out_attempt(project, users):
    node = node_create(
        project,
        "f",
        owner=users["alice"],
        type="shell",
        content="sleep 30",
        timeout_seconds=1,
        timeout_action="fail",
        retries=2,
        retry_interval_seconds=0,
    )
    instance = instance_create(node, SCHEDULED)
    worker.drain(timeout=20)
    instance.refresh_from_db()
    assert instance.state == "failed"
    # `fail` ends it at the first timeout: the retries are for kill_and_retry.
    (attempt,) = attempts_of(instance)
    assert attempt.reason == "timed out after 1s (timeout_action fail: no retry)"
    assert attempt.killed_for == "timeout"


def test_kill_and_retry_kills_the_tree_and_retries(project, users, tmp_path):
    marker = tmp_path / "runs"
    node = node_create(
        project,
        "retry",
        owner=users["alice"],
        type="shell",
        # A background grandchild too: the whole tree goes.
        content=f"echo run >> {marker}\nsleep 30 &\nsleep 30",
        timeout_seconds=1,
        timeout_action="kill_and_retry",
        retries=2,
        retry_interval_seconds=0,
    )
    instance = instance_create(node, SCHEDULED)
    worker.drain(timeout=40)
    instance.refresh_from_db()
    assert instance.state == "failed"
    attempts = attempts_of(instance)
    assert len(attempts) == 3
    assert marker.read_text().count("run") == 3
    for attempt in attempts:
        assert attempt.reason == "timed out after 1s (timeout_action kill_and_retry)"
        assert attempt.killed_for == "timeout"
        assert "killing process tree" in log_of(attempt)


def test_alert_only_raises_a_running_longer_alert_while_the_process_keeps_running(
    project, users, tmp_path
):
    finished = tmp_path / "finished"
    RuntimeConfig.objects.create(project=project, timeout_action="alert_only")
    node = node_create(
        project,
        "overtime",
        owner=users["alice"],
        type="shell",
        content=f"sleep 4\necho finished > {finished}",
        timeout_seconds=1,
    )
    instance = instance_create(node, SCHEDULED)
    thread, done = in_thread(lambda: worker.drain(timeout=30))

    deadline = time.monotonic() + 15
    attempt = None
    while attempt is None or clock.now() < attempt.timeout_alert_at:
        assert time.monotonic() < deadline, "the attempt never passed its timeout"
        attempt = Attempt.objects.filter(instance=instance, state="running").first()
        time.sleep(0.1)
    assert attempt.timeout_alert_at == attempt.started_at + datetime.timedelta(seconds=1)
    assert timepass.runtime_timeouts_check(now=clock.now()) == 1
    # Once per attempt: the next pass counts nothing again.
    assert timepass.runtime_timeouts_check(now=clock.now()) == 0
    alert = Alert.objects.get(instance=instance)
    assert (alert.source, alert.trigger, alert.rule, alert.state) == (
        "system",
        "running_longer",
        None,
        "firing",
    )
    assert alert.severity == "warning" and alert.recipients == ["alice"]
    assert "past its timeout of 1s" in alert.message and "alert_only" in alert.message
    # The process is still running past its timeout ...
    assert Attempt.objects.get(pk=attempt.pk).state == "running" and not finished.exists()

    assert done.wait(30)
    thread.join()
    # ... and ends by itself: the attempt succeeds, and its alert resolves once the
    # outbox is read.
    instance.refresh_from_db()
    assert instance.state == "succeeded" and finished.read_text().strip() == "finished"
    (attempt,) = attempts_of(instance)
    assert attempt.killed_for == "" and "alert_only: it goes on" in log_of(attempt)
    from apps.monitoring.tasks import events_drain

    events_drain()
    assert Alert.objects.get(pk=alert.pk).state == "resolved"


def test_a_python_node_over_its_memory_mb_is_killed_and_the_dashboard_flags_it(
    project, users, api_as
):
    node = node_create(
        project,
        "hungry",
        owner=users["alice"],
        type="python",
        memory_mb=64,
        cpu=1,
        content=(
            "import time\n"
            "blocks = []\n"
            "for _ in range(60):\n"
            "    blocks.append(bytearray(8 * 1024 * 1024))\n"
            "    time.sleep(0.05)\n"
            "time.sleep(30)\n"
        ),
    )
    instance = instance_create(node, SCHEDULED)
    worker.drain(timeout=30)
    instance.refresh_from_db()
    assert instance.state == "failed"
    (attempt,) = attempts_of(instance)
    assert attempt.killed_for == "memory"
    assert attempt.reason.startswith("killed: memory ")
    assert attempt.reason.endswith(" MB over its 64 MB allocation")
    used = int(attempt.reason.split()[2])
    assert used > 64 and attempt.peak_memory_mb > 64
    assert (attempt.finished_at - attempt.started_at).total_seconds() < 20
    assert "memory limit 64 MB" in log_of(attempt)
    (answered,) = api_as("vera").get(f"/api/instances/{instance.pk}").json()["attempts"]
    assert answered["killed_for"] == "memory" and answered["reason"] == attempt.reason
    assert answered["runtime"]["timeout_seconds"] == {"value": 3600, "source": "global"}

    scope = resources_scope(user=users["root"], project=project)
    day = SCHEDULED.astimezone(project.tz).date()
    today = clock.now().astimezone(project.tz).date()
    (usage,) = resources_get(scope=scope, start=min(day, today), end=today).nodes
    assert usage.flag == "under_provisioned" and usage.killed_for_memory == 1


def test_a_shell_tree_is_held_to_memory_mb_summed_over_its_processes(project, users):
    node = node_create(
        project,
        "forks",
        owner=users["alice"],
        type="shell",
        memory_mb=80,
        # Two children of ~50 MB each: neither alone is over 80 MB, the tree is.
        content=(
            "python3 -c 'import time; b = bytearray(50 * 1024 * 1024); time.sleep(30)' &\n"
            "python3 -c 'import time; b = bytearray(50 * 1024 * 1024); time.sleep(30)' &\n"
            "wait\n"
        ),
    )
    instance = instance_create(node, SCHEDULED)
    worker.drain(timeout=30)
    (attempt,) = attempts_of(instance)
    assert attempt.killed_for == "memory", attempt.reason
    assert attempt.reason.endswith("over its 80 MB allocation")
    assert Instance.objects.get(pk=instance.pk).state == "failed"


def test_a_node_under_its_memory_mb_runs_to_its_end(project, users):
    node = node_create(
        project,
        "modest",
        owner=users["alice"],
        type="python",
        memory_mb=512,
        content="b = bytearray(20 * 1024 * 1024)\nprint('ok')\n",
    )
    instance = instance_create(node, SCHEDULED)
    worker.drain(timeout=20)
    instance.refresh_from_db()
    assert instance.state == "succeeded"
    assert attempts_of(instance)[0].killed_for == ""


def test_settings_changed_while_an_attempt_runs_do_not_apply_to_it(project, users):
    RuntimeConfig.objects.create(project=project, retries=0)
    node = node_create(
        project, "steady", owner=users["alice"], type="shell", content="sleep 1.5; exit 3"
    )
    instance = instance_create(node, SCHEDULED)
    thread, done = in_thread(lambda: worker.drain(timeout=20))
    deadline = time.monotonic() + 10
    while not Attempt.objects.filter(instance=instance, state="running").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    RuntimeConfig.objects.filter(project=project).update(retries=3, retry_interval_seconds=0)
    assert done.wait(30)
    thread.join()
    instance.refresh_from_db()
    # It started with no retry: it fails, although the project now says 3.
    assert instance.state == "failed" and len(attempts_of(instance)) == 1
