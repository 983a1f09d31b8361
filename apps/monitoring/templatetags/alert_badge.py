"""The firing badge of the top bar's Alerts entry."""

from django import template

register = template.Library()


@register.inclusion_tag("alerts/_badge.html", takes_context=True)
def firing_badge(context) -> dict:
    """`{% firing_badge %}`: how many alerts the user may see are firing (one indexed
    count), polling itself every few seconds."""
    from apps.monitoring.alert_selectors import firing_count_for
    from apps.monitoring.alert_views import badge_context

    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"firing": None}
    return badge_context(firing_count_for(user))
