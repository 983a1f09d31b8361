"""The admission gates of resource groups and throttling rules (apps.instances.admission),
registered by ConfigurationConfig.ready(): the group gate first, then the rule gate, so
every claim locks its group's row, then its rules' rows by id.

Both count slots as the instances queued or running (ACTIVE) in their scope, read
after the lock: a claim that committed before the lock was granted is counted, and one
that comes after waits for this one to commit. Several dispatchers therefore never put
more instances in a group or under a rule than it allows.
"""

import datetime
from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet

from apps.instances.admission import (
    Blocker,
    CapacityGate,
    Explaining,
    Hold,
    Verdict,
    action,
    ahead_q,
)
from apps.instances.choices import ACTIVE, WaitReason
from apps.instances.models import Instance

from . import throttling
from .models import ResourceGroup, ThrottleRule

MAX_LISTED = 50  # slot holders listed in one diagnosis


def allocation(cpu, memory_mb) -> tuple[float, float]:
    """What an instance's node version allocates (cores, MiB); not given counts as 0."""
    return float(cpu or 0), float(memory_mb or 0)


def group_usage(group: ResourceGroup) -> dict:
    """A group's slots, CPU and memory in use now: one read of its active instances."""
    active = Instance.objects.filter(resource_group=group, state__in=ACTIVE)
    used_cpu = used_mem = 0.0
    count = 0
    for cpu, mem in active.values_list("version__spec__cpu", "version__spec__memory_mb"):
        cpu, mem = allocation(cpu, mem)
        used_cpu += cpu
        used_mem += mem
        count += 1
    return {"in_use": count, "cpu_in_use": used_cpu, "memory_in_use_mb": used_mem}


# --- resource groups -------------------------------------------------------------------


class GroupHold(Hold):
    """Each group's free slots, and where a group has a CPU or memory capacity, a walk
    that takes its candidates while they fit: one that does not fit ends the group's
    turn (it keeps its place; nothing smaller behind it jumps the queue and starves it)."""

    fields = {"group_cpu": "version__spec__cpu", "group_memory_mb": "version__spec__memory_mb"}

    def __init__(self, groups: dict[int, ResourceGroup], usage: dict[int, dict]):
        self.groups = groups
        self.free = {pk: g.max_concurrency - usage[pk]["in_use"] for pk, g in groups.items()}
        self.cpu = {pk: usage[pk]["cpu_in_use"] for pk in groups}
        self.mem = {pk: usage[pk]["memory_in_use_mb"] for pk in groups}
        self.judges = any(_has_capacity(g) for g in groups.values())

    def limit(self, group_id: int) -> int | None:
        return self.free.get(group_id, 0)

    def judge(self, row: dict) -> Verdict:
        group = self.groups[row["resource_group_id"]]
        cpu, mem = allocation(row["group_cpu"], row["group_memory_mb"])
        if group.cpu_capacity is not None and self.cpu[group.pk] + cpu > group.cpu_capacity:
            return Verdict.STOP
        if (
            group.memory_capacity_mb is not None
            and self.mem[group.pk] + mem > group.memory_capacity_mb
        ):
            return Verdict.STOP
        return Verdict.ADMIT

    def take(self, row: dict) -> None:
        cpu, mem = allocation(row["group_cpu"], row["group_memory_mb"])
        self.cpu[row["resource_group_id"]] += cpu
        self.mem[row["resource_group_id"]] += mem


def _has_capacity(group: ResourceGroup) -> bool:
    return group.cpu_capacity is not None or group.memory_capacity_mb is not None


class ResourceGroupGate(CapacityGate):
    """An instance's resource group must have a free slot, and CPU and memory for it
    where the group has a capacity (SPEC 4, 9)."""

    name = "resource_group"
    wait_reason = WaitReason.WAITING_RESOURCES

    def hold(self, *, group_ids, candidates, now, prepared) -> Hold:
        # The groups' row locks serialise claims for each group across dispatchers; one
        # at a time by id, so every claim takes them in the same order.
        groups = {
            pk: ResourceGroup.objects.select_for_update().get(pk=pk) for pk in sorted(group_ids)
        }
        usage = {pk: {"in_use": 0, "cpu_in_use": 0.0, "memory_in_use_mb": 0.0} for pk in groups}
        active = Instance.objects.filter(resource_group_id__in=list(groups), state__in=ACTIVE)
        if any(_has_capacity(g) for g in groups.values()):
            rows = active.values_list(
                "resource_group_id", "version__spec__cpu", "version__spec__memory_mb"
            )
            for pk, cpu, mem in rows:
                cpu, mem = allocation(cpu, mem)
                usage[pk]["in_use"] += 1
                usage[pk]["cpu_in_use"] += cpu
                usage[pk]["memory_in_use_mb"] += mem
        else:
            counts = active.values("resource_group_id").annotate(n=Count("pk")).order_by()
            for row in counts:
                usage[row["resource_group_id"]]["in_use"] = row["n"]
        return GroupHold(groups, usage)

    def explain(self, instance: Instance, explaining: Explaining) -> list[Blocker]:
        group = instance.resource_group
        usage = group_usage(group)
        reasons = []
        detail: dict = {
            "resource_group": group.name,
            "max_concurrency": group.max_concurrency,
            "in_use": usage["in_use"],
        }
        if usage["in_use"] >= group.max_concurrency:
            reasons.append(f"all {group.max_concurrency} slot(s) are taken")
        spec = instance.version.spec or {}
        need_cpu, need_mem = allocation(spec.get("cpu"), spec.get("memory_mb"))
        used_cpu, used_mem = usage["cpu_in_use"], usage["memory_in_use_mb"]
        if group.cpu_capacity is not None:
            detail.update(cpu_capacity=group.cpu_capacity, cpu_in_use=used_cpu, cpu_needed=need_cpu)
            if used_cpu + need_cpu > group.cpu_capacity:
                reasons.append(
                    f"CPU {used_cpu:g} of {group.cpu_capacity:g} in use, needs {need_cpu:g}"
                )
        if group.memory_capacity_mb is not None:
            detail.update(
                memory_capacity_mb=group.memory_capacity_mb,
                memory_in_use_mb=used_mem,
                memory_needed_mb=need_mem,
            )
            if used_mem + need_mem > group.memory_capacity_mb:
                reasons.append(
                    f"memory {used_mem:g} of {group.memory_capacity_mb} MB in use, needs {need_mem:g}"
                )
        if not reasons:
            return []
        in_group = Instance.objects.filter(resource_group=group)
        ahead = explaining.ready_now(in_group).filter(ahead_q(instance)).count()
        holders = (
            in_group.filter(state__in=ACTIVE)
            .select_related("node", "project")
            .order_by("queued_at", "id")[:MAX_LISTED]
        )
        detail.update(
            holders=[explaining.names.ref(h) for h in holders],
            ahead=ahead,
            position=ahead + 1,
        )
        return [
            Blocker(
                kind=WaitReason.WAITING_RESOURCES,
                message=f"resource group {group.name!r} is full ({'; '.join(reasons)}); "
                f"{ahead} instance(s) ahead of it",
                detail=detail,
                actions=[action("change_resource_group", instance.pk, object="instance")],
            )
        ]


# --- throttling rules ------------------------------------------------------------------


def rules_usage(scopes: list[throttling.Scope]) -> dict[int, int]:
    """Instances queued or running under each scope now, in one read: rule id -> count."""
    if not scopes:
        return {}
    counts = Instance.objects.filter(state__in=ACTIVE).aggregate(
        **{f"r{s.rule_id}": Count("pk", filter=s.q()) for s in scopes}
    )
    return {s.rule_id: counts[f"r{s.rule_id}"] or 0 for s in scopes}


def _any_of(scopes: list[throttling.Scope]) -> Q | None:
    q = None
    for scope in scopes:
        q = scope.q() if q is None else q | scope.q()
    return q


@dataclass
class RulesInForce:
    """One pass's view of the rules in force (read once, before the claim)."""

    rules: dict[int, ThrottleRule]
    scopes: dict[int, throttling.Scope]
    # ids of the rules that cover something due: the rules the claim locks
    covering: list[int] = field(default_factory=list)


class RulesHold(Hold):
    """The rules over a claim's candidates, locked and counted. Candidates under a full
    rule are left out of what is read; a rule that fills while candidates are taken
    leaves the rest of its own out. A candidate under a rule the claim did not lock (one
    that covered nothing due when the pass began) is passed over: it waits for the next
    pass, which locks that rule too."""

    judges = True

    def __init__(self, *, locked: list[throttling.Scope], free: dict[int, int], others):
        self.open = [s for s in locked if free[s.rule_id] > 0]
        self.free = {s.rule_id: free[s.rule_id] for s in self.open}
        self.full = [s for s in locked if free[s.rule_id] <= 0]
        self.others = list(others)
        self.exclude = _any_of(self.full)
        self.fields = throttling.row_fields([*locked, *self.others])

    def judge(self, row: dict) -> Verdict:
        if any(s.covers(row) for s in self.full) or any(s.covers(row) for s in self.others):
            return Verdict.SKIP
        for scope in self.open:
            if self.free[scope.rule_id] <= 0 and scope.covers(row):
                return Verdict.SKIP
        return Verdict.ADMIT

    def take(self, row: dict) -> None:
        for scope in self.open:
            if scope.covers(row):
                self.free[scope.rule_id] -= 1
                if self.free[scope.rule_id] == 0:
                    self.full.append(scope)
                    self.exclude = _any_of(self.full)


class ThrottleGate(CapacityGate):
    """Every enabled rule in force that applies to an instance must have a free slot
    (SPEC 9); instances it holds back wait `throttled` and start in start order as
    slots free."""

    name = "throttle"
    wait_reason = WaitReason.THROTTLED

    def prepare(self, *, due: QuerySet[Instance], now: datetime.datetime) -> RulesInForce | None:
        rules = throttling.rules_in_force(now)
        if not rules:
            return None
        scopes = {rule.pk: throttling.Scope.of(rule) for rule in rules}
        # Which rules cover something due: the rules the claim locks.
        counts = due.aggregate(
            **{f"r{pk}": Count("pk", filter=scope.q()) for pk, scope in scopes.items()}
        )
        covering = [pk for pk in scopes if counts[f"r{pk}"]]
        return RulesInForce(
            rules={rule.pk: rule for rule in rules}, scopes=scopes, covering=covering
        )

    def hold(self, *, group_ids, candidates, now, prepared: RulesInForce | None) -> Hold | None:
        if prepared is None:
            return None
        wanted = prepared.covering
        # Rules by id, the same order in every claim; as they are now (one changed or
        # disabled since the pass began counts as it is now; one deleted, not at all).
        rows = list(
            ThrottleRule.objects.select_for_update()
            .filter(pk__in=wanted)
            .order_by("pk")
            .values_list("pk", "max_concurrency", "enabled")
        )
        max_of = {pk: most for pk, most, enabled in rows if enabled}
        locked = [prepared.scopes[pk] for pk in max_of]
        usage = rules_usage(locked)
        free = {pk: max_of[pk] - usage[pk] for pk in max_of}
        # Rules in force that covered nothing due when the pass began are not locked:
        # what they cover now waits for the next pass.
        others = [scope for pk, scope in prepared.scopes.items() if pk not in wanted]
        return RulesHold(locked=locked, free=free, others=others)

    def waiting(self, *, now: datetime.datetime) -> Q | None:
        """Instances under a rule that is full now."""
        rules = throttling.rules_in_force(now)
        scopes = [throttling.Scope.of(rule) for rule in rules]
        usage = rules_usage(scopes)
        full = [
            scope
            for scope, rule in zip(scopes, rules, strict=True)
            if usage[rule.pk] >= rule.max_concurrency
        ]
        return _any_of(full)

    def explain(self, instance: Instance, explaining: Explaining) -> list[Blocker]:
        """One blocker per rule in force over `instance` that is full: the rule, who
        holds its slots, and the instance's place in its queue."""
        blockers = []
        for rule in throttling.rules_in_force(explaining.now):
            if not throttling.applies_to(rule, instance):
                continue
            scope = throttling.Scope.of(rule)
            under = Instance.objects.filter(scope.q())
            holders = under.filter(state__in=ACTIVE)
            in_use = holders.count()
            if in_use < rule.max_concurrency:
                continue
            ahead = explaining.ready_now(under).filter(ahead_q(instance)).count()
            listed = holders.select_related("node", "project").order_by("queued_at", "id")
            detail = {
                "rule": rule_ref(rule),
                "max_concurrency": rule.max_concurrency,
                "in_use": in_use,
                "holders": [explaining.names.ref(h) for h in listed[:MAX_LISTED]],
                "ahead": ahead,
                "position": ahead + 1,
            }
            blockers.append(
                Blocker(
                    kind=WaitReason.THROTTLED,
                    message=f"throttling rule {rule.name!r} ({rule_words(rule)}) is full: "
                    f"{in_use} of {rule.max_concurrency} slot(s) taken; position "
                    f"{ahead + 1} in its queue ({ahead} ahead)",
                    detail=detail,
                    actions=[action("edit_throttle_rule", rule.pk, object="throttle_rule")],
                )
            )
        return blockers


def rule_words(rule: ThrottleRule) -> str:
    """ "project acme, max 2, 22:00–06:00 Asia/Shanghai"."""
    kind = rule.get_scope_kind_display().lower()
    words = f"{kind} {scope_value(rule)}, max {rule.max_concurrency}"
    if rule.window_start is not None and rule.window_end is not None:
        words += f", {throttling.window_words(rule)}"
    return words


def scope_value(rule: ThrottleRule) -> str:
    """The scope as the API shows it, following renames of what it names."""
    if rule.resource_group_id is not None:
        return rule.resource_group.name
    if rule.datasource_id is not None:
        return f"{rule.project.code}.{rule.datasource.name}"
    if rule.project_id is not None:
        return rule.project.code
    return rule.scope_value


def rule_ref(rule: ThrottleRule) -> dict:
    """A rule as diagnosis names it."""
    return {
        "id": rule.pk,
        "name": rule.name,
        "scope_kind": rule.scope_kind,
        "scope_value": scope_value(rule),
        "max_concurrency": rule.max_concurrency,
        "window_start": rule.window_start.strftime("%H:%M") if rule.window_start else None,
        "window_end": rule.window_end.strftime("%H:%M") if rule.window_end else None,
        "enabled": rule.enabled,
    }
