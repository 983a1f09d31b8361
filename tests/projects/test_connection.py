"""Test connection: a datasource's settings tried for real, as its SQL nodes connect (the
runners' connect()), against the PostgreSQL server of the tests, a SQLite file, and ones
that fail; through the service and POST /api/projects/{code}/datasources/{name}/test."""

import sqlite3

import pytest

from apps.audit.models import OperationLog
from apps.projects import services

PG_DSN = "host=127.0.0.1 port=5432 dbname=postgres user=postgres"
PASSWORD = "pw-Zq81-never-shown"


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "warehouse.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    return path


def make(project, users, **fields):
    return services.datasource_create(project=project, user=users["alice"], **fields)


def test_postgresql_connects_and_names_server_and_version(project, users):
    datasource = make(project, users, name="dw", kind="postgresql", dsn=PG_DSN, password=PASSWORD)
    result = services.datasource_test(datasource=datasource, user=users["olga"], source="ui")
    assert result.ok, result.message
    assert result.message.startswith("Connected to PostgreSQL database postgres on 127.0.0.1:5432")
    assert "as postgres" in result.message
    assert result.server_version and result.server_version[0].isdigit()
    assert PASSWORD not in result.message
    log = OperationLog.objects.get(action="datasource.test")
    assert (log.username, log.object_id, log.result, log.source) == ("olga", "dw", "ok", "ui")
    assert log.project == project and PASSWORD not in str(log.detail) + log.message


def test_sqlite_file_connects_and_counts_its_tables(project, users, warehouse):
    datasource = make(project, users, name="wh", kind="sqlite", path=str(warehouse))
    result = services.datasource_test(datasource=datasource, user=users["alice"])
    assert result.ok, result.message
    assert result.message.startswith(f"Connected to SQLite database {warehouse}")
    assert "2 table(s)" in result.message
    assert result.server_version == sqlite3.sqlite_version


def test_a_closed_port_fails_with_the_drivers_message_not_the_password(project, users, closed_port):
    dsn = f"host=127.0.0.1 port={closed_port} dbname=dw user=etl"
    datasource = make(project, users, name="dw", kind="postgresql", dsn=dsn, password=PASSWORD)
    result = services.datasource_test(datasource=datasource, user=users["alice"])
    assert not result.ok
    assert result.message.startswith("could not connect:")
    assert str(closed_port) in result.message and "refused" in result.message.lower()
    assert PASSWORD not in result.message
    log = OperationLog.objects.get(action="datasource.test")
    assert log.result == "failed" and log.message == result.message


def test_an_unknown_database_fails_naming_it(project, users):
    dsn = "host=127.0.0.1 port=5432 dbname=opscenter_no_such_db user=postgres"
    datasource = make(project, users, name="dw", kind="postgresql", dsn=dsn)
    result = services.datasource_test(datasource=datasource, user=users["alice"])
    assert not result.ok
    assert 'database "opscenter_no_such_db" does not exist' in result.message


def test_a_missing_sqlite_file_fails_and_is_not_created(project, users, tmp_path):
    path = tmp_path / "typo.sqlite3"
    datasource = make(project, users, name="wh", kind="sqlite", path=str(path))
    result = services.datasource_test(datasource=datasource, user=users["alice"])
    assert not result.ok
    assert result.message.startswith(f"no database file at {path}")
    assert not path.exists()


def test_a_file_that_is_no_database_fails(project, users, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not a database, only text long enough to have a header" * 3)
    datasource = make(project, users, name="wh", kind="sqlite", path=str(path))
    result = services.datasource_test(datasource=datasource, user=users["alice"])
    assert not result.ok
    assert "but a query failed" in result.message and "not a database" in result.message


# --- the API ------------------------------------------------------------------------------


def test_api_test_answers_ok_and_the_message(api_as, project, users):
    make(project, users, name="dw", kind="postgresql", dsn=PG_DSN, password=PASSWORD)
    response = api_as("olga").post("/api/projects/acme/datasources/dw/test")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ok"] is True and body["message"].startswith("Connected to PostgreSQL")
    assert set(body) == {"ok", "message", "seconds", "server_version"}
    assert PASSWORD.encode() not in response.content


def test_api_test_of_a_closed_port_answers_200_with_ok_false(api_as, project, users, closed_port):
    dsn = f"host=127.0.0.1 port={closed_port} dbname=dw user=etl"
    make(project, users, name="dw", kind="postgresql", dsn=dsn, password=PASSWORD)
    response = api_as("alice").post("/api/projects/acme/datasources/dw/test")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False and str(closed_port) in body["message"]
    assert PASSWORD.encode() not in response.content


def test_api_test_needs_operator_and_membership(api_as, project, users, warehouse):
    make(project, users, name="wh", kind="sqlite", path=str(warehouse))
    assert api_as("vera").post("/api/projects/acme/datasources/wh/test").status_code == 403
    assert api_as("dave").post("/api/projects/acme/datasources/wh/test").status_code == 403
    assert api_as("stranger").post("/api/projects/acme/datasources/wh/test").status_code == 404
    assert api_as("olga").post("/api/projects/acme/datasources/nope/test").status_code == 404
    assert not OperationLog.objects.filter(action="datasource.test").exists()
    assert api_as("root").post("/api/projects/acme/datasources/wh/test").json()["ok"] is True
