"""Where baselines plug into the rest (registered by BaselinesConfig.ready), so neither
the monitor, the rules, the instance list nor the overview imports this app:

- the monitor's minute pass recomputes every open cycle (apps.monitoring.tasks);
- the instance event consumer recomputes at once the open cycles an instance that
  changed state is on (apps.monitoring.events);
- a monitoring rule's scope `{"kind": "baseline", "baseline": id}` watches the key nodes
  and all their ancestors (apps.monitoring.rules);
- the instance list and API filter `baseline=any|ID`: the instances on today's path of
  any baseline, or of one (apps.instances.selectors);
- the overview's "baselines at risk" (apps.monitoring.selectors).
"""

import datetime

from apps.core import dag


def baselines_minute_check(*, now: datetime.datetime) -> int:
    from .cycles import baselines_check

    return baselines_check(now=now).get("cycles", 0)


def on_instance_events(events: list[dict], *, now: datetime.datetime) -> None:
    from apps.instances.models import Instance

    from .cycles import MEDIANS, cycles_for_instances_recompute

    succeeded = [e["instance_id"] for e in events if e["to_state"] == "succeeded"]
    if succeeded and len(MEDIANS):
        # A new successful run moves its node's usual duration.
        MEDIANS.forget(Instance.objects.filter(pk__in=succeeded).values_list("node_id", flat=True))
    cycles_for_instances_recompute(sorted({e["instance_id"] for e in events}), now=now)


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


def scope_errors(project, scope: dict) -> list[dict]:
    from .models import Baseline

    value = scope.get("baseline")
    if not _is_id(value) or not Baseline.objects.filter(pk=value, project=project).exists():
        return [
            {
                "field": "scope.baseline",
                "message": f"no baseline {value!r} in project {project.code}",
            }
        ]
    return []


def scope_node_ids(rule) -> set[int]:
    """The baseline's key nodes and every node they depend on, in the node graph."""
    from apps.nodes.selectors import node_upstream_ids

    from .models import Baseline

    baseline = Baseline.objects.filter(pk=rule.scope.get("baseline")).first()
    if baseline is None:
        return set()
    keys = list(baseline.key_nodes.values_list("pk", flat=True))
    return set(keys) | set(dag.ancestors(keys, node_upstream_ids))


def instance_filter(queryset, value: str):
    from .selectors import instances_on_baselines

    return instances_on_baselines(queryset, value)


def overview_at_risk(*, projects, now: datetime.datetime) -> list[dict]:
    from .selectors import baselines_at_risk

    return baselines_at_risk(projects=projects, now=now)


def register() -> None:
    from apps.instances import selectors as instance_selectors
    from apps.monitoring import events, rules, tasks
    from apps.monitoring import selectors as overview

    tasks.MINUTE_CHECKS["baselines"] = baselines_minute_check
    events.event_hook_register(on_instance_events)
    rules.SCOPE_PROVIDERS["baseline"] = (scope_errors, scope_node_ids)
    instance_selectors.FILTER_PROVIDERS["baseline"] = instance_filter
    overview.OVERVIEW_EXTRAS["baselines_at_risk"] = overview_at_risk
