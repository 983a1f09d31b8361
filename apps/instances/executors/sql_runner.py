"""Execute the statements of a sql node in one transaction.

Run as `python -m apps.instances.executors.sql_runner` with
{"datasource": {...}, "sql": "..."} as JSON on stdin: the datasource password
travels only there, never in argv, the environment or the log. Each statement
is logged (shortened) with its row count and duration; the rows of a final
query are printed (the first MAX_ROWS). Any error rolls everything back and
exits 1 with the database's message.
"""

import json
import sqlite3
import sys
import time

import sqlparse

MAX_ROWS = 20
MAX_STATEMENT_CHARS = 200
MAX_CELL_CHARS = 100


def split_statements(sql: str) -> list[str]:
    """The statements of `sql`, without empty and comment-only ones."""
    statements = []
    for statement in sqlparse.split(sql):
        code = sqlparse.format(statement, strip_comments=True).strip().rstrip(";").strip()
        if code:
            statements.append(statement.strip())
    return statements


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def connect(datasource: dict, *, connect_timeout: int | None = None):
    """(connection, database error class, description) for the datasource.

    `connect_timeout` (seconds) bounds reaching a PostgreSQL server (a Test connection
    must not wait libpq's default two minutes for a host that does not answer)."""
    kind = datasource.get("kind")
    if kind == "postgresql":
        import psycopg

        extra = {"password": datasource["password"]} if datasource.get("password") else {}
        if connect_timeout is not None:
            extra["connect_timeout"] = max(1, int(connect_timeout))
        conn = psycopg.connect(
            datasource.get("dsn", ""), autocommit=False, application_name="opscenter", **extra
        )
        where = f"PostgreSQL database {conn.info.dbname} on {conn.info.host}:{conn.info.port}"
        return conn, psycopg.Error, where
    if kind == "sqlite":
        path = datasource.get("path") or ""
        if not path:
            raise ValueError("sqlite datasource has no path")
        # isolation_level=None: we BEGIN ourselves, so DDL is inside the transaction too.
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        return conn, sqlite3.Error, f"SQLite database {path}"
    raise ValueError(f"unsupported datasource kind {kind!r}")


def run(datasource: dict, sql: str, out=sys.stdout) -> int:
    def say(line: str = "") -> None:
        print(line, file=out, flush=True)

    statements = split_statements(sql)
    if not statements:
        say("no SQL statements to execute")
        return 0
    kind = datasource.get("kind")
    try:
        conn, errors, where = connect(datasource)
    except Exception as exc:  # whatever the driver raises, the run fails with its message
        say(f"ERROR: could not connect: {str(exc).strip()}")
        return 1
    say(f"connected to {where}")
    try:
        cursor = conn.cursor()
        if kind == "sqlite":
            cursor.execute("BEGIN")
        total = len(statements)
        for number, statement in enumerate(statements, 1):
            say(f"[{number}/{total}] {shorten(statement, MAX_STATEMENT_CHARS)}")
            started = time.monotonic()
            try:
                cursor.execute(statement)
            except errors as exc:
                conn.rollback()
                say(f"ERROR in statement {number}: {str(exc).strip()}")
                say("rolled back: nothing of this run was committed")
                return 1
            took = time.monotonic() - started
            count = f"{cursor.rowcount} row(s)" if cursor.rowcount >= 0 else "done"
            say(f"    -> {count} in {took:.3f}s")
        if cursor.description:
            print_rows(cursor, say)
        conn.commit()
        say(f"committed {total} statement(s)")
        return 0
    finally:
        conn.close()


def print_rows(cursor, say) -> None:
    columns = [column[0] for column in cursor.description]
    rows = cursor.fetchmany(MAX_ROWS + 1)
    say("\t".join(columns))
    for row in rows[:MAX_ROWS]:
        say("\t".join(cell(value) for value in row))
    if len(rows) > MAX_ROWS:
        say(f"(only the first {MAX_ROWS} rows are shown)")


def cell(value) -> str:
    return "NULL" if value is None else shorten(str(value), MAX_CELL_CHARS)


def main() -> int:
    try:
        payload = json.load(sys.stdin)
        datasource, sql = payload["datasource"], payload["sql"]
    except (ValueError, KeyError, TypeError) as exc:
        print(f"ERROR: bad runner input: {exc}", flush=True)
        return 2
    return run(datasource, sql)


if __name__ == "__main__":
    sys.exit(main())
