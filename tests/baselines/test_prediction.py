"""The prediction, critical path and status of SPEC 7.3 as pure functions, against hand
computations at a frozen `now`."""

import datetime

from apps.baselines.prediction import (
    DEFAULT_EXPECTED_SECONDS,
    Expected,
    Facts,
    expected_from,
    predict,
    status_of,
)

UTC = datetime.UTC
NOW = datetime.datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SCHEDULED = datetime.datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
M = datetime.timedelta(minutes=1)
# a -> b, a -> c, b -> d, c -> d
UPSTREAM = {2: [1], 3: [1], 4: [2, 3]}
NAMES = {1: "a", 2: "b", 3: "c", 4: "d"}
MEDIANS = {1: 11 * 60, 2: 20 * 60, 3: 32.5 * 60, 4: 5 * 60}


def facts(**states) -> dict[int, Facts]:
    """The diamond's facts; `a="running:08:55"` and the like override a state."""
    made = {}
    for i, name in NAMES.items():
        state, started, finished = "pending", None, None
        spec = states.get(name, "pending")
        parts = spec.split("/")
        state = parts[0]
        if len(parts) > 1:
            started = _t(parts[1])
        if len(parts) > 2:
            finished = _t(parts[2])
        made[i] = Facts(
            id=i,
            node_id=100 + i,
            node_name=name,
            state=state,
            scheduled_at=SCHEDULED,
            started_at=started,
            finished_at=finished,
            paused=state == "paused",
        )
        if state == "paused":
            made[i] = Facts(**{**made[i].__dict__, "state": "pending"})
    return made


def _t(hhmm: str) -> datetime.datetime:
    hh, mm = hhmm.split(":")
    return NOW.replace(hour=int(hh), minute=int(mm))


def expected(medians=MEDIANS) -> dict[int, Expected]:
    return {i: expected_from(medians.get(i), None) for i in NAMES}


def test_the_diamond_at_a_frozen_time_matches_the_hand_computation():
    # a runs since 08:55 and is expected to take 11 minutes: it finishes at 09:06.
    # b: 09:06 + 20 = 09:26; c: 09:06 + 32.5 = 09:38:30; d waits for both: 09:38:30 + 5.
    p = predict(
        keys=[4], facts=facts(a="running/08:55"), upstream=UPSTREAM, expected=expected(), now=NOW
    )
    assert p.finish[1] == NOW + 6 * M
    assert p.start[2] == p.start[3] == NOW + 6 * M
    assert p.finish[2] == NOW + 26 * M
    assert p.finish[3] == NOW + 38.5 * M
    assert p.start[4] == NOW + 38.5 * M
    assert p.predicted_finish == NOW + 43.5 * M
    assert p.estimated is True and p.blocked_by == [] and not p.finished
    assert sorted(p.members) == [1, 2, 3, 4] and p.keys == [4]
    # The critical path: d's start was held by c, c's by a; a started on its own.
    assert [step.node_name for step in p.critical_path] == ["a", "c", "d"]
    a, c, d = p.critical_path
    assert (a.start, a.finish, a.real_start, a.real_finish) == (
        NOW - 5 * M,
        NOW + 6 * M,
        True,
        False,
    )
    assert (c.start, c.finish, c.expected_seconds) == (NOW + 6 * M, NOW + 38.5 * M, 1950.0)
    assert (d.instance, d.node, d.state) == (4, 104, "pending")


def test_a_running_instance_past_its_expected_duration_finishes_now_at_the_earliest():
    p = predict(
        keys=[4], facts=facts(a="running/08:00"), upstream=UPSTREAM, expected=expected(), now=NOW
    )
    assert p.finish[1] == NOW
    assert p.predicted_finish == NOW + 37.5 * M


def test_finished_instances_stand_at_their_real_times_and_the_scheduled_time_holds():
    f = facts(a="succeeded/02:00/02:10", b="succeeded/02:10/02:40")
    later = {**f, 3: Facts(**{**f[3].__dict__, "scheduled_at": NOW + 30 * M})}
    p = predict(keys=[4], facts=later, upstream=UPSTREAM, expected=expected(), now=NOW)
    # c may not start before its scheduled time (09:30): 09:30 + 32.5, then d.
    assert p.start[3] == NOW + 30 * M
    assert p.predicted_finish == NOW + (30 + 32.5 + 5) * M
    assert [step.node_name for step in p.critical_path] == ["c", "d"]


def test_without_history_the_timeout_or_five_minutes_stands_in_and_it_is_not_estimated():
    assert expected_from(None, 900) == Expected(900.0, False)
    assert expected_from(None, None) == Expected(DEFAULT_EXPECTED_SECONDS, False)
    assert expected_from(120.0, 900) == Expected(120.0, True)
    medians = {**MEDIANS}
    del medians[3]
    p = predict(keys=[4], facts=facts(), upstream=UPSTREAM, expected=expected(medians), now=NOW)
    assert p.estimated is False
    # a 11, then b 20 beats c's 5 minutes: d at 09:31 + 5.
    assert p.predicted_finish == NOW + 36 * M
    assert [step.node_name for step in p.critical_path] == ["a", "b", "d"]


def test_a_failed_stopped_or_paused_ancestor_makes_it_unknown_and_is_named():
    for spec in ("failed/08:00/08:10", "stopped/08:00/08:10", "paused"):
        p = predict(keys=[4], facts=facts(b=spec), upstream=UPSTREAM, expected=expected(), now=NOW)
        assert p.predicted_finish is None, spec
        assert p.blocked_by == [2], spec
        # The path is drawn as if b were rerun now.
        assert p.critical_path[-1].node_name == "d"
    status = status_of(
        predict(keys=[4], facts=facts(b="failed"), upstream=UPSTREAM, expected=expected(), now=NOW),
        now=NOW,
        committed_at=NOW + 5 * 60 * M,
        warning_at=NOW + 4 * 60 * M,
    )
    assert status == "broken"


def test_every_status():
    def status(f, *, now=NOW, committed=10 * 60, margin=30):
        p = predict(keys=[4], facts=f, upstream=UPSTREAM, expected=expected(), now=now)
        committed_at = NOW.replace(hour=0) + committed * M
        return status_of(
            p, now=now, committed_at=committed_at, warning_at=committed_at - margin * M
        )

    running = facts(a="running/08:55")  # predicted 09:43:30
    assert status(running, committed=12 * 60) == "safe"
    # The prediction crossing the warning line (09:30) counts, not only the clock.
    assert status(running, committed=10 * 60) == "warning"
    # The clock past the warning time, although the prediction is before it.
    assert status(running, committed=10 * 60 + 20, margin=50, now=NOW) == "warning"
    # Past the committed time, not finished.
    assert status(running, committed=8 * 60 + 59) == "broken"
    done = facts(
        a="succeeded/02:00/02:10",
        b="succeeded/02:10/02:30",
        c="succeeded/02:10/02:40",
        d="succeeded/02:40/09:50",
    )
    assert status(done, committed=10 * 60) == "finished_on_time"
    assert status(done, committed=9 * 60 + 45) == "finished_late"
    skipped = {**done, 4: Facts(**{**done[4].__dict__, "state": "skipped"})}
    assert status(skipped, committed=10 * 60) == "finished_on_time"
