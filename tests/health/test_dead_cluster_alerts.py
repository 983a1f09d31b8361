"""A dead cluster alerts: one system alert while it stays dead, to the superusers through
the global channels, resolved once it is back or forgotten."""

import datetime

from apps.health.models import ClusterSeen
from apps.health.services import dead_clusters_alert
from apps.monitoring.models import Alert
from apps.monitoring.tasks import MINUTE_CHECKS
from apps.notifications import services as notifications
from apps.notifications.models import Channel, Delivery

NOW = datetime.datetime(2026, 11, 29, 2, 0, tzinfo=datetime.UTC)


def test_a_dead_cluster_fires_once_and_resolves_when_gone(users, http_receiver):
    Channel.objects.create(
        project=None, name="platform", kind="webhook", config={"url": http_receiver.url}
    )
    seen = ClusterSeen.objects.create(
        cluster_id="c-1",
        host="worker-7",
        pid=4242,
        queue="default",
        status="Idle",
        workers=4,
        heartbeat_at=NOW - datetime.timedelta(minutes=5),
        first_seen_at=NOW - datetime.timedelta(hours=1),
    )
    assert "clusters_dead" in MINUTE_CHECKS
    assert dead_clusters_alert(now=NOW) == 1
    alert = Alert.objects.get()
    assert (alert.source, alert.state, alert.severity) == ("system", "firing", "critical")
    assert alert.project_id is None and alert.recipients == ["root"]
    assert "worker-7:4242" in alert.title and "is dead" in alert.title
    (delivery,) = Delivery.objects.all()
    notifications.delivery_send(delivery_id=delivery.pk, now=NOW)
    (request,) = http_receiver.wait_for(1)
    assert "is dead" in request.json["title"]

    # Still dead a minute later: the same alert, nothing new.
    assert dead_clusters_alert(now=NOW + datetime.timedelta(minutes=1)) == 0
    assert Alert.objects.count() == 1

    # Forgotten (or back): the alert resolves itself and says so.
    seen.delete()
    dead_clusters_alert(now=NOW + datetime.timedelta(minutes=2))
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolved_by is None
    assert list(Delivery.objects.order_by("id").values_list("event", flat=True)) == [
        "fired",
        "resolved",
    ]
