"""Issue 13: the fault probes, kept in the suite. Real `qcluster` processes run shell jobs
whose real work is done by a grandchild (a `sh -c` in the background, as scripts do) that
appends one line per finished run to a marker file of its instance; then a worker is
killed with SIGKILL, a whole cluster is, or the PostgreSQL server restarts under them.
Each ends with every instance succeeded, none stuck, none run twice (one marker line per
instance) and, for the restart, no retry used.

The kill tests run on the suite's database when it is PostgreSQL (as production); the
restart test makes a PostgreSQL server of its own (initdb and pg_ctl on a free port) and
removes it after, so it runs whatever the suite's database is.
"""

import datetime
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django_q.models import Schedule

from apps.instances import dispatcher
from apps.instances.models import Attempt, Instance
from tests.factories import instance_create, node_create
from tests.instances.test_cluster import Cluster, wait_for

ROOT = Path(django_settings.BASE_DIR)
SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)


def job(markers: Path, seconds: float) -> str:
    """A shell job whose work is a grandchild's: if it outlived a killed worker, its
    instance would get two marker lines (this run's and the retry's)."""
    return (
        f"sh -c 'sleep {seconds}; echo run-$OPSCENTER_ATTEMPT >> {markers}/$OPSCENTER_INSTANCE_ID' &\n"
        "wait\n"
    )


def marker_lines(markers: Path, instance_id: int) -> list[str]:
    path = markers / str(instance_id)
    return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def markers(tmp_path) -> Path:
    path = tmp_path / "markers"
    path.mkdir()
    return path


@pytest.fixture
def clusters(tmp_path):
    Schedule.objects.all().delete()  # no dispatcher loop: the tests say when passes run
    started: list[Cluster] = []

    def start(**env: str) -> Cluster:
        started.append(Cluster(tmp_path, Q_WORKERS="2", **env))
        return started[-1]

    yield start
    for cluster in started:
        if cluster.process.poll() is None:
            cluster.stop()


def workers_running(instance_ids: list[int], count: int) -> list[Attempt]:
    attempts = list(
        Attempt.objects.filter(instance_id__in=instance_ids, state="running", pid__isnull=False)
    )
    return attempts if len(attempts) >= count else []


def all_finished(instance_ids: list[int]) -> bool:
    states = set(Instance.objects.filter(pk__in=instance_ids).values_list("state", flat=True))
    return states <= {"succeeded", "failed", "stopped", "skipped"}


def assert_every_instance_ran_once(instance_ids: list[int], markers: Path) -> None:
    instances = list(Instance.objects.filter(pk__in=instance_ids))
    assert [i.state for i in instances] == ["succeeded"] * len(instance_ids)
    assert not Attempt.objects.filter(instance_id__in=instance_ids, state="running").exists()
    for instance in instances:
        lines = marker_lines(markers, instance.pk)
        assert lines == [f"run-{instance.attempt_count}"], (instance.pk, lines)


if connection.vendor == "postgresql":
    pytestmark = pytest.mark.django_db(transaction=True)

    def test_a_worker_killed_mid_run_is_noticed_at_once_and_nothing_runs_twice(
        project, users, clusters, markers, settings
    ):
        # Long enough that only the cluster's own notice of the death can be what retries.
        settings.OPSCENTER_HEARTBEAT_TIMEOUT = 600
        node = node_create(
            project,
            "work",
            owner=users["alice"],
            type="shell",
            retries=1,
            retry_interval_seconds=0,
            content=job(markers, 3),
        )
        ids = [instance_create(node, SCHEDULED + datetime.timedelta(hours=h)).pk for h in range(4)]
        cluster = clusters(OPSCENTER_HEARTBEAT_TIMEOUT="600")
        started = time.monotonic()
        # One pass: two run at once on the two workers, two wait queued.
        assert sorted(dispatcher.tick().queued) == sorted(ids)
        wait_for(lambda: workers_running(ids, 2), timeout=30, message="no run", cluster=cluster)
        victim = workers_running(ids, 2)[0]
        subreaper = psutil.Process(victim.pid)
        subreaper.parent().send_signal(signal.SIGKILL)

        # No dispatcher pass from here on: the worker the cluster starts in place of the
        # dead one fails its attempt and hands the retry out.
        wait_for(lambda: all_finished(ids), timeout=40, message="not finished", cluster=cluster)
        assert time.monotonic() - started < 40
        assert_every_instance_ran_once(ids, markers)
        lost = Attempt.objects.get(pk=victim.pk)
        assert lost.state == "failed" and "lost: its process died" in lost.reason
        assert Instance.objects.get(pk=victim.instance_id).attempt_count == 2
        assert not psutil.pid_exists(victim.pid) or psutil.Process(victim.pid).status() == (
            psutil.STATUS_ZOMBIE
        )

    def test_a_whole_cluster_killed_with_instances_running_and_queued_loses_nothing(
        project, users, clusters, markers, settings
    ):
        settings.OPSCENTER_HEARTBEAT_TIMEOUT = 600
        settings.OPSCENTER_QUEUED_TIMEOUT_SECONDS = 8
        node = node_create(
            project,
            "work",
            owner=users["alice"],
            type="shell",
            retries=1,
            retry_interval_seconds=0,
            content=job(markers, 3),
        )
        ids = [instance_create(node, SCHEDULED + datetime.timedelta(hours=h)).pk for h in range(5)]
        env = {"OPSCENTER_HEARTBEAT_TIMEOUT": "600", "OPSCENTER_QUEUED_TIMEOUT_SECONDS": "8"}
        first = clusters(**env)
        assert sorted(dispatcher.tick().queued) == sorted(ids)
        wait_for(lambda: workers_running(ids, 2), timeout=30, message="no run", cluster=first)
        # Every process of the cluster at once (its subreapers have sessions of their own
        # and see their workers die).
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait(10)
        assert Instance.objects.filter(pk__in=ids, state="queued").exists()

        second = clusters(**env)

        def passes() -> bool:  # the dispatcher loop's work, as its schedule would do it
            dispatcher.tick()
            return all_finished(ids)

        wait_for(passes, timeout=45, message="instances left behind", cluster=second)
        assert_every_instance_ran_once(ids, markers)
        causes = set(
            Attempt.objects.filter(instance_id__in=ids, state="failed").values_list(
                "reason", flat=True
            )
        )
        assert causes and all("lost: its process died" in cause for cause in causes)


# --- a PostgreSQL restart ----------------------------------------------------------------


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version)
    if found:
        return found[-1]
    path = shutil.which(name)
    assert path, f"{name} (PostgreSQL's server programs) is needed for this test"
    return path


def _version(path: str) -> int:
    part = path.split("/")[4]
    return int(part) if part.isdigit() else 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayPostgres:
    """A PostgreSQL server of this test's own, in a temporary directory, on a free port
    (run as the postgres user when this test runs as root, as the server requires)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="opscenter-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/opscenter_faults"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self._as_server_user(
            [
                _pg_bin("initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
            ]
        )
        self.start()
        self._as_server_user(
            [_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
            + ["opscenter_faults"]
        )

    def _as_server_user(self, argv: list[str]) -> None:
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=60)

    def _ctl(self, *args: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off"
        self._as_server_user(
            [_pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log")]
            + ["-w", "-t", "30", *args]
        )

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        # Fast: every session is cut, as when an operator restarts the server.
        self._ctl("-m", "fast", "restart")

    def drop(self) -> None:
        try:
            self._ctl("-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def query(self, sql: str) -> str:
        done = subprocess.run(
            [_pg_bin("psql"), self.url, "-tAq", "-c", sql],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


SETUP = """
import datetime, sys
from pathlib import Path
from django.contrib.auth import get_user_model
from apps.configuration.models import ResourceGroup
from apps.instances import dispatcher
from apps.projects.models import Project
from tests.factories import instance_create, node_create
from tests.instances.test_faults import job

markers = Path(sys.argv[1])
owner = get_user_model().objects.create_user("alice", "alice@example.com", "pw-alice-123")
ResourceGroup.objects.get_or_create(name="default")
project = Project.objects.create(code="acme", name="Acme")
node = node_create(project, "work", owner=owner, type="shell", retries=1, content=job(markers, 6))
at = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)
for hours in range(4):
    instance_create(node, at + datetime.timedelta(hours=hours))
print(len(dispatcher.tick().queued))
"""


def test_a_postgresql_restart_during_runs_costs_no_retry(tmp_path, markers):
    server = ThrowawayPostgres()
    cluster = None
    env = {
        **os.environ,
        "DATABASE_URL": server.url,
        "OPSCENTER_VAR_DIR": str(tmp_path / "var"),
        "OPSCENTER_HEARTBEAT_SECONDS": "0.5",
    }
    env.pop("REDIS_URL", None)
    try:
        manage = [sys.executable, "manage.py"]
        subprocess.run(
            [*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True
        )
        setup = subprocess.run(
            [sys.executable, "-c", "import django\ndjango.setup()\n" + SETUP, str(markers)],
            cwd=ROOT,
            env={**env, "DJANGO_SETTINGS_MODULE": "opscenter.settings", "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert setup.stdout.strip().endswith("4"), setup.stderr
        server.query("DELETE FROM django_q_schedule")  # no dispatcher loop: nothing to wait for
        cluster = Cluster(tmp_path, Q_WORKERS="4", **{k: env[k] for k in ("DATABASE_URL",)})

        def running() -> bool:
            return (
                server.query(
                    "SELECT count(*) FROM instances_attempt WHERE state = 'running' AND pid IS NOT NULL"
                )
                == "4"
            )

        wait_for(running, timeout=30, message="the runs did not start", cluster=cluster)
        server.restart()

        def finished() -> bool:
            return (
                server.query("SELECT count(*) FROM instances_instance WHERE state = 'succeeded'")
                == "4"
            )

        wait_for(finished, timeout=30, message="the runs did not finish", cluster=cluster)
        rows = server.query(
            "SELECT id, attempt_count, retries_used FROM instances_instance ORDER BY id"
        ).splitlines()
        for row in rows:
            instance_id, attempts, retries_used = row.split("|")
            # No retry used, one attempt, and its work done once.
            assert (attempts, retries_used) == ("1", "0"), row
            assert marker_lines(markers, int(instance_id)) == ["run-1"], row
        assert server.query("SELECT count(*) FROM instances_attempt") == "4"
        assert "database back after" in server.query(
            "SELECT string_agg(text, '') FROM instances_attemptlogchunk"
        )
    finally:
        if cluster is not None:
            cluster.stop()
        server.drop()
