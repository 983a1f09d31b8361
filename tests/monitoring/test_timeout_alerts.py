"""The built-in timeout alert of runtime configuration (`alert_only`): the minute pass
raises it without any MonitorRule, once per attempt, keyed apart from every rule's, and
sends it to the node's owner through the project's channels (a real HTTP receiver)."""

import datetime

import pytest

from apps.configuration.runtime import resolve
from apps.instances import states
from apps.monitoring import timepass
from apps.monitoring.models import Alert
from apps.notifications import services as notifications
from apps.notifications.models import Channel, Delivery
from tests.factories import instance_create, node_create

SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)
T0 = datetime.datetime(2026, 11, 20, 3, 0, tzinfo=datetime.UTC)
MIN = datetime.timedelta(minutes=1)

pytestmark = pytest.mark.django_db(transaction=True)


def started(instance, at, *, timeout: int, action: str):
    """An attempt started as the worker starts one, with these runtime settings."""
    states.instances_queue(ids=[instance.pk], now=at)
    attempt = states.attempt_start(instance_id=instance.pk, now=at)
    runtime = resolve(
        node={"timeout_seconds": timeout, "timeout_action": action}, project={}, global_={}
    )
    attempt.runtime = runtime.as_dict()
    attempt.timeout_alert_at = runtime.timeout_alert_at(at)
    attempt.save(update_fields=["runtime", "timeout_alert_at"])
    return attempt


def test_an_alert_only_attempt_past_its_timeout_alerts_the_owner_once(
    project, users, http_receiver, client
):
    Channel.objects.create(
        project=project, name="ops-hook", kind="webhook", config={"url": http_receiver.url}
    )
    node = node_create(project, "long", owner=users["alice"], type="shell")
    instance = instance_create(node, SCHEDULED)
    attempt = started(instance, T0, timeout=600, action="alert_only")
    assert attempt.timeout_alert_at == T0 + 10 * MIN

    assert timepass.time_triggers_check(now=T0 + 9 * MIN) == 0
    assert timepass.time_triggers_check(now=T0 + 11 * MIN) == 1
    assert timepass.time_triggers_check(now=T0 + 20 * MIN) == 0  # once per attempt
    alert = Alert.objects.get()
    assert alert.dedup_key == f"system:running_longer:instance:{instance.pk}"
    assert (alert.source, alert.rule_id, alert.project_id) == ("system", None, project.pk)
    assert alert.message == (
        "attempt 1 has run 11 minutes, past its timeout of 600s; timeout_action alert_only: "
        "it goes on"
    )
    client.force_login(users["olga"])
    page = client.get(f"/alerts/{alert.pk}/").content.decode()
    assert "built-in: the runtime configuration's timeout (alert_only)" in page
    for delivery in Delivery.objects.filter(state="pending"):
        notifications.delivery_send(delivery_id=delivery.pk, now=T0 + 11 * MIN)
    (request,) = http_receiver.wait_for(1)
    body = request.json
    assert body["event"] == "fired" and "acme.long is running long" in body["title"]
    fields = body["fields"]
    assert fields["trigger"] == "running_longer" and fields["rule"] is None
    assert fields["node_name"] == "long" and fields["instance"] == instance.pk


def test_other_actions_and_finished_attempts_raise_nothing(project, users):
    node = node_create(project, "n", owner=users["alice"], type="shell")
    failing = started(instance_create(node, SCHEDULED), T0, timeout=60, action="fail")
    assert failing.timeout_alert_at is None
    done = started(instance_create(node, SCHEDULED + MIN), T0, timeout=60, action="alert_only")
    states.attempt_finish(
        attempt=done,
        result=states.AttemptOutcome(outcome="succeeded"),
        retries=0,
        retry_interval_seconds=0,
        now=T0 + 2 * MIN,
    )
    no_timeout = resolve(
        node={"timeout_seconds": 0, "timeout_action": "alert_only"}, project={}, global_={}
    )
    assert no_timeout.timeout_alert_at(T0) is None
    assert timepass.time_triggers_check(now=T0 + 60 * MIN) == 0
    assert not Alert.objects.exists()
