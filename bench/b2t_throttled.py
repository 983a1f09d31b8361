"""B2t dispatch throughput under throttling rules: B2's run (ready `virtual` instances
over 20 resource groups, real dispatcher, real django-q2 clusters, virtual batches)
with 20 throttling rules in force — 5 scopes × 4 values: resource groups, projects,
node types, datasources, and windowed rules (open now) of each kind — none of them
full, beside the same run without rules, in the same process.

The two runs alternate ROUNDS times (plain, throttled, plain, ...) on fresh instances,
and each keeps its best run: the machine is shared, and the best of a few is the
steadier figure of what each path can do. Goal: the throttled run starts at least
0.8× as many instances per second as the plain one.
"""

import datetime

from bench import b2_dispatch, common

SIZES = {"tiny": (200, 4), "small": (2000, 20), "full": (20000, 20)}  # instances, groups
ROUNDS = 3
NOT_FULL = 1_000_000  # no rule here is ever full


def rules_create(code: str, prefix: str, groups: int) -> tuple[int, int]:
    """The 20 rules over run `code`'s instances and their neighbours; answers how many
    are in force and how many of them cover some of the run's instances."""
    from apps.configuration import throttling
    from apps.configuration.models import ResourceGroup, ThrottleRule
    from apps.instances.models import Instance
    from apps.projects.models import Datasource, Project

    project = Project.objects.get(code=code)
    others = [
        Project.objects.get_or_create(code=f"{code}-n{n}", defaults={"name": f"{code} n{n}"})[0]
        for n in range(3)
    ]
    datasources = [
        Datasource.objects.get_or_create(
            project=project, name=f"ds{n}", defaults={"kind": "sqlite", "path": f"/tmp/ds{n}"}
        )[0]
        for n in range(4)
    ]
    group_names = [f"{prefix}-g{g:02d}" for g in range(min(4, groups))]
    while len(group_names) < 4:
        group_names.append(ResourceGroup.get_default().name)
    everywhere = (datetime.time(0, 0), datetime.time(23, 59))
    rules = []
    for n in range(4):
        group = ResourceGroup.objects.get(name=group_names[n])
        rules.append(
            dict(scope_kind="resource_group", scope_value=group.name, resource_group=group)
        )
        rules.append(
            dict(
                scope_kind="project",
                scope_value=([project] + others)[n].code,
                project=([project] + others)[n],
            )
        )
        rules.append(
            dict(scope_kind="node_type", scope_value=["virtual", "shell", "python", "sql"][n])
        )
        ds = datasources[n]
        rules.append(
            dict(
                scope_kind="datasource",
                scope_value=f"{code}.{ds.name}",
                datasource=ds,
                project=project,
            )
        )
    windowed = [
        dict(
            scope_kind="resource_group",
            scope_value=group_names[0],
            resource_group=ResourceGroup.objects.get(name=group_names[0]),
        ),
        dict(scope_kind="project", scope_value=code, project=project),
        dict(scope_kind="node_type", scope_value="virtual"),
        dict(
            scope_kind="datasource",
            scope_value=f"{code}.ds0",
            datasource=datasources[0],
            project=project,
        ),
    ]
    for fields in windowed:
        fields.update(window_start=everywhere[0], window_end=everywhere[1])
    made = [
        ThrottleRule(name=f"{code}-r{n:02d}", max_concurrency=NOT_FULL, **fields)
        for n, fields in enumerate(rules + windowed)
    ]
    ThrottleRule.objects.bulk_create(made)
    in_force = throttling.rules_in_force(datetime.datetime.now(datetime.UTC))
    run = Instance.objects.filter(project=project)
    covering = sum(run.filter(throttling.Scope.of(rule).q()).exists() for rule in in_force)
    return len(in_force), covering


def rules_delete() -> None:
    from apps.configuration.models import ThrottleRule

    ThrottleRule.objects.all().delete()


def one_run(
    code: str, *, count: int, groups: int, throttled: bool
) -> tuple[float, tuple[int, int]]:
    project, nodes = b2_dispatch.instances_create(code, count=count, groups=groups, prefix=code)
    rules = rules_create(code, code, groups) if throttled else (0, 0)
    common.analyze()
    try:
        rate, _per_start, _broker = b2_dispatch.opscenter_run(
            project,
            nodes,
            count=count,
            timeout=max(120.0, count / 20),
            virtual_batch=b2_dispatch.BATCH,
        )
    finally:
        rules_delete()
    return rate, rules


def run(scale: str) -> list[dict]:
    count, groups = SIZES[common.check_scale(scale)]
    plain, throttled = [], []
    rules = (0, 0)
    for n in range(ROUNDS):
        plain.append(one_run(f"b2p{n}", count=count, groups=groups, throttled=False)[0])
        rate, rules = one_run(f"b2t{n}", count=count, groups=groups, throttled=True)
        throttled.append(rate)
    best_plain, best_throttled = max(plain), max(throttled)
    runs = ", ".join(f"{p:,.0f}/{t:,.0f}" for p, t in zip(plain, throttled, strict=True))
    return [
        common.result(
            id="B2t",
            workload="dispatch throughput under throttling rules",
            figure="starts per second with rules in force",
            value=best_throttled,
            baseline=best_plain,
            unit="starts/s",
            goal=">= 0.8x B2 in the same run",
            met=best_throttled >= 0.8 * best_plain,
            note=(
                f"{count} instances over {groups} groups, {rules[0]} rules in force (5 scopes "
                f"x 4, none full; {rules[1]} cover the run's instances, so every claim locks "
                f"and counts them); baseline: the same run without rules; best of {ROUNDS} "
                f"alternating runs each (plain/throttled: {runs})"
            ),
        )
    ]
