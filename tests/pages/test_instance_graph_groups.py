"""Many instances of one node in a graph are one box: a daily node with 24 hourly parents
draws its parents as "hourly_load ×24" until the reader opens the group."""

import datetime

import pytest

from apps.instances.graph import graph_grouped, group_key, instance_graph
from apps.instances.models import InstanceDependency
from tests.factories import instance_create, node_create
from tests.pages.builders import T0, hourly_day

HOUR = datetime.timedelta(hours=1)


@pytest.fixture
def day(users, project):
    return hourly_day(project, users["alice"])


def test_the_24_parents_are_one_box_with_their_states(client, users, day):
    client.force_login(users["olga"])
    report = day["report"]
    data = client.get(f"/instances/{report.pk}/graph?up=1&down=1").json()
    assert len(data["nodes"]) == 2
    focus, group = sorted(data["nodes"], key=lambda n: str(n["id"]))[::-1]
    assert focus["id"] == report.pk and focus["focus"]
    assert group["label"] == "hourly_load ×24"
    assert group["sublabel"] == "2 failed · 22 succeeded"
    assert group["states"] == {"failed": 2, "succeeded": 22}
    assert group["color"] == "red" and group["collapsed"] and group["url"] == ""
    assert sorted(group["members"]) == sorted(r.pk for r in day["runs"])
    # One line from the box to the report; the chain inside the group is not drawn.
    assert data["edges"] == [{"source": group["id"], "target": report.pk, "removed": False}]
    assert data["groups"] == [{"key": group["id"], "label": "hourly_load ×24", "expanded": False}]
    assert data["summary"] == "25 instances (24 in 1 box)"


def test_expanding_the_group_shows_each_instance(client, users, day):
    client.force_login(users["olga"])
    report = day["report"]
    key = client.get(f"/instances/{report.pk}/graph?up=1&down=1").json()["groups"][0]["key"]
    data = client.get(f"/instances/{report.pk}/graph?up=1&down=1&expand={key}").json()
    members = [n for n in data["nodes"] if n.get("group") == key]
    assert len(members) == 24 and len(data["nodes"]) == 25
    assert all(isinstance(m["id"], int) and m["url"].startswith("/instances/") for m in members)
    assert sum(m["state"] == "failed" for m in members) == 2
    # Each run's line to the report, and the chain between the runs, drawn again.
    to_report = [e for e in data["edges"] if e["target"] == report.pk]
    assert len(to_report) == 24 and len(data["edges"]) == 24 + 23
    assert data["groups"] == [{"key": key, "label": "hourly_load ×24", "expanded": True}]
    # An unknown or overlong key opens nothing and is no error.
    odd = client.get(f"/instances/{report.pk}/graph?up=1&expand=nope&expand={'x' * 500}")
    assert odd.status_code == 200 and len(odd.json()["nodes"]) == 2


def test_few_instances_of_a_node_stay_boxes_of_their_own(users, project):
    alice = users["alice"]
    six_hourly = node_create(project, "six_hourly", owner=alice, cron="0 */6 * * *")
    daily = node_create(project, "daily", owner=alice, upstream=[six_hourly])
    runs = [
        instance_create(six_hourly, T0 - 24 * HOUR + 6 * n * HOUR, state="succeeded")
        for n in range(3)
    ]
    report = instance_create(daily, T0, upstream=runs)
    graph = instance_graph(user=users["olga"], instance=report, up=1, down=1)
    grouped = graph_grouped(graph)
    assert grouped.groups == [] and len(grouped.boxes) == 4 and len(grouped.edges) == 3


def test_a_group_line_is_removed_only_when_all_of_its_lines_are(users, day):
    report = day["report"]
    InstanceDependency.objects.filter(downstream=report, upstream__in=day["runs"][:5]).update(
        removed=True
    )
    graph = instance_graph(user=users["olga"], instance=report, up=1, down=0)
    (line,) = graph_grouped(graph).edges
    assert line[2] is False
    InstanceDependency.objects.filter(downstream=report).update(removed=True)
    graph = instance_graph(user=users["olga"], instance=report, up=1, down=0)
    (line,) = graph_grouped(graph).edges
    assert line[2] is True


def test_the_focus_is_never_hidden_in_a_group(users, day):
    """From one hourly run, its chain neighbours and the report are drawn; the focus stays
    a box even where it has three siblings of its node at its level."""
    focus = day["runs"][12]
    graph = instance_graph(user=users["olga"], instance=focus, up=3, down=3)
    grouped = graph_grouped(graph, min_size=2)
    assert focus in grouped.boxes
    keys = {g.key for g in grouped.groups}
    assert group_key(focus, 0) not in keys


def test_strangers_do_not_see_the_graph(client, users, day):
    client.force_login(users["stranger"])
    response = client.get(f"/instances/{day['report'].pk}/graph?expand=x")
    assert response.status_code == 404
