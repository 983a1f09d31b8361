"""Archives built by hand with tarfile, good and bad, for the checks' tests."""

import gzip
import hashlib
import io
import json
import tarfile

from apps.backups.archive import FORMAT, FORMAT_VERSION


def manifest_of(members: list[tuple[str, bytes]], **overrides) -> dict:
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": "2026-11-20T02:00:00+00:00",
        "projects": ["acme"],
        "members": [
            {
                "path": name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "size": len(data),
                "kind": name.rpartition("/")[2].removesuffix(".jsonl"),
                "project": "acme",
            }
            for name, data in members
        ],
    }
    manifest.update(overrides)
    return manifest


def _regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    return info, io.BytesIO(data)


def build(
    members: list[tuple[str, bytes]],
    *,
    manifest: dict | None | bool = True,
    tamper: dict[str, bytes] | None = None,
    extra: list[tarfile.TarInfo] = (),
) -> bytes:
    """A .tar.gz of `members` with their manifest first (`manifest=False`: none; a dict:
    that one). `tamper` replaces a member's bytes after the manifest was made; `extra`
    adds raw members (links) at the end."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        if manifest is not False:
            document = manifest if isinstance(manifest, dict) else manifest_of(members)
            tar.addfile(*_regular("manifest.json", json.dumps(document).encode()))
        for name, data in members:
            data = (tamper or {}).get(name, data)
            tar.addfile(*_regular(name, data))
        for info in extra:
            tar.addfile(info)
    return out.getvalue()


def jsonl(*records: dict) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


GOOD = [
    ("projects/acme/variables.jsonl", jsonl({"name": "region", "value": "eu"})),
    ("projects/acme/nodes.jsonl", b""),
]
