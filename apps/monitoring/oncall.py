"""Who is on call: a rotation of users, each for one period (a day or a week), handing
over at a local time, counting from a start date. Pure."""

import datetime

from .choices import OnCallPeriod
from .models import OnCallSchedule


def _period_days(schedule: OnCallSchedule) -> int:
    return 7 if schedule.period == OnCallPeriod.WEEKLY else 1


def turn_at(schedule: OnCallSchedule, moment: datetime.datetime) -> int | None:
    """Index into `users` of whoever is on call at `moment` (None: nobody, before the
    rotation starts or with no users)."""
    if not schedule.users:
        return None
    first = datetime.datetime.combine(schedule.start_date, schedule.handover, tzinfo=schedule.tz)
    local = moment.astimezone(schedule.tz)
    if local < first:
        return None
    # Count handovers in local calendar days, so a DST change does not shift them.
    days = (local.date() - first.date()).days
    if local.time() < schedule.handover:
        days -= 1
    return (days // _period_days(schedule)) % len(schedule.users)


def on_call_at(schedule: OnCallSchedule, moment: datetime.datetime) -> str | None:
    turn = turn_at(schedule, moment)
    return None if turn is None else schedule.users[turn]


def next_handover(
    schedule: OnCallSchedule, moment: datetime.datetime
) -> tuple[datetime.datetime, str] | None:
    """When the next person takes over, and who."""
    if not schedule.users:
        return None
    local = moment.astimezone(schedule.tz)
    first = datetime.datetime.combine(schedule.start_date, schedule.handover, tzinfo=schedule.tz)
    if local < first:
        return first, schedule.users[0]
    days = (local.date() - first.date()).days
    if local.time() < schedule.handover:
        days -= 1
    period = _period_days(schedule)
    next_index = days // period + 1
    day = first.date() + datetime.timedelta(days=next_index * period)
    at = datetime.datetime.combine(day, schedule.handover, tzinfo=schedule.tz)
    return at, schedule.users[next_index % len(schedule.users)]
