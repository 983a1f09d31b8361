"""The audit log page (/audit/) and its CSV export."""

import csv
import datetime
import io

import pytest
import time_machine
from django.test import Client

from apps.audit.models import OperationLog
from apps.audit.services import operation_record
from apps.projects.models import Project

UTC = datetime.UTC


def client_as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def ids(response) -> list[int]:
    return [op.id for op in response.context["operations"]]


def csv_rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


@pytest.fixture
def log(users, project):
    """Entries over three days: acme ones by olga, another project's by root, and
    stranger's own entry without a project."""
    other = Project.objects.create(code="other", name="Other", generation_time=datetime.time(1))
    made = {}

    def at(day: int, name: str, **fields):
        with time_machine.travel(datetime.datetime(2026, 3, day, 12, tzinfo=UTC), tick=False):
            made[name] = operation_record(**fields)

    at(
        1,
        "rerun",
        user=users["olga"],
        source="ui",
        action="rerun",
        object_type="instance",
        object_id=7,
        project=project,
    )
    at(
        2,
        "refused",
        user=users["vera"],
        source="api",
        action="kill",
        object_type="instance",
        object_id=8,
        project=project,
        result="refused",
        message="operator role needed",
    )
    at(
        2,
        "other",
        user=users["root"],
        source="cli",
        action="pause",
        object_type="node",
        object_id=3,
        project=other,
    )
    at(
        3,
        "own",
        user=users["stranger"],
        source="ui",
        action="token_issue",
        object_type="token",
        object_id=1,
    )
    return made


def test_superuser_sees_everything(users, log):
    response = client_as(users["root"]).get("/audit/")
    assert response.status_code == 200
    assert ids(response) == [log[n].id for n in ["own", "other", "refused", "rerun"]]
    assert b"operator role needed" in response.content


def test_member_sees_project_entries_only(users, log):
    response = client_as(users["vera"]).get("/audit/")
    assert response.status_code == 200
    assert ids(response) == [log["refused"].id, log["rerun"].id]


def test_stranger_sees_own_entries_without_project(users, log):
    response = client_as(users["stranger"]).get("/audit/")
    assert ids(response) == [log["own"].id]
    rows = csv_rows(client_as(users["stranger"]).get("/audit/export.csv"))
    assert [r[0] for r in rows[1:]] == [str(log["own"].id)]


def test_anonymous_is_sent_to_login(log):
    response = Client().get("/audit/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


@pytest.mark.parametrize(
    "query, names",
    [
        ("user=olga", ["rerun"]),
        ("action=kill", ["refused"]),
        ("object_type=instance&object_id=8", ["refused"]),
        ("object_type=node", ["other"]),
        ("result=refused", ["refused"]),
        ("result=ok&source=ui", ["own", "rerun"]),
        ("source=cli", ["other"]),
        ("since=2026-03-02&until=2026-03-02", ["other", "refused"]),
        ("since=2026-03-03", ["own"]),
        ("until=2026-03-01", ["rerun"]),
    ],
)
def test_filters(users, log, query, names):
    response = client_as(users["root"]).get(f"/audit/?{query}")
    assert response.status_code == 200
    assert ids(response) == [log[n].id for n in names]


def test_project_switcher_narrows(users, log):
    client = client_as(users["root"])
    response = client.get("/audit/?project=other")
    assert ids(response) == [log["other"].id]
    # The switcher is kept in the session, as on the other list pages.
    assert ids(client.get("/audit/")) == [log["other"].id]
    assert ids(client.get("/audit/?project=")) == [e.id for e in OperationLog.objects.all()]


def test_keyset_paging_walks_every_entry_once(users, project):
    with time_machine.travel(datetime.datetime(2026, 3, 1, 12, tzinfo=UTC), tick=False):
        # Equal timestamps: the id breaks the tie.
        made = [
            operation_record(
                user=users["olga"],
                source="ui",
                action="rerun",
                object_type="instance",
                object_id=i,
                project=project,
            ).id
            for i in range(7)
        ]
    client = client_as(users["olga"])
    url, seen = "/audit/?limit=3", []
    while url:
        response = client.get(url)
        assert response.status_code == 200
        assert len(ids(response)) <= 3
        seen += ids(response)
        url = response.context["next_page_url"]
        if url:
            assert "limit=3" in url and "cursor=" in url
    assert seen == sorted(made, reverse=True)


def test_csv_export_has_header_and_every_match(users, log):
    response = client_as(users["root"]).get("/audit/export.csv?source=ui")
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    rows = csv_rows(response)
    assert rows[0] == [
        "id",
        "created_at",
        "username",
        "source",
        "action",
        "object_type",
        "object_id",
        "project",
        "result",
        "message",
    ]
    assert rows[1][:9] == [
        str(log["own"].id),
        "2026-03-03T12:00:00+00:00",
        "stranger",
        "ui",
        "token_issue",
        "token",
        "1",
        "",
        "ok",
    ]
    assert rows[2][0] == str(log["rerun"].id)
    assert rows[2][7] == "acme"
    assert len(rows) == 3


def test_csv_export_is_not_paged(users, project):
    for i in range(60):
        operation_record(
            user=users["olga"],
            source="ui",
            action="rerun",
            object_type="instance",
            object_id=i,
            project=project,
        )
    rows = csv_rows(client_as(users["vera"]).get("/audit/export.csv"))
    assert len(rows) == 61


def test_page_offers_export_with_filters(users, log):
    response = client_as(users["root"]).get("/audit/?action=kill")
    assert response.context["export_url"] == "/audit/export.csv?action=kill"


@pytest.mark.parametrize(
    "query, field",
    [
        ("since=yesterday", "since"),
        ("until=2026-02-30", "until"),
        ("since=2026-03-05&until=2026-03-01", "until"),
        ("result=maybe", "result"),
        ("source=fax", "source"),
        ("cursor=@@not-a-cursor", "cursor"),
        ("limit=0", "limit"),
    ],
)
def test_bad_filters_answer_422_naming_the_field(users, log, query, field):
    client = client_as(users["root"])
    response = client.get(f"/audit/?{query}")
    assert response.status_code == 422
    assert [e["field"] for e in response.context["errors"]] == [field]
    assert f"<strong>{field}</strong>".encode() in response.content
    if field not in ("cursor",):
        export = client.get(f"/audit/export.csv?{query}")
        assert export.status_code == 422
        assert field in export.content.decode()


def test_nav_has_audit_entry(users):
    response = client_as(users["vera"]).get("/audit/")
    assert b'href="/audit/"' in response.content
