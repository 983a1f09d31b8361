import datetime
import io
import threading
import time
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from apps.configuration.models import ResourceGroup
from apps.instances.generation import GenerationResult, align, generate, generate_rest_of_today
from apps.instances.models import GenerationRun, Instance, InstanceDependency
from apps.nodes.models import Node
from apps.projects.models import Project
from tests.factories import node_create

SHANGHAI = ZoneInfo("Asia/Shanghai")
RUN_DATE = datetime.date(2026, 11, 23)  # a Monday; its biz date is 2026-11-22
BIZ_DATE = RUN_DATE - datetime.timedelta(days=1)
# Long before any cutoff of these tests.
EARLY = datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)
ONE_DAY = datetime.timedelta(days=1)


@pytest.fixture
def owner(users):
    return users["alice"]


def make(project, name, owner, **fields):
    fields.setdefault("published_at", EARLY)
    return node_create(project, name, owner=owner, **fields)


def local(day: datetime.date, hour: int, minute: int = 0, tz=SHANGHAI) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=tz)


def instances_of(node, run_date=RUN_DATE) -> list[Instance]:
    return list(
        Instance.objects.filter(node=node, biz_date=run_date - ONE_DAY).order_by("scheduled_at")
    )


def hhmm(instance, tz=SHANGHAI) -> str:
    return instance.scheduled_at.astimezone(tz).strftime("%H:%M")


def upstream_of(instance, tz=SHANGHAI) -> list[str]:
    """The instance's upstream instances as "node@HH:MM" (local time), in time order."""
    ups = Instance.objects.filter(downstream_edges__downstream=instance).select_related("node")
    return [
        f"{u.node.name}@{hhmm(u, tz)}"
        for u in sorted(ups, key=lambda u: (u.scheduled_at, u.node.name))
    ]


# --- alignment as a pure function -------------------------------------------------------


def times(*hours_minutes: str) -> list[datetime.datetime]:
    return [local(RUN_DATE, int(hm.split(":")[0]), int(hm.split(":")[1])) for hm in hours_minutes]


HOURLY = times(*[f"{h:02d}:00" for h in range(24)])


def test_align_day_or_longer_child_depends_on_every_upstream_instance():
    # Rule 2: a daily child of an hourly parent waits for all 24 of them.
    assert align(times("02:00"), HOURLY, child_sub_daily=False, upstream_sub_daily=True) == [
        list(range(24))
    ]
    # ... and a daily child of a daily parent on its one instance, whatever the times.
    assert align(
        times("01:00"), times("05:00"), child_sub_daily=False, upstream_sub_daily=False
    ) == [[0]]


def test_align_sub_daily_child_of_day_or_longer_parent_depends_on_its_instances():
    # Rule 3: every hourly child, also the ones before the parent's time, waits for it.
    aligned = align(HOURLY, times("05:00"), child_sub_daily=True, upstream_sub_daily=False)
    assert aligned == [[0]] * 24


def test_align_sub_daily_on_sub_daily_takes_the_window_since_the_previous_child():
    # Rule 4: a child every two hours on an hourly parent.
    children = times("00:00", "02:00", "04:00")
    aligned = align(children, HOURLY[:5], child_sub_daily=True, upstream_sub_daily=True)
    # 00:00: from the start of the day, inclusive; 02:00: (00:00, 02:00]; 04:00: (02:00, 04:00]
    assert aligned == [[0], [1, 2], [3, 4]]


def test_align_sub_daily_falls_back_to_the_latest_before_then_the_earliest():
    parents = times("00:00", "02:00")
    children = times("00:00", "00:30", "01:00", "02:00")
    aligned = align(children, parents, child_sub_daily=True, upstream_sub_daily=True)
    # 00:30 and 01:00 have no parent in their window: the latest before them, 00:00.
    assert aligned == [[0], [0], [0], [1]]
    # No parent at or before 00:30: the earliest of the day.
    parents = times("05:00", "06:00")
    assert align(
        times("00:30", "05:30"), parents, child_sub_daily=True, upstream_sub_daily=True
    ) == [
        [0],
        [0],
    ]


def test_align_without_upstream_instances_is_empty():
    assert align(times("01:00", "02:00"), [], child_sub_daily=True, upstream_sub_daily=True) == [
        [],
        [],
    ]


# --- generation -------------------------------------------------------------------------


def test_daily_chain_generates_one_instance_each_with_its_edge(project, owner):
    group = ResourceGroup.objects.create(name="etl")
    a = make(project, "a", owner, cron="0 2 * * *", priority=5, resource_group="etl")
    b = make(project, "b", owner, cron="30 3 * * *", upstream=[a])

    result = generate(run_date=RUN_DATE)

    assert result == GenerationResult(instances_created=2, edges_created=1)
    (ia,) = instances_of(a)
    (ib,) = instances_of(b)
    assert ia.scheduled_at == local(RUN_DATE, 2)
    assert ia.biz_date == BIZ_DATE
    assert (ia.kind, ia.state, ia.env, ia.dry_run, ia.paused) == (
        "recurring",
        "pending",
        "prod",
        False,
        False,
    )
    assert (ia.priority, ia.resource_group_id, ia.version_id) == (5, group.id, a.current_version_id)
    assert (ia.params, ia.attempt_count, ia.wait_reason, ia.forced) == ({}, 0, "", False)
    assert ia.created_at is not None
    assert ib.scheduled_at == local(RUN_DATE, 3, 30)
    assert upstream_of(ib) == ["a@02:00"]
    run = GenerationRun.objects.get(project=project)
    assert (run.run_date, run.instances_created, run.edges_created, run.trigger) == (
        RUN_DATE,
        2,
        1,
        "cli",
    )
    assert run.cutoff == local(BIZ_DATE, 23)


def test_rule_2_daily_child_depends_on_every_hourly_parent_instance(project, owner):
    raw = make(project, "raw", owner, cron="0 * * * *")
    report = make(project, "report", owner, cron="0 2 * * *", upstream=[raw])

    result = generate(run_date=RUN_DATE)

    assert result.instances_created == 25
    (child,) = instances_of(report)
    assert upstream_of(child) == [f"raw@{h:02d}:00" for h in range(24)]


def test_rule_3_hourly_child_depends_on_the_daily_parent_instance(project, owner):
    dim = make(project, "dim", owner, cron="0 5 * * *")
    hourly = make(project, "hourly", owner, cron="0 * * * *", upstream=[dim])

    generate(run_date=RUN_DATE)

    children = instances_of(hourly)
    assert len(children) == 24
    assert {tuple(upstream_of(c)) for c in children} == {("dim@05:00",)}


def test_rule_4_sub_daily_alignment_with_both_fallbacks(project, owner):
    half_past = make(project, "half_past", owner, cron="30 * * * *")
    two_hourly = make(project, "two_hourly", owner, cron="0 */2 * * *", upstream=[half_past])
    every_two = make(project, "every_two", owner, cron="0 */2 * * *")
    half_hourly = make(project, "half_hourly", owner, cron="*/30 * * * *", upstream=[every_two])

    generate(run_date=RUN_DATE)

    children = instances_of(two_hourly)
    # 00:00: nothing at or before it -> the earliest of the day.
    assert upstream_of(children[0]) == ["half_past@00:30"]
    # 02:00: the window (00:00, 02:00].
    assert upstream_of(children[1]) == ["half_past@00:30", "half_past@01:30"]
    assert upstream_of(children[-1]) == ["half_past@20:30", "half_past@21:30"]

    children = {hhmm(c): upstream_of(c) for c in instances_of(half_hourly)}
    assert children["00:00"] == ["every_two@00:00"]
    # (00:00, 00:30] is empty -> the latest before 00:30.
    assert children["00:30"] == ["every_two@00:00"]
    assert children["01:30"] == ["every_two@00:00"]
    assert children["02:00"] == ["every_two@02:00"]
    assert children["23:30"] == ["every_two@22:00"]


def test_rule_5_self_dependent_instances_wait_for_the_previous_cycle(project, owner):
    node = make(project, "s", owner, cron="0 */6 * * *", self_dependent=True)
    daily = make(project, "d", owner, cron="0 1 * * *", self_dependent=True)

    generate(run_date=RUN_DATE - ONE_DAY)
    generate(run_date=RUN_DATE)

    today = instances_of(node)
    assert [upstream_of(i) for i in today] == [
        ["s@18:00"],  # the last instance of the day before (biz date D-1)
        ["s@00:00"],
        ["s@06:00"],
        ["s@12:00"],
    ]
    assert upstream_of(today[0]) == ["s@18:00"]
    assert instances_of(node, RUN_DATE - ONE_DAY)[-1].downstream_edges.get().downstream == today[0]
    (d_today,) = instances_of(daily)
    (d_before,) = instances_of(daily, RUN_DATE - ONE_DAY)
    assert list(d_today.upstream_edges.values_list("upstream_id", flat=True)) == [d_before.id]
    # The first day generated has nothing before it.
    assert upstream_of(d_before) == []


def test_rule_5_when_the_next_day_was_generated_first(project, owner):
    node = make(project, "s", owner, cron="0 1 * * *", self_dependent=True)

    generate(run_date=RUN_DATE)
    (later,) = instances_of(node)
    assert upstream_of(later) == []

    result = generate(run_date=RUN_DATE - ONE_DAY)

    (earlier,) = instances_of(node, RUN_DATE - ONE_DAY)
    assert result.edges_created == 1
    assert list(later.upstream_edges.values_list("upstream_id", flat=True)) == [earlier.id]


def test_rule_6_weekly_node_has_an_instance_every_day_dry_on_other_days(project, owner):
    weekly = make(project, "weekly", owner, cron="0 3 * * 1")  # Mondays 03:00
    daily = make(project, "daily", owner, cron="0 4 * * *", upstream=[weekly])

    for offset in range(3):  # Monday, Tuesday, Wednesday
        generate(run_date=RUN_DATE + offset * ONE_DAY)

    weeklies = [instances_of(weekly, RUN_DATE + offset * ONE_DAY) for offset in range(3)]
    assert [[(hhmm(i), i.dry_run) for i in day] for day in weeklies] == [
        [("03:00", False)],
        [("03:00", True)],
        [("03:00", True)],
    ]
    for offset in range(3):
        (child,) = instances_of(daily, RUN_DATE + offset * ONE_DAY)
        assert upstream_of(child) == ["weekly@03:00"]
        assert child.upstream_edges.get().upstream_id == weeklies[offset][0].id


def test_rule_1_only_upstream_instances_of_the_same_biz_date(project, owner):
    parent = make(project, "parent", owner, cron="0 1 * * *")
    child = make(project, "child", owner, cron="0 2 * * *", upstream=[parent])
    generate(run_date=RUN_DATE - ONE_DAY)
    Node.objects.filter(pk=parent.pk).update(status="offline")

    generate(run_date=RUN_DATE)

    assert instances_of(parent) == []
    (today,) = instances_of(child)
    # The parent has no instance that day: not blocked, and yesterday's is no candidate.
    assert upstream_of(today) == []


def test_which_nodes_get_instances(project, owner, users):
    make(project, "prod_daily", owner)
    make(project, "dev_daily", owner, env="dev")
    make(project, "manual", owner, schedule_type="one_time")
    make(project, "stream", owner, schedule_type="realtime")
    offline = make(project, "offline", owner)
    Node.objects.filter(pk=offline.pk).update(status="offline")
    make(project, "spec_paused", owner, paused=True)
    node_paused = make(project, "node_paused", owner)
    Node.objects.filter(pk=node_paused.pk).update(paused=True)

    generate(run_date=RUN_DATE)

    made = dict(
        Instance.objects.filter(biz_date=BIZ_DATE).values_list("node__name", "node__paused")
    )
    assert made == {"prod_daily": False, "spec_paused": True, "node_paused": True}
    # Held by their node's pause, not by one of their own: resuming the node frees them.
    assert not Instance.objects.filter(paused=True).exists()


def test_t_plus_1_cutoff_is_the_generation_time_of_the_day_before(project, owner):
    cutoff = local(BIZ_DATE, 23)  # generation of RUN_DATE: 23:00 the day before
    edited = make(
        project,
        "edited",
        owner,
        cron="0 2 * * *",
        published_at=cutoff - datetime.timedelta(minutes=1),
    )
    make(
        project,
        "edited",
        owner,
        cron="0 5 * * *",
        published_at=cutoff + datetime.timedelta(minutes=1),
    )
    late = make(
        project,
        "late",
        owner,
        cron="0 2 * * *",
        published_at=cutoff + datetime.timedelta(minutes=1),
    )
    v1, v2 = edited.versions.order_by("number")

    generate(run_date=RUN_DATE)

    (first,) = instances_of(edited)
    assert (first.version_id, hhmm(first)) == (v1.id, "02:00")
    assert instances_of(late) == []  # published after the cutoff: first runs a day later

    generate(run_date=RUN_DATE + ONE_DAY)

    (second,) = instances_of(edited, RUN_DATE + ONE_DAY)
    assert (second.version_id, hhmm(second)) == (v2.id, "05:00")
    (late_first,) = instances_of(late, RUN_DATE + ONE_DAY)
    assert late_first.version_id == late.current_version_id


def test_cutoff_now_uses_every_current_version(project, owner):
    node = make(project, "n", owner, published_at=local(BIZ_DATE, 23, 30))

    generate(run_date=RUN_DATE, cutoff=local(BIZ_DATE, 23, 31))

    assert [i.version_id for i in instances_of(node)] == [node.current_version_id]


def test_editing_a_node_after_generation_keeps_its_instances_of_that_day(project, owner):
    node = make(project, "n", owner, cron="0 2 * * *")
    generate(run_date=RUN_DATE)
    (before,) = instances_of(node)

    make(project, "n", owner, cron="0 6 * * *", published_at=local(BIZ_DATE, 23, 30))
    result = generate(run_date=RUN_DATE, cutoff=local(BIZ_DATE, 23, 45))

    assert result == GenerationResult(0, 0)
    assert instances_of(node) == [before]
    assert Instance.objects.get(pk=before.pk).version_id == before.version_id


def test_generation_twice_creates_nothing_the_second_time(project, owner):
    raw = make(project, "raw", owner, cron="0 * * * *", self_dependent=True)
    make(project, "report", owner, cron="0 2 * * *", upstream=[raw])

    first = generate(run_date=RUN_DATE)
    counts = (Instance.objects.count(), InstanceDependency.objects.count())
    second = generate(run_date=RUN_DATE)

    assert first == GenerationResult(instances_created=25, edges_created=24 + 23)
    assert second == GenerationResult(0, 0)
    assert (Instance.objects.count(), InstanceDependency.objects.count()) == counts
    assert GenerationRun.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_generators_at_once_make_no_duplicate_and_miss_no_edge(project, owner):
    beta = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    raw = make(project, "raw", owner, cron="*/30 * * * *", self_dependent=True)
    mid = make(project, "mid", owner, cron="0 * * * *", upstream=[raw])
    make(project, "report", owner, cron="0 2 * * *", upstream=[mid])
    make(beta, "load", owner, cron="0 6 * * *", upstream=[mid])
    results, errors = [], []
    start = threading.Barrier(2)

    def run(projects):
        try:
            start.wait()
            results.append(generate(run_date=RUN_DATE, projects=projects))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    # One generates everything; the other only the downstream project, at the same time.
    threads = [
        threading.Thread(target=run, args=(None,)),
        threading.Thread(target=run, args=([beta],)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert Instance.objects.count() == 48 + 24 + 1 + 1
    # raw: 47 self edges; mid: 1 raw at 00:00, then 2 each (23 x 2); report and load: 24 mid
    expected_edges = 47 + 1 + 46 + 24 + 24
    assert InstanceDependency.objects.count() == expected_edges
    assert sum(r.instances_created for r in results) == 74
    assert sum(r.edges_created for r in results) == expected_edges
    (load,) = Instance.objects.filter(node__name="load")
    assert load.upstream_edges.count() == 24


def wait_until_blocked_or_done(thread: threading.Thread) -> None:
    """On PostgreSQL, until `thread` waits for the generation lock (or has finished)."""
    if connection.vendor != "postgresql":
        return  # SQLite: its transactions already queue behind the open one
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and thread.is_alive():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.01)


@pytest.mark.django_db(transaction=True)
def test_a_generator_waits_for_the_one_in_progress(project, owner):
    beta = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    extract = make(project, "extract", owner, cron="0 2 * * *")
    load = make(beta, "load", owner, cron="0 6 * * *", upstream=[extract])
    started, errors = threading.Event(), []

    def generate_beta():
        try:
            started.set()
            generate(run_date=RUN_DATE, projects=[beta])
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    other = threading.Thread(target=generate_beta)
    with transaction.atomic():
        # acme's instances exist but are not committed while beta's generator runs: were
        # beta not to wait, neither would see the other and the edge would be lost.
        generate(run_date=RUN_DATE, projects=[project])
        other.start()
        started.wait()
        wait_until_blocked_or_done(other)
    other.join()

    assert errors == []
    (child,) = instances_of(load)
    assert upstream_of(child) == ["extract@02:00"]


def test_cross_project_upstream_of_the_same_biz_date(project, owner):
    beta = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    extract = make(project, "extract", owner, cron="0 2 * * *")
    load = make(beta, "load", owner, cron="0 6 * * *", upstream=[extract])

    generate(run_date=RUN_DATE, projects=[project])
    generate(run_date=RUN_DATE, projects=[beta])

    (child,) = instances_of(load)
    assert child.scheduled_at == datetime.datetime.combine(
        RUN_DATE, datetime.time(6), tzinfo=datetime.UTC
    )
    assert upstream_of(child) == ["extract@02:00"]


def test_cross_project_downstream_generated_first_gets_its_edges_later(project, owner):
    beta = Project.objects.create(code="beta", name="Beta", timezone="UTC")
    extract = make(project, "extract", owner, cron="0 */12 * * *")
    load = make(beta, "load", owner, cron="0 6 * * *", upstream=[extract])
    hourly = make(beta, "hourly", owner, cron="0 * * * *", upstream=[extract])
    done = make(beta, "done", owner, cron="0 1 * * *", upstream=[extract])

    generate(run_date=RUN_DATE, projects=[beta])
    (load_instance,) = instances_of(load)
    assert upstream_of(load_instance) == []
    # One downstream instance already ran: its dependencies are fixed.
    Instance.objects.filter(node=done).update(state="succeeded")
    started = instances_of(hourly)[0]
    Instance.objects.filter(pk=started.pk).update(state="running")

    result = generate(run_date=RUN_DATE, projects=[project])

    assert upstream_of(load_instance) == ["extract@00:00", "extract@12:00"]
    assert upstream_of(instances_of(done)[0]) == []
    hourly_edges = {hhmm(i, datetime.UTC): upstream_of(i) for i in instances_of(hourly)}
    # extract runs at 00:00 and 12:00 Shanghai = 16:00 and 04:00 UTC (biz date D).
    assert hourly_edges["00:00"] == []  # running: left alone
    assert hourly_edges["01:00"] == ["extract@00:00"]
    assert hourly_edges["16:00"] == ["extract@12:00"]
    assert result.edges_created == 2 + 23


def test_dst_day_hourly_node_in_berlin(users, owner):
    berlin = ZoneInfo("Europe/Berlin")
    project = Project.objects.create(code="berlin", name="Berlin", timezone="Europe/Berlin")
    parent = make(project, "parent", owner, cron="0 * * * *")
    child = make(project, "child", owner, cron="0 * * * *", upstream=[parent])
    spring, autumn = datetime.date(2026, 3, 29), datetime.date(2026, 10, 25)
    # Versions published long before these days.
    for node in (parent, child):
        node.current_version.published_at = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
        node.current_version.save(allow_update=True)

    generate(run_date=spring)
    generate(run_date=autumn)

    for day, count in [(spring, 23), (autumn, 24)]:
        parents, children = instances_of(parent, day), instances_of(child, day)
        assert len(parents) == len(children) == count
        moments = [i.scheduled_at for i in parents]
        assert len(set(moments)) == count
        assert all(i.biz_date == day - ONE_DAY for i in parents)
        assert {i.scheduled_at.astimezone(berlin).date() for i in parents} == {day}
        for p, c in zip(parents, children, strict=True):
            assert c.upstream_edges.get().upstream_id == p.id


def test_queries_do_not_grow_with_the_number_of_nodes(project, owner):
    def build(prefix: str, count: int):
        previous = make(project, f"{prefix}0", owner, cron="0 * * * *", self_dependent=True)
        for n in range(1, count):
            previous = make(project, f"{prefix}{n}", owner, cron="0 */2 * * *", upstream=[previous])

    build("small", 3)
    with CaptureQueriesContext(connection) as small:
        generate(run_date=RUN_DATE)
    build("large", 30)
    with CaptureQueriesContext(connection) as large:
        generate(run_date=RUN_DATE + ONE_DAY)

    # small: 24 + 2 x 12; large: 24 + 29 x 12
    assert Instance.objects.filter(biz_date=RUN_DATE).count() == 48 + 372

    def split(captured):
        sqls = [q["sql"] for q in captured.captured_queries]
        inserts = [sql for sql in sqls if sql.lstrip().upper().startswith("INSERT")]
        return len(sqls) - len(inserts), len(inserts)

    (small_reads, _), (large_reads, large_inserts) = split(small), split(large)
    assert large_reads == small_reads
    # Inserts go in batches (SQLite's are the smallest: 999 parameters a statement).
    assert large_inserts <= 420 / 20


# --- generate_rest_of_today ------------------------------------------------------------


def test_rest_of_today_generates_what_is_due_in_ten_minutes_or_later(project, owner):
    hourly = make(project, "hourly", owner, cron="0 * * * *")
    child = make(project, "child", owner, cron="30 * * * *", upstream=[hourly])
    soon = make(project, "soon", owner, cron="5 10 * * *")
    just = make(project, "just", owner, cron="10 10 * * *")
    existing = make(project, "existing", owner, cron="0 22 * * *")
    today = datetime.date(2026, 11, 21)
    with time_machine.travel(local(today, 10, 0), tick=False):
        generate(run_date=today, projects=[project], cutoff=local(today, 9))
        make(project, "existing", owner, cron="0 23 * * *", published_at=local(today, 9, 59))
        Instance.objects.filter(node__in=[hourly, child, soon, just]).delete()

        result = generate_rest_of_today(project=project)

    assert [hhmm(i) for i in instances_of(hourly, today)][:2] == ["11:00", "12:00"]
    assert len(instances_of(hourly, today)) == 13
    assert len(instances_of(child, today)) == 14  # 10:30 .. 23:30
    assert instances_of(soon, today) == []
    assert [hhmm(i) for i in instances_of(just, today)] == ["10:10"]
    # A node that has today's instances keeps them.
    assert [hhmm(i) for i in instances_of(existing, today)] == ["22:00"]
    assert result.instances_created == 13 + 14 + 1
    ten_thirty = instances_of(child, today)[0]
    assert upstream_of(ten_thirty) == ["hourly@11:00"]  # no hourly at or before: earliest
    run = GenerationRun.objects.filter(trigger="publish").get()
    assert run.run_date == today


def test_rest_of_today_only_for_the_given_nodes(project, owner):
    a = make(project, "a", owner, cron="0 20 * * *")
    b = make(project, "b", owner, cron="0 20 * * *")
    today = datetime.date(2026, 11, 21)
    with time_machine.travel(local(today, 10, 0), tick=False):
        result = generate_rest_of_today(project=project, node_ids=[b.id])

    assert result.instances_created == 1
    assert instances_of(a, today) == []
    assert len(instances_of(b, today)) == 1


# --- CLI ---------------------------------------------------------------------------------


def test_cli_generate_prints_counts(project, owner):
    a = make(project, "a", owner)
    make(project, "b", owner, upstream=[a])
    out = io.StringIO()

    call_command("opscenter", "generate", "--date", "2026-11-23", "--project", "acme", stdout=out)

    assert "acme: 2 instances, 1 dependencies" in out.getvalue()
    assert "for run date 2026-11-23 (biz date 2026-11-22)" in out.getvalue()
    assert Instance.objects.filter(biz_date=BIZ_DATE).count() == 2


def test_cli_generate_defaults_to_tomorrow_and_cutoff_now(project, owner):
    # Server (UTC) date 2026-11-21: run date 2026-11-22, whose cutoff is 23:00 the day
    # before in Shanghai (15:00 UTC).
    with time_machine.travel(datetime.datetime(2026, 11, 21, 17, tzinfo=datetime.UTC), tick=False):
        published = datetime.datetime(2026, 11, 21, 16, tzinfo=datetime.UTC)
        node = make(project, "a", owner, published_at=published)
        out = io.StringIO()
        call_command("opscenter", "generate", stdout=out)
        assert "acme: 0 instances" in out.getvalue()  # published after the cutoff
        call_command("opscenter", "generate", "--cutoff", "now", stdout=out)

    assert "acme: 1 instances" in out.getvalue()
    assert "run date 2026-11-22" in out.getvalue()
    assert [i.biz_date for i in instances_of(node, datetime.date(2026, 11, 22))] == [
        datetime.date(2026, 11, 21)
    ]


@pytest.mark.parametrize(
    "args, option",
    [
        (["--date", "2026-13-01"], "--date"),
        (["--date", "tomorrow"], "--date"),
        (["--cutoff", "yesterday"], "--cutoff"),
        (["--project", "nope"], "--project"),
    ],
)
def test_cli_generate_bad_input_names_the_option(project, args, option):
    with pytest.raises(CommandError, match=option):
        call_command("opscenter", "generate", *args, stdout=io.StringIO())
    assert not Instance.objects.exists()
