"""The monitor's baseline pass on real rows: the diamond's prediction from recorded
history at frozen times, each status and transition with exactly one alert (delivered
to a real HTTP receiver), resolution on finish, hourly cycles, a blocked cycle, and the
recompute an instance's state change triggers through the event outbox."""

import datetime

import pytest
import time_machine

from apps.baselines import cycles
from apps.baselines.models import BaselineCycle, BaselineCycleInstance
from apps.baselines.selectors import cycle_status
from apps.instances import states
from apps.monitoring import tasks
from apps.monitoring.models import Alert, AlertEvent
from apps.notifications.models import Channel
from tests.factories import instance_create, node_create

from .builders import (
    BIZ_DATE,
    MIN,
    at,
    baseline_make,
    diamond,
    finish,
    fresh,
    history,
    run,
    send_pending,
    start,
)


@pytest.fixture
def webhook(project, http_receiver):
    return Channel.objects.create(
        project=project, name="ops-hook", kind="webhook", config={"url": http_receiver.url}
    )


def check(now) -> dict:
    return cycles.baselines_check(now=now)


def cycle(baseline) -> BaselineCycle:
    return BaselineCycle.objects.get(baseline=baseline, biz_date=BIZ_DATE)


def baseline_alerts(baseline, trigger=None):
    found = Alert.objects.filter(source="baseline", target_id=str(baseline.pk))
    return found.filter(trigger=trigger) if trigger else found


@pytest.mark.django_db
def test_the_diamond_predicted_from_its_history_at_a_frozen_time(project, users):
    d = diamond(project, users["alice"])
    start(d["instances"]["a"], at(8, 55))
    baseline = baseline_make(project, [d["nodes"]["d"]], committed_time="12:00")

    view = cycle_status(baseline=baseline, biz_date=BIZ_DATE, hour=None, now=at(9))
    # Medians of the recorded runs: a 11, b 20, c 32.5, d 5 minutes. a runs since
    # 08:55 (finish 09:06); b 09:26; c 09:38:30; d 09:43:30.
    assert view.predicted_finish == at(9, 43, 30)
    assert view.estimated is True and view.status == "safe" and view.blocked_by == []
    assert [s["node_name"] for s in view.critical_path] == ["a", "c", "d"]
    assert [s["expected_seconds"] for s in view.critical_path] == [660.0, 1950.0, 300.0]
    assert view.critical_path[0]["start"] == at(8, 55)
    assert view.critical_path[1]["start"] == at(9, 6)
    assert view.key_instances == [d["instances"]["d"].pk]
    assert view.committed_at == at(12) and view.warning_at == at(11, 30)

    # The pass stores it, with every instance of the path.
    assert check(at(9))["cycles"] == 1
    row = cycle(baseline)
    assert (row.status, row.predicted_finish) == ("safe", at(9, 43, 30))
    members = BaselineCycleInstance.objects.filter(cycle=row)
    assert sorted(members.values_list("instance_id", flat=True)) == sorted(
        i.pk for i in d["instances"].values()
    )
    assert list(members.filter(key=True).values_list("instance_id", flat=True)) == [
        d["instances"]["d"].pk
    ]
    assert not baseline_alerts(baseline).exists()


@pytest.mark.django_db
def test_a_node_without_history_is_not_estimated_its_timeout_stands_in(project, users):
    owner = users["alice"]
    a = node_create(project, "a", owner=owner, timeout_seconds=1200)
    b = node_create(project, "b", owner=owner, upstream=[a])
    history(a, [])
    ia = instance_create(a, at(2))
    ib = instance_create(b, at(2), upstream=[ia])
    baseline = baseline_make(project, [b], committed_time="12:00")
    view = cycle_status(baseline=baseline, biz_date=BIZ_DATE, hour=None, now=at(9))
    # a: its timeout (20 minutes); b: no timeout either, 5 minutes.
    assert view.estimated is False
    assert view.predicted_finish == at(9, 25)
    assert [s["expected_seconds"] for s in view.critical_path] == [1200.0, 300.0]
    assert [s["instance"] for s in view.critical_path] == [ia.pk, ib.pk]


@pytest.mark.django_db
def test_a_failed_ancestor_breaks_the_cycle_at_once_naming_it(project, users, webhook):
    d = diamond(project, users["alice"])
    run(d["instances"]["a"], at(2), at(2, 10))
    start(d["instances"]["b"], at(2, 10))
    finish(d["instances"]["b"], at(2, 20), outcome="failed")
    baseline = baseline_make(project, [d["nodes"]["d"]], committed_time="12:00", channels=[webhook])
    check(at(9))
    row = cycle(baseline)
    assert row.status == "broken" and row.predicted_finish is None
    assert [b["instance"] for b in row.blocked_by] == [d["instances"]["b"].pk]
    assert row.blocked_by[0]["state"] == "failed" and row.blocked_by[0]["node_name"] == "b"
    (alert,) = baseline_alerts(baseline)
    assert (alert.trigger, alert.severity, alert.state) == ("broken", "critical", "firing")
    assert "blocked by failed instance" in alert.message


@pytest.mark.django_db(transaction=True)
def test_each_status_and_transition_raises_exactly_one_alert(
    project, users, webhook, http_receiver
):
    d = diamond(project, users["alice"])
    i = d["instances"]
    run(i["a"], at(2), at(2, 11))
    baseline = baseline_make(project, [d["nodes"]["d"]], committed_time="10:00", channels=[webhook])

    # 08:00: c would finish 08:32:30 and d 08:37:30, before the warning time 09:30.
    check(at(8))
    assert cycle(baseline).status == "safe"
    assert not baseline_alerts(baseline).exists()

    # 09:00: nothing ran since; now d is predicted at 09:37:30, past 09:30: warning.
    check(at(9))
    assert cycle(baseline).status == "warning"
    (warning,) = baseline_alerts(baseline)
    assert (warning.trigger, warning.severity) == ("warning", "warning")
    assert "predicted to finish at 2026-11-20 09:37" in warning.message
    assert "critical path: c -> d" in warning.message
    assert warning.recipients == ["alice"]
    # The same status a minute later raises nothing more; the prediction moved on.
    check(at(9, 1))
    assert baseline_alerts(baseline).count() == 1
    row = cycle(baseline)
    assert (row.predicted_finish, row.computed_at) == (at(9, 38, 30), at(9, 1))
    assert row.critical_path[0]["start"] == at(9, 1).isoformat()

    # 10:01: past the committed time and not finished: broken, one more alert.
    start(i["c"], at(9, 30))
    check(at(10, 1))
    assert cycle(baseline).status == "broken"
    broken = baseline_alerts(baseline, "broken").get()
    assert broken.severity == "critical" and "not finished at the committed time" in broken.message
    check(at(10, 2))
    assert baseline_alerts(baseline).count() == 2

    # Delivered to the channel: one message each.
    sent = send_pending(at(10, 3))
    assert [d.state for d in sent] == ["sent", "sent"]
    bodies = [r.json for r in http_receiver.wait_for(2)]
    assert [b["event"] for b in bodies] == ["fired", "fired"]
    assert "daily report is at risk" in bodies[0]["title"]
    assert "daily report is broken" in bodies[1]["title"]

    # Every key instance done: finished late; both alerts resolve saying so.
    run(i["b"], at(9, 30), at(9, 50))
    finish(i["c"], at(10, 5))
    run(i["d"], at(10, 6), at(10, 12))
    check(at(10, 13))
    row = cycle(baseline)
    assert (row.status, row.finished_at) == ("finished_late", at(10, 12))
    for alert in baseline_alerts(baseline):
        assert alert.state == "resolved" and alert.resolved_by is None
        event = AlertEvent.objects.get(alert=alert, kind="resolved")
        assert event.comment.startswith("finished late at 2026-11-20 10:12")
        assert "12 minutes late" in event.comment
    resolved = send_pending(at(10, 14))
    assert len(resolved) == 2
    assert [r.json["event"] for r in http_receiver.wait_for(4)[2:]] == ["resolved", "resolved"]
    # A finished cycle is history: the pass leaves it alone.
    check(at(10, 30))
    assert cycle(baseline).status == "finished_late"
    assert baseline_alerts(baseline).count() == 2


@pytest.mark.django_db
def test_warning_by_the_clock_and_a_finish_on_time(project, users):
    d = diamond(project, users["alice"])
    i = d["instances"]
    run(i["a"], at(8), at(8, 11))
    run(i["b"], at(8, 11), at(8, 31))
    start(i["c"], at(8, 11))
    baseline = baseline_make(project, [d["nodes"]["d"]], committed_time="10:00", margin_minutes=60)
    # 08:30: c finishes 08:43:30, d 08:48:30: before the warning time 09:00.
    check(at(8, 30))
    assert cycle(baseline).status == "safe"
    # 09:01: still running (the prediction moves with the clock), past the warning time.
    check(at(9, 1))
    assert cycle(baseline).status == "warning"
    assert "not finished at the warning time" in baseline_alerts(baseline).get().message
    finish(i["c"], at(9, 2))
    run(i["d"], at(9, 3), at(9, 8))
    check(at(9, 9))
    assert cycle(baseline).status == "finished_on_time"
    alert = baseline_alerts(baseline).get()
    assert alert.state == "resolved"
    assert AlertEvent.objects.get(alert=alert, kind="resolved").comment == (
        "finished on time at 2026-11-20 09:08 (committed 2026-11-20 10:00)"
    )


@pytest.mark.django_db
def test_hourly_cycles_each_hour_its_own(project, users):
    owner = users["alice"]
    node = node_create(project, "hourly_load", owner=owner, cron="0 * * * *")
    history(node, [20, 20, 20])
    instances = {h: instance_create(node, at(h)) for h in range(0, 8)}
    baseline = baseline_make(
        project, [node], name="hourly", cycle="hourly", committed_time="40", margin_minutes=10
    )
    for h in range(0, 5):
        run(instances[h], at(h), at(h, 15))
    start(instances[5], at(5))
    # 05:10: hours 0-4 finished on time; hour 5 runs (finish 05:20): safe; none later yet.
    check(at(5, 10))
    rows = {r.hour: r for r in BaselineCycle.objects.filter(baseline=baseline)}
    assert sorted(rows) == [0, 1, 2, 3, 4, 5]
    assert {rows[h].status for h in range(5)} == {"finished_on_time"}
    assert rows[5].status == "safe"
    assert rows[5].committed_at == at(5, 40) and rows[5].warning_at == at(5, 30)
    assert rows[5].key_instances == [instances[5].pk]
    # 05:35: past hour 5's warning time, still running: warning.
    check(at(5, 35))
    assert BaselineCycle.objects.get(baseline=baseline, hour=5).status == "warning"
    # 06:05: hour 5 finished late at 05:45; hour 6 began.
    finish(instances[5], at(5, 45))
    start(instances[6], at(6))
    check(at(6, 5))
    rows = {r.hour: r for r in BaselineCycle.objects.filter(baseline=baseline)}
    assert rows[5].status == "finished_late" and rows[5].finished_at == at(5, 45)
    assert rows[6].status == "safe"
    keys = sorted(a.dedup_key for a in baseline_alerts(baseline))
    assert keys == [f"baseline:{baseline.pk}:warning:{BIZ_DATE.isoformat()}T05"]
    assert baseline_alerts(baseline).get().state == "resolved"


@pytest.mark.django_db(transaction=True)
def test_a_state_change_on_the_path_recomputes_at_once_through_the_outbox(project, users):
    d = diamond(project, users["alice"])
    i = d["instances"]
    run(i["a"], at(2), at(2, 11))
    baseline = baseline_make(project, [d["nodes"]["d"]], committed_time="12:00")
    tasks.events_drain(now=at(8))
    check(at(8))
    assert cycle(baseline).status == "safe"
    # b fails with no retry left: the consumer of its event recomputes the cycle.
    start(i["b"], at(8, 1))
    finish(i["b"], at(8, 2), outcome="failed")
    assert tasks.events_drain(now=at(8, 2)) > 0
    row = cycle(baseline)
    assert row.status == "broken" and row.computed_at == at(8, 2)
    assert baseline_alerts(baseline, "broken").count() == 1
    # An instance on no baseline's path recomputes nothing.
    other = node_create(project, "elsewhere", owner=users["alice"])
    stray = instance_create(other, at(2))
    run(stray, at(8, 3), at(8, 4))
    assert cycles.cycles_for_instances_recompute([stray.pk], now=at(8, 4)) == 0


@pytest.mark.django_db
def test_a_rerun_of_the_blocker_lifts_broken_without_a_new_alert(project, users):
    d = diamond(project, users["alice"])
    i = d["instances"]
    run(i["a"], at(2), at(2, 11))
    start(i["b"], at(2, 11))
    finish(i["b"], at(2, 12), outcome="failed")
    baseline = baseline_make(project, [d["nodes"]["d"]], committed_time="12:00")
    check(at(8))
    assert cycle(baseline).status == "broken"
    states.instance_set_success(instance_id=i["b"].pk, now=at(8, 5))
    check(at(8, 6))
    row = cycle(baseline)
    assert row.status == "safe" and row.blocked_by == [] and row.predicted_finish is not None
    assert baseline_alerts(baseline).count() == 1
    assert fresh(i["b"]).state == "succeeded"


@pytest.mark.django_db
def test_the_monitor_pass_runs_the_baselines(project, users):
    d = diamond(project, users["alice"])
    baseline = baseline_make(project, [d["nodes"]["d"]], committed_time="12:00")
    with time_machine.travel(at(9), tick=False):
        result = tasks.monitor_pass()
    assert result["baselines"] == 1
    assert cycle(baseline).computed_at == at(9)


@pytest.mark.django_db
def test_old_open_cycles_are_left_and_disabled_baselines_not_computed(project, users):
    d = diamond(project, users["alice"])
    baseline = baseline_make(project, [d["nodes"]["d"]], committed_time="12:00", enabled=False)
    check(at(9))
    assert not BaselineCycle.objects.exists()
    baseline.enabled = True
    baseline.save()
    check(at(9))
    assert cycle(baseline).status == "safe"
    # Eight days later nothing new exists and the old open cycle is no longer recomputed.
    later = at(9) + datetime.timedelta(days=cycles.OPEN_DAYS + 1)
    check(later)
    assert cycle(baseline).computed_at == at(9)
    assert MIN  # the builders' unit is the minute
