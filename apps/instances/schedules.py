"""Pure functions over cron expressions: validity, cycle length, fire times on a day."""

from croniter import croniter


def cron_error(cron: str) -> str | None:
    """Why `cron` is not a valid 5-field cron expression, or None when it is."""
    if not isinstance(cron, str) or not cron.strip():
        return "a cron expression is required for a recurring node"
    if len(cron.split()) != 5:
        return f"{cron!r} must have 5 fields: minute hour day month weekday"
    if not croniter.is_valid(cron):
        return f"{cron!r} is not a valid cron expression"
    return None
