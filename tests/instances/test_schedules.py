import datetime
from zoneinfo import ZoneInfo

import pytest

from apps.instances import schedules
from apps.instances.schedules import Cycle

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
SPRING_FORWARD = datetime.date(2026, 3, 29)  # Berlin: 02:00 CET -> 03:00 CEST
FALL_BACK = datetime.date(2026, 10, 25)  # Berlin: 03:00 CEST -> 02:00 CET


@pytest.mark.parametrize(
    "cron, cycle",
    [
        ("*/5 * * * *", Cycle.MINUTE),
        ("* * * * *", Cycle.MINUTE),
        ("0,30 2 * * *", Cycle.MINUTE),
        ("0 * * * *", Cycle.HOUR),
        ("15 */2 * * *", Cycle.HOUR),
        ("0 8-18 * * 1-5", Cycle.HOUR),
        ("0 2 * * *", Cycle.DAY),
        ("30 23 * * 0-6", Cycle.DAY),
        ("0 2 * * 1", Cycle.WEEK),
        ("0 2 * * 1-5", Cycle.WEEK),
        ("0 2 1 * *", Cycle.MONTH),
        ("0 2 L * *", Cycle.MONTH),
        ("0 2 1 1 *", Cycle.YEAR),
        ("0 2 * 3 *", Cycle.YEAR),
    ],
)
def test_cron_cycle(cron, cycle):
    assert schedules.cron_cycle(cron) == cycle
    assert schedules.is_sub_daily(cron) == (cycle in {Cycle.MINUTE, Cycle.HOUR})


def test_cron_error_names_the_problem():
    assert schedules.cron_error("0 2 * * *") is None
    assert "required" in schedules.cron_error("")
    assert "5 fields" in schedules.cron_error("0 2 * *")
    assert "not a valid" in schedules.cron_error("0 25 * * *")


def test_fire_times_are_aware_moments_of_that_day_in_the_timezone():
    day = datetime.date(2026, 11, 22)
    assert schedules.fire_times("0 2 * * *", day, SHANGHAI) == [
        datetime.datetime(2026, 11, 22, 2, 0, tzinfo=SHANGHAI)
    ]
    quarter_hours = schedules.fire_times("*/15 * * * *", day, SHANGHAI)
    assert len(quarter_hours) == 96
    assert quarter_hours[0] == datetime.datetime(2026, 11, 22, 0, 0, tzinfo=SHANGHAI)
    assert quarter_hours[-1] == datetime.datetime(2026, 11, 22, 23, 45, tzinfo=SHANGHAI)
    # 02:00 in Shanghai is the evening before in UTC: still that day's instance.
    assert quarter_hours[8].astimezone(datetime.UTC) == datetime.datetime(
        2026, 11, 21, 18, 0, tzinfo=datetime.UTC
    )


def test_fire_times_on_the_spring_forward_day_skip_nothing_and_repeat_nothing():
    hourly = schedules.fire_times("0 * * * *", SPRING_FORWARD, BERLIN)
    # 02:00 does not exist that day: it becomes 03:00, which fires once.
    assert len(hourly) == 23
    assert len(set(hourly)) == 23
    assert [t.astimezone(BERLIN).hour for t in hourly[:3]] == [0, 1, 3]
    utc = [t.astimezone(datetime.UTC) for t in hourly]
    steps = {b - a for a, b in zip(utc, utc[1:], strict=False)}
    assert steps == {datetime.timedelta(hours=1)}
    # A daily node inside the gap still runs that day, just after the jump.
    (daily,) = schedules.fire_times("30 2 * * *", SPRING_FORWARD, BERLIN)
    assert daily.astimezone(datetime.UTC) == datetime.datetime(
        2026, 3, 29, 1, 30, tzinfo=datetime.UTC
    )
    assert daily.astimezone(BERLIN).strftime("%H:%M%z") == "03:30+0200"


def test_fire_times_on_the_fall_back_day_fire_each_wall_clock_time_once():
    hourly = schedules.fire_times("0 * * * *", FALL_BACK, BERLIN)
    assert len(hourly) == 24
    assert hourly == sorted(set(hourly))
    # 02:00 happens twice; it fires at the first (summer time) one.
    two = hourly[2].astimezone(BERLIN)
    assert (two.hour, two.utcoffset()) == (2, datetime.timedelta(hours=2))
    # ... so the real time between the 02:00 and 03:00 instances is two hours.
    utc = [t.astimezone(datetime.UTC) for t in hourly]
    assert utc[3] - utc[2] == datetime.timedelta(hours=2)
    (daily,) = schedules.fire_times("30 2 * * *", FALL_BACK, BERLIN)
    assert daily.astimezone(BERLIN).strftime("%H:%M%z") == "02:30+0200"


def test_fires_on():
    monday, tuesday = datetime.date(2026, 11, 23), datetime.date(2026, 11, 24)
    assert schedules.fires_on("0 2 * * 1", monday)
    assert not schedules.fires_on("0 2 * * 1", tuesday)
    assert schedules.fires_on("0 2 24 * *", tuesday)
    assert not schedules.fires_on("0 9-17 * * 1-5", datetime.date(2026, 11, 22))  # Sunday


def test_weekly_monthly_yearly_nodes_have_an_instance_every_day():
    monday, tuesday = datetime.date(2026, 11, 23), datetime.date(2026, 11, 24)
    assert schedules.instance_times("30 4 * * 1", monday, SHANGHAI) == [
        (datetime.datetime(2026, 11, 23, 4, 30, tzinfo=SHANGHAI), False)
    ]
    # Not its day: a dry run at the cron's own time of day.
    assert schedules.instance_times("30 4 * * 1", tuesday, SHANGHAI) == [
        (datetime.datetime(2026, 11, 24, 4, 30, tzinfo=SHANGHAI), True)
    ]
    assert schedules.instance_times("0 6 1 * *", tuesday, SHANGHAI) == [
        (datetime.datetime(2026, 11, 24, 6, 0, tzinfo=SHANGHAI), True)
    ]
    assert schedules.instance_times("0 6 1 1 *", tuesday, SHANGHAI) == [
        (datetime.datetime(2026, 11, 24, 6, 0, tzinfo=SHANGHAI), True)
    ]
    assert schedules.dry_run_time("30 4 * * 1") == datetime.time(4, 30)


def test_daily_and_sub_daily_nodes_have_no_dry_runs():
    sunday = datetime.date(2026, 11, 22)
    assert schedules.instance_times("0 9-17 * * 1-5", sunday, SHANGHAI) == []
    assert schedules.instance_times("0 2 * * *", sunday, SHANGHAI) == [
        (datetime.datetime(2026, 11, 22, 2, 0, tzinfo=SHANGHAI), False)
    ]
    hourly = schedules.instance_times("0 * * * *", sunday, SHANGHAI)
    assert len(hourly) == 24 and not any(dry for _, dry in hourly)


def test_local_datetime_moves_a_time_in_the_gap_forward():
    moment = schedules.local_datetime(SPRING_FORWARD, datetime.time(2, 15), BERLIN)
    assert moment.strftime("%H:%M%z") == "03:15+0200"
    moment = schedules.local_datetime(FALL_BACK, datetime.time(2, 15), BERLIN)
    assert moment.strftime("%H:%M%z") == "02:15+0200"
