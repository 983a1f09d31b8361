"""A project worth backing up, built through the normal services."""

import io
import tarfile

from apps.backups import services
from apps.projects.models import Datasource, Project
from apps.projects.services import datasource_create, variable_set
from apps.resources.services import resource_upload
from tests.nodes.helpers import publish, spec

PASSWORD = "pw-Secret-4711"
DSN_SECRET = "ssl-Secret-0815"


def shell(name: str, script: str, **fields) -> dict:
    return spec(name, type="shell", content=script, **fields)


def acme_setup(project: Project, users) -> None:
    """acme: a PostgreSQL datasource with a password (and, written before the DSN rule,
    a secret DSN parameter), a SQLite one, variables, a resource, and a small pipeline."""
    alice = users["alice"]
    datasource_create(
        project=project,
        name="warehouse",
        kind="postgresql",
        dsn="host=db.example dbname=sales user=etl",
        password=PASSWORD,
        user=alice,
    )
    # A row from before secrets were refused in a DSN: the backup must still drop it.
    Datasource.objects.create(
        project=project,
        name="legacy",
        kind="postgresql",
        dsn=f"host=old user=etl sslpassword={DSN_SECRET}",
    )
    datasource_create(
        project=project, name="local", kind="sqlite", path="/tmp/local.db", user=alice
    )
    variable_set(project=project, name="region", value="eu", user=alice)
    variable_set(project=project, name="batch", value="100", user=alice)
    resource_upload(
        project=project, name="ref.csv", fileobj=io.BytesIO(b"id,name\n1,a\n"), user=alice
    )
    publish(
        project,
        alice,
        spec("start"),
        shell("extract", "echo extract ${var.region}\n", upstream=["start"], resources=["ref.csv"]),
        shell("transform", "echo transform\necho step 2\n", upstream=["extract"]),
        shell("report", "echo report\n", upstream=["transform"]),
    )


def backup_now(user):
    return services.backup_create(user=user, source="cli")


def archive_bytes(backup, storage_dir) -> bytes:
    return (storage_dir / backup.path).read_bytes()


def members_of(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
