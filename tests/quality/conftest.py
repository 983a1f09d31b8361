"""Warehouses for field rules to read: a SQLite file, and a PostgreSQL database of its
own on 127.0.0.1 (created for the test, dropped after), each with the same `orders`."""

import datetime
import os
import sqlite3
import uuid

import psycopg
import pytest
from psycopg import conninfo

from apps.projects.models import Datasource

# 10:00 in Asia/Shanghai (the project's timezone) on 2026-11-20: biz date 2026-11-19.
SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)
BIZDATE = "20261119"

ORDERS_DDL = (
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, ds TEXT NOT NULL, amount NUMERIC(12, 2),"
    " email TEXT, category TEXT)"
)
# The business date's five orders: amounts 10..50 (sum 150, avg 30), two without an
# email, categories a, b, c; and three of the day before.
ORDERS = [
    (1, BIZDATE, 10, "a@x", "a"),
    (2, BIZDATE, 20, None, "b"),
    (3, BIZDATE, 30, "c@x", "a"),
    (4, BIZDATE, 40, None, "c"),
    (5, BIZDATE, 50, "e@x", "b"),
    (6, "20261118", 5, "f@x", "a"),
    (7, "20261118", 6, "g@x", "a"),
    (8, "20261118", 7, "h@x", "a"),
]


def _postgres_admin() -> tuple[dict, str]:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        url = os.environ.get(
            "OPSCENTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        )
    params = conninfo.conninfo_to_dict(url)
    password = params.pop("password", None) or "field-rules-pw-123"
    return params, password


@pytest.fixture
def postgres_warehouse():
    """(dsn, password, name) of a fresh PostgreSQL database with `orders`; dropped after."""
    params, password = _postgres_admin()
    name = f"opscenter_fr_{uuid.uuid4().hex[:10]}"
    admin = conninfo.make_conninfo(**{**params, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True, password=password) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = conninfo.make_conninfo(**{**params, "dbname": name})
    try:
        with psycopg.connect(dsn, password=password) as conn:
            conn.execute(ORDERS_DDL)
            conn.cursor().executemany("INSERT INTO orders VALUES (%s, %s, %s, %s, %s)", ORDERS)
        yield dsn, password, name
    finally:
        with psycopg.connect(admin, autocommit=True, password=password) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_warehouse(tmp_path):
    path = tmp_path / "warehouse.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(ORDERS_DDL)
    conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", ORDERS)
    conn.commit()
    conn.close()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse(request, project):
    """The project's datasource "wh" on each kind of database in turn."""
    if request.param == "sqlite":
        path = request.getfixturevalue("sqlite_warehouse")
        return Datasource.objects.create(project=project, name="wh", kind="sqlite", path=str(path))
    dsn, password, _ = request.getfixturevalue("postgres_warehouse")
    datasource = Datasource(project=project, name="wh", kind="postgresql", dsn=dsn)
    datasource.set_password(password)
    datasource.save()
    return datasource


def warehouse_execute(datasource: Datasource, sql: str, params=()) -> None:
    """Change the warehouse's data (as a node's script would)."""
    if datasource.kind == "sqlite":
        conn = sqlite3.connect(datasource.path)
        conn.execute(sql.replace("%s", "?"), params)
        conn.commit()
        conn.close()
    else:
        with psycopg.connect(datasource.dsn, password=datasource.get_password()) as conn:
            conn.execute(sql, params)
