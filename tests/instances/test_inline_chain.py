"""A worker that finishes an instance runs a ready child of its own resource group
itself, within the group's limit and a bounded number of hops; others are enqueued."""

import datetime

import pytest

from apps.configuration.models import ResourceGroup
from apps.instances import states, worker
from apps.instances.models import Attempt, Instance
from tests.factories import Enqueued, instance_create, node_create

pytestmark = pytest.mark.django_db(transaction=True)

SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)


def queued(instance):
    states.instances_queue(ids=[instance.pk], now=SCHEDULED)
    return instance


def state(instance) -> str:
    return Instance.objects.get(pk=instance.pk).state


def chain(project, owner, length: int, *, group: str = "default"):
    node = node_create(project, f"link-{group}", owner=owner, resource_group=group)
    instances = [instance_create(node, SCHEDULED, kind="one_time")]
    for _ in range(length - 1):
        instances.append(
            instance_create(node, SCHEDULED, kind="one_time", upstream=[instances[-1]])
        )
    return instances


def test_a_chain_of_its_own_group_runs_inline_on_one_worker(project, users):
    links = chain(project, users["alice"], 4)
    enqueue = Enqueued()
    inline = []

    assert worker.run_attempt(queued(links[0]).pk, enqueue=enqueue, on_inline=inline.append) == (
        "succeeded"
    )

    assert [state(i) for i in links] == ["succeeded"] * 4
    assert enqueue.handed == []
    assert inline == [i.pk for i in links[1:]]
    assert Attempt.objects.filter(state="succeeded").count() == 4
    assert "nothing to run" in "".join(
        Attempt.objects.get(instance=links[-1]).log_chunks.values_list("text", flat=True)
    )


def test_a_child_of_another_group_is_enqueued_not_run_inline(project, users):
    owner = users["alice"]
    parent = instance_create(node_create(project, "parent", owner=owner), SCHEDULED)
    other = node_create(project, "other", owner=owner, resource_group="etl")
    child = instance_create(other, SCHEDULED, upstream=[parent])
    enqueue = Enqueued()

    worker.run_attempt(queued(parent).pk, enqueue=enqueue)

    assert enqueue.handed == [("etl", [child.pk])]
    assert state(child) == "queued"
    assert not Attempt.objects.filter(instance=child).exists()


def test_inline_start_keeps_the_group_limit(project, users):
    owner = users["alice"]
    ResourceGroup.objects.create(name="small", max_concurrency=2)
    node = node_create(project, "fan", owner=owner, resource_group="small")
    holder = queued(instance_create(node, SCHEDULED, kind="one_time"))
    states.attempt_start(instance_id=holder.pk, now=SCHEDULED)  # holds one slot throughout
    parent = queued(instance_create(node, SCHEDULED, kind="one_time"))
    children = [
        instance_create(node, SCHEDULED, kind="one_time", upstream=[parent]) for _ in range(3)
    ]
    enqueue = Enqueued()

    worker.run_attempt(parent.pk, enqueue=enqueue)

    # The parent's slot went to exactly one child, run inline; the others wait.
    assert sorted(state(c) for c in children) == ["pending", "pending", "succeeded"]
    assert enqueue.handed == []
    assert state(holder) == "running"


def test_the_inline_chain_is_bounded_then_goes_to_the_queue(project, users, monkeypatch):
    monkeypatch.setattr(worker, "INLINE_CHAIN_LIMIT", 3)
    links = chain(project, users["alice"], 6)
    enqueue = Enqueued()

    worker.run_attempt(queued(links[0]).pk, enqueue=enqueue)

    assert [state(i) for i in links] == ["succeeded"] * 4 + ["queued", "pending"]
    assert enqueue.handed == [("default", [links[4].pk])]
