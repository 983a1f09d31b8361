"""Issue 13, finding 3: a database that goes away under a running attempt costs no retry.
The worker keeps the command running, keeps its log, reconnects with backoff and records
the attempt's end once the database is back. PostgreSQL only (its connections can be cut
from outside); the restart of a whole server is in test_faults.py."""

import datetime
import threading
import time

import pytest
from django.db import connection, connections

from apps.instances import dispatcher, worker
from apps.instances.models import Attempt
from tests.factories import Enqueued, instance_create, node_create

pytestmark = pytest.mark.django_db(transaction=True)
SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)


def cut_connections() -> int:
    """Terminate every other session on this test's database, as a server restart does."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


if connection.vendor == "postgresql":

    def test_an_attempt_rides_out_connections_cut_under_it(project, users, settings, tmp_path):
        settings.OPSCENTER_HEARTBEAT_SECONDS = 0.2
        settings.OPSCENTER_HEARTBEAT_TIMEOUT = 30
        done = tmp_path / "done"
        node = node_create(
            project,
            "steady",
            owner=users["alice"],
            type="shell",
            retries=2,
            retry_interval_seconds=0,
            content=(
                "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo tick $i; sleep 0.25; done\n"
                f"echo run >> {done}\n"
            ),
        )
        instance = instance_create(node, SCHEDULED)
        dispatcher.tick(enqueue=Enqueued())
        outcome: list = []

        def run() -> None:
            try:
                outcome.append(worker.run_attempt(instance.pk, enqueue=Enqueued()))
            finally:
                connections.close_all()

        thread = threading.Thread(target=run)
        thread.start()
        # Cut the worker's connection again and again while the command runs.
        cuts = 0
        deadline = time.monotonic() + 20
        while thread.is_alive() and time.monotonic() < deadline:
            if Attempt.objects.filter(instance=instance, pid__isnull=False).exists():
                cuts += 1 if cut_connections() else 0
                time.sleep(0.5)
            else:
                time.sleep(0.05)
        thread.join(30)
        assert cuts >= 2 and outcome == ["succeeded"]
        instance.refresh_from_db()
        assert (instance.state, instance.retries_used, instance.attempt_count) == (
            "succeeded",
            0,
            1,
        )
        assert done.read_text() == "run\n"
        log = "".join(
            Attempt.objects.get(instance=instance).log_chunks.values_list("text", flat=True)
        )
        assert "database away, the command goes on" in log
        assert "database back after" in log
        # Nothing of the command's output was lost while the database was away.
        assert all(f"tick {i}\n" in log for i in range(1, 13))
