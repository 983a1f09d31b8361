"""`opscenter backup` and `opscenter restore FILE --project CODE`."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.backups.models import Backup
from apps.nodes.models import Node

from .archives import GOOD, build
from .builders import acme_setup


def opscenter(*args: str) -> str:
    out = StringIO()
    call_command("opscenter", *args, stdout=out)
    return out.getvalue()


def test_backup_prints_id_path_and_checksum(project, users, storage_dir):
    output = opscenter("backup")
    backup = Backup.objects.get()
    assert f"backup {backup.pk}" in output
    assert f"sha256  {backup.sha256}" in output
    assert str(storage_dir / backup.path) in output


def test_restore_a_file_dry_run_then_for_real(project, users, storage_dir):
    acme_setup(project, users)
    opscenter("backup")
    path = storage_dir / Backup.objects.get().path
    Node.objects.filter(project=project, name="report").delete()

    output = opscenter("restore", str(path), "--project", "acme", "--dry-run", "--as", "alice")
    assert "acme would restore into acme" in output
    assert "nodes: 1 added, 0 changed, 0 removed, 3 unchanged" in output
    assert "  + report" in output
    assert not Node.objects.filter(project=project, name="report").exists()

    answer = json.loads(opscenter("restore", str(path), "--project", "acme", "--json"))
    assert answer["dry_run"] is False and answer["published"]["created"] == ["report"]
    assert Node.objects.filter(project=project, name="report").exists()


def test_restore_by_backup_id(project, users):
    opscenter("backup")
    backup = Backup.objects.get()
    output = opscenter("restore", str(backup.pk), "--project", "acme", "--dry-run")
    assert "nodes: 0 added" in output


def test_restore_refuses_bad_input_clearly(project, users, tmp_path):
    with pytest.raises(CommandError, match="no archive"):
        opscenter("restore", str(tmp_path / "none.tar.gz"), "--project", "acme")
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(build(GOOD, manifest=False))
    with pytest.raises(CommandError, match="manifest.json missing"):
        opscenter("restore", str(bad), "--project", "acme")
    with pytest.raises(CommandError, match="--project: no project"):
        opscenter("restore", str(bad), "--project", "nope")
    with pytest.raises(CommandError, match="needs the admin role"):
        opscenter("restore", str(bad), "--project", "acme", "--as", "olga")
