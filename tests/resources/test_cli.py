"""`opscenter resource upload FILE --project CODE [--name NAME]` and `resource list`."""

import hashlib
import subprocess
import sys

import pytest
from django.core.management.base import CommandError

from apps.audit.models import OperationLog
from apps.resources.models import ResourceVersion
from apps.resources.selectors import resource_version_open
from tests.nodes.test_cli import opscenter


def test_upload_a_file_then_a_new_version_and_list(project, users, tmp_path):
    path = tmp_path / "lookup.csv"
    path.write_bytes(b"a,b\n")
    out = opscenter("resource", "upload", str(path), "--project", "acme")
    digest = hashlib.sha256(b"a,b\n").hexdigest()
    assert out.strip() == f"acme/lookup.csv v1: uploaded, 4 bytes, sha256 {digest}"
    again = opscenter("resource", "upload", str(path), "--project", "acme")
    assert "v1: unchanged" in again
    path.write_bytes(b"a,b\n1,2\n")
    opscenter("resource", "upload", str(path), "--project", "acme", "--as", "dave")
    opscenter("resource", "upload", str(path), "--project", "acme", "--name", "other.csv")
    latest = ResourceVersion.objects.get(resource__name="lookup.csv", number=2)
    with resource_version_open(latest) as handle:
        assert handle.read() == b"a,b\n1,2\n"
    assert latest.uploaded_by == users["dave"]
    log = OperationLog.objects.filter(action="resource.upload", source="cli")
    assert log.count() == 3

    lines = opscenter("resource", "list", "--project", "acme", "--as", "vera").splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "SIZE", "VERSIONS", "UPLOADED_AT", "SHA256"]
    assert lines[1].split()[:5] == ["lookup.csv", "v2", "8", "bytes", "2"]
    assert lines[2].split()[:2] == ["other.csv", "v1"]


def test_refusals_are_clear_errors(project, users, tmp_path, settings):
    path = tmp_path / "x.bin"
    path.write_bytes(b"x" * 11)
    settings.OPSCENTER_RESOURCE_MAX_BYTES = 10
    cases = [
        (("upload", str(tmp_path / "missing"), "--project", "acme"), "no such file"),
        (("upload", str(tmp_path), "--project", "acme"), "is a directory"),
        (("upload", str(path), "--project", "acme"), "larger than the limit of 10 bytes"),
        (("upload", str(path), "--project", "acme", "--name", "../x"), "name: a file name"),
        (("upload", str(path), "--project", "nope"), "project 'nope' not found"),
        (("upload", str(path), "--project", "acme", "--as", "vera"), "needs the developer role"),
        (("upload", str(path), "--project", "acme", "--as", "stranger"), "not found"),
        (("upload", str(path), "--project", "acme", "--as", "ghost"), "unknown user 'ghost'"),
        (("list", "--project", "acme", "--as", "stranger"), "project 'acme' not found"),
    ]
    for args, message in cases:
        with pytest.raises(CommandError) as caught:
            opscenter("resource", *args)
        assert message in str(caught.value), (args, str(caught.value))
    assert not ResourceVersion.objects.exists()
    assert opscenter("resource", "list", "--project", "acme").strip() == (
        "no resources in project acme"
    )


def test_the_command_line_itself(tmp_path, settings):
    """Without a subcommand argparse answers usage, not a traceback."""
    result = subprocess.run(
        [sys.executable, "manage.py", "opscenter", "resource"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=settings.BASE_DIR,
        env={"DEBUG": "1", "PATH": "/usr/bin:/bin", "OPSCENTER_VAR_DIR": str(tmp_path)},
    )
    assert result.returncode != 0
    assert "{upload,list}" in result.stderr and "Traceback" not in result.stderr
