"""Times of day as operators write them (HH:MM) and daily windows that may cross
midnight: monitoring's mute windows and deadlines, throttling rules' active windows."""

import datetime
import re

HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def parse_hhmm(value) -> datetime.time | None:
    """ "07:30" -> 07:30; anything that is not a time HH:MM (00:00 to 23:59) -> None."""
    match = HHMM.match(value) if isinstance(value, str) else None
    return datetime.time(int(match[1]), int(match[2])) if match else None


def in_window(local: datetime.time, start: datetime.time, end: datetime.time) -> bool:
    """Is `local` inside [start, end)? A window whose end is before its start crosses
    midnight (22:00-06:00); start == end is the whole day."""
    if start == end:
        return True
    if start < end:
        return start <= local < end
    return local >= start or local < end
