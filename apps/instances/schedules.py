"""Pure functions over cron expressions: validity, cycle length, fire times on a day.

Crons are read as wall-clock times in the project's timezone. On a daylight-saving
day a time that does not exist (clocks jump forward) moves forward by the jump and
merges with a time that exists; a time that happens twice (clocks fall back) fires
once, at its first occurrence. So a daily node has exactly one instance every day and
`${cyctime}` never repeats within a day.
"""

import datetime
import enum
import functools
from zoneinfo import ZoneInfo

from croniter import croniter


class Cycle(enum.StrEnum):
    """How often a cron fires, in the operator's words."""

    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


SUB_DAILY = frozenset({Cycle.MINUTE, Cycle.HOUR})
# Nodes of these cycles get an instance every day: a dry run on days they do not fire.
LONGER_THAN_DAILY = frozenset({Cycle.WEEK, Cycle.MONTH, Cycle.YEAR})

# The values a field takes when it does not restrict anything (croniter's "*").
_FULL_RANGES = {2: set(range(1, 32)), 3: set(range(1, 13)), 4: set(range(0, 7))}


def cron_error(cron: str) -> str | None:
    """Why `cron` is not a valid 5-field cron expression, or None when it is."""
    if not isinstance(cron, str) or not cron.strip():
        return "a cron expression is required for a recurring node"
    if len(cron.split()) != 5:
        return f"{cron!r} must have 5 fields: minute hour day month weekday"
    if not croniter.is_valid(cron):
        return f"{cron!r} is not a valid cron expression"
    return None


@functools.lru_cache(maxsize=4096)
def _fields(cron: str) -> tuple[tuple, ...]:
    return tuple(tuple(values) for values in croniter(cron).expanded)


def _restricts(cron: str, index: int) -> bool:
    values = _fields(cron)[index]
    if "*" in values:
        return False
    if index == 4:  # weekday: 7 is Sunday again
        values = {0 if v == 7 else v for v in values}
    return set(values) != _FULL_RANGES[index]


def cron_cycle(cron: str) -> Cycle:
    """The cycle of a valid cron: minute and hour cycles fire more than once a day on the
    days they fire; the others fire once a day, on every day (day) or on some days."""
    minutes, hours = _fields(cron)[0], _fields(cron)[1]
    if "*" in minutes or len(minutes) > 1:
        return Cycle.MINUTE
    if "*" in hours or len(hours) > 1:
        return Cycle.HOUR
    if _restricts(cron, 3):
        return Cycle.YEAR
    if _restricts(cron, 2):
        return Cycle.MONTH
    if _restricts(cron, 4):
        return Cycle.WEEK
    return Cycle.DAY


def is_sub_daily(cron: str) -> bool:
    """True when the cron fires more than once on the days it fires."""
    return cron_cycle(cron) in SUB_DAILY


def local_datetime(day: datetime.date, time: datetime.time, tz: ZoneInfo) -> datetime.datetime:
    """The aware moment a wall-clock time happens on `day` in `tz`: a time inside a
    daylight-saving gap moves forward by the gap, a repeated time is its first occurrence."""
    naive = datetime.datetime.combine(day, time.replace(tzinfo=None))
    # fold=0 resolves both cases as documented above; the round trip through UTC turns a
    # time inside a gap into the wall-clock time that really exists.
    return naive.replace(tzinfo=tz, fold=0).astimezone(datetime.UTC).astimezone(tz)


@functools.lru_cache(maxsize=8192)
def _wall_clock_times(cron: str, day: datetime.date) -> tuple[datetime.time, ...]:
    start = datetime.datetime.combine(day, datetime.time())
    end = start + datetime.timedelta(days=1)
    found = []
    # Naive datetimes: croniter steps through wall-clock times, untouched by DST.
    it = croniter(cron, start - datetime.timedelta(minutes=1))
    while (moment := it.get_next(datetime.datetime)) < end:
        found.append(moment.time())
    return tuple(found)


def fires_on(cron: str, day: datetime.date) -> bool:
    """Whether the cron fires at least once on that calendar day."""
    return bool(_wall_clock_times(cron, day))


def _as_utc(moment: datetime.datetime) -> datetime.datetime:
    return moment.astimezone(datetime.UTC)


@functools.lru_cache(maxsize=8192)
def _fire_times(cron: str, day: datetime.date, tz_name: str) -> tuple[datetime.datetime, ...]:
    tz = ZoneInfo(tz_name)
    moments = {local_datetime(day, t, tz) for t in _wall_clock_times(cron, day)}
    # A time moved out of a gap can land on the next day only if the gap spans midnight.
    return tuple(sorted((m for m in moments if m.date() == day), key=_as_utc))


def fire_times(cron: str, day: datetime.date, tz: ZoneInfo) -> list[datetime.datetime]:
    """The aware moments the cron fires on that calendar day in `tz`, ascending."""
    return list(_fire_times(cron, day, str(tz)))


def dry_run_time(cron: str) -> datetime.time:
    """The time of day of a weekly/monthly/yearly node's dry run on days it does not fire:
    the cron's own hour and minute."""
    minutes, hours = _fields(cron)[0], _fields(cron)[1]
    return datetime.time(int(hours[0]), int(minutes[0]))


def instance_times(
    cron: str, day: datetime.date, tz: ZoneInfo
) -> list[tuple[datetime.datetime, bool]]:
    """The recurring instances a node with this cron gets on `day`: (scheduled_at, dry_run).

    Weekly, monthly and yearly nodes get one every day; on days their cron does not fire it
    is a dry run, so daily children are never blocked by a long-cycle parent."""
    times = fire_times(cron, day, tz)
    if times:
        return [(t, False) for t in times]
    if cron_cycle(cron) in LONGER_THAN_DAILY:
        return [(local_datetime(day, dry_run_time(cron), tz), True)]
    return []
