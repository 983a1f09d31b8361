"""Issue 13, finding 1: a queued instance whose task was lost (its cluster crashed with the
task taken from the broker) is handed out again after OPSCENTER_QUEUED_TIMEOUT_SECONDS,
by one dispatcher only, and runs once; diagnosis says when a queued instance is overdue."""

import datetime

import pytest

from apps.instances import diagnosis, dispatcher, worker
from apps.instances.models import Attempt, Instance, InstanceEvent
from tests.factories import Enqueued, instance_create, node_create

NOW = datetime.datetime(2026, 11, 21, 10, 0, tzinfo=datetime.UTC)
LATER = NOW + datetime.timedelta(seconds=301)


@pytest.fixture
def queued(project, users, settings, django_capture_on_commit_callbacks):
    """An instance the dispatcher queued at NOW whose task never reached a worker."""
    settings.OPSCENTER_QUEUED_TIMEOUT_SECONDS = 300
    node = node_create(project, "load", owner=users["alice"], type="virtual")
    instance = instance_create(node, NOW - datetime.timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatcher.tick(now=NOW, enqueue=Enqueued()).queued == [instance.pk]
    return instance


def test_a_queued_instance_no_worker_took_is_handed_out_again_once(
    queued, django_capture_on_commit_callbacks
):
    # Before the timeout it is left alone: a worker may still take its task.
    early = Enqueued()
    with django_capture_on_commit_callbacks(execute=True):
        dispatcher.tick(now=NOW + datetime.timedelta(seconds=299), enqueue=early)
    assert early.handed == []

    first, second = Enqueued(), Enqueued()
    with django_capture_on_commit_callbacks(execute=True):
        result = dispatcher.tick(now=LATER, enqueue=first)
    # A second dispatcher passing at the same moment finds nothing overdue any more.
    with django_capture_on_commit_callbacks(execute=True):
        dispatcher.tick(now=LATER, enqueue=second)
    assert first.handed == [("default", [queued.pk])]
    assert second.handed == []
    assert result.requeued == 1
    instance = Instance.objects.get(pk=queued.pk)
    assert instance.state == "queued" and instance.queued_at == LATER
    causes = list(
        InstanceEvent.objects.filter(instance=queued).values_list("from_state", "to_state", "cause")
    )
    assert causes[-2:] == [("queued", "pending", "requeue"), ("pending", "queued", "dispatch")]


def test_the_original_task_arriving_late_and_the_new_one_run_it_once(
    queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        dispatcher.tick(now=LATER, enqueue=Enqueued())
    # Both tasks reach workers in the end: the first runs it, the second finds it taken.
    assert worker.run_attempt(queued.pk, enqueue=Enqueued()) == "succeeded"
    assert worker.run_attempt(queued.pk, enqueue=Enqueued()) is None
    assert Attempt.objects.filter(instance=queued).count() == 1


def test_diagnosis_says_a_queued_instance_is_overdue(queued):
    instance = Instance.objects.get(pk=queued.pk)
    waiting = diagnosis.diagnose(instance, now=NOW + datetime.timedelta(seconds=60))
    assert waiting.summary == "queued: waiting for a worker of resource group 'default'"
    overdue = diagnosis.diagnose(instance, now=LATER)
    assert overdue.summary.startswith(
        "queued for 301s: overdue, no worker has taken it within "
        "OPSCENTER_QUEUED_TIMEOUT_SECONDS (300s)"
    )
    assert "the next dispatcher pass hands it out again" in overdue.summary.lower()
    assert [note.kind for note in overdue.notes] == ["queued_overdue"]
    assert overdue.notes[0].detail == {"queued_seconds": 301.0, "timeout_seconds": 300.0}
