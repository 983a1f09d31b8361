"""Schemathesis over the whole OpenAPI document, as a superuser with a bearer token, on a
seeded project: no answer is a server error, every status is one the document lists for
that operation, and every answer has the documented shape.

One test per operation (schemathesis parametrizes it), a bounded number of generated
requests each, from a fixed seed, so a run is repeatable and takes seconds. Path
parameters mostly name the seeded objects (else nearly every request would be a 404),
sometimes what was generated. Operations added later are covered as they appear.
"""

import datetime
import json
import zlib

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from apps.accounts.models import ApiToken
from apps.backfills.services import backfill_create
from apps.instances.models import Attempt
from apps.projects.models import Datasource, Variable
from opscenter.api import api
from opscenter.wsgi import application
from tests.factories import instance_create, node_create

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
# Generated requests (valid and invalid ones) per operation: about 1,200 for the API of
# today, some twenty seconds on either database. The coverage phase (every boundary of
# every parameter) would multiply that by four; the stateful one needs links the
# document does not declare.
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20261113,
        "generation": {"max-examples": 15, "database": "none"},
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        "suppress-health-check": ["all"],
    }
)
SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)

# The document as /api/openapi.json serves it.
schema = schemathesis.openapi.from_dict(
    json.loads(json.dumps(api.get_openapi_schema())), config=CONFIG
)


@pytest.fixture
def seeded(project, users) -> dict[str, list]:
    """A project with a small pipeline and history; path parameter -> values that exist."""
    alice = users["alice"]
    extract = node_create(project, "extract", owner=alice)
    load = node_create(project, "load", owner=alice, upstream=[extract], cron="0 * * * *")
    manual = node_create(project, "manual", owner=alice, schedule_type="one_time")
    done = instance_create(extract, SCHEDULED, state="succeeded")
    Attempt.objects.create(
        instance=done, number=1, state="succeeded", started_at=SCHEDULED, finished_at=SCHEDULED
    )
    failed = instance_create(load, SCHEDULED, upstream=[done], state="failed")
    Attempt.objects.create(
        instance=failed, number=1, state="failed", started_at=SCHEDULED, exit_code=1
    )
    pending = instance_create(load, SCHEDULED + datetime.timedelta(hours=1), upstream=[done])
    Datasource.objects.create(project=project, name="lake", kind="sqlite", path="/tmp/lake.db")
    Variable.objects.create(project=project, name="region", value="eu")
    backfill = backfill_create(
        by=users["root"],
        source="api",
        nodes=[extract.pk],
        downstream="all",
        start=datetime.date(2026, 11, 1),
        end=datetime.date(2026, 11, 2),
    )
    return {
        "code": [project.code],
        "node_id": [extract.pk, load.pk, manual.pk],
        "instance_id": [done.pk, failed.pk, pending.pk],
        "upstream_id": [done.pk],
        "backfill_id": [backfill.pk],
        "username": ["vera", "alice"],
        "name": ["lake", "region"],
    }


@pytest.fixture
def test_connection_kept():
    # Requests go through the WSGI application itself, which closes the database
    # connection when a request ends; the test's transaction lives on that connection.
    # (Django's test client does the same around each request.)
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def root_token(users) -> str:
    _, key = ApiToken.issue(user=users["root"], name="fuzz")
    return key


def _aim(case, seeded: dict[str, list]) -> None:
    """Point three of four requests' path parameters at seeded objects, chosen from the
    generated value itself so a seed replays the same requests."""
    for name, value in list((case.path_parameters or {}).items()):
        known = seeded.get(name)
        if not known:
            continue
        pick = zlib.crc32(repr(value).encode())
        if pick % 4:
            case.path_parameters[name] = known[pick % len(known)]


@pytest.mark.django_db
@schema.parametrize()
def test_the_api_keeps_its_document(case, seeded, root_token, test_connection_kept):
    _aim(case, seeded)
    case.call_and_validate(
        app=application, headers={"Authorization": f"Bearer {root_token}"}, checks=CHECKS
    )
