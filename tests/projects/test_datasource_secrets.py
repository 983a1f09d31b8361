"""A DSN never carries a secret: every secret libpq parameter is refused, naming `dsn`."""

import json

import pytest

from apps.audit.models import OperationLog
from apps.core.errors import ValidationFailed
from apps.projects import services
from apps.projects.models import Datasource

SECRET_DSNS = [
    "host=db dbname=dw user=etl sslpassword=k3y-pass",
    "host=db dbname=dw user=etl password=k3y-pass",
    "host=db dbname=dw oauth_client_secret=k3y-pass",
    "host=db dbname=dw scram_client_key=k3y-pass",
    "postgresql://etl:k3y-pass@db/dw",
    "postgresql://etl@db/dw?sslpassword=k3y-pass",
    "postgresql://etl@db/dw?password=k3y-pass&sslmode=require",
    "postgres://etl:k3y%2Dpass@db:5433/dw?sslmode=verify-full",
]


def send(client, method: str, path: str, body):
    return getattr(client, method)(path, data=json.dumps(body), content_type="application/json")


@pytest.mark.parametrize("dsn", SECRET_DSNS)
def test_a_secret_in_the_dsn_is_refused_naming_dsn(api_as, project, dsn):
    response = send(
        api_as("alice"),
        "post",
        "/api/projects/acme/datasources",
        {"name": "dw", "kind": "postgresql", "dsn": dsn},
    )
    assert response.status_code == 422, response.content
    assert [e["field"] for e in response.json()["errors"]] == ["dsn"]
    assert b"k3y" not in response.content  # the answer does not echo the secret either
    assert not Datasource.objects.exists()
    assert not OperationLog.objects.filter(action="datasource.create").exists()


@pytest.mark.parametrize("dsn", SECRET_DSNS)
def test_a_secret_cannot_be_patched_into_a_dsn(api_as, project, dsn):
    admin = api_as("alice")
    body = {"name": "dw", "kind": "postgresql", "dsn": "host=db dbname=dw", "password": "pw"}
    assert send(admin, "post", "/api/projects/acme/datasources", body).status_code == 201
    response = send(admin, "patch", "/api/projects/acme/datasources/dw", {"dsn": dsn})
    assert response.status_code == 422, response.content
    assert [e["field"] for e in response.json()["errors"]] == ["dsn"]
    stored = Datasource.objects.get(name="dw")
    assert (stored.dsn, stored.get_password()) == ("host=db dbname=dw", "pw")


def test_the_message_names_the_parameter_and_where_the_password_goes(users, project):
    with pytest.raises(ValidationFailed) as exc:
        services.datasource_create(
            project=project,
            name="dw",
            kind="postgresql",
            dsn="host=db sslpassword=k3y-pass password=other",
            user=users["alice"],
        )
    (error,) = exc.value.errors
    assert error["field"] == "dsn"
    assert "sslpassword" in error["message"] and "password" in error["message"]
    assert "k3y-pass" not in error["message"]


@pytest.mark.parametrize(
    "dsn",
    [
        "host=db dbname=dw user=etl sslmode=require sslcert=/etc/etl.crt",
        "postgresql://etl@db:5433/dw?sslmode=verify-full&application_name=x",
    ],
)
def test_a_dsn_without_secrets_is_kept(api_as, project, dsn):
    response = send(
        api_as("alice"),
        "post",
        "/api/projects/acme/datasources",
        {"name": "dw", "kind": "postgresql", "dsn": dsn, "password": "pw"},
    )
    assert response.status_code == 201, response.content
    assert response.json()["dsn"] == dsn


def test_the_admin_form_refuses_a_secret_in_the_dsn(users, project):
    from apps.projects.admin import DatasourceForm

    form = DatasourceForm(
        data={
            "project": project.pk,
            "name": "dw",
            "kind": "postgresql",
            "dsn": "host=db sslpassword=k3y-pass",
            "path": "",
        }
    )
    assert not form.is_valid()
    assert list(form.errors) == ["dsn"]
