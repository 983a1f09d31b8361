"""An attempt finds exactly its node version's pinned resource files in its work
directory: real processes run through the dispatcher and the worker (`drain`)."""

import datetime
import io
import os
import pwd
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from django.core.files import File
from django.core.files.storage import FileSystemStorage

from apps.instances import worker
from apps.instances.models import Attempt, Instance
from apps.instances.operations import instance_stop
from apps.instances.selectors import attempt_log
from apps.nodes.models import Node
from apps.resources.models import ResourceVersion
from apps.resources.services import resource_delete, resource_upload
from tests.factories import instance_create
from tests.instances.test_operations import _drain_in_thread
from tests.nodes.helpers import publish, spec

pytestmark = pytest.mark.django_db(transaction=True)

SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)
JOB_USER = "opscenter-job"


def upload(project, user, name, content: bytes):
    return resource_upload(project=project, name=name, fileobj=io.BytesIO(content), user=user)


def log_of(instance) -> str:
    attempt = Attempt.objects.filter(instance=instance).order_by("number").last()
    return attempt_log(attempt=attempt)[0]


def run(node: Node, hour: int = 2) -> Instance:
    instance = instance_create(node, SCHEDULED.replace(hour=hour))
    worker.drain(timeout=20)
    instance.refresh_from_db()
    return instance


READER = spec(
    "reader",
    type="shell",
    content='echo "files: $(ls | sort | tr "\\n" " ")"\necho "ref=$(cat ref.csv)"\npython3 lib.py',
    resources=["ref.csv", "lib.py"],
)


def test_a_node_reads_its_pinned_version_after_a_newer_one_is_uploaded(project, users):
    dave = users["dave"]
    upload(project, dave, "ref.csv", b"old content")
    upload(project, dave, "lib.py", b"print('lib says hi')\n")
    upload(project, dave, "unused.txt", b"not listed")
    publish(project, dave, READER)
    node = Node.objects.get(name="reader")
    upload(project, dave, "ref.csv", b"new content")

    first = run(node)
    log = log_of(first)
    assert first.state == "succeeded", log
    assert "ref=old content" in log
    assert "files: lib.py ref.csv script.sh" in log  # exactly its files, not unused.txt
    assert "lib says hi" in log
    assert "resource 'ref.csv' v1 (11 bytes) is in the work directory" in log

    # Published again, the node's new version pins the newer file; the old one keeps its.
    assert publish(project, dave, READER).updated == ["reader"]
    node.refresh_from_db()
    second = run(node, hour=3)
    assert "ref=new content" in log_of(second), log_of(second)
    old_version = first.version
    rerun = instance_create(node, SCHEDULED.replace(hour=4), version=old_version)
    worker.drain(timeout=20)
    assert "ref=old content" in log_of(rerun)


def test_a_deleted_resource_fails_an_old_version_without_a_retry(project, users):
    dave = users["dave"]
    upload(project, dave, "ref.csv", b"x")
    publish(project, dave, {**READER, "resources": ["ref.csv"], "retries": 3})
    old = Node.objects.get(name="reader").current_version
    publish(project, dave, {**READER, "resources": [], "retries": 3})
    resource_delete(resource=project.resources.get(name="ref.csv"), user=users["alice"])
    node = Node.objects.get(name="reader")
    instance = instance_create(node, SCHEDULED, version=old)
    worker.drain(timeout=20)
    instance.refresh_from_db()
    assert (instance.state, instance.retries_used) == ("failed", 0)
    log = log_of(instance)
    assert "cannot run: resource 'ref.csv' v1 was deleted after this node version" in log
    assert "ref=" not in log  # the command never started


def test_a_file_missing_or_altered_in_storage_fails_the_attempt(project, users, storage_dir):
    dave = users["dave"]
    version = upload(project, dave, "ref.csv", b"original")
    publish(project, dave, {**READER, "resources": ["ref.csv"]})
    node = Node.objects.get(name="reader")
    stored = storage_dir / version.file.name
    stored.write_bytes(b"tampered")
    altered = run(node)
    assert altered.state == "failed"
    assert "is not the file uploaded: its SHA-256 is" in log_of(altered)

    stored.unlink()
    missing = run(node, hour=3)
    assert missing.state == "failed"
    assert f"resource 'ref.csv' v1 is missing from storage ({version.file.name})" in log_of(missing)
    assert ResourceVersion.objects.count() == 1


if os.geteuid() == 0:

    def test_files_are_readable_when_attempts_run_as_another_user(project, users, settings):
        try:
            pwd.getpwnam(JOB_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", JOB_USER], check=True, timeout=30
            )
        # A runtime directory the job user may pass through, as production's must be.
        var_dir = Path(tempfile.mkdtemp(prefix="opscenter-res-run-as-", dir="/tmp"))
        var_dir.chmod(0o711)
        settings.VAR_DIR = var_dir
        settings.OPSCENTER_RUN_AS = JOB_USER
        dave = users["dave"]
        upload(project, dave, "ref.csv", b"secret sauce")
        upload(project, dave, "lib.py", b"print('lib as', __import__('getpass').getuser())\n")
        publish(project, dave, READER)
        instance = run(Node.objects.get(name="reader"))
        log = log_of(instance)
        assert instance.state == "succeeded", log
        assert "ref=secret sauce" in log
        assert f"lib as {JOB_USER}" in log


class SlowFile(File):
    def read(self, size=-1):
        time.sleep(0.05)
        return self.file.read(size)


class SlowStorage(FileSystemStorage):
    """Storage that hands files out slowly, as a distant object store does."""

    def open(self, name, mode="rb"):
        return SlowFile(super().open(name, mode).file)


def test_a_stop_while_files_are_copied_ends_the_attempt_stopped(
    project, users, settings, storage_dir, monkeypatch
):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": f"{__name__}.SlowStorage",
            "OPTIONS": {"location": str(storage_dir)},
        },
    }
    monkeypatch.setattr("apps.resources.workdir.CHUNK", 10)
    upload(project, users["dave"], "ref.csv", b"x" * 2000)  # 200 slow reads: 10 s
    publish(
        project,
        users["dave"],
        spec("reader", type="shell", content="cat ref.csv", resources=["ref.csv"]),
    )
    instance = instance_create(Node.objects.get(name="reader"), SCHEDULED)
    done = _drain_in_thread(timeout=30)
    deadline = time.monotonic() + 15
    while Instance.objects.get(pk=instance.pk).state != "running":
        assert time.monotonic() < deadline, "the attempt never started"
        time.sleep(0.05)
    time.sleep(0.3)
    instance_stop(instance=Instance.objects.get(pk=instance.pk), by=users["olga"], source="api")
    assert done.wait(20), "the attempt did not end after the stop"
    attempt = Attempt.objects.get(instance=instance)
    assert attempt.state == "stopped", log_of(instance)
    assert "cannot run: instance is now stopped" in log_of(instance)
    assert (attempt.finished_at - attempt.started_at).total_seconds() < 8
