"""A resource group's page lists the django-q2 clusters serving its queue, with their
last heartbeat, from real `qcluster` processes: with the ORM broker (their status in
the file cache of the runtime directory) and with Redis."""

import re
from pathlib import Path

import pytest
from django.test import Client
from django_q.conf import Conf
from django_q.models import Schedule

from apps.configuration import clusters
from apps.configuration.models import ResourceGroup
from tests.instances.test_cluster import Cluster, redis_url, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def started(tmp_path):
    Schedule.objects.all().delete()  # no dispatcher loop to hold up a graceful stop
    running = []

    def start(**env):
        running.append(Cluster(tmp_path, **env))
        return running[-1]

    yield start
    for cluster in running:
        cluster.stop()


@pytest.fixture
def status_cache(settings):
    """The ORM broker's status cache where this test's clusters write it (their runtime
    directory)."""
    settings.CACHES = {
        **settings.CACHES,
        "django_q": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(Path(settings.VAR_DIR) / "django_q_status"),
        },
    }


def workers_rows(client: Client, group: str) -> list[str]:
    html = client.get(f"/configuration/resource-groups/{group}/").content.decode()
    section = re.search(r'id="group-workers"(.*?)</section>', html, re.S)[1]
    return re.findall(r"<tr data-cluster=.*?</tr>", section, re.S)


@pytest.mark.parametrize("broker", ["orm", "redis"])
def test_a_group_page_lists_the_clusters_serving_it(
    users, started, status_cache, broker, monkeypatch
):
    ResourceGroup.objects.create(name="etl", max_concurrency=4)
    ResourceGroup.objects.create(name="reports", max_concurrency=4)
    env = {"Q_CLUSTER_NAME": "etl"}
    if broker == "redis":
        import redis

        env["REDIS_URL"] = redis_url()
        redis.Redis.from_url(env["REDIS_URL"]).flushdb()
        monkeypatch.setattr(Conf, "ORM", None)
        monkeypatch.setattr(Conf, "REDIS", env["REDIS_URL"])
    client = Client()
    client.force_login(users["vera"])
    cluster = started(**env)

    wait_for(
        lambda: len(workers_rows(client, "etl")) == 1,
        timeout=45,
        message="the etl cluster never showed on its group's page",
        cluster=cluster,
    )
    [row] = workers_rows(client, "etl")
    [status] = [c for c in clusters.clusters() if c.queue == "etl"]
    assert status.pid == cluster.process.pid
    assert status.workers == 2
    assert status.heartbeat_age_seconds < 10
    assert f'<td class="num mono">{cluster.process.pid}</td>' in row
    assert re.search(r'<td class="num">2</td>', row)
    assert "s ago)" in row
    # Another group's page does not list it.
    assert workers_rows(client, "reports") == []
    listed = client.get("/configuration/resource-groups/").content.decode()
    assert re.search(r'data-group="etl".*?data-clusters="1"', listed, re.S)

    cluster.stop()
    wait_for(
        lambda: workers_rows(client, "etl") == [],
        timeout=30,
        message="a stopped cluster stayed on the page",
    )
