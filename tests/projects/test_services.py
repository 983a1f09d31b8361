import datetime

import pytest

from apps.audit.models import OperationLog
from apps.core.errors import Conflict, ValidationFailed
from apps.projects import services
from apps.projects.models import Datasource, Membership, Project, Variable
from tests.factories import instance_create, node_create


def fields_of(exc_info) -> set[str]:
    return {e["field"] for e in exc_info.value.errors}


def test_project_create_makes_the_creator_admin_and_records_it(users):
    project = services.project_create(
        user=users["root"],
        code="sales",
        name="Sales",
        timezone="Europe/Berlin",
        env_mode="dev_prod",
        generation_time="22:30",
        generation_mode="immediate",
    )
    assert project.generation_time == datetime.time(22, 30)
    assert Membership.objects.get(project=project).role == "admin"
    log = OperationLog.objects.get(action="project.create")
    assert (log.username, log.object_id, log.project) == ("root", "sales", project)
    assert log.detail["generation_time"] == "22:30"


def test_project_create_names_every_bad_field_at_once(users, project):
    with pytest.raises(ValidationFailed) as exc:
        services.project_create(
            user=users["root"],
            code="ACME",  # taken, case aside
            name=" ",
            timezone="Mars/Olympus",
            env_mode="staging",
            generation_time="25:00",
            generation_mode="hourly",
        )
    assert fields_of(exc) == {
        "code",
        "name",
        "timezone",
        "env_mode",
        "generation_time",
        "generation_mode",
    }
    assert "Mars/Olympus" in str(exc.value.errors)
    assert Project.objects.count() == 1
    assert not OperationLog.objects.exists()


@pytest.mark.parametrize("code", ["", "a.b", "has space", "-lead", "x" * 65])
def test_project_code_must_be_a_slug_without_dots(users, code):
    # Nodes name cross-project upstream as "code.node": a dot would be ambiguous.
    with pytest.raises(ValidationFailed) as exc:
        services.project_create(user=users["root"], code=code, name="X")
    assert fields_of(exc) == {"code"}


def test_project_update_changes_only_what_was_sent(users, project):
    services.project_update(
        project=project, user=users["alice"], fields={"generation_time": "01:15"}
    )
    project.refresh_from_db()
    assert project.generation_time == datetime.time(1, 15)
    assert project.timezone == "Asia/Shanghai"
    assert OperationLog.objects.get(action="project.update").detail == {"generation_time": "01:15"}


def test_project_update_refuses_code_and_basic_mode_with_dev_nodes(users, project):
    project.env_mode = "dev_prod"
    project.save()
    node_create(project, "draft", owner=users["dave"], env="dev")
    with pytest.raises(ValidationFailed) as exc:
        services.project_update(
            project=project, user=users["alice"], fields={"code": "x", "env_mode": "basic"}
        )
    assert fields_of(exc) == {"code", "env_mode"}


def test_project_delete_refused_while_other_projects_depend_on_it(users, project):
    other = services.project_create(user=users["root"], code="other", name="Other")
    upstream = node_create(project, "orders", owner=users["alice"])
    node_create(other, "report", owner=users["root"], upstream=[upstream])
    with pytest.raises(Conflict) as exc:
        services.project_delete(project=project, user=users["root"])
    assert "other.report" in exc.value.detail
    assert Project.objects.filter(code="acme").exists()


def test_project_delete_refused_while_instances_run_then_deletes_history(users, project):
    node = node_create(project, "orders", owner=users["alice"])
    instance = instance_create(
        node, datetime.datetime(2026, 11, 21, 18, 0, tzinfo=datetime.UTC), state="running"
    )
    with pytest.raises(Conflict):
        services.project_delete(project=project, user=users["alice"])
    instance.state = "succeeded"
    instance.save()
    services.project_delete(project=project, user=users["alice"])
    assert not Project.objects.filter(code="acme").exists()
    log = OperationLog.objects.get(action="project.delete")
    assert log.detail["code"] == "acme"


def test_member_add_validates_user_role_and_duplicates(users, project):
    with pytest.raises(ValidationFailed) as exc:
        services.member_add(project=project, username="nobody", role="boss", user=users["alice"])
    assert fields_of(exc) == {"username", "role"}
    with pytest.raises(ValidationFailed) as exc:
        services.member_add(project=project, username="vera", role="viewer", user=users["alice"])
    assert "already a member" in exc.value.errors[0]["message"]
    membership = services.member_add(
        project=project, username="stranger", role="operator", user=users["alice"]
    )
    assert membership.role == "operator"
    assert OperationLog.objects.filter(action="member.add", object_id="stranger").exists()


def test_last_admin_can_be_neither_demoted_nor_removed(users, project):
    alice = Membership.objects.get(project=project, user=users["alice"])
    with pytest.raises(ValidationFailed) as exc:
        services.member_update(membership=alice, role="viewer", user=users["root"])
    assert fields_of(exc) == {"role"}
    with pytest.raises(Conflict):
        services.member_remove(membership=alice, user=users["root"])
    olga = Membership.objects.get(project=project, user=users["olga"])
    services.member_update(membership=olga, role="admin", user=users["alice"])
    services.member_update(membership=alice, role="viewer", user=users["olga"])
    assert set(
        project.memberships.filter(role="admin").values_list("user__username", flat=True)
    ) == {"olga"}
    log = OperationLog.objects.filter(action="member.update").first()
    assert log.detail == {"username": "alice", "role": "viewer", "was": "admin"}


def test_datasource_password_is_encrypted_and_never_logged(users, project):
    ds = services.datasource_create(
        project=project,
        name="warehouse",
        kind="postgresql",
        dsn="host=db dbname=sales user=etl",
        password="s3cret-pw",
        user=users["alice"],
    )
    ds.refresh_from_db()
    assert ds.get_password() == "s3cret-pw"
    assert "s3cret-pw" not in ds.password_encrypted
    services.datasource_update(datasource=ds, fields={"password": "n3w-pw"}, user=users["alice"])
    ds.refresh_from_db()
    assert ds.get_password() == "n3w-pw"
    logs = list(
        OperationLog.objects.filter(object_type="datasource").values_list("detail", flat=True)
    )
    assert len(logs) == 2
    assert all(d["password"] == "changed" for d in logs)
    assert "pw" not in str(logs)


def test_datasource_update_keeps_password_when_omitted_and_clears_it_on_empty(users, project):
    ds = services.datasource_create(
        project=project,
        name="w",
        kind="postgresql",
        dsn="host=db",
        password="pw1",
        user=users["alice"],
    )
    services.datasource_update(datasource=ds, fields={"dsn": "host=db2"}, user=users["alice"])
    ds.refresh_from_db()
    assert (ds.dsn, ds.get_password()) == ("host=db2", "pw1")
    services.datasource_update(datasource=ds, fields={"password": ""}, user=users["alice"])
    ds.refresh_from_db()
    assert not ds.has_password


@pytest.mark.parametrize(
    "fields, bad",
    [
        ({"kind": "postgresql"}, {"dsn"}),
        ({"kind": "sqlite"}, {"path"}),
        ({"kind": "mysql"}, {"kind"}),
        ({"kind": "postgresql", "dsn": "postgresql://etl:pw@db/sales"}, {"dsn"}),
        ({"kind": "postgresql", "dsn": "not a dsn at all"}, {"dsn"}),
        ({"kind": "postgresql", "dsn": "host=db", "path": "/x.db"}, {"path"}),
        ({"kind": "sqlite", "path": "/x.db", "password": "pw"}, {"password"}),
        ({"kind": "sqlite", "path": "/x.db", "name": "bad name"}, {"name"}),
    ],
)
def test_datasource_validation_names_the_field(users, project, fields, bad):
    values = {"name": "w", **fields}
    with pytest.raises(ValidationFailed) as exc:
        services.datasource_create(project=project, user=users["alice"], **values)
    assert fields_of(exc) == bad
    assert not Datasource.objects.exists()


def test_datasource_duplicate_name_and_delete_while_used(users, project):
    ds = services.datasource_create(
        project=project, name="lake", kind="sqlite", path="/tmp/lake.db", user=users["alice"]
    )
    with pytest.raises(ValidationFailed) as exc:
        services.datasource_create(
            project=project, name="lake", kind="sqlite", path="/tmp/x.db", user=users["alice"]
        )
    assert fields_of(exc) == {"name"}
    node_create(project, "load", owner=users["dave"], type="sql", datasource="lake")
    with pytest.raises(Conflict) as exc:
        services.datasource_delete(datasource=ds, user=users["alice"])
    assert "load" in exc.value.detail
    with pytest.raises(ValidationFailed) as exc:
        services.datasource_update(datasource=ds, fields={"name": "pond"}, user=users["alice"])
    assert "load" in exc.value.errors[0]["message"]


def test_variable_set_creates_updates_and_refuses_bad_names(users, project):
    services.variable_set(
        project=project, name="region", value="eu", user=users["alice"], create=True
    )
    with pytest.raises(ValidationFailed) as exc:
        services.variable_set(
            project=project, name="region", value="us", user=users["alice"], create=True
        )
    assert fields_of(exc) == {"name"}
    services.variable_set(project=project, name="region", value="us", user=users["alice"])
    assert Variable.objects.get(project=project, name="region").value == "us"
    with pytest.raises(ValidationFailed) as exc:
        services.variable_set(project=project, name="1st-var", value="", user=users["alice"])
    assert fields_of(exc) == {"name"}
    actions = list(OperationLog.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["variable.create", "variable.update"]
    services.variable_delete(variable=Variable.objects.get(name="region"), user=users["alice"])
    assert not Variable.objects.exists()
