"""Planning, sending, retrying: notify's deliveries and their queue tasks, one try's
outcome by answer, the backoff, the claim, the retry pass."""

import datetime
import threading

import pytest
from django.db import connection
from django.utils.module_loading import import_string
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from apps.core import crypto
from apps.monitoring.models import Alert
from apps.notifications import services, tasks
from apps.notifications.models import Delivery
from apps.notifications.services import recipients_of

from .helpers import NOW, SECRET, message, send_one

pytestmark = pytest.mark.django_db
SECOND = datetime.timedelta(seconds=1)


def queued_tasks() -> list[dict]:
    return [SignedPackage.loads(row.payload) for row in OrmQ.objects.order_by("id")]


# --- recipients ---------------------------------------------------------------------------


def test_recipients_of_reads_users_and_profiles_in_one_query(people, django_assert_num_queries):
    people["vera"].is_active = False
    people["vera"].save()
    with django_assert_num_queries(1):
        found = recipients_of(["dave", "nobody", "olga", "dave", "vera", "alice"])
    assert [r.username for r in found] == ["dave", "olga", "alice"]
    dave, olga, alice = found
    assert dave.phone == "13900002222"
    assert dave.chat_ids == {"dingtalk": "dave-staff-id", "slack": "U0DAVE"}
    assert olga.email == "olga@example.com" and olga.chat_ids["feishu"] == "ou_olga"
    assert alice.phone == "" and alice.chat_ids == {}  # no profile


# --- planning -----------------------------------------------------------------------------


def test_notify_plans_per_kind_and_queues_after_commit_on_the_default_cluster(
    http_receiver, make_channel, people, django_capture_on_commit_callbacks
):
    email = make_channel("email", to=["oncall@example.com"])
    robot = make_channel("dingtalk", url=http_receiver.url_for("/robot"))
    sms = make_channel("sms", url=http_receiver.url_for("/sms"), body_template="{phone} {message}")
    off = make_channel("webhook", url=http_receiver.url_for("/off"), enabled=False)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        deliveries = services.notify(
            alert_id=None,
            message=message(),
            channels=[email, robot, sms, off],
            recipients=recipients_of(["olga", "dave"]),
            now=NOW,
        )
    assert len(callbacks) == 1
    assert [(d.kind, d.recipient) for d in deliveries] == [
        ("email", "oncall@example.com"),
        ("email", "olga@example.com"),
        ("email", "dave@example.com"),
        ("dingtalk", "#dingtalk-channel"),
        ("sms", "+86 138 0000 1111"),
        ("sms", "13900002222"),
    ]
    assert {d.state for d in deliveries} == {"pending"}
    stored = Delivery.objects.get(pk=deliveries[3].pk)
    assert stored.payload["title"] == "[CRITICAL] load failed"
    assert [r["username"] for r in stored.payload["recipients"]] == ["olga", "dave"]
    assert stored.queued_at == NOW and stored.created_at == NOW
    # One task per pending delivery, on the queue the "default" cluster serves.
    assert {row.key for row in OrmQ.objects.all()} == {"default"}
    packages = queued_tasks()
    assert [p["func"] for p in packages] == ["apps.notifications.tasks.deliver"] * 6
    assert sorted(p["args"][0] for p in packages) == sorted(d.pk for d in deliveries)
    assert all(p["save"] is False for p in packages)
    assert http_receiver.requests == []  # nothing sent before a worker takes it


def test_the_queued_tasks_send_when_a_worker_runs_them(
    http_receiver, make_channel, people, django_capture_on_commit_callbacks
):
    robot = make_channel("wecom", url=http_receiver.url_for("/send?key=k"))
    sms = make_channel("sms", url=http_receiver.url_for("/sms"), body_template="{phone}")
    with django_capture_on_commit_callbacks(execute=True):
        services.notify(
            alert_id=None,
            message=message(),
            channels=[robot, sms],
            recipients=recipients_of(["olga", "dave"]),
            now=NOW,
        )
    # What a django-q2 worker does with each package: import the function, call it.
    results = [import_string(p["func"])(*p["args"]) for p in queued_tasks()]
    assert results == ["sent", "sent", "sent"]
    assert sorted(r.path for r in http_receiver.requests) == ["/send", "/sms", "/sms"]


def test_notify_takes_the_project_of_the_alert(make_channel, project, http_receiver):
    alert = Alert.objects.create(
        project=project,
        trigger="failure",
        severity="critical",
        title="t",
        target_type="instance",
        target_id="1",
        dedup_key="k",
        first_at=NOW,
        last_at=NOW,
    )
    channel = make_channel("webhook", url=http_receiver.url_for())  # global
    (delivery,) = services.notify(
        alert_id=alert.pk, message=message(), channels=[channel], recipients=[], now=NOW
    )
    assert delivery.project_id == project.pk and delivery.alert_id == alert.pk
    assert delivery.payload["alert"] == alert.pk


def test_a_storm_is_written_in_bulk_without_a_query_per_delivery(
    make_channel, users, django_assert_max_num_queries
):
    email = make_channel("email")
    recipients = [
        services.Recipient(username=f"user{i}", email=f"user{i}@example.com") for i in range(2000)
    ]
    # One INSERT per batch (the database's limit on parameters sets its size), not per row.
    with django_assert_max_num_queries(40):
        deliveries = services.notify(
            alert_id=None, message=message(), channels=[email], recipients=recipients, now=NOW
        )
    assert len(deliveries) == 2000 and all(d.pk for d in deliveries)
    assert Delivery.objects.filter(state="pending").count() == 2000


def test_queueing_a_storm_is_a_bulk_insert(make_channel, users, django_assert_max_num_queries):
    email = make_channel("email")
    recipients = [
        services.Recipient(username=f"user{i}", email=f"user{i}@example.com") for i in range(600)
    ]
    deliveries = services.notify(
        alert_id=None, message=message(), channels=[email], recipients=recipients, now=NOW
    )
    ids = [d.pk for d in deliveries]
    # The task rows in batches of 500, then queued_at in batches of 500: no query per task.
    with django_assert_max_num_queries(6):
        services.enqueue_deliveries(ids, now=NOW)
    assert OrmQ.objects.count() == 600
    assert sorted(p["args"][0] for p in queued_tasks()) == sorted(ids)
    assert not Delivery.objects.filter(queued_at__isnull=True).exists()


def test_suppressed_deliveries_are_recorded_never_queued_never_sent(
    http_receiver, make_channel, users, django_capture_on_commit_callbacks
):
    channel = make_channel("webhook", url=http_receiver.url_for())
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        (delivery,) = services.notify(
            alert_id=None,
            message=message(),
            channels=[channel],
            recipients=[],
            suppressed=True,
            now=NOW,
        )
    assert delivery.state == "suppressed" and callbacks == []
    assert not OrmQ.objects.exists()
    assert services.delivery_send(delivery_id=delivery.pk, now=NOW).state == "suppressed"
    assert services.deliveries_retry_due(now=NOW + datetime.timedelta(hours=1)) == 0
    assert http_receiver.requests == [] and Delivery.objects.get().tries == 0


def test_unknown_event_is_refused(make_channel):
    with pytest.raises(ValueError, match="unknown event"):
        services.notify(
            alert_id=None,
            message=message(event="exploded"),
            channels=[make_channel("email")],
            recipients=[],
            now=NOW,
        )


# --- one try ------------------------------------------------------------------------------


def test_5xx_then_200_is_retried_after_the_backoff_then_sent(http_receiver, make_channel):
    http_receiver.script((500, "oops"))
    channel = make_channel("webhook", url=http_receiver.url_for())
    delivery = send_one(channel)
    assert delivery.state == "pending" and delivery.tries == 1
    assert delivery.last_status == 500
    assert delivery.last_error == f"{http_receiver.url} answered 500: oops"
    assert delivery.next_try_at == NOW + 30 * SECOND
    # Not before its time, even if a task runs early.
    early = services.delivery_send(delivery_id=delivery.pk, now=NOW + 10 * SECOND)
    assert early.tries == 1 and len(http_receiver.requests) == 1
    later = services.delivery_send(delivery_id=delivery.pk, now=NOW + 30 * SECOND)
    assert later.state == "sent" and later.tries == 2 and later.last_status == 200
    assert later.sent_at == NOW + 30 * SECOND and later.last_error == ""
    assert later.next_try_at is None
    assert len(http_receiver.requests) == 2


def test_4xx_fails_at_once_and_is_never_retried(http_receiver, make_channel):
    http_receiver.script((400, {"error": "bad payload"}))
    delivery = send_one(make_channel("webhook", url=http_receiver.url_for()))
    assert delivery.state == "failed" and delivery.tries == 1 and delivery.last_status == 400
    assert "answered 400" in delivery.last_error and delivery.next_try_at is None
    assert services.deliveries_retry_due(now=NOW + datetime.timedelta(days=1)) == 0
    assert services.delivery_send(delivery_id=delivery.pk, now=NOW + SECOND).tries == 1


def test_429_is_retried(http_receiver, make_channel):
    http_receiver.script(429)
    delivery = send_one(make_channel("webhook", url=http_receiver.url_for()))
    assert delivery.state == "pending" and delivery.last_status == 429


def test_a_redirect_is_not_followed_and_fails(http_receiver, make_channel):
    http_receiver.script((302, "", {"Location": "http://elsewhere.example/"}))
    delivery = send_one(make_channel("webhook", url=http_receiver.url_for()))
    assert delivery.state == "failed" and delivery.last_status == 302
    assert "redirect" in delivery.last_error


def test_network_error_is_retried_and_its_message_keeps_no_token(closed_port, make_channel):
    channel = make_channel(
        "dingtalk",
        url=f"http://127.0.0.1:{closed_port}/robot/send?access_token=tok-abcdef",
        secrets={"secret": SECRET},
    )
    delivery = send_one(channel)
    assert delivery.state == "pending" and delivery.last_status is None
    assert (
        delivery.last_error
        == f"cannot connect to http://127.0.0.1:{closed_port}: connection refused"
    )


def test_backoff_doubles_and_the_last_try_fails(http_receiver, make_channel, settings):
    settings.OPSCENTER_DELIVERY_MAX_TRIES = 5
    settings.OPSCENTER_DELIVERY_BACKOFF_SECONDS = 30
    http_receiver.script(*[503] * 5)
    delivery = send_one(make_channel("webhook", url=http_receiver.url_for()))
    now, waits = NOW, []
    while delivery.state == "pending":
        waits.append((delivery.next_try_at - now).total_seconds())
        now = delivery.next_try_at
        delivery = services.delivery_send(delivery_id=delivery.pk, now=now)
    assert waits == [30, 60, 120, 240]
    assert delivery.state == "failed" and delivery.tries == 5 and delivery.last_status == 503
    assert len(http_receiver.requests) == 5


def test_at_least_three_tries_whatever_the_setting(http_receiver, make_channel, settings):
    settings.OPSCENTER_DELIVERY_MAX_TRIES = 1
    http_receiver.script(500, 500, 500)
    delivery = send_one(make_channel("webhook", url=http_receiver.url_for()))
    delivery = services.delivery_send(delivery_id=delivery.pk, now=delivery.next_try_at)
    assert delivery.state == "pending" and delivery.tries == 2
    delivery = services.delivery_send(delivery_id=delivery.pk, now=delivery.next_try_at)
    assert delivery.state == "failed" and delivery.tries == 3


def test_errors_never_carry_the_secret_even_when_the_server_echoes_it(http_receiver, make_channel):
    http_receiver.script((401, f"bad signature for secret {SECRET} at /hook?sign=abc"))
    channel = make_channel(
        "webhook", url=http_receiver.url_for("/hook?token=qs-token"), secrets={"secret": SECRET}
    )
    delivery = send_one(channel)
    assert delivery.state == "failed"
    assert SECRET not in delivery.last_error
    assert "qs-token" not in delivery.last_error and "sign=abc" not in delivery.last_error
    assert "[secret]" in delivery.last_error


def test_a_channel_disabled_after_planning_is_not_sent(http_receiver, make_channel):
    channel = make_channel("webhook", url=http_receiver.url_for())
    (delivery,) = services.notify(
        alert_id=None, message=message(), channels=[channel], recipients=[], now=NOW
    )
    channel.enabled = False
    channel.save()
    delivery = services.delivery_send(delivery_id=delivery.pk, now=NOW)
    assert delivery.state == "failed" and "disabled" in delivery.last_error
    assert http_receiver.requests == []


def test_an_undecryptable_secret_fails_and_says_what_to_do(http_receiver, make_channel):
    channel = make_channel("webhook", url=http_receiver.url_for(), secrets={"secret": SECRET})
    channel.secrets = {"secret": crypto.encrypt("x")[:-4] + "AAAA"}
    channel.save()
    delivery = send_one(channel)
    assert delivery.state == "failed" and "cannot be decrypted" in delivery.last_error


def test_the_task_sends_and_answers_the_state(http_receiver, make_channel):
    channel = make_channel("webhook", url=http_receiver.url_for())
    (delivery,) = services.notify(
        alert_id=None, message=message(), channels=[channel], recipients=[], now=NOW
    )
    assert tasks.deliver(delivery.pk) == "sent"
    assert tasks.deliver(delivery.pk) == "sent"  # a duplicate task sends nothing
    assert len(http_receiver.requests) == 1
    assert tasks.deliver(999999) is None


@pytest.mark.django_db(transaction=True)
def test_two_workers_sending_one_delivery_at_once_send_it_once(http_receiver, make_channel):
    http_receiver.delay = 0.3
    channel = make_channel("webhook", url=http_receiver.url_for())
    (delivery,) = services.notify(
        alert_id=None, message=message(), channels=[channel], recipients=[], now=NOW
    )
    start = threading.Barrier(2)
    results = []

    def worker():
        start.wait()
        try:
            results.append(services.delivery_send(delivery_id=delivery.pk, now=NOW))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(http_receiver.requests) == 1
    stored = Delivery.objects.get(pk=delivery.pk)
    assert stored.state == "sent" and stored.tries == 1
    assert sorted(r.tries for r in results) == [1, 1]


# --- the retry pass -----------------------------------------------------------------------


def test_retry_pass_queues_what_is_due_once(http_receiver, make_channel):
    http_receiver.script(500)
    delivery = send_one(make_channel("webhook", url=http_receiver.url_for()))
    assert services.deliveries_retry_due(now=NOW + 29 * SECOND) == 0
    assert services.deliveries_retry_due(now=NOW + 30 * SECOND) == 1
    assert [p["args"] for p in queued_tasks()] == [(delivery.pk,)]
    # Queued: the next passes leave it alone until a task for it would be long lost.
    assert services.deliveries_retry_due(now=NOW + 40 * SECOND) == 0
    assert services.deliveries_retry_due(now=NOW + datetime.timedelta(minutes=20)) == 1
    # The task runs: sent.
    assert tasks.deliver(delivery.pk) == "sent"
    assert services.deliveries_retry_due(now=NOW + datetime.timedelta(hours=1)) == 0


def test_retry_pass_sends_deliveries_whose_enqueue_was_lost_after_the_commit(
    http_receiver, make_channel
):
    # No on_commit callbacks run here: as if the process died right after the commit.
    channel = make_channel("webhook", url=http_receiver.url_for())
    (delivery,) = services.notify(
        alert_id=None, message=message(), channels=[channel], recipients=[], now=NOW
    )
    assert Delivery.objects.get().queued_at is None
    assert services.deliveries_retry_due(now=NOW + 30 * SECOND) == 0
    assert services.deliveries_retry_due(now=NOW + 61 * SECOND) == 1
    assert [p["args"] for p in queued_tasks()] == [(delivery.pk,)]
    assert Delivery.objects.get().queued_at == NOW + 61 * SECOND
    assert services.deliveries_retry_due(now=NOW + 90 * SECOND) == 0


def test_retry_pass_resends_a_try_whose_worker_died(http_receiver, make_channel):
    channel = make_channel("webhook", url=http_receiver.url_for())
    (delivery,) = services.notify(
        alert_id=None, message=message(), channels=[channel], recipients=[], now=NOW
    )
    # A worker claimed it and died before recording anything.
    Delivery.objects.filter(pk=delivery.pk).update(
        tries=1, next_try_at=NOW + services.claim_lease(), queued_at=NOW
    )
    assert services.deliveries_retry_due(now=NOW + 60 * SECOND) == 0
    later = NOW + services.claim_lease()
    assert services.deliveries_retry_due(now=later) == 1
    delivery = services.delivery_send(delivery_id=delivery.pk, now=later)
    assert delivery.state == "sent" and delivery.tries == 2


def test_many_deliveries_one_pass(make_channel, users):
    email = make_channel("email")
    recipients = [
        services.Recipient(username=f"u{i}", email=f"u{i}@example.com") for i in range(50)
    ]
    deliveries = services.notify(
        alert_id=None, message=message(), channels=[email], recipients=recipients, now=NOW
    )
    assert services.deliveries_retry_due(now=NOW + 2 * 60 * SECOND) == 50
    assert sorted(p["args"][0] for p in queued_tasks()) == sorted(d.pk for d in deliveries)
