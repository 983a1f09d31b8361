"""The backup archive format: writing one, and reading one member by member, checked.

One `.tar.gz` (format version 1):

    manifest.json                      first: what the archive holds
    global/<kind>.jsonl                configuration of every project (resource groups, ...)
    projects/<code>/<kind>.jsonl       one member per project and kind, one JSON record a line
    projects/<code>/files/<sha256>     files a kind archives (resources), once per content

manifest.json:

    {"format": "opscenter-backup", "format_version": 1, "created_at": ISO 8601,
     "projects": [codes],
     "members": [{"path", "sha256", "size", "kind", "project", "records"}, ...]}

The gzip stream is written in independent members of COMPRESS_BLOCK bytes each (any
gzip reader, `tar xzf` included, reads them as one file). Every member but the manifest
is listed there with its SHA-256 and size. Readers refuse
anything they cannot trust before using it: a member outside that list, a path that
could escape a directory (`..`, absolute, links), a checksum or size that differs, too
many members or too many bytes once decompressed. Nothing is ever extracted to disk by
name; members are read one by one as streams.
"""

import dataclasses
import datetime
import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from apps.core.errors import ValidationFailed

FORMAT = "opscenter-backup"
FORMAT_VERSION = 1
SUPPORTED_VERSIONS = (1,)
MANIFEST = "manifest.json"
# The manifest lists every member; it is read whole, so it is bounded on its own.
MANIFEST_MAX_BYTES = 64 * 1024 * 1024
CHUNK = 1024 * 1024
# gzip's own default level, as `tar czf` uses it: the archive is written once a day and
# read rarely, so the last few percent of size are not worth twice the CPU.
COMPRESS_LEVEL = 6
# The tar stream is compressed in blocks of this size, each a gzip member of its own
# (RFC 1952 allows any number; every gzip reader joins them), on up to COMPRESS_THREADS
# threads at once (zlib lets go of the GIL while it works), as pigz does.
COMPRESS_BLOCK = 1024 * 1024
COMPRESS_THREADS = min(2, os.cpu_count() or 1)
# Reads of the tar stream: small enough that tarfile's buffer slicing stays cheap.
TAR_BUFFER = 64 * 1024
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class ArchiveRefused(ValidationFailed):
    """An archive that cannot be trusted or read; `errors` name the problem."""

    def __init__(self, message: str, *, field: str = "archive", status: int = 422):
        super().__init__(f"archive refused: {message}", [{"field": field, "message": message}])
        self.status_code = status


class ArchiveTooLarge(ArchiveRefused):
    def __init__(self, message: str, *, field: str = "archive"):
        super().__init__(message, field=field, status=413)


@dataclass(frozen=True)
class Limits:
    """What a reader accepts. Each bound is checked before the bytes it bounds are read."""

    max_archive_bytes: int
    max_members: int
    max_uncompressed_bytes: int

    @classmethod
    def from_settings(cls) -> "Limits":
        from django.conf import settings

        return cls(
            max_archive_bytes=settings.OPSCENTER_BACKUP_MAX_BYTES,
            max_members=settings.OPSCENTER_BACKUP_MAX_MEMBERS,
            max_uncompressed_bytes=settings.OPSCENTER_BACKUP_MAX_UNCOMPRESSED_BYTES,
        )

    def admitting(self, size: int) -> "Limits":
        """These limits, taking an archive of `size` bytes: one made here, whose recorded
        checksum vouches for it, may be larger than an upload may be."""
        return dataclasses.replace(self, max_archive_bytes=max(self.max_archive_bytes, size))


def member_path_problem(path: Any) -> str | None:
    """Why `path` may not name a member, or None: only relative paths of plain parts, so no
    reader that ever extracts it could write outside its directory."""
    if not isinstance(path, str) or not path:
        return "an empty member path"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return f"member {path!r} has an absolute path"
    if "\\" in path or "\x00" in path:
        return f"member {path!r} has a backslash or NUL in its path"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return f"member {path!r} has a path that escapes the archive ('..', '.' or '//')"
    return None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    return str(value)


def json_line(record: dict) -> bytes:
    return (
        json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=_json_default) + "\n"
    ).encode()


# --- writing ---------------------------------------------------------------------------


@dataclass
class _Spooled:
    path: str
    file: Path
    size: int
    sha256: str
    kind: str
    project: str | None
    records: int


@dataclass
class _External:
    """A file another part of opscenter stores (a resource version): copied into the
    archive when it is assembled, checked against the size and SHA-256 it was stored with."""

    path: str
    size: int
    sha256: str
    kind: str
    project: str | None
    open: Callable[[], IO[bytes]]
    label: str


class _HashingWriter(io.RawIOBase):
    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.raw.write(data)
        return len(data)


class _CheckedReader(io.RawIOBase):
    """Reads `raw`, hashing what passes through."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _gzip_member(block: bytes, level: int) -> bytes:
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
    return compressor.compress(block) + compressor.flush()


class _GzipBlocks(io.RawIOBase):
    """A gzip file written as one member per COMPRESS_BLOCK of input, compressed on a few
    threads and written in order; at most two blocks per thread wait in memory."""

    def __init__(self, raw: IO[bytes], *, level: int, threads: int):
        self.raw = raw
        self.level = level
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="gzip") if threads > 1 else None
        self.waiting: deque = deque()
        self.limit = 2 * threads
        self.buffer = bytearray()
        self.members = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.buffer += data
        while len(self.buffer) >= COMPRESS_BLOCK:
            self._submit(bytes(self.buffer[:COMPRESS_BLOCK]))
            del self.buffer[:COMPRESS_BLOCK]
        return len(data)

    def _submit(self, block: bytes) -> None:
        self.members += 1
        if self.pool is None:
            self.raw.write(_gzip_member(block, self.level))
            return
        self.waiting.append(self.pool.submit(_gzip_member, block, self.level))
        while len(self.waiting) > self.limit:
            self.raw.write(self.waiting.popleft().result())

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self.buffer or not self.members:
                self._submit(bytes(self.buffer))
            while self.waiting:
                self.raw.write(self.waiting.popleft().result())
        finally:
            if self.pool is not None:
                self.pool.shutdown(cancel_futures=True)
            super().close()


class ArchiveWriter:
    """Builds an archive without holding its content in memory: each records member is
    spooled to a file in `workdir` as it is produced (its size and SHA-256 counted on
    the way), so the manifest can come first; files are copied in at `assemble`."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.members: list[_Spooled | _External] = []
        self.paths: set[str] = set()

    def _claim(self, path: str) -> None:
        problem = member_path_problem(path)
        if problem or path == MANIFEST or path in self.paths:
            raise ValueError(problem or f"member {path!r} added twice")
        self.paths.add(path)

    def add_records(
        self, path: str, records: Iterable[dict], *, kind: str, project: str | None
    ) -> int:
        """Write `records` as JSON lines into member `path`; answers how many."""
        self._claim(path)
        spool = self.workdir / f"{len(self.members):06d}.jsonl"
        sha, size, count = hashlib.sha256(), 0, 0
        with spool.open("wb") as out:
            for record in records:
                line = json_line(record)
                out.write(line)
                sha.update(line)
                size += len(line)
                count += 1
        self.members.append(_Spooled(path, spool, size, sha.hexdigest(), kind, project, count))
        return count

    def add_file(
        self,
        path: str,
        *,
        size: int,
        sha256: str,
        open: Callable[[], IO[bytes]],
        kind: str,
        project: str | None,
        label: str,
    ) -> None:
        self._claim(path)
        self.members.append(_External(path, size, sha256, kind, project, open, label))

    def manifest(self, *, created_at: datetime.datetime, projects: list[str]) -> dict:
        entries = []
        for member in self.members:
            entry = {
                "path": member.path,
                "sha256": member.sha256,
                "size": member.size,
                "kind": member.kind,
                "project": member.project,
            }
            if isinstance(member, _Spooled):
                entry["records"] = member.records
            entries.append(entry)
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": created_at.isoformat(),
            "projects": projects,
            "members": entries,
        }

    def assemble(
        self, out: IO[bytes], *, created_at: datetime.datetime, projects: list[str]
    ) -> tuple[str, int]:
        """Write the archive to `out`; answers its (SHA-256, size)."""
        mtime = int(created_at.timestamp())
        hashing = _HashingWriter(out)
        with _GzipBlocks(hashing, level=COMPRESS_LEVEL, threads=COMPRESS_THREADS) as gz:
            with tarfile.open(
                fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT, bufsize=TAR_BUFFER
            ) as tar:
                manifest = json.dumps(
                    self.manifest(created_at=created_at, projects=projects), indent=1
                ).encode()
                tar.addfile(_info(MANIFEST, len(manifest), mtime), io.BytesIO(manifest))
                for member in self.members:
                    info = _info(member.path, member.size, mtime)
                    if isinstance(member, _Spooled):
                        with member.file.open("rb") as data:
                            tar.addfile(info, data)
                        member.file.unlink()
                        continue
                    with member.open() as raw:
                        checked = _CheckedReader(raw)
                        try:
                            tar.addfile(info, checked)
                        except OSError as exc:  # shorter than its recorded size
                            raise ArchiveSourceChanged(f"{member.label}: {exc}") from exc
                    if checked.sha.hexdigest() != member.sha256:
                        raise ArchiveSourceChanged(
                            f"{member.label}: its stored file no longer has the SHA-256 it was "
                            f"stored with ({member.sha256[:12]}…); the storage holds another "
                            "content"
                        )
        return hashing.sha.hexdigest(), hashing.size


class ArchiveSourceChanged(Exception):
    """A stored file that does not match its record: the backup would not be faithful."""


def _info(path: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    info.type = tarfile.REGTYPE
    return info


# --- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestMember:
    path: str
    sha256: str
    size: int
    kind: str
    project: str | None
    records: int | None


@dataclass
class Manifest:
    format_version: int
    created_at: datetime.datetime
    projects: list[str]
    members: dict[str, ManifestMember] = field(default_factory=dict)

    def member(self, *, kind: str, project: str | None) -> ManifestMember | None:
        path = f"projects/{project}/{kind}.jsonl" if project else f"global/{kind}.jsonl"
        return self.members.get(path)


class _Counted(io.RawIOBase):
    """The decompressed stream, counted: past `limit` bytes the archive is refused, so a
    small file that inflates without end (a gzip bomb) is stopped while it is read."""

    def __init__(self, raw: IO[bytes], limit: int):
        self.raw = raw
        self.limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n if n is not None and n >= 0 else CHUNK)
        self.count += len(data)
        if self.count > self.limit:
            raise ArchiveTooLarge(
                f"more than {self.limit:,} bytes once decompressed "
                "(OPSCENTER_BACKUP_MAX_UNCOMPRESSED_BYTES)"
            )
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class MemberStream(_CheckedReader):
    """One member's bytes as they are read from the archive, hashed on the way."""

    def __init__(self, raw: IO[bytes], entry: ManifestMember):
        super().__init__(raw)
        self.entry = entry

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    def records(self) -> Iterator[dict]:
        """The member's JSON lines, one record at a time."""
        text = io.TextIOWrapper(io.BufferedReader(self, CHUNK), encoding="utf-8")
        try:
            for number, line in enumerate(text, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ArchiveRefused(
                        f"member {self.entry.path!r} line {number} is not JSON: {exc.msg}"
                    ) from exc
                if not isinstance(record, dict):
                    raise ArchiveRefused(
                        f"member {self.entry.path!r} line {number} is not a JSON object"
                    )
                yield record
        except UnicodeDecodeError as exc:
            raise ArchiveRefused(f"member {self.entry.path!r} is not UTF-8 text") from exc
        finally:
            text.detach()


# consume(entry, stream) reads as much of the member as it wants; the rest is read (and
# hashed) after it returns.
Consumer = Callable[[ManifestMember, MemberStream], None]


def _manifest_parse(data: bytes, limits: Limits) -> Manifest:
    try:
        raw = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArchiveRefused(f"manifest.json is not JSON: {exc}", field="manifest") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ArchiveRefused(
            f"manifest.json does not describe an {FORMAT} archive", field="manifest"
        )
    version = raw.get("format_version")
    if version not in SUPPORTED_VERSIONS:
        raise ArchiveRefused(
            f"unknown format version {version!r}; this opscenter reads version "
            f"{', '.join(map(str, SUPPORTED_VERSIONS))}",
            field="manifest.format_version",
        )
    try:
        created_at = datetime.datetime.fromisoformat(raw.get("created_at"))
        if created_at.tzinfo is None:
            raise ValueError("no UTC offset")
    except (TypeError, ValueError) as exc:
        raise ArchiveRefused(
            "created_at is not an ISO 8601 time with its offset", field="manifest.created_at"
        ) from exc
    projects = raw.get("projects")
    if not isinstance(projects, list) or not all(isinstance(p, str) and p for p in projects):
        raise ArchiveRefused("projects is not a list of project codes", field="manifest.projects")
    entries = raw.get("members")
    if not isinstance(entries, list):
        raise ArchiveRefused("members is not a list", field="manifest.members")
    if len(entries) + 1 > limits.max_members:
        raise ArchiveTooLarge(
            f"{len(entries) + 1:,} members; at most {limits.max_members:,} "
            "(OPSCENTER_BACKUP_MAX_MEMBERS)",
            field="manifest.members",
        )
    manifest = Manifest(format_version=version, created_at=created_at, projects=projects)
    total = 0
    for index, entry in enumerate(entries):
        where = f"manifest.members.{index}"
        if not isinstance(entry, dict):
            raise ArchiveRefused("not an object", field=where)
        path = entry.get("path")
        problem = member_path_problem(path)
        if problem:
            raise ArchiveRefused(problem, field=f"{where}.path")
        if path == MANIFEST or path in manifest.members:
            raise ArchiveRefused(f"member {path!r} is listed twice", field=f"{where}.path")
        sha, size = entry.get("sha256"), entry.get("size")
        if not isinstance(sha, str) or not SHA256_RE.match(sha):
            raise ArchiveRefused(f"member {path!r} has no SHA-256", field=f"{where}.sha256")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ArchiveRefused(f"member {path!r} has no size", field=f"{where}.size")
        total += size
        if total > limits.max_uncompressed_bytes:
            raise ArchiveTooLarge(
                f"its members add up to more than {limits.max_uncompressed_bytes:,} bytes "
                "(OPSCENTER_BACKUP_MAX_UNCOMPRESSED_BYTES)",
                field=f"{where}.size",
            )
        project = entry.get("project")
        records = entry.get("records")
        manifest.members[path] = ManifestMember(
            path=path,
            sha256=sha,
            size=size,
            kind=str(entry.get("kind") or ""),
            project=project if isinstance(project, str) else None,
            records=records if isinstance(records, int) else None,
        )
    return manifest


def archive_read(
    fileobj: IO[bytes],
    *,
    size: int,
    limits: Limits,
    consume: Consumer | None = None,
    expected_sha256: str | None = None,
    on_manifest: Callable[[Manifest], None] | None = None,
) -> tuple[Manifest, str]:
    """Read and check a whole archive, handing each member to `consume` as a stream.

    Answers (manifest, the archive's SHA-256). Raises ArchiveRefused on the first problem,
    after which the caller must use nothing it was handed: a member is only known good
    once the whole archive was read. `size` is the file's size, checked against the limit
    before a byte is read; `expected_sha256` the checksum the archive was recorded with."""
    if size > limits.max_archive_bytes:
        raise ArchiveTooLarge(
            f"{size:,} bytes; at most {limits.max_archive_bytes:,} (OPSCENTER_BACKUP_MAX_BYTES)"
        )
    outer = _CheckedReader(fileobj)
    try:
        with gzip.GzipFile(fileobj=outer, mode="rb") as gz:
            counted = _Counted(gz, limits.max_uncompressed_bytes)
            with tarfile.open(fileobj=counted, mode="r|", bufsize=TAR_BUFFER) as tar:
                manifest = _read_members(tar, limits, consume, on_manifest)
                # The rest of the tar stream (its end blocks) and the gzip trailer, whose
                # CRC gzip checks: a truncated or altered file fails here if not before.
                while counted.read(CHUNK):
                    pass
        while outer.read(CHUNK):  # bytes after the gzip stream count for the checksum
            pass
    except ArchiveRefused:
        raise
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error, OSError) as exc:
        raise ArchiveRefused(f"not a readable .tar.gz archive: {exc}") from exc
    digest = outer.sha.hexdigest()
    if expected_sha256 and digest != expected_sha256:
        raise ArchiveRefused(
            f"the archive's SHA-256 is {digest}, not the {expected_sha256} it was recorded "
            "with: the file was changed or damaged",
            field="sha256",
        )
    return manifest, digest


def _read_members(
    tar: tarfile.TarFile,
    limits: Limits,
    consume: Consumer | None,
    on_manifest: Callable[[Manifest], None] | None,
) -> Manifest:
    manifest: Manifest | None = None
    seen: set[str] = set()
    count = 0
    while True:
        member = tar.next()
        if member is None:
            break
        # A stream-mode TarFile remembers every member it passed; this one is done with them.
        tar.members.clear()
        count += 1
        if count > limits.max_members:
            raise ArchiveTooLarge(
                f"more than {limits.max_members:,} members (OPSCENTER_BACKUP_MAX_MEMBERS)"
            )
        name = member.name
        problem = member_path_problem(name)
        if problem:
            raise ArchiveRefused(problem, field="member")
        if member.issym() or member.islnk():
            kind = "symbolic link" if member.issym() else "hard link"
            raise ArchiveRefused(
                f"member {name!r} is a {kind} (to {member.linkname!r}); an archive holds "
                "plain files only",
                field="member",
            )
        if not member.isreg() or member.issparse():
            raise ArchiveRefused(f"member {name!r} is not a plain file", field="member")
        if member.size > limits.max_uncompressed_bytes:
            raise ArchiveTooLarge(
                f"member {name!r} has {member.size:,} bytes, more than the archive may hold"
            )
        if manifest is None:
            if name != MANIFEST:
                raise ArchiveRefused(
                    f"manifest.json missing: the first member is {name!r}", field="manifest"
                )
            if member.size > MANIFEST_MAX_BYTES:
                raise ArchiveTooLarge("manifest.json is too large", field="manifest")
            manifest = _manifest_parse(tar.extractfile(member).read(), limits)
            if on_manifest:
                on_manifest(manifest)
            continue
        entry = manifest.members.get(name)
        if entry is None:
            raise ArchiveRefused(f"member {name!r} is not listed in manifest.json", field="member")
        if name in seen:
            raise ArchiveRefused(f"member {name!r} appears twice", field="member")
        seen.add(name)
        if member.size != entry.size:
            raise ArchiveRefused(
                f"member {name!r} has {member.size:,} bytes; manifest.json says {entry.size:,}",
                field="member",
            )
        stream = MemberStream(tar.extractfile(member), entry)
        if consume:
            consume(entry, stream)
        stream.drain()
        if stream.sha.hexdigest() != entry.sha256:
            raise ArchiveRefused(
                f"member {name!r} does not match its SHA-256 in manifest.json: the archive "
                "was changed or damaged",
                field="member",
            )
    if manifest is None:
        raise ArchiveRefused("manifest.json missing: the archive is empty", field="manifest")
    missing = sorted(set(manifest.members) - seen)
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5])
        raise ArchiveRefused(
            f"{len(missing)} member(s) listed in manifest.json are missing: {shown}",
            field="member",
        )
    return manifest
