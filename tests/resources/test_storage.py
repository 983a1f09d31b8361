"""Where resource files go: OPSCENTER_STORAGE_DIR by default, any Django storage backend
(django-storages' S3 and the like) by OPSCENTER_STORAGE_BACKEND and
OPSCENTER_STORAGE_OPTIONS; and resources work through a backend that is no directory."""

import io
import json
import os
import subprocess
import sys

import pytest

from apps.nodes.models import Node
from apps.resources.selectors import resource_version_open
from apps.resources.services import resource_upload
from tests.nodes.helpers import publish, spec
from tests.resources.test_runs import log_of, run

SHOW = (
    "import django, json; django.setup(); from django.conf import settings; "
    "print(json.dumps(settings.STORAGES['default']))"
)


def storages(tmp_path, **env) -> subprocess.CompletedProcess:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPSCENTER_", "DATABASE_URL"))
    }
    environment.update(
        DEBUG="1",
        DJANGO_SETTINGS_MODULE="opscenter.settings",
        OPSCENTER_VAR_DIR=str(tmp_path / "var"),
        **env,
    )
    return subprocess.run(
        [sys.executable, "-c", SHOW],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
    )


def test_the_default_is_a_directory_in_the_runtime_directory(tmp_path):
    default = json.loads(storages(tmp_path).stdout)
    assert default["BACKEND"] == "django.core.files.storage.FileSystemStorage"
    assert default["OPTIONS"]["location"] == str(tmp_path / "var" / "storage")
    # Readable by the user attempts run as (OPSCENTER_RUN_AS).
    assert default["OPTIONS"]["file_permissions_mode"] == 0o644
    moved = json.loads(storages(tmp_path, OPSCENTER_STORAGE_DIR="/srv/files").stdout)
    assert moved["OPTIONS"]["location"] == "/srv/files"


def test_s3_or_any_backend_by_environment(tmp_path):
    options = {"bucket_name": "opscenter", "endpoint_url": "https://minio.example:9000"}
    s3 = json.loads(
        storages(
            tmp_path,
            OPSCENTER_STORAGE_BACKEND="s3",
            OPSCENTER_STORAGE_OPTIONS=json.dumps(options),
        ).stdout
    )
    assert s3 == {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}
    other = json.loads(
        storages(
            tmp_path, OPSCENTER_STORAGE_BACKEND="django.core.files.storage.InMemoryStorage"
        ).stdout
    )
    assert other == {"BACKEND": "django.core.files.storage.InMemoryStorage", "OPTIONS": {}}


@pytest.mark.parametrize("options", ["{not json", "[1, 2]"])
def test_bad_options_stop_the_start_naming_the_variable(tmp_path, options):
    result = storages(tmp_path, OPSCENTER_STORAGE_OPTIONS=options)
    assert result.returncode != 0
    assert "OPSCENTER_STORAGE_OPTIONS: not a JSON object" in result.stderr


def cat_ref_csv(project, user) -> str:
    """Publish a node that prints ref.csv, run it through the worker, answer its log."""
    publish(
        project, user, spec("reader", type="shell", content="cat ref.csv", resources=["ref.csv"])
    )
    instance = run(Node.objects.get(name="reader"))
    log = log_of(instance)
    assert instance.state == "succeeded", log
    return log


@pytest.mark.django_db(transaction=True)
def test_resources_run_through_a_storage_that_is_no_directory(project, users, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    version = resource_upload(
        project=project, name="ref.csv", fileobj=io.BytesIO(b"in memory"), user=users["dave"]
    )
    with resource_version_open(version) as handle:
        assert handle.read() == b"in memory"
    log = cat_ref_csv(project, users["dave"])
    assert "in memory" in log


@pytest.fixture
def s3_bucket(settings, closed_port):
    """An S3 endpoint (moto's server, spoken to over HTTP) with a bucket, as the default
    storage through django-storages' S3Storage."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = closed_port
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    options = {
        "bucket_name": "opscenter-files",
        "endpoint_url": f"http://127.0.0.1:{port}",
        "access_key": "test-key",
        "secret_key": "test-secret",
        "region_name": "us-east-1",
    }
    client = boto3.client(
        "s3",
        endpoint_url=options["endpoint_url"],
        aws_access_key_id="test-key",
        aws_secret_access_key="test-secret",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=options["bucket_name"])
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
    }
    yield client, options["bucket_name"]
    server.stop()


@pytest.mark.django_db(transaction=True)
def test_resources_in_s3(project, users, s3_bucket, api_as):
    client, bucket = s3_bucket
    version = resource_upload(
        project=project, name="ref.csv", fileobj=io.BytesIO(b"from s3"), user=users["dave"]
    )
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [version.file.name] and keys[0].startswith("resources/acme/ref.csv/1-")
    download = api_as("vera").get("/api/projects/acme/resources/ref.csv/download")
    assert b"".join(download.streaming_content) == b"from s3"

    log = cat_ref_csv(project, users["dave"])
    assert "from s3" in log

    publish(project, users["dave"], spec("reader", type="shell", content="echo"))
    assert api_as("alice").delete("/api/projects/acme/resources/ref.csv").status_code == 204
    assert "Contents" not in client.list_objects_v2(Bucket=bucket)
