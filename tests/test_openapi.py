"""The OpenAPI document tells the truth: every schema name is one class, each operation is
documented with its own shapes, and every error answer an operation can give is listed
with the one error shape."""

import json
import typing

import pytest
from ninja.openapi.schema import REF_TEMPLATE
from ninja.schema import NinjaGenerateJsonSchema
from pydantic import BaseModel

from opscenter.api import api

ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
UNSAFE = {"post", "put", "patch", "delete"}


def operations():
    for router in api._get_bound_routers():
        for path_view in router.path_operations.values():
            yield from path_view.operations


def _classes_in(annotation, found: set) -> None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation not in found:
            found.add(annotation)
            for field in annotation.model_fields.values():
                _classes_in(field.annotation, found)
        return
    for arg in typing.get_args(annotation):
        _classes_in(arg, found)


def schema_classes() -> dict[str, set[type]]:
    """Every schema class an operation takes or answers (ninja's own per-operation
    wrappers left out), by name."""
    by_name: dict[str, set[type]] = {}
    for operation in operations():
        wrappers = list(operation.models) + [
            m for m in operation.response_models.values() if isinstance(m, type)
        ]
        for wrapper in wrappers:
            found: set[type] = set()
            for field in wrapper.model_fields.values():
                _classes_in(field.annotation, found)
            for cls in found:
                by_name.setdefault(cls.__name__, set()).add(cls)
    return by_name


@pytest.fixture(scope="module")
def document() -> dict:
    # As /api/openapi.json serves it (status codes are strings there).
    return json.loads(json.dumps(api.get_openapi_schema()))


def test_the_document_served_is_the_one_tested(client, document):
    assert client.get("/api/openapi.json").json() == document


def test_every_schema_name_belongs_to_one_class():
    # ninja keeps one component per name: a second class of the same name silently
    # replaces the first, and the operations using the first are documented wrong.
    shared = {
        name: sorted(f"{c.__module__}.{c.__qualname__}" for c in classes)
        for name, classes in schema_classes().items()
        if len(classes) > 1
    }
    assert shared == {}


def test_every_operation_is_documented_with_its_own_schemas(document):
    components = document["components"]["schemas"]
    wrong = []
    for operation in operations():
        models = [(m, "validation") for m in operation.models] + [
            (m, "serialization") for m in operation.response_models.values() if isinstance(m, type)
        ]
        for model, mode in models:
            own = model.model_json_schema(
                ref_template=REF_TEMPLATE, schema_generator=NinjaGenerateJsonSchema, mode=mode
            )
            for name, definition in own.get("$defs", {}).items():
                if name in components and components[name] != definition:
                    wrong.append(
                        f"{operation.view_func.__module__}.{operation.view_func.__name__}: {name}"
                    )
    assert wrong == []


def test_the_node_graph_is_documented_as_the_node_graph(document):
    answer = document["paths"]["/api/nodes/{node_id}/dag"]["get"]["responses"]["200"]
    ref = answer["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(schema["properties"]) == {"node", "nodes", "edges"}


def test_operation_ids_are_unique(document):
    ids = [op["operationId"] for methods in document["paths"].values() for op in methods.values()]
    assert len(ids) == len(set(ids))


def test_the_error_shape_is_one_schema(document):
    error = document["components"]["schemas"]["ErrorOut"]
    assert error["required"] == ["detail", "errors"]
    item = error["properties"]["errors"]["items"]["$ref"].rsplit("/", 1)[1]
    assert {"field", "message"} <= set(document["components"]["schemas"][item]["properties"])


def test_every_operation_documents_the_errors_any_request_may_get(document):
    missing = []
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            where = {p["in"] for p in operation.get("parameters", [])}
            expected = {"401"}
            if where or "requestBody" in operation:
                expected.add("422")  # input that does not validate
            if "requestBody" in operation:
                expected |= {"400", "413"}  # not JSON; too large
            if "path" in where:
                expected.add("404")  # no such object
            if method in UNSAFE:
                expected.add("403")  # a role the caller lacks, or a session without CSRF
            for status in sorted(expected):
                answer = operation["responses"].get(status)
                schema = answer and answer.get("content", {}).get("application/json", {})
                if not schema or schema.get("schema") != ERROR_REF:
                    missing.append(f"{method.upper()} {path} {status}")
    assert missing == []


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("delete", "/api/projects/{code}", "409"),  # something runs; a generation runs
        ("delete", "/api/projects/{code}/members/{username}", "409"),  # the last admin
        ("delete", "/api/projects/{code}/datasources/{name}", "409"),  # nodes use it
        ("post", "/api/nodes/{node_id}/run", "409"),
        ("post", "/api/nodes/{node_id}/pause", "409"),
        ("post", "/api/nodes/{node_id}/offline", "409"),
        ("get", "/api/nodes/{node_id}/realtime", "409"),  # not a realtime node
        ("post", "/api/nodes/{node_id}/realtime/start", "409"),
        ("post", "/api/instances/{instance_id}/rerun", "409"),
        ("post", "/api/instances/{instance_id}/stop", "409"),
        ("patch", "/api/instances/{instance_id}", "409"),
        ("delete", "/api/instances/{instance_id}/upstream/{upstream_id}", "409"),
        ("post", "/api/backfills/{backfill_id}/stop", "409"),
        ("post", "/api/backfills", "404"),  # a project of the nodes one is not a member of
        ("get", "/api/overview", "404"),  # ?project= one cannot see
    ],
)
def test_operations_document_their_own_refusals(document, method, path, status):
    answer = document["paths"][path][method]["responses"].get(status)
    assert answer and answer["content"]["application/json"]["schema"] == ERROR_REF
