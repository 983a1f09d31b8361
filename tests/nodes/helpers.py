"""Small builders shared by the node tests."""

import pytest

from apps.core.errors import ValidationFailed
from apps.nodes.services import nodes_publish


def spec(name: str, **fields) -> dict:
    """A minimal valid NodeSpec: a daily virtual node."""
    return {
        "name": name,
        "type": "virtual",
        "schedule": {"type": "recurring", "cron": "0 2 * * *"},
        **fields,
    }


def publish(project, user, *specs, env: str = "prod", **kwargs):
    return nodes_publish(project=project, env=env, specs=list(specs), user=user, **kwargs)


def publish_errors(project, user, *specs, env: str = "prod") -> list[dict]:
    """The errors a refused publish answers (failing the test if it was accepted)."""
    with pytest.raises(ValidationFailed) as caught:
        publish(project, user, *specs, env=env)
    return caught.value.errors


def fields_of(errors: list[dict]) -> set[tuple]:
    return {(e["node"], e["field"]) for e in errors}
