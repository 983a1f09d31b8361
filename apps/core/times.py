"""How a moment is written for a person: in the viewer's timezone (the one active for
the request, apps.accounts.timezones), to the second, with the zone's abbreviation where
a bare time could be read in another zone. Pages use these through the `when` and
`when_text` template filters; messages made in Python (diagnosis, reasons) call them
with the zone they are about. Machines (the API, data attributes, CSV) keep ISO 8601.
"""

import datetime
import zoneinfo

from django.utils import timezone

# Named shapes of a moment. The zone's abbreviation ends those that stand alone; dense
# table cells leave it to the tooltip (and the page says the zone once).
FORMATS = {
    "full": "%Y-%m-%d %H:%M:%S %Z",
    "minute": "%Y-%m-%d %H:%M %Z",
    "seconds": "%Y-%m-%d %H:%M:%S",
    "short": "%m-%d %H:%M:%S",
    "short_minute": "%m-%d %H:%M",
    "time": "%H:%M:%S",
    "time_zone": "%H:%M %Z",
    "date": "%Y-%m-%d",
}


def as_moment(value) -> datetime.datetime | datetime.date | None:
    """A datetime, a date, or an ISO 8601 string of either (what JSON details keep) as a
    datetime or date; anything else None. A naive datetime is read as UTC, the way the
    database keeps them."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            value = datetime.datetime.fromisoformat(text)
        except ValueError:
            return None
        if len(text) == 10:  # a bare date
            return value.date()
    if isinstance(value, datetime.datetime):
        if timezone.is_naive(value):
            value = value.replace(tzinfo=datetime.UTC)
        return value
    if isinstance(value, datetime.date):
        return value
    return None


def local(value: datetime.datetime, tz: datetime.tzinfo | str | None = None) -> datetime.datetime:
    """`value` in `tz` (a zone or its name), else in the zone active for this request."""
    if isinstance(tz, str):
        tz = zoneinfo.ZoneInfo(tz)
    return value.astimezone(tz or timezone.get_current_timezone())


def format_when(value, shape: str = "full", tz: datetime.tzinfo | str | None = None) -> str:
    """'2026-11-21 02:00:13 CST' (shape "full"), or another of FORMATS; "" for nothing.
    Never microseconds, never a T between date and time."""
    moment = as_moment(value)
    if moment is None:
        return ""
    if not isinstance(moment, datetime.datetime):
        return moment.strftime(FORMATS["date"])
    pattern = FORMATS.get(shape, FORMATS["full"])
    return local(moment, tz).strftime(pattern)


def zone_label(tz: datetime.tzinfo | str | None = None, at: datetime.datetime | None = None) -> str:
    """'CST (Asia/Shanghai)': the abbreviation at `at` (now by default) and the zone's name."""
    zone = zoneinfo.ZoneInfo(tz) if isinstance(tz, str) else tz or timezone.get_current_timezone()
    moment = (at or timezone.now()).astimezone(zone)
    abbreviation = moment.strftime("%Z")
    name = str(getattr(zone, "key", "") or abbreviation)
    return abbreviation if abbreviation == name else f"{abbreviation} ({name})"


def format_age(value, now: datetime.datetime | None = None) -> str:
    """How long ago (or how far ahead) a moment is, in its largest whole unit:
    'just now', '42 s ago', '5 min ago', '3 h 10 min ago', 'in 2 d'."""
    moment = as_moment(value)
    if not isinstance(moment, datetime.datetime):
        return ""
    seconds = ((now or timezone.now()) - moment).total_seconds()
    future = seconds < 0
    seconds = abs(int(seconds))
    if seconds < 5:
        return "just now"
    if seconds < 60:
        text = f"{seconds} s"
    elif seconds < 3600:
        text = f"{seconds // 60} min"
    elif seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        text = f"{hours} h {minutes} min" if minutes and hours < 10 else f"{hours} h"
    else:
        text = f"{seconds // 86400} d"
    return f"in {text}" if future else f"{text} ago"
