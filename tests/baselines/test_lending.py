"""Priority lending (SPEC 7.3): while a cycle is at risk, the unfinished instances of its
path are dispatched at the baseline's priority when it is higher than their own; a full
resource group then starts the at-risk chain before ordinary work that would have gone
first; lending ends when the cycle finishes. The API, diagnosis and pages show it."""

import pytest

from apps.baselines import cycles, services
from apps.baselines.models import BaselineCycle
from apps.configuration.models import ResourceGroup
from apps.instances import dispatcher
from apps.instances.diagnosis import diagnose
from apps.instances.models import Instance
from tests.factories import Enqueued, instance_create, node_create

from .builders import BIZ_DATE, at, baseline_make, finish, fresh, history, run, start


@pytest.fixture
def tight(db):
    return ResourceGroup.objects.create(name="tight", max_concurrency=1)


@pytest.fixture
def world(project, users, tight):
    """In group "tight" (one slot, held by `holder`): ordinary work at priority 3 scheduled
    at 07:00, and a baseline's chain extract -> report at priority 1 scheduled at 08:00,
    whose history says 40 + 20 minutes. Its baseline commits 09:30 with a 30 minute margin
    at priority 8."""
    owner = users["alice"]
    # Running without an attempt: the dispatcher's reaper has no worker to look for.
    holder = instance_create(
        node_create(project, "holder", owner=owner, resource_group="tight"),
        at(6),
        state="running",
        started_at=at(6),
    )
    ordinary = instance_create(
        node_create(project, "ordinary", owner=owner, resource_group="tight", priority=3), at(7)
    )
    extract = node_create(project, "extract", owner=owner, resource_group="tight", priority=1)
    report = node_create(
        project, "report", owner=owner, resource_group="tight", priority=1, upstream=[extract]
    )
    history(extract, [40])
    history(report, [20])
    ie = instance_create(extract, at(8))
    ir = instance_create(report, at(8), upstream=[ie])
    baseline = baseline_make(project, [report], committed_time="09:30", priority=8)
    return {
        "holder": holder,
        "ordinary": ordinary,
        "extract": ie,
        "report": ir,
        "baseline": baseline,
    }


def tick(now):
    enqueue = Enqueued()
    return dispatcher.tick(now=now, enqueue=enqueue).queued


@pytest.mark.django_db
def test_an_at_risk_chain_overtakes_ordinary_work_in_a_full_group(world, users):
    w = world
    # 08:00: extract 08:00-08:40, report 08:40-09:00: at the warning time, not past it.
    cycles.baselines_check(now=at(8))
    assert BaselineCycle.objects.get(biz_date=BIZ_DATE).status == "safe"
    assert fresh(w["extract"]).lent_priority is None
    # 08:05: report is now predicted at 09:05, past 09:00: warning. Both unfinished
    # instances of the path are lent priority 8; the others keep theirs.
    cycles.baselines_check(now=at(8, 5))
    assert BaselineCycle.objects.get(biz_date=BIZ_DATE).status == "warning"
    for name in ("extract", "report"):
        instance = fresh(w[name])
        assert (instance.priority, instance.lent_priority, instance.lent_by_id) == (
            1,
            8,
            w["baseline"].pk,
        )
        assert instance.dispatch_priority == 8
    assert fresh(w["ordinary"]).lent_priority is None
    assert fresh(w["holder"]).lent_priority is None

    # The group is full: nothing starts. Once its slot frees, extract (lent 8, due at
    # 08:00) starts before ordinary (3, due since 07:00).
    assert tick(at(8, 6)) == []
    Instance.objects.filter(pk=w["holder"].pk).update(state="succeeded", finished_at=at(8, 7))
    assert tick(at(8, 7)) == [w["extract"].pk]
    # Without the lending, ordinary would have gone first.
    assert fresh(w["ordinary"]).state == "pending"

    # The chain runs; once report is done the cycle finishes (late: 09:45 > 09:30) and
    # no instance is lent anything any more.
    start(fresh(w["extract"]), at(8, 8))
    finish(fresh(w["extract"]), at(8, 50))
    run(fresh(w["report"]), at(8, 51), at(9, 45))
    cycles.baselines_check(now=at(9, 46))
    assert BaselineCycle.objects.get(biz_date=BIZ_DATE).status == "finished_late"
    assert not Instance.objects.filter(lent_by__isnull=False).exists()
    assert not Instance.objects.filter(lent_priority__isnull=False).exists()


@pytest.mark.django_db
def test_lending_follows_the_status_and_shows_in_the_api_and_diagnosis(world, users, api_as):
    w = world
    cycles.baselines_check(now=at(8, 5))
    body = api_as("vera").get(f"/api/instances/{w['report'].pk}").json()
    assert (body["priority"], body["lent_priority"], body["lent_by"]) == (1, 8, w["baseline"].pk)
    listed = api_as("vera").get("/api/instances?state=pending").json()["items"]
    lent = {item["id"]: (item["lent_priority"], item["lent_by"]) for item in listed}
    assert lent[w["extract"].pk] == (8, w["baseline"].pk)
    assert lent[w["ordinary"].pk] == (None, None)
    note = next(
        n for n in diagnose(fresh(w["extract"]), now=at(8, 5)).notes if n.kind == "lent_priority"
    )
    assert note.detail == {
        "priority": 1,
        "lent_priority": 8,
        "lent_by": w["baseline"].pk,
        "lent_by_name": "daily report",
    }
    assert "dispatched at priority 8 (its own is 1)" in note.message
    # The promise moves to 12:00: safe again, and the lending is taken back.
    w["baseline"].committed_time = "12:00"
    w["baseline"].save()
    cycles.baselines_check(now=at(8, 6))
    assert BaselineCycle.objects.get(biz_date=BIZ_DATE).status == "safe"
    assert fresh(w["extract"]).lent_priority is None


@pytest.mark.django_db
def test_a_lower_baseline_priority_lends_nothing_higher_and_the_highest_lender_wins(
    world, project, users
):
    w = world
    other = baseline_make(
        project, [w["report"].node], name="second", committed_time="09:30", priority=5
    )
    cycles.baselines_check(now=at(8, 5))
    instance = fresh(w["extract"])
    # Both baselines lend to it; the higher priority (8) wins.
    assert (instance.lent_priority, instance.lent_by_id) == (8, w["baseline"].pk)
    # Disabling the first takes its lending back at once; the next pass lends the other's.
    services.baseline_update(
        baseline=w["baseline"], data={"enabled": False}, by=users["alice"], source="api"
    )
    assert fresh(w["extract"]).lent_priority is None
    cycles.baselines_check(now=at(8, 6))
    instance = fresh(w["extract"])
    assert (instance.lent_priority, instance.lent_by_id, instance.dispatch_priority) == (
        5,
        other.pk,
        5,
    )
    # A node priority above the lent one is kept for dispatch.
    Instance.objects.filter(pk=instance.pk).update(priority=7)
    assert fresh(w["extract"]).dispatch_priority == 7
    # Deleting the baseline takes back what it lends.
    services.baseline_delete(baseline=other, by=users["alice"], source="api")
    assert not Instance.objects.filter(lent_by__isnull=False).exists()
