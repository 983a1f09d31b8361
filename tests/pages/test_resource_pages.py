"""The resource dashboard page: charts and table on known data, and the one-click
"Apply suggestion" that republishes the node through the normal publish path."""

import json
import re

from apps.audit.models import OperationLog
from apps.nodes.models import Node
from tests.monitoring.test_resources import usage  # noqa: F401 (fixture)

RANGE = {"start": "2026-11-20", "end": "2026-11-20"}


def row_of(page: str, node_id: int) -> str:
    match = re.search(rf'<tr data-node="{node_id}".*?</tr>', page, re.S)
    assert match, f"no row for node {node_id}"
    return match.group(0)


def test_dashboard_page_shows_flags_suggestions_and_chart_data(usage, users, client):  # noqa: F811
    client.force_login(users["vera"])
    answer = client.get("/resources/", {**RANGE, "project": "acme"})
    assert answer.status_code == 200
    page = answer.content.decode()
    lavish = row_of(page, usage["lavish"].pk)
    assert 'data-flag="over_provisioned"' in lavish
    assert "0.75 cores / 512 MB" in lavish
    # A viewer may not publish: no button, a note instead.
    assert "Apply suggestion" not in lavish and "needs the publish role" in lavish
    assert 'data-flag="under_provisioned"' in row_of(page, usage["killed"].pk)
    assert "1 killed for memory" in row_of(page, usage["killed"].pk)
    assert 'data-flag="no_data"' in row_of(page, usage["young"].pk)
    data = json.loads(
        re.search(r'id="resource-data" type="application/json">(.*?)</script>', page, re.S).group(1)
    )
    assert "acme.lavish" in data["nodes"]["labels"]
    assert data["groups"]["labels"] == ["default", "etl"]
    assert 'data-resource_group="etl"' in page and 'data-project="acme"' in page
    assert "vendor/chartjs/chart.umd.min.js" in page and "js/resources.js" in page


def test_apply_suggestion_makes_a_new_version_through_publish(usage, users, client):  # noqa: F811
    node = usage["lavish"]
    before = node.current_version.number
    client.force_login(users["dave"])
    page = client.get("/resources/", {**RANGE, "project": "acme"}).content.decode()
    assert 'data-action="apply_suggestion"' in row_of(page, node.pk)

    answer = client.post(f"/resources/nodes/{node.pk}/apply/", {**RANGE, "next": "/resources/"})
    assert answer.status_code == 302 and answer["Location"] == "/resources/"
    node = Node.objects.get(pk=node.pk)
    assert node.current_version.number == before + 1
    spec = node.current_version.spec
    assert (spec["cpu"], spec["memory_mb"]) == (0.75, 512)
    assert spec["content"] == "echo run" and spec["resource_group"] == "etl"  # the rest unchanged
    assert "resource suggestion" in node.current_version.note
    log = OperationLog.objects.filter(action="publish").latest("id")
    assert log.result == "ok" and log.username == "dave" and log.detail["updated"] == ["lavish"]
    followed = client.get("/resources/").content.decode()
    assert "lavish republished as version" in followed

    # Applied: the allocation is the suggestion now, so there is nothing left to apply.
    again = client.post(f"/resources/nodes/{node.pk}/apply/", RANGE, follow=True)
    assert "already has the suggested allocation" in again.content.decode()
    assert Node.objects.get(pk=node.pk).current_version.number == before + 1


def test_apply_is_refused_without_data_or_role(usage, users, client):  # noqa: F811
    young = usage["young"]
    client.force_login(users["dave"])
    answer = client.post(f"/resources/nodes/{young.pk}/apply/", RANGE, follow=True)
    assert "needs at least 3 measured runs" in answer.content.decode()
    assert Node.objects.get(pk=young.pk).current_version.number == 1

    client.force_login(users["vera"])
    lavish = usage["lavish"]
    answer = client.post(f"/resources/nodes/{lavish.pk}/apply/", RANGE, follow=True)
    assert "needs the developer role" in answer.content.decode()
    assert Node.objects.get(pk=lavish.pk).current_version.number == 1
    assert OperationLog.objects.filter(action="publish", result="refused").exists()

    client.force_login(users["stranger"])
    assert client.post(f"/resources/nodes/{lavish.pk}/apply/", RANGE).status_code == 404


def test_bad_dates_on_the_page_answer_422_naming_the_field(usage, users, client):  # noqa: F811
    client.force_login(users["vera"])
    answer = client.get("/resources/", {"start": "2026-02-30"})
    assert answer.status_code == 422
    assert "<strong>start</strong>" in answer.content.decode()
    assert client.get("/resources/", {"resource_group": "nope"}).status_code == 404
