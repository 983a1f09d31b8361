"""Deleting a project and generating its instances never meet half way: a delete waits
for the generation in progress (or answers 409 when it runs too long), and a generator
skips a project deleted under it."""

import datetime
import io
import logging
import threading

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from apps.instances import generation
from apps.instances.generation import generate
from apps.instances.models import GenerationRun, Instance, InstanceDependency
from apps.nodes.models import Node, NodeVersion
from apps.projects import services
from apps.projects.models import Project
from tests.factories import node_create
from tests.instances.test_generation import wait_until_blocked_or_done

pytestmark = pytest.mark.django_db(transaction=True)

RUN_DATE = datetime.date(2026, 11, 23)
EARLY = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)


@pytest.fixture
def pipeline(project, users):
    extract = node_create(project, "extract", owner=users["alice"], published_at=EARLY)
    node_create(
        project,
        "load",
        owner=users["alice"],
        upstream=[extract],
        cron="0 6 * * *",
        published_at=EARLY,
    )
    return project


class PausedGenerator:
    """A generator in a thread that stops between its phases (instances inserted, edges
    not yet computed) while it holds the generation lock, until `resume()`."""

    def __init__(self, monkeypatch, projects):
        self.inside, self.go = threading.Event(), threading.Event()
        self.results, self.errors = [], []
        real_edges = generation._edges

        def paused_edges(*args, **kwargs):
            self.inside.set()
            assert self.go.wait(60), "the test never resumed the generator"
            yield from real_edges(*args, **kwargs)

        monkeypatch.setattr(generation, "_edges", paused_edges)
        self.thread = threading.Thread(target=self._run, args=(projects,))
        self.thread.start()
        assert self.inside.wait(60), "the generator never reached its edges phase"

    def _run(self, projects):
        try:
            self.results.append(generate(run_date=RUN_DATE, projects=projects))
        except Exception as exc:  # asserted by the test
            self.errors.append(exc)
        finally:
            connection.close()

    def resume(self):
        self.go.set()
        self.thread.join(60)
        assert not self.thread.is_alive()


def warm(client: Client) -> Client:
    # A token's first use records it (a write); do it before a generator holds the lock.
    assert client.get("/api/projects/acme").status_code == 200
    return client


def test_a_generator_skips_a_project_deleted_after_it_read_it(pipeline, users, caplog):
    stale = Project.objects.get(code="acme")  # what a generator listed before the delete
    services.project_delete(project=Project.objects.get(code="acme"), user=users["root"])

    with caplog.at_level(logging.WARNING, logger="apps.instances.generation"):
        result = generate(run_date=RUN_DATE, projects=[stale])

    assert result.instances_created == 0 and result.skipped_projects == ["acme"]
    assert "acme" in caplog.text and "deleted" in caplog.text
    assert not GenerationRun.objects.exists() and not Instance.objects.exists()


def test_the_generate_command_says_it_skipped_a_deleted_project(pipeline, users, monkeypatch):
    # The command lists the projects first; one is deleted before its turn comes.
    real = generation._generate_project

    def delete_first(project, **kwargs):
        services.project_delete(project=Project.objects.get(pk=project.pk), user=users["root"])
        return real(project, **kwargs)

    monkeypatch.setattr(generation, "_generate_project", delete_first)
    out = io.StringIO()
    call_command("opscenter", "generate", "--date", RUN_DATE.isoformat(), stdout=out)
    assert "acme: skipped, the project was deleted" in out.getvalue()


def test_a_delete_during_a_generation_waits_for_it(pipeline, api_as, monkeypatch):
    admin = warm(api_as("alice"))
    generator = PausedGenerator(monkeypatch, [pipeline])
    answers = []

    def delete():
        try:
            answers.append(admin.delete("/api/projects/acme"))
        finally:
            connection.close()

    deleter = threading.Thread(target=delete)
    deleter.start()
    wait_until_blocked_or_done(deleter)  # PostgreSQL: it waits for the generation lock
    generator.resume()
    deleter.join(60)

    assert generator.errors == []
    assert generator.results[0].instances_created == 2
    assert generator.results[0].edges_created == 1
    assert [a.status_code for a in answers] == [204], [a.content for a in answers]
    assert not Project.objects.filter(code="acme").exists()
    assert not Instance.objects.exists() and not InstanceDependency.objects.exists()
    assert not Node.objects.exists() and not NodeVersion.objects.exists()


def test_a_delete_that_waits_too_long_for_a_generation_answers_409(pipeline, api_as, monkeypatch):
    admin = warm(api_as("alice"))
    monkeypatch.setattr(generation, "GENERATION_WAIT_SECONDS", 0.3)
    generator = PausedGenerator(monkeypatch, [pipeline])
    try:
        response = admin.delete("/api/projects/acme")
    finally:
        generator.resume()

    assert response.status_code == 409, response.content
    body = response.json()
    assert "generat" in body["detail"] and body["errors"] == []
    assert generator.errors == [] and generator.results[0].instances_created == 2
    assert Project.objects.filter(code="acme").exists()
    assert Instance.objects.filter(project__code="acme").count() == 2
    # Once the generation is over, the delete goes through.
    assert admin.delete("/api/projects/acme").status_code == 204
    assert not Instance.objects.exists()
