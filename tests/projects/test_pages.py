"""The project pages: the list, a project's settings, members, datasources (with Test
connection) and variables, and deleting a project. Each page for an admin, a viewer and
a non-member; each form's success and a refused input (error next to the field, nothing
changed, never a 500); every write in the operation log."""

import datetime
import re
import sqlite3

import pytest
from django.test import Client

from apps.audit.models import OperationLog
from apps.instances.models import Instance
from apps.projects import services
from apps.projects.models import Datasource, Membership, Project, Variable
from tests.factories import instance_create, node_create

HTMX = {"HTTP_HX_REQUEST": "true"}
PG_DSN = "host=127.0.0.1 port=5432 dbname=postgres user=postgres"
PASSWORD = "pw-Hq27-write-only"


@pytest.fixture
def as_user(users):
    """as_user("vera") -> a client of its own, signed in as vera."""

    def login(name: str) -> Client:
        client = Client()
        client.force_login(users[name])
        return client

    return login


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "warehouse.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    return path


@pytest.fixture
def config(project, users, warehouse):
    """acme with a PostgreSQL datasource (password set), a SQLite one and a variable."""
    services.datasource_create(
        project=project,
        name="dw",
        kind="postgresql",
        dsn=PG_DSN,
        password=PASSWORD,
        user=users["alice"],
    )
    services.datasource_create(
        project=project, name="wh", kind="sqlite", path=str(warehouse), user=users["alice"]
    )
    services.variable_set(
        project=project, name="target_schema", value="ods", user=users["alice"], create=True
    )
    return project


def html_of(response) -> str:
    return response.content.decode()


def field_error(html: str, field: str) -> str:
    """The text of the field's error (the form puts it inside the field's block)."""
    start = html.index(f'data-field="{field}"')
    block = html[start : html.index("</div>", start)]
    assert 'class="field-error"' in block, f"no error next to {field}"
    return block.split('class="field-error">', 1)[1].split("<", 1)[0]


# --- every page: admin, viewer, non-member ---------------------------------------------------

PAGES = [
    "/projects/acme/",
    "/projects/acme/members/",
    "/projects/acme/datasources/",
    "/projects/acme/datasources/dw/",
    "/projects/acme/datasources/wh/",
    "/projects/acme/variables/",
    "/projects/acme/variables/target_schema/",
]


@pytest.mark.parametrize("url", PAGES)
def test_every_page_reads_for_members_and_is_404_for_strangers(as_user, config, url):
    admin = as_user("alice").get(url)
    assert admin.status_code == 200, url
    assert 'data-action="save' in html_of(admin) or "members" in url
    viewer = as_user("vera").get(url)
    assert viewer.status_code == 200
    assert "Acme Data" in html_of(viewer)
    assert as_user("stranger").get(url).status_code == 404
    assert as_user("root").get(url).status_code == 200
    assert PASSWORD not in html_of(admin) + html_of(viewer)


def test_anonymous_goes_to_login(client, config):
    for url in ["/projects/", *PAGES]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_unknown_objects_are_404(as_user, config):
    for url in [
        "/projects/nope/",
        "/projects/acme/datasources/nope/",
        "/projects/acme/variables/nope/",
    ]:
        assert as_user("alice").get(url).status_code == 404
    response = as_user("alice").post("/projects/acme/members/nobody/role", {"role": "admin"})
    assert response.status_code == 404


def test_viewer_sees_no_buttons_that_change(as_user, config):
    pages = "".join(html_of(as_user("vera").get(url)) for url in PAGES)
    for action in [
        "new-datasource",
        "new-variable",
        "add-member",
        "change-role",
        "remove-member",
        'data-action="delete"',
        "test-connection",
    ]:
        assert action not in pages, action
    settings = html_of(as_user("vera").get("/projects/acme/"))
    assert '<fieldset class="form-body" disabled>' in settings


def test_viewer_posts_are_refused_and_change_nothing(as_user, config):
    vera = as_user("vera")
    posts = [
        ("/projects/acme/", {"name": "Hacked", "timezone": "UTC"}),
        ("/projects/acme/delete/", {"confirm": "acme"}),
        ("/projects/acme/members/", {"username": "stranger", "role": "admin"}),
        ("/projects/acme/members/vera/role", {"role": "admin"}),
        ("/projects/acme/members/alice/remove", {}),
        ("/projects/acme/datasources/", {"name": "x", "kind": "sqlite", "path": "/tmp/x"}),
        ("/projects/acme/datasources/wh/", {"name": "wh", "kind": "sqlite", "path": "/x"}),
        ("/projects/acme/datasources/wh/delete", {}),
        ("/projects/acme/datasources/wh/test", {}),
        ("/projects/acme/variables/", {"name": "x", "value": "1"}),
        ("/projects/acme/variables/target_schema/", {"value": "x"}),
        ("/projects/acme/variables/target_schema/delete", {}),
    ]
    before = OperationLog.objects.count()
    for url, data in posts:
        assert vera.post(url, data).status_code == 403, url
        assert as_user("stranger").post(url, data).status_code == 404, url
    assert OperationLog.objects.count() == before
    assert Project.objects.get(code="acme").name == "Acme Data"
    assert Membership.objects.get(user__username="vera").role == "viewer"
    assert Datasource.objects.get(name="wh").path != "/x"
    assert Variable.objects.get(name="target_schema").value == "ods"


# --- the project list and creating a project -------------------------------------------------


def test_list_shows_my_projects_with_role_and_counts(as_user, config, users):
    Project.objects.create(code="secret", name="Secret Things")
    node_create(config, "load", owner=users["alice"])
    html = html_of(as_user("vera").get("/projects/"))
    assert 'href="/projects/" class="active"' in html  # the main menu's entry
    assert 'data-project="acme"' in html and "Secret Things" not in html
    row = html[html.index('data-project="acme"') :].split("</tr>", 1)[0]
    assert '<span class="tag">viewer</span>' in row
    assert '<td class="num"><a href="/nodes/?project=acme">1</a></td>' in row
    assert ">4</a>" in row  # members
    assert ">2</a>" in row  # datasources
    assert 'data-action="new-project"' not in html
    everything = html_of(as_user("root").get("/projects/"))
    assert "Secret Things" in everything and 'data-action="new-project"' in everything
    assert html_of(as_user("stranger").get("/projects/")).count("data-project=") == 0


def test_list_pages_with_a_cursor_and_refuses_a_bad_one(as_user, users):
    for n in range(3):
        Project.objects.create(code=f"p{n}", name=f"P{n}")
    root = as_user("root")
    first = root.get("/projects/?limit=2")
    assert html_of(first).count("data-project=") == 2 and "Next page" in html_of(first)
    cursor = first.context["page"].next_cursor
    second = root.get(f"/projects/?limit=2&cursor={cursor}", **HTMX)
    assert html_of(second).count("data-project=") == 1 and "<html" not in html_of(second)
    bad = root.get("/projects/?cursor=garbage")
    assert bad.status_code == 422 and "not a cursor this list gave" in html_of(bad)


def test_staff_create_a_project_and_become_its_admin(as_user, users):
    users["olga"].is_staff = True
    users["olga"].save()
    response = as_user("olga").post(
        "/projects/",
        {
            "code": "sales",
            "name": "Sales",
            "timezone": "Europe/Berlin",
            "env_mode": "dev_prod",
            "generation_time": "22:15",
            "generation_mode": "immediate",
            "description": "",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/projects/sales/"
    project = Project.objects.get(code="sales")
    assert (project.timezone, project.env_mode, str(project.generation_time)) == (
        "Europe/Berlin",
        "dev_prod",
        "22:15:00",
    )
    assert Membership.objects.get(project=project).role == "admin"
    log = OperationLog.objects.get(action="project.create")
    assert (log.username, log.source) == ("olga", "ui")


def test_create_with_bad_input_shows_each_error_next_to_its_field(as_user, project):
    response = as_user("root").post(
        "/projects/",
        {
            "code": "acme",
            "name": " ",
            "timezone": "Mars/Olympus",
            "env_mode": "basic",
            "generation_time": "25:00",
            "generation_mode": "t_plus_1",
        },
    )
    assert response.status_code == 422
    html = html_of(response)
    assert "already exists" in field_error(html, "code")
    assert field_error(html, "name") == "must not be empty"
    assert "unknown timezone" in field_error(html, "timezone")
    assert "HH:MM" in field_error(html, "generation_time")
    assert 'value="Mars/Olympus"' in html  # what was typed stays
    assert '<details class="new-object" open>' in html
    assert Project.objects.count() == 1
    assert not OperationLog.objects.filter(action="project.create").exists()


def test_members_who_are_not_staff_may_not_create(as_user, project):
    response = as_user("alice").post("/projects/", {"code": "x", "name": "X"})
    assert response.status_code == 403
    assert not Project.objects.filter(code="x").exists()


# --- settings --------------------------------------------------------------------------------


def test_admin_changes_the_settings(as_user, project):
    alice = as_user("alice")
    response = alice.post(
        "/projects/acme/",
        {
            "name": "Acme Analytics",
            "description": "the warehouse",
            "timezone": "UTC",
            "env_mode": "basic",
            "generation_time": "21:30",
            "generation_mode": "t_plus_1",
        },
    )
    assert response.status_code == 302
    project.refresh_from_db()
    assert (project.name, project.timezone, project.generation_time.strftime("%H:%M")) == (
        "Acme Analytics",
        "UTC",
        "21:30",
    )
    log = OperationLog.objects.get(action="project.update")
    assert log.detail == {
        "name": "Acme Analytics",
        "description": "the warehouse",
        "timezone": "UTC",
        "generation_time": "21:30",
    }
    assert log.source == "ui"
    page = html_of(alice.get("/projects/acme/"))
    assert "Project acme saved." in page and 'value="21:30"' in page


def test_bad_settings_change_nothing(as_user, project):
    response = as_user("alice").post(
        "/projects/acme/",
        {
            "name": "Renamed",
            "timezone": "Nowhere/City",
            "env_mode": "sideways",
            "generation_time": "9pm",
            "generation_mode": "t_plus_1",
        },
    )
    assert response.status_code == 422
    html = html_of(response)
    assert "unknown timezone" in field_error(html, "timezone")
    assert "one of basic, dev_prod" in field_error(html, "env_mode")
    assert "HH:MM" in field_error(html, "generation_time")
    assert 'value="Renamed"' in html
    project.refresh_from_db()
    assert project.name == "Acme Data" and project.timezone == "Asia/Shanghai"
    assert not OperationLog.objects.filter(action="project.update").exists()


def test_basic_mode_is_refused_while_dev_nodes_exist(as_user, project, users):
    Project.objects.filter(pk=project.pk).update(env_mode="dev_prod")
    node_create(project, "draft", owner=users["dave"], env="dev")
    response = as_user("alice").post(
        "/projects/acme/",
        {
            "name": "Acme Data",
            "timezone": "Asia/Shanghai",
            "env_mode": "basic",
            "generation_time": "23:00",
            "generation_mode": "t_plus_1",
        },
    )
    assert response.status_code == 422
    assert "dev nodes" in field_error(html_of(response), "env_mode")
    assert Project.objects.get(pk=project.pk).env_mode == "dev_prod"


# --- deleting a project ----------------------------------------------------------------------


def test_delete_asks_to_type_the_code(as_user, project, users):
    page = as_user("alice").get("/projects/acme/delete/")
    assert page.status_code == 200 and 'Type <span class="mono">acme</span>' in html_of(page)
    assert as_user("vera").get("/projects/acme/delete/").status_code == 403
    wrong = as_user("alice").post("/projects/acme/delete/", {"confirm": "acne"})
    assert wrong.status_code == 422
    assert field_error(html_of(wrong), "confirm") == "type acme to confirm"
    assert Project.objects.filter(code="acme").exists()
    done = as_user("alice").post("/projects/acme/delete/", {"confirm": "acme"}, follow=True)
    assert done.redirect_chain[-1][0] == "/projects/"
    assert "Project acme and its history deleted." in html_of(done)
    assert not Project.objects.filter(code="acme").exists()
    assert OperationLog.objects.filter(action="project.delete", username="alice").exists()


def test_delete_refused_while_an_instance_runs_shows_why(as_user, project, users):
    node = node_create(project, "load", owner=users["alice"])
    instance_create(node, datetime.datetime(2026, 11, 21, 2, tzinfo=datetime.UTC), state="running")
    response = as_user("alice").post("/projects/acme/delete/", {"confirm": "acme"})
    assert response.status_code == 409
    assert "queued or running instance(s); stop them first" in html_of(response)
    assert Project.objects.filter(code="acme").exists() and Instance.objects.exists()


# --- members ---------------------------------------------------------------------------------


def test_members_page_lists_roles(as_user, project):
    html = html_of(as_user("vera").get("/projects/acme/members/"))
    for name, role in [("alice", "admin"), ("dave", "developer"), ("olga", "operator")]:
        assert f'data-member="{name}" data-role="{role}"' in html
    assert html.index('data-member="alice"') < html.index('data-member="vera"')
    admin = html_of(as_user("alice").get("/projects/acme/members/"))
    assert '<option value="stranger">' in admin  # completion of users not yet members
    assert '<option value="vera">' not in admin.split('id="usernames"')[1]


def test_admin_adds_changes_and_removes_a_member(as_user, project, users):
    alice = as_user("alice")
    added = alice.post("/projects/acme/members/", {"username": "stranger", "role": "operator"})
    assert added.status_code == 302
    assert Membership.objects.get(user=users["stranger"]).role == "operator"
    changed = alice.post("/projects/acme/members/stranger/role", {"role": "viewer"})
    assert changed.status_code == 302
    assert Membership.objects.get(user=users["stranger"]).role == "viewer"
    removed = alice.post("/projects/acme/members/stranger/remove")
    assert removed.status_code == 302
    assert not Membership.objects.filter(user=users["stranger"]).exists()
    actions = list(
        OperationLog.objects.filter(object_type="member")
        .order_by("id")
        .values_list("action", "source")
    )
    assert actions == [("member.add", "ui"), ("member.update", "ui"), ("member.remove", "ui")]


def test_adding_bad_members_shows_the_errors_next_to_the_fields(as_user, project):
    alice = as_user("alice")
    unknown = alice.post("/projects/acme/members/", {"username": "ghost", "role": "overlord"})
    assert unknown.status_code == 422
    html = html_of(unknown)
    assert field_error(html, "username") == "unknown user &#x27;ghost&#x27;"
    assert "one of viewer, developer, operator, admin" in field_error(html, "role")
    already = alice.post("/projects/acme/members/", {"username": "vera", "role": "viewer"})
    assert "already a member" in field_error(html_of(already), "username")
    assert Membership.objects.filter(project=project).count() == 4


def test_the_last_admin_is_neither_demoted_nor_removed(as_user, project, users):
    alice = as_user("alice")
    demoted = alice.post("/projects/acme/members/alice/role", {"role": "viewer"})
    assert demoted.status_code == 422
    html = html_of(demoted)
    assert 'data-error-for="alice"' in html and "last admin cannot be demoted" in html
    removed = alice.post("/projects/acme/members/alice/remove")
    assert removed.status_code == 409
    assert "last admin cannot be removed" in html_of(removed)
    assert Membership.objects.get(user=users["alice"]).role == "admin"


def test_an_admin_who_leaves_goes_back_to_the_list(as_user, project, users):
    Membership.objects.filter(user=users["olga"]).update(role="admin")
    response = as_user("alice").post("/projects/acme/members/alice/remove")
    assert response.status_code == 302 and response["Location"] == "/projects/"


# --- datasources -----------------------------------------------------------------------------


def test_datasource_list_shows_targets_and_password_state_never_the_password(as_user, config):
    html = html_of(as_user("olga").get("/projects/acme/datasources/"))
    assert 'data-datasource="dw"' in html and PG_DSN in html
    assert html.count('data-action="test-connection"') == 2  # operators test
    assert 'data-action="new-datasource"' not in html  # only admins add
    assert '<span class="tag">set</span>' in html and PASSWORD not in html


def test_admin_adds_a_postgresql_datasource_with_a_password(as_user, project):
    response = as_user("alice").post(
        "/projects/acme/datasources/",
        {"name": "dw", "kind": "postgresql", "dsn": PG_DSN, "password": PASSWORD, "path": ""},
    )
    assert response.status_code == 302 and response["Location"] == "/projects/acme/datasources/dw/"
    datasource = Datasource.objects.get(name="dw")
    assert datasource.get_password() == PASSWORD and datasource.dsn == PG_DSN
    page = html_of(as_user("alice").get("/projects/acme/datasources/dw/"))
    assert 'data-password="set"' in page and PASSWORD not in page
    log = OperationLog.objects.get(action="datasource.create")
    assert log.detail["password"] == "changed" and PASSWORD not in str(log.detail)


def test_a_bad_datasource_shows_errors_and_adds_nothing(as_user, project):
    response = as_user("alice").post(
        "/projects/acme/datasources/",
        {"name": "bad name!", "kind": "postgresql", "dsn": "host=db password=leak", "path": "x"},
    )
    assert response.status_code == 422
    html = html_of(response)
    assert "letters, digits" in field_error(html, "name")
    assert "secret parameters (password)" in field_error(html, "dsn")
    assert "only for sqlite" in field_error(html, "path")
    assert '<details class="new-object" open>' in html
    assert not Datasource.objects.exists()


def test_editing_with_an_empty_password_keeps_it(as_user, config):
    response = as_user("alice").post(
        "/projects/acme/datasources/dw/",
        {"name": "dw", "kind": "postgresql", "dsn": PG_DSN + " sslmode=disable", "password": ""},
    )
    assert response.status_code == 302
    datasource = Datasource.objects.get(name="dw")
    assert datasource.dsn.endswith("sslmode=disable") and datasource.get_password() == PASSWORD
    assert "password" not in OperationLog.objects.get(action="datasource.update").detail


def test_a_new_password_replaces_it_and_remove_clears_it(as_user, config):
    alice = as_user("alice")
    alice.post(
        "/projects/acme/datasources/dw/",
        {"name": "dw", "kind": "postgresql", "dsn": PG_DSN, "password": "new-one"},
    )
    assert Datasource.objects.get(name="dw").get_password() == "new-one"
    alice.post(
        "/projects/acme/datasources/dw/",
        {"name": "dw", "kind": "postgresql", "dsn": PG_DSN, "password": "", "password_clear": "1"},
    )
    assert not Datasource.objects.get(name="dw").has_password


def test_a_bad_edit_changes_nothing(as_user, config, warehouse):
    response = as_user("alice").post(
        "/projects/acme/datasources/wh/",
        {"name": "dw", "kind": "sqlite", "path": ""},
    )
    assert response.status_code == 422
    html = html_of(response)
    assert "already exists" in field_error(html, "name")
    assert "needs the path" in field_error(html, "path")
    assert Datasource.objects.get(name="wh").path == str(warehouse)


def test_a_used_datasource_is_neither_renamed_nor_deleted(as_user, config, users):
    node_create(config, "load_orders", owner=users["alice"], type="sql", datasource="wh")
    page = html_of(as_user("vera").get("/projects/acme/datasources/wh/"))
    assert ">load_orders</a>" in page
    renamed = as_user("alice").post(
        "/projects/acme/datasources/wh/", {"name": "wh2", "kind": "sqlite", "path": "/x.db"}
    )
    assert "nodes use it by name: load_orders" in field_error(html_of(renamed), "name")
    deleted = as_user("alice").post("/projects/acme/datasources/wh/delete", follow=True)
    assert (
        "Datasource wh was not deleted: datasource &#x27;wh&#x27; is used by nodes: load_orders"
        in (html_of(deleted))
    )
    assert Datasource.objects.filter(name="wh").exists()


def test_admin_deletes_an_unused_datasource(as_user, config):
    response = as_user("alice").post("/projects/acme/datasources/wh/delete", follow=True)
    assert response.redirect_chain[-1][0] == "/projects/acme/datasources/"
    assert "Datasource wh deleted." in html_of(response)
    assert not Datasource.objects.filter(name="wh").exists()
    assert OperationLog.objects.filter(action="datasource.delete", source="ui").exists()


def test_test_connection_in_place_connects_to_postgresql(as_user, config):
    response = as_user("olga").post("/projects/acme/datasources/dw/test", **HTMX)
    assert response.status_code == 200
    html = html_of(response)
    assert 'data-ok="true"' in html and "Connected</span>" in html
    assert "Connected to PostgreSQL database postgres on 127.0.0.1:5432" in html
    assert PASSWORD not in html


def test_test_connection_of_a_sqlite_file(as_user, config):
    html = html_of(as_user("alice").post("/projects/acme/datasources/wh/test", **HTMX))
    assert 'data-ok="true"' in html and "1 table(s)" in html


def test_test_connection_failing_shows_the_error_without_the_password(
    as_user, project, users, closed_port
):
    dsn = f"host=127.0.0.1 port={closed_port} dbname=dw user=etl"
    services.datasource_create(
        project=project,
        name="down",
        kind="postgresql",
        dsn=dsn,
        password=PASSWORD,
        user=users["alice"],
    )
    html = html_of(as_user("olga").post("/projects/acme/datasources/down/test", **HTMX))
    assert 'data-ok="false"' in html and "Failed</span>" in html
    assert "could not connect" in html and str(closed_port) in html
    assert PASSWORD not in html
    # Without htmx: the same as a message on the datasource's page.
    page = as_user("olga").post("/projects/acme/datasources/down/test", follow=True)
    assert page.redirect_chain[-1][0] == "/projects/acme/datasources/down/"
    assert "Test of down: could not connect" in html_of(page)
    assert OperationLog.objects.filter(action="datasource.test", result="failed").count() == 2


# --- variables -------------------------------------------------------------------------------


def test_admin_adds_edits_and_deletes_a_variable(as_user, project):
    alice = as_user("alice")
    added = alice.post("/projects/acme/variables/", {"name": "region", "value": "cn-north\r\n1"})
    assert added.status_code == 302
    assert Variable.objects.get(name="region").value == "cn-north\n1"
    listing = html_of(alice.get("/projects/acme/variables/"))
    assert "${var.region}" in listing and "Variable region added." in listing
    edited = alice.post("/projects/acme/variables/region/", {"value": "eu-west"})
    assert edited.status_code == 302
    assert Variable.objects.get(name="region").value == "eu-west"
    deleted = alice.post("/projects/acme/variables/region/delete")
    assert deleted.status_code == 302
    assert not Variable.objects.filter(name="region").exists()
    actions = list(
        OperationLog.objects.filter(object_type="variable")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["variable.create", "variable.update", "variable.delete"]


def test_bad_variable_names_are_refused_next_to_the_field(as_user, config):
    alice = as_user("alice")
    bad = alice.post("/projects/acme/variables/", {"name": "9lives", "value": "x"})
    assert bad.status_code == 422
    assert "not starting with a digit" in field_error(html_of(bad), "name")
    taken = alice.post("/projects/acme/variables/", {"name": "target_schema", "value": "x"})
    assert "already exists" in field_error(html_of(taken), "name")
    assert Variable.objects.get(name="target_schema").value == "ods"
    assert Variable.objects.count() == 1


# --- the audit log shows the page's writes ---------------------------------------------------


def test_the_audit_log_page_lists_the_writes_made_on_these_pages(as_user, project):
    as_user("alice").post("/projects/acme/variables/", {"name": "region", "value": "eu"})
    html = html_of(as_user("alice").get("/audit/?project=acme"))
    assert "variable.create" in html and "region" in html


def test_a_datasource_restored_without_its_password_says_so_until_one_is_set(as_user, config):
    Datasource.objects.filter(name="dw").update(password_encrypted="", restored_without_secret=True)
    assert "missing since restore" in html_of(as_user("vera").get("/projects/acme/datasources/"))
    page = html_of(as_user("alice").get("/projects/acme/datasources/dw/"))
    assert "data-restored-without-secret" in page and "until you set the password" in page
    as_user("alice").post(
        "/projects/acme/datasources/dw/",
        {"name": "dw", "kind": "postgresql", "dsn": PG_DSN, "password": "again"},
    )
    page = html_of(as_user("alice").get("/projects/acme/datasources/dw/"))
    assert "data-restored-without-secret" not in page


def test_pages_that_show_a_project_link_to_it(as_user, project, users):
    node = node_create(project, "load", owner=users["alice"])
    alice = as_user("alice")
    html = html_of(alice.get(f"/nodes/{node.pk}/"))
    assert f'<a href="/projects/acme/">{project.name}</a>' in html
    chosen = html_of(alice.get("/projects/?project=acme"))
    assert (
        '<a class="project-switcher-label" href="/projects/acme/"' in chosen
    )  # the switcher's label


def test_times_are_in_the_projects_zone_unless_the_viewer_chose_one(as_user, project):
    created = datetime.datetime(2026, 11, 21, 2, 0, 30, 123456, tzinfo=datetime.UTC)
    Project.objects.filter(pk=project.pk).update(created_at=created)
    html = html_of(as_user("vera").get("/projects/acme/"))
    assert "2026-11-21 10:00 CST" in html  # Asia/Shanghai
    assert "123456" not in html


def test_the_profile_and_user_menu_lead_to_projects_and_tokens(as_user, project):
    html = html_of(as_user("vera").get("/account/profile/"))
    assert 'href="/projects/" data-link="projects"' in html
    assert 'href="/account/tokens/" data-link="tokens"' in html
    assert '<a href="/account/tokens/">API tokens</a>' in html  # the user menu


@pytest.mark.parametrize(
    "path", ["/projects/acme/", "/projects/acme/members/", "/projects/acme/resources/"]
)
def test_each_project_tab_is_shown_once(as_user, project, path):
    html = html_of(as_user("alice").get(path))
    tabs = re.search(r'<nav class="tabs" aria-label="Project">(.*?)</nav>', html, re.S).group(1)
    labels = re.findall(r">([^<>]+)</a>", tabs)
    assert labels == ["Settings", "Members", "Datasources", "Variables", "Resources", "Runtime"]
