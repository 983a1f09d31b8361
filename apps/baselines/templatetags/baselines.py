"""Baseline panels other apps' pages include without importing this app: an instance's
baselines (and what it lends), a backfill preview's competition with today's baselines,
the baselines the instance list filters by."""

from django import template

from apps.core import clock

from ..selectors import baselines_competing, baselines_visible_to, instance_baselines

register = template.Library()


@register.inclusion_tag("baselines/_instance_panel.html", takes_context=True)
def instance_baselines_panel(context, instance):
    """Which baselines' paths the instance is on, and the priority it is lent."""
    user = context["request"].user
    return {
        "instance": instance,
        "memberships": instance_baselines(instance, user=user),
        "tz": instance.project.timezone,
    }


@register.inclusion_tag("baselines/_competition.html", takes_context=True)
def backfill_competition(context, plan):
    """Today's baselines the plan's instances would compete with: open cycles before their
    committed time whose unfinished path runs in the plan's resource groups."""
    user = context["request"].user
    groups = {node.resource_group_id for node in plan.nodes}
    return {"competing": baselines_competing(user=user, resource_group_ids=groups, now=clock.now())}


@register.simple_tag(takes_context=True)
def baseline_choices(context) -> list[tuple[int, str]]:
    """(id, "project.name") of the baselines the viewer sees, for a filter."""
    user = context["request"].user
    return [(b.pk, f"{b.project.code}.{b.name}") for b in baselines_visible_to(user)]
