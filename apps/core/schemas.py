"""API shapes every app shares: the error answer, the base of request bodies, list paging.

Schema names are the OpenAPI document's component names, one namespace for the whole
API: two classes of one name would make the document describe one with the other's
shape (tests/test_openapi.py refuses it). Name a schema after what it is
(`NodeDagOut`, `InstanceDagOut`), not after its role alone (`DagOut`).
"""

from typing import Annotated

from ninja import Field, Schema
from pydantic import ConfigDict

MAX_ID = 2**63 - 1
# The id of an object in a request body. Ids are positive 64-bit integers on every
# database; anything else names no object (and SQLite cannot even compare a larger one).
ObjectId = Annotated[int, Field(ge=1, le=MAX_ID)]


class ErrorItemOut(Schema):
    field: str = Field(
        "",
        description="the input at fault as a dotted path (`nodes.0.schedule.cron`, `body`); "
        "empty when the error is about no one field",
    )
    message: str
    node: str | None = Field(None, description="publish and node operations: the node it is about")


class ErrorOut(Schema):
    """Every 4xx answer of the API."""

    detail: str = Field(description="what went wrong, for people")
    errors: list[ErrorItemOut] = Field(description="one entry per wrong input, when there are any")


def errors(*statuses: int) -> dict[int, type[ErrorOut]]:
    """The refusals an operation gives besides the ones any request may get (401; 422 for
    input that does not validate; 400 and 413 for a body; 404 for a path naming no object;
    403 for a write: opscenter.api documents those for every operation), as
    `response={200: NodeOut, **errors(409)}`."""
    return dict.fromkeys(statuses, ErrorOut)


class InputSchema(Schema):
    """A request body. It refuses keys it does not know, so a typo (`parameters` for
    `params`) is answered 422 naming it instead of silently ignored."""

    model_config = ConfigDict(extra="forbid")


class PageQuery(Schema):
    """`?limit=&cursor=` of a keyset-paginated list (apps.core.pagination)."""

    limit: int | None = None
    cursor: str | None = None
