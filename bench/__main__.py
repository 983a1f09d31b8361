"""`python -m bench [--only B1,B4] [--scale tiny|small|full]`: make a fresh PostgreSQL
database, run each workload in its own process, print one table.

The database is DATABASE_URL when it names PostgreSQL, else
postgresql://postgres@127.0.0.1:5432/opscenter_bench. It is dropped, created and
migrated at every run: nothing is cached between runs. Within a run, B4 and B5 share
the 5M-instance dataset (B5 reuses it when its fingerprint matches).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.workload import WORKLOADS

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/opscenter_bench"
ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ["id", "workload", "figure", "opscenter", "baseline", "ratio", "goal", "met", "peak MB"]


def database_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else DEFAULT_URL


def fresh_database(url: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    name = name.split("?")[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=_env(url),
        check=True,
    )


def _env(url: str) -> dict:
    env = dict(os.environ, DATABASE_URL=url, DJANGO_SETTINGS_MODULE="opscenter.settings")
    env.setdefault("OPSCENTER_VAR_DIR", "/tmp/opscenter-bench")
    return env


def machine(url: str) -> str:
    code = "import django; django.setup(); from bench import common; print(common.machine())"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_env(url), check=True, capture_output=True
    )
    return out.stdout.decode().strip()


def _value(row: dict) -> str:
    return f"{row['value']:,.3g} {row['unit']}" if row["value"] is not None else ""


def _fmt(number, unit: str) -> str:
    if number is None:
        return "—"
    return f"{number:,.1f} {unit}" if number >= 10 else f"{number:,.3g} {unit}"


def _ratio(ratio: float) -> str:
    return f"{ratio:.2f}×" if ratio >= 0.1 else f"{ratio:.2g}×"


def table(rows: list[dict], header: str) -> str:
    lines = [header, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [
            row["id"],
            row["workload"],
            row["figure"] + (f" ({row['note']})" if row.get("note") else ""),
            _fmt(row["value"], row["unit"]),
            _fmt(row["baseline"], row["unit"]),
            "—" if row["ratio"] is None else _ratio(row["ratio"]),
            row["goal"],
            "—" if row["met"] is None else "yes" if row["met"] else "**no**",
            f"{row['peak_mb']:,.0f}" if row.get("peak_mb") is not None else "—",
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--only", default="", help="comma-separated workload ids, e.g. B1,B4")
    parser.add_argument("--scale", default="full", choices=["tiny", "small", "full"])
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    # Ids as written or in any case (B2t, b2t, B2T).
    by_upper = {name.upper(): name for name in WORKLOADS}
    asked = [w.strip() for w in args.only.split(",") if w.strip()]
    chosen = [by_upper.get(w.upper(), w) for w in asked] or list(WORKLOADS)
    unknown = [w for w in chosen if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")

    url = database_url()
    print(f"fresh database {url.rpartition('/')[2]} ...", file=sys.stderr, flush=True)
    fresh_database(url)
    rows: list[dict] = []
    failed = False
    for workload in chosen:
        print(f"{workload} at scale {args.scale} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "bench.workload", workload, "--scale", args.scale],
            cwd=ROOT,
            env=_env(url),
            stdout=subprocess.PIPE,
        )
        lines = done.stdout.decode().strip().splitlines()
        if done.returncode != 0 or not lines:
            failed = True
            rows.append(
                {
                    "id": workload,
                    "workload": "",
                    "figure": f"failed (exit {done.returncode})",
                    "value": None,
                    "baseline": None,
                    "unit": "",
                    "ratio": None,
                    "goal": "",
                    "met": False,
                    "peak_mb": None,
                    "note": "",
                }
            )
            continue
        rows.extend(json.loads(lines[-1])["rows"])
        print(f"{workload} took {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
    header = f"Machine: {machine(url)}; scale {args.scale}"
    print(table(rows, header))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": header, "rows": rows}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
