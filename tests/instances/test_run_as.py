"""Issue 13, finding 4: jobs cannot read the worker's secrets. With OPSCENTER_RUN_AS a
worker cluster running as root runs every attempt as that unprivileged user: a job that
reads /proc/$PPID/environ, /proc/1/environ and the environment of every ancestor finds
none of the worker's secrets. Without root the setting is refused, naming why, and the
attempt fails without using a retry. (.ci/run runs as root and creates the user.)"""

import datetime
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from apps.instances import dispatcher, worker
from apps.instances.models import Attempt, Instance
from tests.factories import Enqueued, instance_create, node_create
from tests.instances.test_cluster import cluster, database_url, wait_for  # noqa: F401

SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)
JOB_USER = "opscenter-job"

# Reads every environment it can see: its parent's (the subreaper), PID 1's, and each
# ancestor's up to PID 1, saying which it could not read.
SNOOP = r"""
echo "running as $(id -un)"
show() {
    echo "== environ of $1: $(tr '\0' ' ' < /proc/$1/cmdline 2>/dev/null | cut -c1-60)"
    tr '\0' '\n' < /proc/$1/environ 2>/dev/null || echo "unreadable: $1"
}
show $PPID
show 1
pid=$PPID
while [ "$pid" -gt 1 ]; do
    show "$pid"
    pid=$(awk '/^PPid:/ {print $2}' /proc/$pid/status)
done
echo snooped
"""


def _attempt_log(instance: Instance) -> str:
    attempt = Attempt.objects.get(instance=instance)
    return "".join(attempt.log_chunks.values_list("text", flat=True))


def test_an_unknown_run_as_user_fails_the_attempt_without_a_retry(project, users, settings):
    settings.OPSCENTER_RUN_AS = "no-such-user-here"
    node = node_create(project, "job", owner=users["alice"], type="shell", retries=3)
    instance = instance_create(node, SCHEDULED)
    dispatcher.tick(enqueue=Enqueued())
    assert worker.run_attempt(instance.pk, enqueue=Enqueued()) == "failed"
    instance.refresh_from_db()
    assert instance.retries_used == 0
    assert "OPSCENTER_RUN_AS: there is no OS user 'no-such-user-here'" in _attempt_log(instance)


if os.geteuid() == 0:

    @pytest.mark.django_db(transaction=True)
    def test_jobs_run_as_the_unprivileged_user_and_see_no_secret(project, users, cluster):  # noqa: F811
        # .ci/run creates the user; a root developer's machine gets it here.
        try:
            pwd.getpwnam(JOB_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", JOB_USER], check=True, timeout=30
            )
        # The cluster's own (it must sign and read tasks with this test's SECRET_KEY).
        secrets = {
            "DATABASE_URL": database_url(),
            "SECRET_KEY": os.environ["SECRET_KEY"],
            "OPSCENTER_ENCRYPTION_KEY": os.environ["OPSCENTER_ENCRYPTION_KEY"],
        }
        node = node_create(project, "snoop", owner=users["alice"], type="shell", content=SNOOP)
        instance = instance_create(node, SCHEDULED)
        # The job user must be able to reach its work directory: a runtime directory
        # others may pass through (as production's must be), not pytest's private one.
        var_dir = Path(tempfile.mkdtemp(prefix="opscenter-run-as-", dir="/tmp"))
        var_dir.chmod(0o711)
        running = cluster(OPSCENTER_RUN_AS=JOB_USER, OPSCENTER_VAR_DIR=str(var_dir), **secrets)
        dispatcher.tick()
        wait_for(
            lambda: Instance.objects.get(pk=instance.pk).state in ("succeeded", "failed"),
            timeout=60,
            message="the snooping job did not finish",
            cluster=running,
        )
        log = _attempt_log(instance)
        assert Instance.objects.get(pk=instance.pk).state == "succeeded", log
        assert f"running as {JOB_USER}" in log
        assert "snooped" in log
        attempt = Attempt.objects.get(instance=instance)
        # Its parent (the subreaper), PID 1 and the worker were all there to try...
        assert f"unreadable: {attempt.pid}" in log
        assert "unreadable: 1" in log
        assert f"unreadable: {attempt.worker.rsplit(':', 1)[1]}" in log
        # ...and not one secret of the worker's came through.
        for name, value in secrets.items():
            assert value not in log, f"the job read {name}"
        running.stop()
        shutil.rmtree(var_dir, ignore_errors=True)

else:

    def test_run_as_needs_a_worker_running_as_root(project, users, settings):
        settings.OPSCENTER_RUN_AS = "nobody"
        node = node_create(project, "job", owner=users["alice"], type="shell", retries=3)
        instance = instance_create(node, SCHEDULED)
        dispatcher.tick(enqueue=Enqueued())
        assert worker.run_attempt(instance.pk, enqueue=Enqueued()) == "failed"
        instance.refresh_from_db()
        assert instance.retries_used == 0
        assert "cannot run commands as another user" in _attempt_log(instance)
