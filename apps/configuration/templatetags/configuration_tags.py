"""Template helpers of the configuration pages."""

from django import template

register = template.Library()


@register.filter
def percent_of(used, total) -> int:
    """How much of `total` `used` is, 0 to 100, for a meter (no total: 0)."""
    try:
        used, total = float(used or 0), float(total)
    except (TypeError, ValueError):
        return 0
    if total <= 0:
        return 100 if used > 0 else 0
    return max(0, min(100, round(used * 100 / total)))
