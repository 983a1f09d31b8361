"""The worker's "after success" hook (apps.instances.checks): what features register runs
after a command succeeded and before the attempt is recorded; a check that fails or
raises fails the attempt, and the children wait."""

import pytest

from apps.instances import checks, worker
from apps.instances.models import Attempt, Instance
from tests.factories import instance_create, node_create

from .conftest import SCHEDULED

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def extra_check():
    """Registers a check for one test, then takes it away."""
    names = []

    def register(name, check):
        names.append(name)
        checks.register(name, check)

    yield register
    for name in names:
        checks._CHECKS.pop(name, None)


def test_field_rules_are_registered_by_their_app():
    assert "field rules" in checks.registered()


def test_a_failing_check_fails_the_attempt_and_holds_the_children(project, users, extra_check):
    seen = []

    def check(context):
        seen.append((context.instance.pk, context.attempt.number, context.render("${bizdate}")))
        context.line("extra check: the output is short")
        return checks.CheckFailure(reason="the output is short", retryable=False)

    extra_check("extra", check)
    parent = node_create(project, "parent", owner=users["alice"], type="shell", content="true")
    child = node_create(
        project, "child", owner=users["alice"], type="shell", upstream=[parent], content="true"
    )
    i_parent = instance_create(parent, SCHEDULED)
    i_child = instance_create(child, SCHEDULED, upstream=[i_parent])

    worker.drain(timeout=20)

    assert seen == [(i_parent.pk, 1, "20261119")]
    attempt = Attempt.objects.get(instance=i_parent)
    assert (attempt.state, attempt.exit_code, attempt.reason) == (
        "failed",
        0,
        "the output is short",
    )
    assert Instance.objects.get(pk=i_parent.pk).state == "failed"
    assert Instance.objects.get(pk=i_child.pk).state == "pending"


def test_a_check_that_raises_fails_the_attempt_saying_so(project, users, extra_check):
    def check(context):
        raise RuntimeError("the catalog is away")

    extra_check("catalog", check)
    node = node_create(project, "n", owner=users["alice"], type="shell", content="true")
    instance = instance_create(node, SCHEDULED)
    worker.drain(timeout=20)
    attempt = Attempt.objects.get(instance=instance)
    assert attempt.reason == "catalog could not be checked: the catalog is away"
    assert Instance.objects.get(pk=instance.pk).state == "failed"


def test_a_failed_command_is_not_checked(project, users, extra_check):
    calls = []
    extra_check("count", lambda context: calls.append(context) and None)
    node = node_create(project, "n", owner=users["alice"], type="shell", content="exit 3")
    instance_create(node, SCHEDULED)
    worker.drain(timeout=20)
    assert calls == []
