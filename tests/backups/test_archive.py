"""The archive's checks on their own: every kind of bad archive is refused naming the
problem, before anything it holds is used."""

import datetime
import hashlib
import io
import tarfile
import zlib

import pytest

from apps.backups.archive import (
    ArchiveRefused,
    ArchiveWriter,
    Limits,
    archive_read,
    member_path_problem,
)

from .archives import GOOD, build, jsonl, manifest_of

LIMITS = Limits(max_archive_bytes=10**7, max_members=100, max_uncompressed_bytes=10**7)


def read(data: bytes, limits: Limits = LIMITS, **kwargs):
    return archive_read(io.BytesIO(data), size=len(data), limits=limits, **kwargs)


def refusal(data: bytes, limits: Limits = LIMITS, **kwargs) -> ArchiveRefused:
    with pytest.raises(ArchiveRefused) as caught:
        read(data, limits, **kwargs)
    return caught.value


def test_a_good_archive_hands_each_member_over_checked():
    seen = {}

    def consume(entry, stream):
        seen[entry.path] = list(stream.records())

    manifest, sha256 = read(build(GOOD), consume=consume)
    assert manifest.projects == ["acme"] and manifest.format_version == 1
    assert seen == {
        "projects/acme/variables.jsonl": [{"name": "region", "value": "eu"}],
        "projects/acme/nodes.jsonl": [],
    }
    assert len(sha256) == 64


def test_the_writer_puts_the_manifest_first_with_every_members_checksum(tmp_path):

    writer = ArchiveWriter(tmp_path)
    writer.add_records(
        "global/things.jsonl", iter([{"a": 1}, {"b": 2}]), kind="things", project=None
    )
    data = b"file content"
    writer.add_file(
        "projects/acme/files/" + hashlib.sha256(data).hexdigest(),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        open=lambda: io.BytesIO(data),
        kind="resources",
        project="acme",
        label="resource x",
    )
    out = io.BytesIO()
    created = datetime.datetime(2026, 11, 20, tzinfo=datetime.UTC)
    sha256, size = writer.assemble(out, created_at=created, projects=["acme"])
    raw = out.getvalue()
    assert size == len(raw) and sha256 == hashlib.sha256(raw).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tar:
        names = tar.getnames()
    assert names[0] == "manifest.json" and len(names) == 3
    manifest, digest = read(raw, expected_sha256=sha256)
    assert digest == sha256
    assert manifest.members["global/things.jsonl"].records == 2


def test_a_member_that_differs_from_its_checksum_is_refused():
    data = build(
        GOOD, tamper={"projects/acme/variables.jsonl": jsonl({"name": "region", "value": "us"})}
    )
    error = refusal(data)
    assert "does not match its SHA-256" in error.detail and "variables.jsonl" in error.detail


def test_an_archive_without_a_manifest_is_refused():
    assert "manifest.json missing" in refusal(build(GOOD, manifest=False)).detail


def test_an_unknown_format_version_is_refused_naming_it():
    error = refusal(build(GOOD, manifest=manifest_of(GOOD, format_version=99)))
    assert "unknown format version 99" in error.detail
    assert error.errors[0]["field"] == "manifest.format_version"


@pytest.mark.parametrize(
    "path, words",
    [
        ("../escape.jsonl", "escapes the archive"),
        ("projects/acme/../../etc/passwd", "escapes the archive"),
        ("/etc/passwd", "absolute path"),
    ],
)
def test_a_member_path_escaping_the_archive_is_refused(path, words):
    members = [*GOOD, (path, b"x")]
    # Listed in the manifest or not, the path itself is refused.
    assert words in refusal(build(members)).detail
    assert words in refusal(build(members, manifest=manifest_of(GOOD))).detail


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_links_are_refused(kind):
    link = tarfile.TarInfo("projects/acme/link.jsonl")
    link.type, link.linkname = kind, "/etc/passwd"
    error = refusal(build(GOOD, extra=[link]))
    assert ("symbolic link" if kind == tarfile.SYMTYPE else "hard link") in error.detail


def test_too_many_members_are_refused_while_reading():
    members = [(f"projects/acme/m{i}.jsonl", b"") for i in range(30)]
    limits = Limits(max_archive_bytes=10**7, max_members=20, max_uncompressed_bytes=10**7)
    # The manifest says so first...
    assert "31 members; at most 20" in refusal(build(members), limits).detail
    # ...and one that lists fewer than it holds is stopped at the first one it does not
    # list, long before the rest is read.
    error = refusal(build(members, manifest=manifest_of(members[:5])), limits)
    assert "'projects/acme/m5.jsonl' is not listed in manifest.json" in error.detail


def test_an_archive_over_the_size_limit_is_refused_before_a_byte_is_read():
    class Unreadable(io.RawIOBase):
        def read(self, n=-1):
            raise AssertionError("read")

    limits = Limits(max_archive_bytes=1024**3, max_members=100, max_uncompressed_bytes=10**7)
    with pytest.raises(ArchiveRefused) as caught:
        archive_read(Unreadable(), size=2 * 1024**3, limits=limits)
    assert caught.value.status_code == 413
    assert "2,147,483,648 bytes; at most 1,073,741,824" in caught.value.detail


def test_a_member_inflating_past_the_limit_is_stopped_while_it_is_read():
    big = [("projects/acme/nodes.jsonl", b"\n" * 5_000_000)]
    data = build(big)
    assert len(data) < 20_000  # a small file...
    limits = Limits(max_archive_bytes=10**6, max_members=10, max_uncompressed_bytes=1_000_000)
    error = refusal(data, limits)  # ...that inflates too far
    assert error.status_code == 413
    assert "decompressed" in error.detail or "add up to more than" in error.detail


def test_a_listed_member_missing_and_an_unlisted_one_are_refused():
    assert "are missing" in refusal(build(GOOD[:1], manifest=manifest_of(GOOD))).detail
    assert (
        "not listed in manifest.json" in refusal(build(GOOD, manifest=manifest_of(GOOD[:1]))).detail
    )


def test_garbage_and_a_truncated_archive_are_refused():
    assert "not a readable .tar.gz" in refusal(b"not an archive at all").detail
    data = build(GOOD)
    assert "not a readable" in refusal(data[: len(data) // 2]).detail
    assert "not a readable" in refusal(zlib.compress(b"x" * 100)).detail


def test_the_archive_checksum_is_checked_when_one_was_recorded():
    error = refusal(build(GOOD), expected_sha256="0" * 64)
    assert error.errors[0]["field"] == "sha256" and "changed or damaged" in error.detail


@pytest.mark.parametrize(
    "path, ok",
    [
        ("projects/acme/nodes.jsonl", True),
        ("a/./b", False),
        ("a//b", False),
        ("C:/x", False),
        ("a\\b", False),
        ("", False),
    ],
)
def test_member_paths(path, ok):
    assert (member_path_problem(path) is None) == ok
