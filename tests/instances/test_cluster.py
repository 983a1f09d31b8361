"""Instances run on a real django-q2 cluster (a `qcluster` subprocess on this test's
database), and a worker killed with SIGKILL mid-attempt is detected and retried."""

import datetime
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from django.db import connection
from django_q.models import OrmQ, Schedule

from apps.instances import dispatcher
from apps.instances.models import Attempt, Instance
from tests.factories import instance_create, node_create

pytestmark = pytest.mark.django_db(transaction=True)

SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)
ROOT = Path(settings.BASE_DIR)


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgresql://{db.get('USER') or 'postgres'}@{host}:{port}/{db['NAME']}"


class Cluster:
    """A `manage.py qcluster` in its own process group, on this test's database."""

    def __init__(self, tmp_path: Path, **env: str):
        self.log_path = tmp_path / "qcluster.log"
        environment = {
            **os.environ,
            "DATABASE_URL": database_url(),
            "Q_WORKERS": "2",
            "Q_POLL": "0.1",
            "OPSCENTER_HEARTBEAT_SECONDS": "0.5",
            **env,
        }
        if "REDIS_URL" not in env:
            environment.pop("REDIS_URL", None)  # the default (ORM) broker
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=environment,
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        # django-q2 stops gracefully on a SIGTERM to its main process (not its group).
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def output(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
def cluster(tmp_path):
    # These tests start instances themselves; the dispatcher loop schedule would only
    # hold up the cluster's graceful stop for its minute.
    Schedule.objects.all().delete()
    clusters = []

    def start(**env):
        clusters.append(Cluster(tmp_path, **env))
        return clusters[-1]

    yield start
    for running in clusters:
        running.stop()


def wait_for(condition, *, timeout: float, message: str, cluster=None):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            detail = f"\n--- qcluster output ---\n{cluster.output()[-3000:]}" if cluster else ""
            pytest.fail(message + detail)
        time.sleep(0.2)


def redis_url() -> str:
    """A Redis database of this pytest worker's own: django-q2's Redis keys are the same
    for every run, so parallel runs must not share one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw-1")
    return f"redis://127.0.0.1:6379/{10 + int(worker.removeprefix('gw')) + 1}"


@pytest.mark.parametrize("broker", ["orm", "redis"])
def test_a_chain_runs_on_django_q2_workers(project, users, cluster, broker):
    owner = users["alice"]
    first = node_create(project, "first", owner=owner, type="shell", content="echo one")
    second = node_create(
        project, "second", owner=owner, type="python", upstream=[first], content="print('two')"
    )
    i1 = instance_create(first, SCHEDULED)
    i2 = instance_create(second, SCHEDULED, upstream=[i1])
    env = {}
    if broker == "redis":
        import redis

        env["REDIS_URL"] = redis_url()
        redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    running = cluster(**env)

    # One dispatcher pass hands the first instance to the queue; the worker that finishes
    # it starts the second at once, without another pass.
    if broker == "redis":
        # The pass must enqueue through Redis too: run it as the command, with REDIS_URL.
        tick = subprocess.run(
            [sys.executable, "manage.py", "opscenter", "tick"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url(), **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "queued 1 instance(s)" in tick.stdout, tick.stderr
    else:
        assert dispatcher.tick().queued == [i1.pk]
    wait_for(
        lambda: Instance.objects.get(pk=i2.pk).state == "succeeded",
        timeout=60,
        message="the chain did not finish on the cluster",
        cluster=running,
    )
    workers = set(Attempt.objects.values_list("worker", flat=True))
    assert all(w and not w.endswith(f":{os.getpid()}") for w in workers)
    if broker == "redis":
        # With REDIS_URL set, nothing went through the database broker.
        assert not OrmQ.objects.exists()


def test_worker_killed_with_sigkill_is_detected_and_the_instance_retried(
    project, users, cluster, settings, tmp_path
):
    grandchild_file = tmp_path / "grandchild.pid"
    settings.OPSCENTER_HEARTBEAT_TIMEOUT = 3
    node = node_create(
        project,
        "victim",
        owner=users["alice"],
        type="shell",
        retries=1,
        retry_interval_seconds=0,
        content=(
            'if [ "$OPSCENTER_ATTEMPT" = 1 ]; then\n'
            f"  sleep 120 & echo $! > {grandchild_file}; wait\n"
            "fi\n"
            "echo survived"
        ),
    )
    instance = instance_create(node, SCHEDULED)
    running = cluster()
    dispatcher.tick()

    wait_for(
        lambda: Attempt.objects.filter(instance=instance, number=1, pid__isnull=False).exists(),
        timeout=60,
        message="the first attempt never started",
        cluster=running,
    )
    # The script has started its grandchild (on a busy machine the pid is recorded
    # before the shell gets that far).
    wait_for(
        lambda: grandchild_file.exists() and grandchild_file.read_text().strip(),
        timeout=30,
        message="the first attempt never started its grandchild",
        cluster=running,
    )
    attempt = Attempt.objects.get(instance=instance, number=1)
    script = psutil.Process(attempt.pid)
    worker_process = script.parent()
    assert worker_process.pid != running.process.pid
    worker_process.send_signal(signal.SIGKILL)

    # The script dies with its worker (it is not left running unsupervised)...
    wait_for(
        lambda: not script.is_running() or script.status() == psutil.STATUS_ZOMBIE,
        timeout=10,
        message="the script outlived its killed worker",
    )

    # ...and the dispatcher finds the silent attempt and retries the instance.
    def retried():
        dispatcher.tick()
        return Instance.objects.get(pk=instance.pk).state == "succeeded"

    wait_for(retried, timeout=60, message="the instance was not retried", cluster=running)
    first, second = Attempt.objects.filter(instance=instance).order_by("number")
    assert first.state == "failed" and "lost" in first.reason
    # What the lost attempt had started was killed by the reaper on this machine.
    grandchild = int(grandchild_file.read_text())
    wait_for(
        lambda: (
            not psutil.pid_exists(grandchild)
            or psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
        ),
        timeout=10,
        message="the lost attempt's grandchild is still running",
    )
    assert second.state == "succeeded"


def test_an_instance_runs_on_the_cluster_of_its_resource_group(project, users, cluster):
    from apps.configuration.models import ResourceGroup

    ResourceGroup.objects.create(name="etl", max_concurrency=2)
    node = node_create(
        project,
        "heavy",
        owner=users["alice"],
        type="shell",
        resource_group="etl",
        content='echo "on queue $Q_CLUSTER_NAME"',
    )
    instance = instance_create(node, SCHEDULED)
    default_cluster = cluster()
    etl_cluster = cluster(Q_CLUSTER_NAME="etl")

    assert dispatcher.tick().queued == [instance.pk]
    wait_for(
        lambda: Instance.objects.get(pk=instance.pk).state == "succeeded",
        timeout=60,
        message="the etl cluster did not run it",
        cluster=etl_cluster,
    )
    attempt = Attempt.objects.get(instance=instance)
    worker_pid = int(attempt.worker.rsplit(":", 1)[1])
    etl_pids = {p.pid for p in psutil.Process(etl_cluster.process.pid).children(recursive=True)}
    default_pids = {
        p.pid for p in psutil.Process(default_cluster.process.pid).children(recursive=True)
    }
    assert worker_pid in etl_pids and worker_pid not in default_pids
