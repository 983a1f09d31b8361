"""django-q2 tasks of the instances app. Thin: parse, call a service."""

import datetime

from apps.core import clock

from . import generation


def generate_project(project: str, intended_at: str | None = None) -> dict:
    """The nightly generation schedule "generate:<project>" fires this at the project's
    generation time; django-q2 passes the time it was due as `intended_at` (ISO 8601)."""
    due = datetime.datetime.fromisoformat(intended_at) if intended_at else clock.now()
    result = generation.generate_nightly(project_code=project, intended_at=due)
    return {"instances_created": result.instances_created, "edges_created": result.edges_created}
