"""Virtual instances run nothing: the dispatcher hands them over in batches, and a worker
runs a batch in one transaction, with an attempt and a log each, then starts what the
batch unblocked. Every other instance travels alone."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.instances import dispatcher, worker
from apps.instances.models import Attempt, AttemptLogChunk, Instance
from tests.factories import Enqueued, instance_create, node_create

# Claims hand over on commit, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)


@pytest.fixture
def owner(users):
    return users["alice"]


def queued_instances(node, count: int, **fields) -> list[int]:
    return [
        instance_create(
            node, SCHEDULED + datetime.timedelta(minutes=k), state="queued", **fields
        ).pk
        for k in range(count)
    ]


def test_handoff_sends_virtual_instances_in_batches_first_and_others_alone(
    project, owner, settings
):
    settings.OPSCENTER_VIRTUAL_BATCH = 2
    shell = node_create(project, "sh", owner=owner, type="shell", content="true")
    virtual = node_create(project, "v", owner=owner)
    s = instance_create(shell, SCHEDULED).pk
    v1, v2, v3 = queued_instances(virtual, 3)

    assert dispatcher.handoff_batches([s, v1, v2, v3]) == [[v1, v2], [v3], [s]]
    settings.OPSCENTER_VIRTUAL_BATCH = 1
    assert dispatcher.handoff_batches([s, v1, v2, v3]) == [[s], [v1], [v2], [v3]]


def test_enqueue_on_cluster_makes_a_task_per_batch(project, owner, settings, monkeypatch):
    settings.OPSCENTER_VIRTUAL_BATCH = 50
    settings.OPSCENTER_GROUP_QUEUES = {"default": "shared"}
    sent = []
    monkeypatch.setattr(
        "django_q.tasks.async_task",
        lambda func, *args, **kwargs: sent.append((func, args, kwargs["cluster"])),
    )
    shell = node_create(project, "sh", owner=owner, type="shell", content="true")
    virtual = node_create(project, "v", owner=owner)
    s = instance_create(shell, SCHEDULED).pk
    vs = queued_instances(virtual, 3)

    dispatcher.enqueue_on_cluster("default", [s, *vs])

    assert sent == [
        ("apps.instances.tasks.run_instances", (vs,), "shared"),
        ("apps.instances.tasks.run_instance", (s,), "shared"),
    ]


def test_a_batch_succeeds_with_an_attempt_and_a_log_each_in_constant_queries(project, owner):
    node = node_create(project, "v", owner=owner)
    small = queued_instances(node, 3)
    large = queued_instances(node, 30, kind="one_time")

    with CaptureQueriesContext(connection) as few:
        worker.run_instances(small, enqueue=Enqueued())
    with CaptureQueriesContext(connection) as many:
        worker.run_instances(large, enqueue=Enqueued())

    assert len(many.captured_queries) == len(few.captured_queries)
    ran = Instance.objects.filter(pk__in=small + large)
    assert set(ran.values_list("state", flat=True)) == {"succeeded"}
    assert not ran.filter(started_at=None).exists()
    assert not ran.filter(finished_at=None).exists()
    assert set(ran.values_list("attempt_count", flat=True)) == {1}
    attempts = Attempt.objects.filter(instance__in=small + large)
    assert attempts.count() == 33
    assert set(attempts.values_list("state", "number")) == {("succeeded", 1)}
    text = AttemptLogChunk.objects.get(attempt__instance_id=small[0]).text
    assert "attempt 1 of acme.v v1 (virtual)" in text
    assert "[opscenter] virtual node: nothing to run" in text
    assert text.endswith("attempt 1 succeeded\n")
    assert attempts.get(instance_id=small[0]).log_size == len(text)


def test_a_batch_leaves_instances_stopped_or_taken_meanwhile_alone(project, owner):
    node = node_create(project, "v", owner=owner)
    ready, stopped, taken = queued_instances(node, 3)
    Instance.objects.filter(pk=stopped).update(state="stopped")
    Instance.objects.filter(pk=taken).update(state="running")

    worker.run_instances([ready, stopped, taken], enqueue=Enqueued())

    states = dict(
        Instance.objects.filter(pk__in=[ready, stopped, taken]).values_list("id", "state")
    )
    assert states == {ready: "succeeded", stopped: "stopped", taken: "running"}
    assert list(Attempt.objects.values_list("instance_id", flat=True)) == [ready]


def test_a_batch_starts_what_it_unblocked_one_inline_and_the_rest_queued(project, owner):
    a = node_create(project, "a", owner=owner)
    b = node_create(project, "b", owner=owner)
    child = node_create(project, "child", owner=owner, upstream=[a, b])
    elsewhere = node_create(
        project, "elsewhere", owner=owner, type="shell", content="true", resource_group="other"
    )
    i_a = instance_create(a, SCHEDULED, state="queued")
    i_b = instance_create(b, SCHEDULED, state="queued")
    i_child = instance_create(child, SCHEDULED, upstream=[i_a, i_b])
    i_elsewhere = instance_create(elsewhere, SCHEDULED, upstream=[i_a])
    enqueued = Enqueued()
    inline = []

    worker.run_instances([i_a.pk, i_b.pk], enqueue=enqueued, on_inline=inline.append)

    # The child of the batch's own group ran inline; the other group's went to its queue.
    assert inline == [i_child.pk]
    assert Instance.objects.get(pk=i_child.pk).state == "succeeded"
    assert enqueued.handed == [("other", [i_elsewhere.pk])]
    assert Instance.objects.get(pk=i_elsewhere.pk).state == "queued"


def test_a_mixed_hand_off_runs_the_virtual_ones_together_and_the_others_for_real(project, owner):
    virtual = node_create(project, "v", owner=owner)
    shell = node_create(project, "sh", owner=owner, type="shell", content="echo from-shell")
    v = queued_instances(virtual, 2)
    s = instance_create(shell, SCHEDULED, state="queued").pk

    worker.run_instances([*v, s], enqueue=Enqueued())

    states = dict(Instance.objects.filter(pk__in=[*v, s]).values_list("id", "state"))
    assert states == {v[0]: "succeeded", v[1]: "succeeded", s: "succeeded"}
    shell_log = "".join(
        AttemptLogChunk.objects.filter(attempt__instance_id=s).values_list("text", flat=True)
    )
    # The shell instance ran as a process, not as a virtual one.
    assert "from-shell" in shell_log and "nothing to run" not in shell_log
