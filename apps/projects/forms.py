"""The project pages' forms: a POST read into the services' arguments (the API's field
names, so an error the service names lands on its input), and the values an input shows.

Nothing is validated here: the services are the one place that says what is wrong.
"""

from django.http import QueryDict

from .choices import DatasourceKind, EnvMode, GenerationMode, Role
from .models import Datasource, Project
from .services import PROJECT_EDITABLE

PROJECT_FIELDS = ("code", *PROJECT_EDITABLE)
DATASOURCE_FIELDS = ("name", "kind", "dsn", "path", "password")
VARIABLE_FIELDS = ("name", "value")
MEMBER_FIELDS = ("username", "role")


def project_data(post: QueryDict, *, creating: bool) -> dict:
    """The project fields a form posted (the code only when creating: it is fixed)."""
    data = {name: post.get(name, "") for name in PROJECT_EDITABLE}
    data["generation_time"] = data["generation_time"].strip()
    if creating:
        data["code"] = post.get("code", "").strip()
    return data


def project_values(project: Project | None = None) -> dict:
    """What the project form shows: the project's settings, or a new project's defaults."""
    if project is None:
        return {
            "code": "",
            "name": "",
            "description": "",
            "timezone": "UTC",
            "env_mode": EnvMode.BASIC,
            "generation_time": "23:00",
            "generation_mode": GenerationMode.T_PLUS_1,
        }
    values = {name: getattr(project, name) for name in PROJECT_FIELDS}
    values["generation_time"] = project.generation_time.strftime("%H:%M")
    return values


def datasource_data(post: QueryDict, *, creating: bool) -> dict:
    """The datasource fields a form posted. The password is write-only: an empty input
    keeps the stored one (None), the "remove" box clears it ("")."""
    data = {name: post.get(name, "").strip() for name in ("name", "kind", "dsn", "path")}
    password = post.get("password", "")
    if post.get("password_clear") and not creating:
        data["password"] = ""
    else:
        data["password"] = password or None
    return data


def datasource_values(datasource: Datasource | None = None, data: dict | None = None) -> dict:
    """What the datasource form shows: posted values, else the datasource's; never a
    password."""
    if data is not None:
        return {name: data.get(name) or "" for name in ("name", "kind", "dsn", "path")}
    if datasource is None:
        return {"name": "", "kind": DatasourceKind.POSTGRESQL, "dsn": "", "path": ""}
    return {name: getattr(datasource, name) for name in ("name", "kind", "dsn", "path")}


def member_data(post: QueryDict) -> dict:
    return {"username": post.get("username", "").strip(), "role": post.get("role", Role.VIEWER)}


def variable_data(post: QueryDict) -> dict:
    # The value is kept exactly as typed (spaces may matter to a script), but a browser's
    # textarea sends CRLF line ends: scripts get the LF the API would have stored.
    return {
        "name": post.get("name", "").strip(),
        "value": post.get("value", "").replace("\r\n", "\n"),
    }


def unplaced_errors(errors: list[dict], fields: tuple[str, ...]) -> list[dict]:
    """The errors that name none of the form's inputs: shown on top of the form, while
    each of the others is shown next to its input."""
    return [error for error in errors if error.get("field") not in fields]
