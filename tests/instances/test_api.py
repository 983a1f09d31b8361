import datetime

import pytest

from apps.audit.services import operation_record
from apps.instances import api as instances_api
from apps.instances.models import Attempt, AttemptLogChunk, Instance, InstanceDependency
from apps.projects.models import Membership, Project
from tests.factories import instance_create, node_create

# 02:00 on 2026-11-22 in Asia/Shanghai (the `project` fixture's timezone).
T0 = datetime.datetime(2026, 11, 21, 18, 0, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)

INSTANCE_FIELDS = {
    "id",
    "project",
    "node",
    "node_name",
    "version",
    "kind",
    "biz_date",
    "scheduled_at",
    "state",
    "wait_reason",
    "paused",
    "forced",
    "priority",
    # SPEC 12: "Instance answers add lent_priority and lent_by" (section 7.3).
    "lent_priority",
    "lent_by",
    "resource_group",
    "started_at",
    "finished_at",
    "duration_seconds",
}


@pytest.fixture
def owner(users):
    return users["alice"]


def log_write(attempt, *texts):
    offset = 0
    for text in texts:
        AttemptLogChunk.objects.create(attempt=attempt, offset=offset, text=text)
        offset += len(text)
    Attempt.objects.filter(pk=attempt.pk).update(log_size=offset)


# --- list ------------------------------------------------------------------------------


def test_list_answers_the_spec_fields_in_the_project_timezone(api_as, project, owner):
    node = node_create(project, "load_orders", owner=owner, type="shell", priority=4)
    instance_create(
        node, T0, state="succeeded", started_at=T0, finished_at=T0 + datetime.timedelta(seconds=90)
    )
    response = api_as("vera").get("/api/instances")
    assert response.status_code == 200
    body = response.json()
    assert body["next_cursor"] is None
    [item] = body["items"]
    assert set(item) == INSTANCE_FIELDS
    assert item["project"] == "acme"
    assert item["node"] == node.pk and item["node_name"] == "load_orders"
    assert item["version"] == 1 and item["kind"] == "recurring"
    assert item["biz_date"] == "2026-11-21"
    assert item["scheduled_at"] == "2026-11-22T02:00:00+08:00"
    assert item["started_at"] == "2026-11-22T02:00:00+08:00"
    assert item["finished_at"] == "2026-11-22T02:01:30+08:00"
    assert item["duration_seconds"] == 90.0
    assert item["resource_group"] == "default"
    assert item["priority"] == 4
    assert item["lent_priority"] is None and item["lent_by"] is None


def test_list_pages_through_three_pages_without_overlap(api_as, project, owner):
    node = node_create(project, "hourly", owner=owner, cron="0 * * * *")
    other = node_create(project, "other", owner=owner)
    made = []
    for hour in range(4):
        made.append(instance_create(node, T0 + hour * HOUR))
        # A second instance at the same time: the cursor must break the tie by id.
        made.append(instance_create(other, T0 + hour * HOUR, kind="one_time"))
    client = api_as("vera")
    seen, cursor, pages = [], None, 0
    while True:
        url = "/api/instances?limit=3" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url).json()
        pages += 1
        seen.extend(item["id"] for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 8
    expected = sorted(made, key=lambda i: (i.scheduled_at, i.pk), reverse=True)
    assert seen == [i.pk for i in expected]


def test_list_filters(api_as, project, owner, users):
    daily = node_create(project, "daily", owner=owner)
    hourly = node_create(
        project, "hourly", owner=users["dave"], cron="0 * * * *", resource_group="etl"
    )
    a = instance_create(daily, T0, state="failed")
    b = instance_create(hourly, T0 + HOUR, wait_reason="waiting_upstream")
    c = instance_create(hourly, T0 + 25 * HOUR, kind="backfill", state="succeeded")
    client = api_as("vera")

    def ids(query):
        response = client.get("/api/instances?" + query)
        assert response.status_code == 200, response.content
        return {item["id"] for item in response.json()["items"]}

    assert ids("state=failed") == {a.pk}
    assert ids("state=waiting_upstream") == {b.pk}
    assert ids("kind=backfill") == {c.pk}
    assert ids("backfill=false") == {a.pk, b.pk}
    assert ids("node=hourly") == {b.pk, c.pk}
    assert ids(f"node={daily.pk}") == {a.pk}
    assert ids("biz_date=2026-11-22") == {c.pk}
    assert ids("owner=dave") == {b.pk, c.pk}
    assert ids("resource_group=etl") == {b.pk, c.pk}
    assert ids("project=acme&state=succeeded") == {c.pk}
    assert ids("project=elsewhere") == set()


@pytest.mark.parametrize(
    "query, field",
    [
        ("kind=daily", "kind"),
        ("state=sleeping", "state"),
        ("biz_date=2026-13-01", "biz_date"),
        ("backfill=maybe", "backfill"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("cursor=!!!not-a-cursor", "cursor"),
        ("cursor=bm9wZQ", "cursor"),
    ],
)
def test_list_refuses_bad_query_naming_the_field(api_as, project, query, field):
    response = api_as("vera").get("/api/instances?" + query)
    assert response.status_code == 422
    body = response.json()
    assert body["detail"]
    assert [e["field"] for e in body["errors"]] == [field]


def test_list_shows_only_the_callers_projects(api_as, project, owner, users):
    other = Project.objects.create(code="other", name="Other", timezone="UTC")
    mine = instance_create(node_create(project, "a", owner=owner), T0)
    theirs = instance_create(node_create(other, "b", owner=users["stranger"]), T0)
    Membership.objects.create(project=other, user=users["stranger"], role="viewer")
    assert [i["id"] for i in api_as("vera").get("/api/instances").json()["items"]] == [mine.pk]
    stranger = api_as("stranger").get("/api/instances").json()["items"]
    assert [i["id"] for i in stranger] == [theirs.pk]
    assert stranger[0]["scheduled_at"] == "2026-11-21T18:00:00+00:00"
    assert {i["id"] for i in api_as("root").get("/api/instances").json()["items"]} == {
        mine.pk,
        theirs.pk,
    }


def test_list_costs_the_same_queries_for_many_rows(
    api_as, project, owner, django_assert_max_num_queries
):
    node = node_create(project, "a", owner=owner)
    client = api_as("vera")
    client.get("/api/instances")  # the token's first use records it once
    for hour in range(30):
        instance_create(node, T0 + hour * HOUR)
    with django_assert_max_num_queries(4):
        body = client.get("/api/instances?limit=25").json()
    assert len(body["items"]) == 25


# --- detail ----------------------------------------------------------------------------


def test_detail_adds_attempts_and_edges(api_as, project, owner):
    up1 = instance_create(node_create(project, "up1", owner=owner), T0, state="succeeded")
    up2 = instance_create(node_create(project, "up2", owner=owner), T0, state="succeeded")
    node = node_create(project, "mid", owner=owner)
    mid = instance_create(
        node, T0, upstream=[up1, up2], state="failed", attempt_count=2, started_at=T0
    )
    InstanceDependency.objects.filter(downstream=mid, upstream=up2).update(removed=True)
    down = instance_create(node_create(project, "down", owner=owner), T0, upstream=[mid])
    Attempt.objects.create(
        instance=mid,
        number=1,
        state="failed",
        started_at=T0,
        finished_at=T0 + HOUR,
        exit_code=1,
        cpu_seconds=0.5,
        peak_memory_mb=12.0,
        reason="exit code 1",
    )
    Attempt.objects.create(instance=mid, number=2, state="failed", started_at=T0 + 2 * HOUR)
    response = api_as("vera").get(f"/api/instances/{mid.pk}")
    assert response.status_code == 200
    body = response.json()
    assert INSTANCE_FIELDS <= set(body)
    assert body["upstream"] == [up1.pk]
    assert body["removed_upstream"] == [up2.pk]
    assert body["downstream"] == [down.pk]
    first, second = body["attempts"]
    assert first == {
        "number": 1,
        "state": "failed",
        "reason": "exit code 1",
        "started_at": "2026-11-22T02:00:00+08:00",
        "finished_at": "2026-11-22T03:00:00+08:00",
        "exit_code": 1,
        "cpu_seconds": 0.5,
        "peak_memory_mb": 12.0,
        "worker": "",
        "killed_for": "",
        "runtime": {},
    }
    assert second["number"] == 2 and second["finished_at"] is None


def test_detail_costs_the_same_queries_for_many_attempts_and_edges(
    api_as, project, owner, django_assert_max_num_queries
):
    ups = [make_done(project, owner, f"up{n}") for n in range(6)]
    instance = instance_create(node_create(project, "x", owner=owner), T0, upstream=ups)
    for number in range(1, 7):
        Attempt.objects.create(instance=instance, number=number, state="failed", started_at=T0)
    client = api_as("vera")
    client.get("/api/projects")  # the token's first use records it once
    with django_assert_max_num_queries(5):
        body = client.get(f"/api/instances/{instance.pk}").json()
    assert len(body["attempts"]) == 6 and len(body["upstream"]) == 6


def make_done(project, owner, name):
    return instance_create(node_create(project, name, owner=owner), T0, state="succeeded")


def test_detail_of_unknown_or_foreign_instance_is_404(api_as, project, owner, users):
    other = Project.objects.create(code="other", name="Other")
    theirs = instance_create(node_create(other, "b", owner=users["stranger"]), T0)
    client = api_as("vera")
    for path in (
        f"/api/instances/{theirs.pk}",
        "/api/instances/987654",
        f"/api/instances/{theirs.pk}/log",
        f"/api/instances/{theirs.pk}/diagnosis",
        f"/api/instances/{theirs.pk}/dag",
        "/api/instances/99999999999999999999999",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "detail" in response.json()


# --- log -------------------------------------------------------------------------------


def test_log_reads_the_latest_attempt_and_follows_offsets(api_as, project, owner):
    instance = instance_create(node_create(project, "a", owner=owner), T0, state="running")
    old = Attempt.objects.create(instance=instance, number=1, state="failed", started_at=T0)
    log_write(old, "first try\n")
    current = Attempt.objects.create(instance=instance, number=2, state="running", started_at=T0)
    log_write(current, "hello ", "world\n")
    client = api_as("vera")
    body = client.get(f"/api/instances/{instance.pk}/log").json()
    assert body == {
        "attempt": 2,
        "offset": 0,
        "next_offset": 12,
        "text": "hello world\n",
        "finished": False,
    }
    body = client.get(f"/api/instances/{instance.pk}/log?offset=3").json()
    assert (body["text"], body["next_offset"]) == ("lo world\n", 12)
    AttemptLogChunk.objects.create(attempt=current, offset=12, text="done\n")
    Attempt.objects.filter(pk=current.pk).update(state="succeeded")
    body = client.get(f"/api/instances/{instance.pk}/log?offset=12").json()
    assert body == {
        "attempt": 2,
        "offset": 12,
        "next_offset": 17,
        "text": "done\n",
        "finished": True,
    }
    body = client.get(f"/api/instances/{instance.pk}/log?attempt=1").json()
    assert (body["attempt"], body["text"], body["finished"]) == (1, "first try\n", True)


def test_log_answers_in_pages_and_is_finished_only_at_the_end(api_as, project, owner, monkeypatch):
    monkeypatch.setattr(instances_api, "LOG_PAGE_CHARS", 4)
    instance = instance_create(node_create(project, "a", owner=owner), T0, state="succeeded")
    attempt = Attempt.objects.create(instance=instance, number=1, state="succeeded", started_at=T0)
    log_write(attempt, "abcdef", "ghij")
    client = api_as("vera")
    texts, offset, finished = [], 0, False
    for _ in range(5):
        body = client.get(f"/api/instances/{instance.pk}/log?offset={offset}").json()
        texts.append(body["text"])
        offset, finished = body["next_offset"], body["finished"]
        if finished:
            break
    assert "".join(texts) == "abcdefghij"
    assert texts == ["abcd", "efgh", "ij"]  # finished with the last piece, not after it
    assert finished


def test_log_before_the_first_attempt_and_bad_input(api_as, project, owner):
    instance = instance_create(node_create(project, "a", owner=owner), T0)
    client = api_as("vera")
    body = client.get(f"/api/instances/{instance.pk}/log").json()
    assert body == {"attempt": None, "offset": 0, "next_offset": 0, "text": "", "finished": False}
    response = client.get(f"/api/instances/{instance.pk}/log?attempt=3")
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "attempt"
    response = client.get(f"/api/instances/{instance.pk}/log?offset=-1")
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "offset"
    response = client.get(f"/api/instances/{instance.pk}/log?offset=x")
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "offset"


# --- dag -------------------------------------------------------------------------------


def chain(project, owner, length: int, **fields) -> list[Instance]:
    made = []
    for n in range(length):
        node = node_create(project, f"n{n}", owner=owner)
        made.append(instance_create(node, T0, upstream=made[-1:], **fields))
    return made


def test_dag_walks_the_asked_levels_each_way(api_as, project, owner):
    n = chain(project, owner, 5)
    side = instance_create(node_create(project, "side", owner=owner), T0, upstream=[n[1]])
    InstanceDependency.objects.filter(downstream=side).update(removed=True)
    body = api_as("vera").get(f"/api/instances/{n[2].pk}/dag?up=1&down=2").json()
    assert body["root"] == n[2].pk
    assert {i["id"] for i in body["instances"]} == {n[1].pk, n[2].pk, n[3].pk, n[4].pk}
    assert body["edges"] == [
        {"upstream": n[1].pk, "downstream": n[2].pk, "removed": False},
        {"upstream": n[2].pk, "downstream": n[3].pk, "removed": False},
        {"upstream": n[3].pk, "downstream": n[4].pk, "removed": False},
    ]
    body = api_as("vera").get(f"/api/instances/{n[1].pk}/dag?up=0&down=1").json()
    assert {i["id"] for i in body["instances"]} == {n[1].pk, n[2].pk, side.pk}
    assert {"upstream": n[1].pk, "downstream": side.pk, "removed": True} in body["edges"]
    assert all(i["state"] == "pending" for i in body["instances"])


def test_dag_hides_other_projects_and_refuses_bad_levels(api_as, project, owner, users):
    other = Project.objects.create(code="other", name="Other")
    mine = instance_create(node_create(project, "a", owner=owner), T0)
    theirs = instance_create(node_create(other, "b", owner=users["stranger"]), T0, upstream=[mine])
    body = api_as("vera").get(f"/api/instances/{mine.pk}/dag?down=3").json()
    assert [i["id"] for i in body["instances"]] == [mine.pk]
    assert body["edges"] == []
    assert theirs.pk in {
        i["id"] for i in api_as("root").get(f"/api/instances/{mine.pk}/dag").json()["instances"]
    }
    response = api_as("vera").get(f"/api/instances/{mine.pk}/dag?up=11&down=-1")
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"up", "down"}


# --- diagnosis and operations ----------------------------------------------------------


def test_diagnosis_endpoint_answers_blockers_and_actions(api_as, project, owner):
    failed = instance_create(node_create(project, "extract", owner=owner), T0, state="failed")
    waiting = instance_create(
        node_create(project, "load", owner=owner), T0, upstream=[failed], paused=True
    )
    body = api_as("vera").get(f"/api/instances/{waiting.pk}/diagnosis").json()
    assert body["instance"] == waiting.pk and body["ready"] is False
    assert [b["kind"] for b in body["blockers"]][:2] == ["frozen", "waiting_upstream"]
    upstream = body["blockers"][1]
    assert upstream["detail"]["root_causes"][0]["id"] == failed.pk
    assert {"action": "rerun", "target": failed.pk, "object": "instance"} in upstream["actions"]


def test_diagnosis_hides_the_names_of_other_projects_instances(api_as, project, owner, users):
    other = Project.objects.create(code="other", name="Other")
    theirs = instance_create(
        node_create(other, "secret_feed", owner=users["stranger"]), T0, state="failed"
    )
    mine = instance_create(node_create(project, "a", owner=owner), T0, upstream=[theirs])
    response = api_as("vera").get(f"/api/instances/{mine.pk}/diagnosis")
    assert b"secret_feed" not in response.content
    assert b'"other"' not in response.content
    [ref] = response.json()["blockers"][0]["detail"]["upstream"]
    assert ref["id"] == theirs.pk and ref["state"] == "failed" and ref["hidden"] is True
    assert b"secret_feed" in api_as("root").get(f"/api/instances/{mine.pk}/diagnosis").content


def test_operations_lists_what_was_done_to_the_instance(api_as, project, owner, users):
    instance = instance_create(node_create(project, "a", owner=owner), T0)
    for action in ("pause", "resume"):
        operation_record(
            user=users["olga"],
            source="api",
            action=action,
            object_type="instance",
            object_id=instance.pk,
            project=project,
        )
    body = api_as("vera").get(f"/api/instances/{instance.pk}/operations").json()
    assert [(r["action"], r["username"]) for r in body["items"]] == [
        ("resume", "olga"),
        ("pause", "olga"),
    ]
