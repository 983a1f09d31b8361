"""Run the statements of field rules against one datasource, reading only.

Run as `python -m apps.quality.runner` (by apps.quality.checks, through the same
supervised, killable process path as a sql node) with {"datasource": {...}, "checks":
[{"rule": id, "sql": "..."}]} as JSON on stdin: the datasource password travels only
there. Each statement runs in a read-only transaction of its own, rolled back after,
so a check changes nothing and one that errors does not spoil the next. For each check
one line `RESULT_PREFIX {"rule", "value", "error", "seconds"}` is printed as soon as it
is done: the value is a number, or null with the error that says why.
"""

import decimal
import json
import sqlite3
import sys
import time

from apps.instances.executors.sql_runner import connect

RESULT_PREFIX = "@@field-rule-result "
MAX_ERROR_CHARS = 500


def emit(out, rule: int, value: float | None, error: str, seconds: float) -> None:
    payload = {"rule": rule, "value": value, "error": error[:MAX_ERROR_CHARS], "seconds": seconds}
    print(RESULT_PREFIX + json.dumps(payload), file=out, flush=True)


def number(row_values) -> tuple[float | None, str]:
    """(the number, "") from a query's rows, or (None, why not)."""
    if not row_values:
        return None, "the query returned no row"
    if len(row_values) > 1:
        return None, "the query returned more than one row"
    row = row_values[0]
    if len(row) != 1:
        return None, f"the query returned {len(row)} columns: one number is wanted"
    value = row[0]
    if value is None:
        return None, "the metric is NULL (no rows to measure, or only NULLs)"
    if isinstance(value, bool):
        return float(value), ""
    if isinstance(value, int | float | decimal.Decimal):
        result = float(value)
    elif isinstance(value, str | bytes):
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        try:
            result = float(text.strip())
        except ValueError:
            return None, f"the query returned {text[:40]!r}, not a number"
    else:
        return None, f"the query returned a {type(value).__name__}, not a number"
    if result != result or result in (float("inf"), float("-inf")):
        return None, f"the query returned {result}, not a finite number"
    return result, ""


def run(datasource: dict, checks: list[dict], out=sys.stdout) -> int:
    kind = datasource.get("kind")
    try:
        conn, errors, _ = connect(datasource)
    except Exception as exc:  # whatever the driver raises: every check errors with it
        reason = f"could not connect: {str(exc).strip()}"
        for check in checks:
            emit(out, check["rule"], None, reason, 0.0)
        return 1
    try:
        cursor = conn.cursor()
        for check in checks:
            started = time.monotonic()
            try:
                if kind == "sqlite":
                    # Set again before each: a statement may not switch it off for the next.
                    cursor.execute("PRAGMA query_only = ON")
                    cursor.execute("BEGIN")
                else:
                    cursor.execute("SET TRANSACTION READ ONLY")
                cursor.execute(check["sql"])
                rows = cursor.fetchmany(2) if cursor.description else []
                value, error = number(rows)
            except (errors, sqlite3.Warning) as exc:
                # The first line: the database's message, without its pointer lines.
                value, error = None, (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            finally:
                try:
                    conn.rollback()
                except errors:
                    pass
            emit(out, check["rule"], value, error, round(time.monotonic() - started, 6))
        return 0
    finally:
        conn.close()


def main() -> int:
    try:
        payload = json.load(sys.stdin)
        datasource, checks = payload["datasource"], payload["checks"]
    except (ValueError, KeyError, TypeError) as exc:
        print(f"ERROR: bad runner input: {exc}", flush=True)
        return 2
    return run(datasource, checks)


if __name__ == "__main__":
    sys.exit(main())
