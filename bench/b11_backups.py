"""B11 backup and dry-run restore: a backup (apps.backups.services.backup_create) of a
database holding a project of NODES[scale] shell nodes (a script each, a chain of ten,
every tenth naming a resource) and FILES[scale] resource files of FILE_BYTES[scale]
bytes of CSV text, then a dry-run restore of that project into itself (every record read
back, checked and diffed).

Baseline, in the same run over the same data: `pg_dump --data-only` of the tables the
backup reads (projects, datasources, variables, nodes, versions, dependencies,
resources, their versions and pins, the configuration, monitoring rules, baselines,
field rules) plus `tar czf` of the same resource files. On SQLite (the smoke test) the
dump is a SELECT of each table written to a file.

Each side runs twice; the faster run counts. Peak memory: the process's resident set
sampled every 5 ms during the backup and the restore.
"""

import csv
import hashlib
import random
import subprocess
import tempfile
import time
from pathlib import Path

from django.db import connection

from bench import common
from bench.b7_time_pass import RssPeak

PROJECT = "bench-backups"
NODES = {"tiny": 20, "small": 1_000, "full": 10_000}
FILES = {"tiny": 5, "small": 100, "full": 1_000}
FILE_BYTES = {"tiny": 4_096, "small": 16_384, "full": 65_536}
RUNS = 2
RATIO_GOAL = 2.0
MEMORY_GOAL_MB = 300
TABLES = [
    "projects_project",
    "projects_datasource",
    "projects_variable",
    "nodes_node",
    "nodes_nodeversion",
    "nodes_nodedependency",
    "resources_resource",
    "resources_resourceversion",
    "resources_resourcepin",
    "configuration_resourcegroup",
    "configuration_throttlerule",
    "configuration_runtimeconfig",
    "monitoring_monitorrule",
    "baselines_baseline",
    "quality_fieldrule",
]
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india")


def _script(index: int) -> str:
    return (
        "set -eu\n"
        f"# step {index} of the nightly load\n"
        f'psql "$WAREHOUSE" -c "INSERT INTO stage_{index % 97} SELECT * FROM raw_{index % 89} '
        "WHERE biz_date = '${bizdate}'\"\n"
        f'echo "loaded partition {index} for ${{bizdate}}"\n'
    )


def _file_content(index: int, size: int) -> bytes:
    """CSV text, as reference data is: compressible, not constant."""
    rng = random.Random(index)
    lines, total = [], 0
    while total < size:
        line = f"{rng.randrange(10**6)},{rng.choice(WORDS)},{rng.random():.6f},{index}\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()[:size]


def _load(scale: str):
    """The project, its nodes with scripts and its resource files; loaded once per
    database (a second run finds them)."""
    from django.core.files.base import ContentFile

    from apps.core import clock
    from apps.nodes.models import Node, NodeVersion
    from apps.nodes.specs import spec_hash
    from apps.projects.models import Variable
    from apps.resources.models import Resource, ResourcePin, ResourceVersion

    owner = common.bench_user()
    project = common.bench_project(PROJECT)
    count, files = NODES[scale], FILES[scale]
    if Node.objects.filter(project=project).count() == count:
        return project
    common.nodes_load(
        project, count=count, upstreams=lambda i: [i - 1] if i % 10 else [], owner=owner
    )
    Variable.objects.bulk_create(
        [Variable(project=project, name=f"var_{i}", value=f"value {i}") for i in range(20)]
    )
    now = clock.now()
    resources = Resource.objects.bulk_create(
        [Resource(project=project, name=f"ref_{i:04d}.csv") for i in range(files)]
    )
    versions = []
    for index, resource in enumerate(resources):
        content = _file_content(index, FILE_BYTES[scale])
        version = ResourceVersion(
            resource=resource,
            number=1,
            size_bytes=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
            uploaded_by=owner,
            uploaded_at=now,
        )
        version.file.save(resource.name, ContentFile(content), save=False)
        versions.append(version)
    versions = ResourceVersion.objects.bulk_create(versions)
    # Scripts, and every tenth node naming a resource (pinned, as publish pins it).
    changed, pins = [], []
    nodes = Node.objects.filter(project=project).select_related("current_version")
    for index, node in enumerate(nodes.order_by("name").iterator(chunk_size=2000)):
        version = node.current_version
        spec = {**version.spec, "type": "shell", "content": _script(index)}
        if index % 10 == 0 and versions:
            pinned = versions[(index // 10) % len(versions)]
            spec["resources"] = [pinned.resource.name]
            pins.append(
                ResourcePin(
                    node_version_id=version.pk,
                    resource_version=pinned,
                    name=pinned.resource.name,
                    number=1,
                )
            )
        version.spec, version.spec_hash = spec, spec_hash(spec)
        changed.append(version)
    NodeVersion.objects.bulk_update(changed, ["spec", "spec_hash"], batch_size=2000)
    Node.objects.filter(project=project).update(type="shell")
    ResourcePin.objects.bulk_create(pins, batch_size=2000)
    common.analyze(vacuum=True)
    return project


def _dump(path: Path) -> None:
    """The baseline's database half: the same tables' rows, written to a file."""
    if common.is_postgresql():
        settings = connection.settings_dict
        command = ["pg_dump", "--data-only", "--no-owner", "-f", str(path)]
        for table in TABLES:
            command += ["-t", table]
        command += [
            "-h",
            settings.get("HOST") or "127.0.0.1",
            "-p",
            str(settings.get("PORT") or 5432),
            "-U",
            settings.get("USER") or "postgres",
            settings["NAME"],
        ]
        env = {"PGPASSWORD": settings.get("PASSWORD") or "", "PATH": "/usr/bin:/bin"}
        subprocess.run(command, check=True, env=env, capture_output=True)
        return
    with path.open("w", newline="") as out, connection.cursor() as cursor:
        writer = csv.writer(out)
        for table in TABLES:
            cursor.execute(f"SELECT * FROM {table}")
            for row in cursor.fetchall():
                writer.writerow(row)


def _files_of(project) -> list[str]:
    from apps.resources.models import ResourceVersion

    return list(
        ResourceVersion.objects.filter(resource__project=project).values_list("file", flat=True)
    )


def _baseline(project, workdir: Path) -> float:
    from django.conf import settings

    names = _files_of(project)
    listing = workdir / "files.txt"
    listing.write_text("\n".join(names) + "\n")
    started = time.perf_counter()
    _dump(workdir / "dump.sql")
    subprocess.run(
        [
            "tar",
            "czf",
            str(workdir / "files.tar.gz"),
            "-C",
            str(settings.OPSCENTER_STORAGE_DIR),
            "-T",
            str(listing),
        ],
        check=True,
    )
    return time.perf_counter() - started


def _ours(project, user) -> dict:
    from apps.backups.restore import restore_backup
    from apps.backups.services import backup_create

    with RssPeak() as memory:
        started = time.perf_counter()
        backup = backup_create(user=user, source="cli")
        made = time.perf_counter()
        result = restore_backup(backup=backup, project=project, user=user, dry_run=True)
        done = time.perf_counter()
    return {
        "backup": made - started,
        "restore": done - made,
        "memory": memory,
        "backup_row": backup,
        "result": result,
    }


def run(scale: str) -> list[dict]:
    common.check_scale(scale)
    project = _load(scale)
    user = common.bench_user()
    from apps.nodes.models import Node

    nodes_total = Node.objects.count()
    ours, baselines = [], []
    with tempfile.TemporaryDirectory(prefix="b11-") as workdir:
        for _ in range(RUNS):
            baselines.append(_baseline(project, Path(workdir)))
            ours.append(_ours(project, user))
    best = min(ours, key=lambda o: o["backup"] + o["restore"])
    baseline = min(baselines)
    diff = best["result"].diffs
    assert diff["nodes"].unchanged and not diff["nodes"].to_write, (
        "the project restores onto itself"
    )
    assert len(diff["resources"].unchanged) == FILES[scale]
    peak = max(o["memory"].peak_mb for o in ours)
    backup = best["backup_row"]
    note = (
        f"{NODES[scale]:,} nodes, {FILES[scale]:,} files of {FILE_BYTES[scale] // 1024} KiB; "
        f"archive {backup.size_bytes / 2**20:,.1f} MiB"
        + (f"; {nodes_total:,} nodes in all projects" if nodes_total != NODES[scale] else "")
    )
    both = best["backup"] + best["restore"]
    return [
        common.result(
            id="B11",
            workload="backups",
            figure="backup + dry-run restore",
            value=both,
            baseline=baseline,
            unit="s",
            goal=f"<= {RATIO_GOAL:g}x",
            met=both <= RATIO_GOAL * baseline,
            note=note,
            peak_mb=peak,
        ),
        common.result(
            id="B11",
            workload="backups",
            figure="backup alone",
            value=best["backup"],
            baseline=baseline,
            unit="s",
            goal=f"<= {RATIO_GOAL:g}x",
            met=best["backup"] <= RATIO_GOAL * baseline,
            note=f"dry-run restore {best['restore']:.2f} s",
            peak_mb=peak,
        ),
        common.result(
            id="B11",
            workload="backups",
            figure="peak memory of backup + restore",
            value=peak,
            baseline=None,
            unit="MB",
            goal=f"< {MEMORY_GOAL_MB} MB",
            met=peak < MEMORY_GOAL_MB,
            note=f"{max(o['memory'].delta_mb for o in ours):,.0f} MB over the process before",
            peak_mb=peak,
        ),
    ]


def cleanup() -> None:
    """The backups B11 made go (rows and archives); its project stays for a rerun."""
    from django.core.files.storage import default_storage

    from apps.backups.models import Backup

    for path in Backup.objects.values_list("path", flat=True):
        if path:
            default_storage.delete(path)
    Backup.objects.all().delete()
