"""The alerts engine end to end: real runs write events, the monitor turns them into
alerts, deliveries reach a real HTTP server on 127.0.0.1; the clock rules at fixed times."""

import datetime
import threading

import pytest
from django.db import close_old_connections, connection

from apps.instances import operations as ops
from apps.instances import states, worker
from apps.instances.models import Attempt, Instance, InstanceEvent
from apps.monitoring import alerts, events, tasks, timepass
from apps.monitoring.models import Alert, AlertEvent, MonitorRule
from apps.notifications import services as notifications
from apps.notifications.models import Channel, Delivery
from tests.factories import instance_create, node_create

# 10:00 in Asia/Shanghai (the project's timezone) on 2026-11-20.
SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=datetime.UTC)
T0 = datetime.datetime(2026, 11, 20, 3, 0, tzinfo=datetime.UTC)
MIN = datetime.timedelta(minutes=1)


@pytest.fixture
def webhook(project, http_receiver):
    channel = Channel.objects.create(
        project=project, name="ops-hook", kind="webhook", config={"url": http_receiver.url}
    )
    return channel


def rule_create(project, channel, **fields) -> MonitorRule:
    values = dict(
        project=project,
        name=fields.pop("name", "failures"),
        scope={"kind": "project"},
        triggers=[{"type": "failure"}],
        recipients={"owner": True},
        dedup_minutes=30,
    )
    values.update(fields)
    rule = MonitorRule.objects.create(**values)
    if channel is not None:
        rule.channels.add(channel)
    return rule


def send_pending(now) -> list[Delivery]:
    pending = Delivery.objects.filter(state="pending").order_by("id")
    return [notifications.delivery_send(delivery_id=d.pk, now=now) for d in pending]


def running_attempt(instance, started_at) -> Attempt:
    """An instance started the way a worker starts one (queued -> running)."""
    states.instances_queue(ids=[instance.pk], now=started_at)
    return states.attempt_start(instance_id=instance.pk, now=started_at)


def fail(attempt, now, retries=0):
    return states.attempt_finish(
        attempt=attempt,
        result=states.AttemptOutcome(outcome="failed", exit_code=3, reason="exit code 3"),
        retries=retries,
        retry_interval_seconds=0,
        now=now,
    )


@pytest.mark.django_db(transaction=True)
def test_a_failing_run_alerts_once_counts_a_repeat_and_resolves_on_a_good_rerun(
    project, users, webhook, http_receiver, tmp_path
):
    marker = tmp_path / "fixed"
    node = node_create(
        project,
        "load_orders",
        owner=users["alice"],
        type="shell",
        content=f"test -f {marker} || {{ echo 'disk full' >&2; exit 3; }}",
    )
    instance = instance_create(node, SCHEDULED)
    rule_create(project, webhook)

    worker.drain(timeout=10)
    # The worker raised nothing itself: the alert comes from the outbox.
    assert Alert.objects.count() == 0
    assert tasks.events_drain(now=T0) > 0
    alert = Alert.objects.get()
    assert (alert.state, alert.count, alert.trigger) == ("firing", 1, "failure")
    assert alert.instance_id == instance.pk and alert.recipients == ["alice"]
    (delivery,) = send_pending(T0)
    assert delivery.state == "sent" and delivery.tries == 1
    (request,) = http_receiver.wait_for(1)
    body = request.json
    assert body["event"] == "fired"
    assert "acme.load_orders failed" in body["title"]
    assert body["fields"]["instance"] == instance.pk
    assert f"/alerts/{alert.pk}/" in body["url"]

    # Fails again inside the dedup interval: counted, not sent again.
    ops.instance_rerun(
        instance=Instance.objects.get(pk=instance.pk), by=users["olga"], source="api"
    )
    worker.drain(timeout=10)
    tasks.events_drain(now=T0 + 5 * MIN)
    alert.refresh_from_db()
    assert (alert.state, alert.count) == ("firing", 2)
    assert Delivery.objects.count() == 1
    assert AlertEvent.objects.filter(alert=alert, kind="repeated").get().detail["sent"] is False

    # Fixed and rerun: the alert resolves itself and says so to the same people.
    marker.touch()
    ops.instance_rerun(
        instance=Instance.objects.get(pk=instance.pk), by=users["olga"], source="api"
    )
    worker.drain(timeout=10)
    tasks.events_drain(now=T0 + 10 * MIN)
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolved_by is None
    resolved = send_pending(T0 + 10 * MIN)
    assert [d.event for d in resolved] == ["resolved"]
    assert http_receiver.wait_for(2)[1].json["event"] == "resolved"


def test_a_repeat_after_the_dedup_interval_is_sent_again(project, users, webhook):
    rule_create(project, webhook, dedup_minutes=10)
    node = node_create(project, "a", owner=users["alice"])
    instance = instance_create(node, SCHEDULED)
    fail(running_attempt(instance, T0), T0, retries=3)
    tasks.events_drain(now=T0)
    fail(running_attempt(instance, T0 + MIN), T0 + MIN, retries=3)
    tasks.events_drain(now=T0 + MIN)
    fail(running_attempt(instance, T0 + 12 * MIN), T0 + 12 * MIN, retries=3)
    tasks.events_drain(now=T0 + 12 * MIN)
    alert = Alert.objects.get()
    assert alert.count == 3
    assert list(Delivery.objects.order_by("id").values_list("event", flat=True)) == [
        "fired",
        "repeated",
    ]


def test_retries_exhausted_fires_only_when_no_retry_is_left(project, users, webhook):
    rule_create(project, webhook, triggers=[{"type": "retries_exhausted"}])
    instance = instance_create(node_create(project, "a", owner=users["alice"]), SCHEDULED)
    assert fail(running_attempt(instance, T0), T0, retries=1) == "pending"
    tasks.events_drain(now=T0)
    assert Alert.objects.count() == 0
    assert fail(running_attempt(instance, T0 + MIN), T0 + MIN, retries=1) == "failed"
    tasks.events_drain(now=T0 + MIN)
    alert = Alert.objects.get()
    assert alert.trigger == "retries_exhausted" and alert.severity == "critical"
    assert "no retry is left" in alert.message


def test_scope_by_nodes_and_by_owner(project, users, webhook):
    mine = node_create(project, "mine", owner=users["alice"])
    theirs = node_create(project, "theirs", owner=users["dave"])
    rule_create(project, webhook, name="by node", scope={"kind": "nodes", "nodes": [mine.pk]})
    rule_create(project, webhook, name="by owner", scope={"kind": "owner", "owner": "dave"})
    for node in (mine, theirs):
        fail(running_attempt(instance_create(node, SCHEDULED), T0), T0)
    tasks.events_drain(now=T0)
    assert sorted(Alert.objects.values_list("rule__name", "node__name")) == [
        ("by node", "mine"),
        ("by owner", "theirs"),
    ]


def test_a_mute_window_across_midnight_records_suppressed(project, users, webhook):
    # T0 is 11:00 in Asia/Shanghai: a 22:00-12:00 window covers it.
    rule_create(project, webhook, mute_windows=[{"start": "22:00", "end": "12:00"}])
    instance = instance_create(node_create(project, "a", owner=users["alice"]), SCHEDULED)
    fail(running_attempt(instance, T0), T0)
    tasks.events_drain(now=T0)
    assert Alert.objects.get().state == "firing"
    assert list(Delivery.objects.values_list("state", flat=True)) == ["suppressed"]
    assert send_pending(T0) == []


def test_set_success_resolves_and_announces(project, users, webhook):
    rule_create(project, webhook)
    instance = instance_create(node_create(project, "a", owner=users["alice"]), SCHEDULED)
    fail(running_attempt(instance, T0), T0)
    tasks.events_drain(now=T0)
    ops.instance_set_success(
        instance=Instance.objects.get(pk=instance.pk), by=users["olga"], source="api"
    )
    tasks.events_drain(now=T0 + MIN)
    alert = Alert.objects.get()
    assert alert.state == "resolved"
    resolved = AlertEvent.objects.get(alert=alert, kind="resolved")
    assert "set the instance successful" in resolved.comment
    assert list(Delivery.objects.order_by("id").values_list("event", flat=True)) == [
        "fired",
        "resolved",
    ]


def test_a_success_trigger_is_news_not_an_incident(project, users, webhook):
    rule_create(project, webhook, triggers=[{"type": "success"}])
    instance = instance_create(node_create(project, "a", owner=users["alice"]), SCHEDULED)
    attempt = running_attempt(instance, T0)
    states.attempt_finish(
        attempt=attempt,
        result=states.AttemptOutcome(outcome="succeeded", exit_code=0),
        retries=0,
        retry_interval_seconds=0,
        now=T0,
    )
    tasks.events_drain(now=T0)
    alert = Alert.objects.get()
    assert (alert.trigger, alert.state, alert.severity) == ("success", "resolved", "info")
    assert Delivery.objects.get().event == "fired"


def test_escalation_after_the_interval_once_and_not_after_an_ack(project, users, webhook):
    rule_create(
        project,
        webhook,
        escalate_after_minutes=10,
        escalate_to={"users": ["olga"]},
    )
    node = node_create(project, "a", owner=users["alice"])
    first = instance_create(node, SCHEDULED)
    second = instance_create(node, SCHEDULED + datetime.timedelta(hours=1))
    fail(running_attempt(first, T0), T0)
    fail(running_attempt(second, T0), T0)
    tasks.events_drain(now=T0)
    acked = Alert.objects.get(instance=second)
    alerts.alert_ack(alert=acked, by=users["olga"], source="api")
    assert alerts.alerts_escalate(now=T0 + 9 * MIN) == []
    (escalated,) = alerts.alerts_escalate(now=T0 + 11 * MIN)
    assert escalated == Alert.objects.get(instance=first).pk
    assert alerts.alerts_escalate(now=T0 + 30 * MIN) == []
    event = AlertEvent.objects.get(kind="escalated")
    assert event.detail["to"] == ["olga"]
    assert Delivery.objects.filter(event="escalated").count() == 1


def test_unfinished_by_and_not_started_by_at_a_fixed_time(project, users, webhook):
    rule_create(
        project,
        webhook,
        triggers=[
            {"type": "unfinished_by", "time": "12:00"},
            {"type": "not_started_by", "time": "12:00"},
        ],
    )
    node = node_create(project, "a", owner=users["alice"])
    # Both scheduled at 10:00 local on 2026-11-20; one has started, the other waits.
    waiting = instance_create(node, SCHEDULED)
    started = instance_create(node_create(project, "b", owner=users["alice"]), SCHEDULED)
    running_attempt(started, SCHEDULED + MIN)
    instance_create(node_create(project, "c", owner=users["alice"]), SCHEDULED, state="succeeded")
    before = datetime.datetime(2026, 11, 20, 3, 59, tzinfo=datetime.UTC)  # 11:59 local
    after = datetime.datetime(2026, 11, 20, 4, 1, tzinfo=datetime.UTC)  # 12:01 local
    assert timepass.time_triggers_check(now=before) == 0
    assert timepass.time_triggers_check(now=after) == 3
    assert sorted(Alert.objects.values_list("trigger", "instance_id")) == sorted(
        [
            ("not_started_by", waiting.pk),
            ("unfinished_by", started.pk),
            ("unfinished_by", waiting.pk),
        ]
    )
    # The next passes find nothing new: each fires once per instance.
    assert timepass.time_triggers_check(now=after + MIN) == 0
    assert Alert.objects.filter(count__gt=1).count() == 0


def test_running_longer_and_slower_than_usual(project, users, webhook):
    rule_create(
        project,
        webhook,
        triggers=[
            {"type": "running_longer", "minutes": 30},
            {"type": "slower_than_usual", "factor": 2},
        ],
    )
    node = node_create(project, "a", owner=users["alice"])
    # Three earlier successful runs of 10 minutes each.
    for day in range(1, 4):
        done = instance_create(node, SCHEDULED - datetime.timedelta(days=day))
        attempt = running_attempt(done, SCHEDULED - datetime.timedelta(days=day))
        states.attempt_finish(
            attempt=attempt,
            result=states.AttemptOutcome(outcome="succeeded"),
            retries=0,
            retry_interval_seconds=0,
            now=SCHEDULED - datetime.timedelta(days=day) + 10 * MIN,
        )
    instance = instance_create(node, SCHEDULED)
    running_attempt(instance, T0)
    assert timepass.time_triggers_check(now=T0 + 19 * MIN) == 0
    assert timepass.time_triggers_check(now=T0 + 21 * MIN) == 1
    assert Alert.objects.get().trigger == "slower_than_usual"
    assert timepass.time_triggers_check(now=T0 + 31 * MIN) == 1
    assert sorted(Alert.objects.values_list("trigger", flat=True)) == [
        "running_longer",
        "slower_than_usual",
    ]
    assert timepass.time_triggers_check(now=T0 + 40 * MIN) == 0


def test_a_monitor_that_dies_mid_batch_loses_no_event(project, users, webhook, monkeypatch):
    rule_create(project, webhook)
    instance = instance_create(node_create(project, "a", owner=users["alice"]), SCHEDULED)
    fail(running_attempt(instance, T0), T0)
    real = alerts.alerts_raise

    def crash(*args, **kwargs):
        raise RuntimeError("monitor killed")

    monkeypatch.setattr(alerts, "alerts_raise", crash)
    with pytest.raises(RuntimeError):
        events.events_consume(now=T0)
    assert InstanceEvent.objects.filter(processed_at__isnull=True).count() == 3
    assert Alert.objects.count() == 0
    monkeypatch.setattr(alerts, "alerts_raise", real)
    tasks.events_drain(now=T0)
    assert Alert.objects.count() == 1
    assert InstanceEvent.objects.filter(processed_at__isnull=True).count() == 0


@pytest.mark.django_db(transaction=True)
def test_two_monitors_at_once_handle_each_event_exactly_once(project, users, webhook):
    rule_create(project, webhook)
    node = node_create(project, "a", owner=users["alice"])
    count = 120
    for n in range(count):
        instance = instance_create(node, SCHEDULED + n * MIN)
        fail(running_attempt(instance, T0), T0)
    barrier = threading.Barrier(2)
    errors = []

    def monitor():
        close_old_connections()
        try:
            barrier.wait()
            while events.events_consume(now=T0, limit=7):
                pass
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=monitor) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert InstanceEvent.objects.filter(processed_at__isnull=True).count() == 0
    assert Alert.objects.count() == count
    assert AlertEvent.objects.filter(kind="fired").count() == count
    assert AlertEvent.objects.filter(kind="repeated").count() == 0
    assert Delivery.objects.count() == count


def test_the_monitor_pass_does_everything_once(project, users, webhook):
    rule_create(project, webhook)
    instance = instance_create(node_create(project, "a", owner=users["alice"]), SCHEDULED)
    fail(running_attempt(instance, T0), T0)
    result = tasks.monitor_pass()
    assert result["events"] == 3 and Alert.objects.count() == 1
    assert tasks.monitor_pass()["events"] == 0


def test_dev_runs_page_nobody(project, users, webhook):
    rule_create(project, webhook)
    node = node_create(project, "a", owner=users["alice"], env="dev")
    fail(running_attempt(instance_create(node, SCHEDULED, env="dev"), T0), T0)
    tasks.events_drain(now=T0)
    assert Alert.objects.count() == 0


def test_processed_events_past_their_retention_are_pruned(project, users, settings):
    settings.OPSCENTER_EVENT_RETENTION_DAYS = 14
    instance = instance_create(node_create(project, "a", owner=users["alice"]), SCHEDULED)
    fail(running_attempt(instance, T0), T0)
    unprocessed_old = InstanceEvent.objects.order_by("id").last()
    tasks.events_drain(now=T0)
    InstanceEvent.objects.filter(pk=unprocessed_old.pk).update(processed_at=None)
    later = T0 + datetime.timedelta(days=15)
    assert events.events_prune(now=T0 + datetime.timedelta(days=13)) == 0
    assert events.events_prune(now=later) == 2
    # An event nobody handled yet is never pruned, however old.
    assert list(InstanceEvent.objects.values_list("pk", flat=True)) == [unprocessed_old.pk]


@pytest.mark.django_db(transaction=True)
def test_the_monitor_loop_alerts_within_seconds_of_a_failure(
    project, users, webhook, settings, monkeypatch
):
    settings.OPSCENTER_MONITOR_POLL_SECONDS = 0.05
    rule_create(project, webhook)
    instance = instance_create(node_create(project, "a", owner=users["alice"]), SCHEDULED)
    started = threading.Event()
    failed = threading.Event()

    def fail_later():
        close_old_connections()
        try:
            started.wait(5)
            fail(running_attempt(instance, T0), T0)
            failed.set()
        finally:
            connection.close()

    thread = threading.Thread(target=fail_later)
    thread.start()
    real_pass = tasks.monitor_pass

    def first_pass():
        result = real_pass()
        started.set()  # the failure happens after the minute's pass, inside the loop
        return result

    monkeypatch.setattr(tasks, "monitor_pass", first_pass)
    try:
        totals = tasks.monitor_loop(seconds=1.5)
    finally:
        thread.join()
    assert failed.is_set()
    assert totals["events"] == 3
    assert Alert.objects.filter(instance=instance).count() == 1


def test_migrate_creates_the_monitor_schedule(db):
    from django_q.models import Schedule

    from apps.instances.tasks import schedules_ensure

    schedules_ensure()
    schedule = Schedule.objects.get(name="monitor")
    assert schedule.func == "apps.monitoring.tasks.monitor_loop"
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 1, -1)


def test_the_monitor_command_runs_one_pass(project, users, webhook):
    import io

    from django.core.management import call_command

    rule_create(project, webhook)
    instance = instance_create(node_create(project, "a", owner=users["alice"]), SCHEDULED)
    fail(running_attempt(instance, T0), T0)
    out = io.StringIO()
    call_command("opscenter", "monitor", stdout=out)
    assert "events: 3" in out.getvalue()
    assert Alert.objects.filter(instance=instance, state="firing").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_storm_queues_its_deliveries_once_per_batch(project, users, webhook, monkeypatch):
    rule_create(project, webhook)
    node = node_create(project, "a", owner=users["alice"])
    for n in range(12):
        fail(running_attempt(instance_create(node, SCHEDULED + n * MIN), T0), T0)
    calls = []
    monkeypatch.setattr(
        notifications, "enqueue_deliveries", lambda ids, now=None: calls.append(list(ids))
    )
    events.events_consume(now=T0)
    # Twelve alerts, twelve deliveries: one queueing call after the batch's commit.
    assert Alert.objects.count() == 12
    assert [len(ids) for ids in calls] == [12]
    assert sorted(calls[0]) == sorted(Delivery.objects.values_list("pk", flat=True))
