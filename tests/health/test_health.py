"""The cluster health page: real django-q2 clusters (a `qcluster` subprocess each), one
killed with SIGKILL shown as dead; realtime supervisors by their heartbeat; tasks
waiting in a queue and recently failed tasks."""

import datetime
import os
import re
import signal
import uuid
from pathlib import Path

import pytest
from django.test import Client
from django_q.models import Schedule, Task
from django_q.tasks import async_task

from apps.configuration.models import ResourceGroup
from apps.core import clock
from apps.health.models import ClusterSeen
from apps.health.selectors import health_get
from apps.health.services import clusters_record
from apps.monitoring.tasks import MINUTE_CHECKS
from apps.nodes.models import Node
from apps.nodes.services import nodes_publish
from apps.realtime.models import RealtimeSettings
from tests.instances.test_cluster import Cluster, wait_for


@pytest.fixture
def status_cache(settings):
    """The ORM broker's status cache where this test's clusters write it."""
    settings.CACHES = {
        **settings.CACHES,
        "django_q": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(Path(settings.VAR_DIR) / "django_q_status"),
        },
    }


@pytest.fixture
def started(tmp_path):
    Schedule.objects.all().delete()  # no dispatcher loop to hold up a graceful stop
    running = []

    def start(**env):
        running.append(Cluster(tmp_path, **env))
        return running[-1]

    yield start
    for cluster in running:
        if cluster.process.poll() is None:
            cluster.stop()


def cluster_row(client: Client, pid: int) -> str | None:
    html = client.get("/health/").content.decode()
    section = re.search(r'id="clusters"(.*?)</section>', html, re.S)[1]
    found = re.search(rf'<tr data-cluster="[^"]*" data-pid="{pid}".*?</tr>', section, re.S)
    return found[0] if found else None


@pytest.mark.django_db(transaction=True)
def test_a_cluster_killed_with_sigkill_is_shown_dead(users, started, status_cache, settings):
    settings.OPSCENTER_CLUSTER_DEAD_SECONDS = 3
    ResourceGroup.objects.create(name="etl", max_concurrency=4)
    client = Client()
    client.force_login(users["vera"])
    cluster = started(Q_CLUSTER_NAME="etl")
    pid = cluster.process.pid

    # The monitor's minute pass remembers it, before anyone opens the page.
    wait_for(
        lambda: (
            MINUTE_CHECKS["clusters_seen"](now=clock.now())
            and ClusterSeen.objects.filter(pid=pid, queue="etl", workers=2).exists()
        ),
        timeout=45,
        message="the minute pass never recorded the cluster",
        cluster=cluster,
    )

    def shown_alive_with_queue() -> bool:
        row = cluster_row(client, pid)
        return bool(row and 'data-health="alive"' in row and ">etl</a>" in row)

    wait_for(
        shown_alive_with_queue, timeout=45, message="the cluster never showed", cluster=cluster
    )
    row = cluster_row(client, pid)
    assert re.search(r'<td class="num">2</td>', row)  # Q_WORKERS=2
    assert 'id="health-dead"' not in client.get("/health/").content.decode()

    os.killpg(pid, signal.SIGKILL)
    cluster.process.wait(timeout=10)
    # Work still waits in its queue, and one of its tasks failed before it died.
    async_task("math.floor", 1.5, cluster="etl")
    now = clock.now()
    Task.objects.create(
        id=uuid.uuid4().hex,
        name="etl-boom",
        func="apps.instances.tasks.instance_run",
        started=now,
        stopped=now,
        success=False,
        result="Traceback: boom <b>",
        cluster="etl",
    )

    wait_for(
        lambda: 'data-health="dead"' in (cluster_row(client, pid) or ""),
        timeout=30,
        message="the killed cluster was never shown dead",
    )
    row = cluster_row(client, pid)
    assert '<span class="badge badge-red">dead</span>' in row
    assert 'data-queued="1"' in row and 'data-failed="1"' in row
    html = client.get("/health/").content.decode()
    assert 'id="health-dead"' in html and "1 dead" in html
    failed = re.search(r'id="failed-tasks"(.*?)</section>', html, re.S)[1]
    assert "etl-boom" in failed and "boom &lt;b&gt;" not in failed  # errors: superusers'
    root = Client()
    root.force_login(users["root"])
    failed = re.search(
        r'id="failed-tasks"(.*?)</section>', root.get("/health/").content.decode(), re.S
    )[1]
    assert "Traceback: boom &lt;b&gt;" in failed


@pytest.mark.django_db
def test_a_remembered_cluster_is_dead_once_silent(settings):
    """Without a broker status, a cluster seen 40 s ago is dead at a 30 s threshold, and
    forgotten after OPSCENTER_CLUSTER_FORGET_HOURS."""
    settings.OPSCENTER_CLUSTER_DEAD_SECONDS = 30
    now = clock.now()
    ClusterSeen.objects.create(
        cluster_id="c1",
        host="etl-1",
        pid=42,
        queue="etl",
        status="Idle",
        workers=4,
        heartbeat_at=now - datetime.timedelta(seconds=40),
        first_seen_at=now - datetime.timedelta(hours=1),
    )
    [cluster] = health_get(now=now).clusters
    assert (cluster.alive, cluster.status, cluster.heartbeat_age_seconds) == (False, "dead", 40.0)
    clusters_record(now=now + datetime.timedelta(hours=25), found=[])
    assert not ClusterSeen.objects.exists()


@pytest.fixture
def supervised(project, users):
    specs = [
        {"name": name, "type": "shell", "schedule": {"type": "realtime"}, "content": "sleep 1"}
        for name in ("stream_a", "stream_b", "stream_c")
    ]
    nodes_publish(project=project, env="prod", specs=specs, user=users["root"])
    now = clock.now()
    rows = {
        row.node.name: row
        for row in RealtimeSettings.objects.filter(node__in=Node.objects.filter(project=project))
    }
    RealtimeSettings.objects.filter(pk__in=[rows["stream_a"].pk, rows["stream_b"].pk]).update(
        supervisor="rt-1:100", heartbeat_at=now - datetime.timedelta(seconds=1)
    )
    RealtimeSettings.objects.filter(pk=rows["stream_c"].pk).update(
        supervisor="rt-2:200", heartbeat_at=now - datetime.timedelta(minutes=5)
    )
    return rows


@pytest.mark.django_db
def test_supervisors_by_their_heartbeat(client, users, supervised, settings):
    settings.OPSCENTER_CLUSTER_DEAD_SECONDS = 30
    client.force_login(users["olga"])
    html = client.get("/health/").content.decode()
    section = re.search(r'id="supervisors"(.*?)</section>', html, re.S)[1]
    rows = re.findall(r'<tr data-supervisor="([^"]+)" data-health="(\w+)"', section)
    assert rows == [("rt-2:200", "dead"), ("rt-1:100", "alive")]  # the dead first
    [alive] = [s for s in health_get().supervisors if s.alive]
    group = supervised["stream_a"].instance.resource_group.name
    assert (alive.host, alive.workers, alive.queues) == ("rt-1", 2, [group])


@pytest.mark.django_db
def test_the_page_needs_a_login_and_refreshes_as_a_partial(client, users):
    response = client.get("/health/")
    assert response.status_code == 302 and "login" in response["Location"]
    client.force_login(users["vera"])
    html = client.get("/health/").content.decode()
    assert "<h1>Cluster health</h1>" in html and "No cluster has been seen" in html
    partial = client.get("/health/", headers={"HX-Request": "true"}).content.decode()
    assert partial.startswith('\n<div id="health"') or partial.lstrip().startswith(
        '<div id="health"'
    )
    assert "<html" not in partial and 'hx-trigger="every 10s"' in partial


@pytest.mark.django_db
def test_the_main_menu_links_the_page(client, users):
    client.force_login(users["vera"])
    html = client.get("/health/").content.decode()
    assert '<a href="/health/" class="active" aria-current="page">Health</a>' in html


@pytest.mark.django_db
def test_the_api_answers_the_same(api_as, client, supervised, settings):
    settings.OPSCENTER_CLUSTER_DEAD_SECONDS = 30
    now = clock.now()
    ClusterSeen.objects.create(
        cluster_id="c1",
        host="etl-1",
        pid=42,
        queue="etl",
        status="Idle",
        workers=4,
        heartbeat_at=now - datetime.timedelta(seconds=40),
        first_seen_at=now,
    )
    response = api_as("olga").get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["dead"] == 2 and body["dead_after_seconds"] == 30
    [cluster] = body["clusters"]
    assert (cluster["host"], cluster["queue"], cluster["alive"], cluster["status"]) == (
        "etl-1",
        "etl",
        False,
        "dead",
    )
    assert [(s["name"], s["alive"], s["workers"]) for s in body["supervisors"]] == [
        ("rt-2:200", False, 1),
        ("rt-1:100", True, 2),
    ]
    assert client.get("/api/health").status_code == 401
