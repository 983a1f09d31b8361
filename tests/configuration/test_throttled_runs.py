"""Throttling rules over real processes run in-process (`drain`): a rule of max 1 over
three shell instances that could all run at once lets them run one after another."""

import datetime

import pytest

from apps.configuration.models import ResourceGroup, ThrottleRule
from apps.instances import worker
from apps.instances.models import Attempt, Instance
from tests.factories import instance_create, node_create

pytestmark = pytest.mark.django_db(transaction=True)

SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)


def test_a_rule_of_one_over_three_shell_instances_never_overlaps(project, users):
    ResourceGroup.objects.update_or_create(name="default", defaults={"max_concurrency": 10})
    nodes = [
        node_create(project, f"sleepy{n}", owner=users["alice"], type="shell", content="sleep 0.6")
        for n in range(3)
    ]
    other = node_create(project, "quick", owner=users["alice"], type="python", content="print(1)")
    instances = [instance_create(node, SCHEDULED) for node in nodes]
    free = instance_create(other, SCHEDULED)
    ThrottleRule.objects.create(
        name="one-shell", scope_kind="node_type", scope_value="shell", max_concurrency=1
    )

    worker.drain(timeout=30, max_workers=4)

    assert set(Instance.objects.values_list("state", flat=True)) == {"succeeded"}
    attempts = sorted(Attempt.objects.filter(instance__in=instances), key=lambda a: a.started_at)
    assert len(attempts) == 3
    for earlier, later in zip(attempts, attempts[1:], strict=False):
        assert earlier.finished_at <= later.started_at, (earlier, later)
    # What the rule does not cover ran beside them.
    quick = Attempt.objects.get(instance=free)
    assert quick.started_at < attempts[-1].started_at
