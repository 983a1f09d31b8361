"""Restoring a backup: the dry run's diff, the real restore through publish, atomicity,
secrets, resources, and restoring into another project."""

import io

import pytest

from apps.backups.archive import ArchiveRefused
from apps.backups.restore import restore_archive, restore_backup
from apps.core.errors import NotFound, PermissionDenied, ValidationFailed
from apps.nodes.models import Node, NodeVersion
from apps.nodes.operations import node_offline
from apps.projects.models import Datasource, Membership, Project, Variable
from apps.projects.services import datasource_update, variable_delete, variable_set
from apps.resources.models import ResourceVersion
from apps.resources.selectors import pinned_resources
from apps.resources.services import resource_upload
from tests.nodes.helpers import publish, spec

from .builders import acme_setup, archive_bytes, backup_now, shell


def restore(backup, project, user, **kwargs):
    return restore_backup(backup=backup, project=project, user=user, **kwargs)


def state(project) -> dict:
    """Everything a restore may write, to show a dry run or a refused restore wrote nothing."""
    return {
        "versions": sorted(
            NodeVersion.objects.filter(node__project=project).values_list(
                "node__name", "number", "spec_hash"
            )
        ),
        "status": sorted(Node.objects.filter(project=project).values_list("name", "status")),
        "variables": sorted(Variable.objects.filter(project=project).values_list("name", "value")),
        "datasources": sorted(
            Datasource.objects.filter(project=project).values_list("name", "dsn", "path")
        ),
        "resources": sorted(
            ResourceVersion.objects.filter(resource__project=project).values_list(
                "resource__name", "number", "sha256"
            )
        ),
    }


@pytest.fixture
def acme(project, users):
    acme_setup(project, users)
    return project


@pytest.fixture
def empty(users):
    """An empty project whose admin is alice, with the acme nodes' owner a member."""
    target = Project.objects.create(code="copy", name="Copy")
    Membership.objects.create(project=target, user=users["alice"], role="admin")
    return target


def test_restoring_an_unchanged_project_changes_nothing(acme, users):
    backup = backup_now(users["root"])
    before = state(acme)
    result = restore(backup, acme, users["alice"], dry_run=False)
    assert result.diffs["nodes"].unchanged == ["extract", "report", "start", "transform"]
    assert all(
        not result.diffs[kind].to_write and not result.diffs[kind].removed
        for kind in ("nodes", "variables", "datasources", "resources")
    )
    assert state(acme) == before


def test_the_dry_run_answers_the_diff_after_changes_and_changes_nothing(acme, users):
    alice = users["alice"]
    backup = backup_now(users["root"])
    # After the backup: transform's script changes, load is added, report goes offline,
    # a variable changes and one is added, ref.csv gets a new version.
    publish(
        acme,
        alice,
        shell("transform", "echo transform\necho step 3\n", upstream=["extract"]),
        shell("load", "echo load\n", upstream=["transform"]),
    )
    node_offline(node=Node.objects.get(project=acme, name="report"), by=alice, source="api")
    variable_set(project=acme, name="region", value="us", user=alice)
    variable_set(project=acme, name="extra", value="1", user=alice)
    resource_upload(project=acme, name="ref.csv", fileobj=io.BytesIO(b"id,name\n2,b\n"), user=alice)
    before = state(acme)

    result = restore(backup, acme, alice, dry_run=True)
    answer = result.as_dict()
    # extract still runs the ref.csv it was published with, as in the backup: the
    # resource's newer upload changes the resource, not the node.
    assert answer["nodes"] == {
        "added": [],
        "changed": ["report", "transform"],
        "removed": ["load"],
        "unchanged": ["extract", "start"],
    }
    assert answer["variables"] == {
        "added": [],
        "changed": ["region"],
        "removed": ["extra"],
        "unchanged": ["batch"],
    }
    assert answer["datasources"]["unchanged"] == ["legacy", "local", "warehouse"]
    assert answer["resources"]["changed"] == ["ref.csv"]
    assert answer["errors"] == [] and answer["dry_run"] is True
    assert state(acme) == before

    changes = {c["name"]: c for c in answer["node_changes"]}
    assert "-echo step 3" in changes["transform"]["script_diff"]
    assert "+echo step 2" in changes["transform"]["script_diff"]
    assert changes["report"]["offline"] is True
    assert changes["report"]["fields"] == [] and changes["report"]["script_diff"] == ""


def test_a_real_restore_publishes_new_versions_and_keeps_history(acme, users):
    alice = users["alice"]
    backup = backup_now(users["root"])
    publish(acme, alice, shell("transform", "echo broken\n", upstream=["extract"]))
    publish(acme, alice, shell("load", "echo load\n", upstream=["transform"]))
    variable_delete(variable=Variable.objects.get(project=acme, name="batch"), user=alice)

    result = restore(backup, acme, alice, dry_run=False)

    assert result.published == {"created": [], "updated": ["transform"], "unchanged": []}
    transform = Node.objects.get(project=acme, name="transform")
    # v1 as backed up, v2 broken, v3 the restore: history is never rewritten.
    assert list(transform.versions.order_by("number").values_list("number", flat=True)) == [1, 2, 3]
    assert transform.current_version.spec["content"] == "echo transform\necho step 2\n"
    assert transform.current_version.note.startswith(f"restored from backup #{backup.pk}")
    assert Variable.objects.get(project=acme, name="batch").value == "100"
    # Without remove_missing the node the backup lacks stays online.
    assert Node.objects.get(project=acme, name="load").status == "online"
    assert result.offline == []


def test_remove_missing_takes_the_missing_nodes_offline_dependents_first(acme, users):
    alice = users["alice"]
    backup = backup_now(users["root"])
    publish(
        acme,
        alice,
        shell("load", "echo load\n", upstream=["report"]),
        shell("publish_it", "echo pub\n", upstream=["load"]),
    )
    variable_set(project=acme, name="extra", value="1", user=alice)

    result = restore(backup, acme, alice, dry_run=False, remove_missing=True)

    assert result.offline == ["publish_it", "load"]
    statuses = dict(Node.objects.filter(project=acme).values_list("name", "status"))
    assert statuses["load"] == statuses["publish_it"] == "offline"
    assert not Variable.objects.filter(project=acme, name="extra").exists()


def test_a_restore_that_would_fail_changes_nothing_and_names_every_error(acme, users, empty):
    # dave owns a node; he is not a member of the copy, so he cannot own one there.
    dave = users["dave"]
    publish(acme, dave, shell("daves", "echo mine\n", owner="dave"))
    backup = backup_now(users["root"])
    before = state(empty)

    dry = restore(backup, empty, users["alice"], source_project="acme", dry_run=True)
    assert dry.errors and {e["node"] for e in dry.errors} == {"daves"}
    assert state(empty) == before

    with pytest.raises(ValidationFailed) as caught:
        restore(backup, empty, users["alice"], source_project="acme", dry_run=False)
    assert caught.value.detail.startswith("nothing was restored")
    assert [(e["node"], e["field"]) for e in caught.value.errors] == [("daves", "owner")]
    assert "not a member of project 'copy'" in caught.value.errors[0]["message"]
    assert state(empty) == before


def test_a_refused_restore_removes_the_files_it_stored(acme, users, empty, storage_dir):
    publish(acme, users["dave"], shell("daves", "echo mine\n", owner="dave"))
    backup = backup_now(users["root"])
    files_before = sorted(p for p in (storage_dir / "resources").rglob("*") if p.is_file())
    with pytest.raises(ValidationFailed):
        restore(backup, empty, users["alice"], source_project="acme", dry_run=False)
    assert ResourceVersion.objects.filter(resource__project=empty).count() == 0
    files_after = sorted(p for p in (storage_dir / "resources").rglob("*") if p.is_file())
    assert files_after == files_before


def test_restoring_into_an_empty_project_brings_every_kind(acme, users, empty):
    backup = backup_now(users["root"])
    result = restore(backup, empty, users["alice"], source_project="acme", dry_run=False)

    assert sorted(result.published["created"]) == ["extract", "report", "start", "transform"]
    assert sorted(Node.objects.filter(project=empty).values_list("name", flat=True)) == [
        "extract",
        "report",
        "start",
        "transform",
    ]
    assert dict(Variable.objects.filter(project=empty).values_list("name", "value")) == {
        "region": "eu",
        "batch": "100",
    }
    # Datasources come without their secrets, flagged where one is missing.
    datasources = {d.name: d for d in Datasource.objects.filter(project=empty)}
    assert set(datasources) == {"warehouse", "legacy", "local"}
    assert datasources["warehouse"].restored_without_secret is True
    assert not datasources["warehouse"].has_password
    assert datasources["local"].restored_without_secret is False
    assert result.restored_without_secret == ["warehouse"]
    # The resource came back with its content; the node pins it.
    extract = Node.objects.get(project=empty, name="extract").current_version
    (pinned,) = pinned_resources(extract)
    assert pinned.resource.project == empty
    assert pinned.sha256 == ResourceVersion.objects.get(resource__project=acme).sha256

    # Setting the password again clears the flag.
    datasource_update(
        datasource=datasources["warehouse"], fields={"password": "x"}, user=users["alice"]
    )
    datasources["warehouse"].refresh_from_db()
    assert datasources["warehouse"].restored_without_secret is False

    # A second restore of the same backup finds nothing to do.
    again = restore(backup, empty, users["alice"], source_project="acme", dry_run=True)
    assert again.diffs["nodes"].unchanged == ["extract", "report", "start", "transform"]
    assert again.diffs["resources"].unchanged == ["ref.csv"]


def test_other_projects_upstream_names_keep_naming_them(acme, users, empty):
    # shared.daily is another project's node; acme's "consume" depends on it.
    shared = Project.objects.create(code="shared", name="Shared")
    for code in (shared,):
        Membership.objects.create(project=code, user=users["alice"], role="admin")
    publish(shared, users["alice"], spec("daily"))
    publish(acme, users["alice"], spec("consume", upstream=["shared.daily", "start"]))
    backup = backup_now(users["root"])

    restore(backup, empty, users["alice"], source_project="acme", dry_run=False)
    consume = Node.objects.get(project=empty, name="consume")
    upstream = {
        (n.project.code, n.name) for n in Node.objects.filter(downstream_links__node=consume)
    }
    # Its own project's name follows the restore; the other project's stays.
    assert upstream == {("copy", "start"), ("shared", "daily")}


def test_who_may_restore(acme, users, empty):
    backup = backup_now(users["root"])
    # An operator is not enough: restoring configures the project.
    with pytest.raises(PermissionDenied):
        restore(backup, acme, users["olga"])
    # A stranger to acme cannot restore it into a project they administer.
    Membership.objects.create(project=empty, user=users["stranger"], role="admin")
    with pytest.raises(PermissionDenied) as caught:
        restore(backup, empty, users["stranger"], source_project="acme")
    assert "needs a role in that project" in caught.value.detail
    # Not a member of the target at all: it does not exist for them.
    with pytest.raises(NotFound):
        restore(backup, empty, users["vera"], source_project="acme")


def test_the_source_project_must_be_in_the_backup(acme, users, empty):
    Project.objects.create(code="zeta", name="Zeta")
    backup = backup_now(users["root"])  # acme, copy and zeta
    with pytest.raises(ValidationFailed) as caught:
        restore(backup, empty, users["root"], source_project="nope")
    assert caught.value.errors[0]["field"] == "source_project"
    # No source given: the target's own code when the backup holds several.
    assert restore(backup, empty, users["root"]).source_project == "copy"


def test_an_archive_changed_in_storage_is_refused_before_restoring(acme, users, storage_dir):
    backup = backup_now(users["root"])
    path = storage_dir / backup.path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    before = state(acme)
    with pytest.raises(ArchiveRefused):
        restore(backup, acme, users["alice"], dry_run=False)
    assert state(acme) == before


def test_a_file_restore_checks_the_archive_like_an_upload(acme, users, storage_dir, empty):
    backup = backup_now(users["root"])
    data = archive_bytes(backup, storage_dir)
    result = restore_archive(
        fileobj=io.BytesIO(data),
        size=len(data),
        project=empty,
        user=users["alice"],
        source_project="acme",
    )
    assert result.diffs["nodes"].added == ["extract", "report", "start", "transform"]
