"""The realtime supervisor with real processes: start, live log, stop with grace and
kill, restarts after an outside kill up to the limit, resources applied at next start."""

import os
import signal
import time

import psutil
import pytest

from apps.instances.models import Attempt, Instance
from apps.realtime.models import RealtimeSettings
from apps.realtime.services import realtime_change_resources, realtime_start, realtime_stop

from .conftest import realtime_spec

pytestmark = pytest.mark.django_db(transaction=True)

STUBBORN = (
    'trap "echo got TERM, ignoring" TERM\nwhile true; do echo alive; sleep 0.1 || true; done\n'
)
RESOURCES = 'echo "cpu=$OPSCENTER_CPU mem=$OPSCENTER_MEMORY_MB"\nwhile true; do sleep 0.1; done\n'


def wait_for(condition, what: str, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def state_of(node) -> str:
    return Instance.objects.values_list("state", flat=True).get(node=node)


def live_attempt(node, number: int | None = None) -> Attempt | None:
    attempts = Attempt.objects.filter(instance__node=node, state="running", pid__isnull=False)
    if number is not None:
        attempts = attempts.filter(number=number)
    return attempts.first()


def log_of(attempt: Attempt) -> str:
    return "".join(attempt.log_chunks.order_by("offset").values_list("text", flat=True))


def test_start_runs_a_long_process_whose_log_grows_then_stop(publish_realtime, users, supervisor):
    (node,) = publish_realtime(realtime_spec())
    realtime_start(node=node, by=users["olga"], source="api")
    attempt = wait_for(lambda: live_attempt(node), "the process to start")
    assert state_of(node) == "running"
    assert psutil.pid_exists(attempt.pid)
    wait_for(lambda: "line 3" in log_of(attempt), "three lines in the log")
    wait_for(lambda: "line 8" in log_of(attempt), "the log to grow")
    row = RealtimeSettings.objects.get(node=node)
    assert row.supervisor == supervisor.name and row.heartbeat_at is not None

    realtime_stop(node=node, by=users["olga"], source="api")
    wait_for(lambda: state_of(node) == "stopped", "the instance to stop")
    attempt.refresh_from_db()
    assert (attempt.state, attempt.reason) == ("stopped", "stopped by an operator")
    assert not psutil.pid_exists(attempt.pid) or psutil.Process(attempt.pid).status() == "zombie"


def test_stop_kills_a_process_that_ignores_sigterm_after_the_grace(
    publish_realtime, users, supervisor
):
    (node,) = publish_realtime(realtime_spec(content=STUBBORN))
    realtime_start(node=node, by=users["olga"], source="api")
    attempt = wait_for(lambda: live_attempt(node), "the process to start")
    wait_for(lambda: "alive" in log_of(attempt), "output")
    process = psutil.Process(attempt.pid)

    realtime_stop(node=node, by=users["olga"], source="api")
    wait_for(lambda: "got TERM, ignoring" in log_of(attempt), "the SIGTERM to arrive")
    wait_for(lambda: state_of(node) == "stopped", "the instance to stop")
    assert not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    # Asked to end first; it refused and lived on through the grace; then killed.
    text = log_of(attempt)
    asked = text.index("stop requested: killing process tree")
    refused = text.index("got TERM, ignoring")
    killed = text.index("still running after 1s grace: SIGKILL")
    assert asked < refused < killed
    assert "alive" in text[refused:killed]
    attempt.refresh_from_db()
    assert attempt.exit_code == -signal.SIGKILL


def test_killed_from_outside_is_restarted_then_failed_at_the_limit(
    publish_realtime, users, supervisor
):
    (node,) = publish_realtime(realtime_spec())
    realtime_change_resources(node=node, by=users["olga"], source="api", restart_limit=2)
    realtime_start(node=node, by=users["olga"], source="api")
    for number in (1, 2, 3):
        attempt = wait_for(lambda n=number: live_attempt(node, n), f"process start {number}")
        assert state_of(node) == "running"
        os.kill(attempt.pid, signal.SIGKILL)
    wait_for(lambda: state_of(node) == "failed", "the instance to fail at the limit")
    attempts = list(Attempt.objects.filter(instance__node=node).order_by("number"))
    assert [a.state for a in attempts] == ["failed", "failed", "failed"]
    assert all("killed by signal SIGKILL" in a.reason for a in attempts)
    assert "process ended while it should run" in log_of(attempts[0])

    # An operator's start begins a new count.
    realtime_start(node=node, by=users["olga"], source="api")
    wait_for(lambda: live_attempt(node, 4), "a fresh start")
    assert state_of(node) == "running"


def test_resource_change_applies_at_the_next_start(publish_realtime, users, supervisor):
    (node,) = publish_realtime(realtime_spec(content=RESOURCES, cpu=1, memory_mb=256))
    realtime_start(node=node, by=users["olga"], source="api")
    first = wait_for(lambda: live_attempt(node, 1), "the first start")
    wait_for(lambda: "cpu=1 mem=256" in log_of(first), "the spec's resources")

    realtime_change_resources(node=node, by=users["olga"], source="api", cpu=2, memory_mb=512)
    row = RealtimeSettings.objects.get(node=node)
    # Stored, not applied: the running process keeps what it started with.
    assert (row.cpu, row.memory_mb, row.applied_cpu, row.applied_memory_mb) == (2, 512, 1, 256)

    realtime_stop(node=node, by=users["olga"], source="api")
    wait_for(lambda: state_of(node) == "stopped", "the stop")
    realtime_start(node=node, by=users["olga"], source="api")
    second = wait_for(lambda: live_attempt(node, 2), "the second start")
    wait_for(lambda: "cpu=2 mem=512" in log_of(second), "the new resources")
    row.refresh_from_db()
    assert (row.applied_cpu, row.applied_memory_mb) == (2, 512)


def test_a_lost_supervisors_instance_is_taken_over_and_started_again(
    publish_realtime, users, start_supervisor, settings
):
    (node,) = publish_realtime(realtime_spec())
    realtime_start(node=node, by=users["olga"], source="api")
    Instance.objects.filter(node=node).update(state="running")
    # A supervisor that died long ago left this behind: running, with a stale heartbeat.
    instance = Instance.objects.get(node=node)
    Attempt.objects.create(
        instance=instance,
        number=1,
        state="running",
        started_at=instance.started_at,
        heartbeat_at=instance.started_at,
        worker="gone:1",
    )
    Instance.objects.filter(pk=instance.pk).update(attempt_count=1)
    RealtimeSettings.objects.filter(node=node).update(supervisor="gone:1", heartbeat_at=None)
    # Only now does a live supervisor come: it finds what the dead one left.
    supervisor = start_supervisor()
    wait_for(lambda: live_attempt(node, 2), "the takeover's new start")
    lost = Attempt.objects.get(instance=instance, number=1)
    assert (lost.state, lost.reason) == ("failed", "supervisor gone:1 lost: no heartbeat")
    assert RealtimeSettings.objects.get(node=node).supervisor == supervisor.name


def test_supervisor_shutdown_hands_instances_back(publish_realtime, users, supervisor):
    (node,) = publish_realtime(realtime_spec())
    realtime_start(node=node, by=users["olga"], source="api")
    attempt = wait_for(lambda: live_attempt(node), "the process to start")
    supervisor.stop()
    assert state_of(node) == "starting"
    attempt.refresh_from_db()
    assert (attempt.state, attempt.reason) == ("stopped", "the supervisor is shutting down")
