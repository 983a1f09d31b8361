"""Admission: the gates an instance passes to start, which features register.

SPEC section 4 lists what must hold for a pending instance to start. The engine keeps
its own conditions (not frozen, upstream done, its time come: see dispatcher). Every
other condition is a gate that a feature registers in its AppConfig.ready() — the
backfill window (apps.backfills), resource group slots and CPU/memory, throttling
rules (apps.configuration) — so the dispatcher and diagnosis iterate the gates and
name none of them.

Two kinds of gate:

- A FilterGate admits by a query alone (`admits()`, a Q over Instance): the dispatcher
  starts only what every filter gate admits, and an instance a gate holds back waits
  with the gate's wait reason.
- A CapacityGate counts slots. The dispatcher claims in one transaction per pass; in it
  each capacity gate `hold()`s: locks the rows that count its capacity, counts what is
  in use and answers a Hold that admits candidates one by one in start order
  (START_ORDER, across the resource groups). Gates hold in registration order and lock
  their rows by id, so every claim takes its locks in the same order: two dispatchers
  never deadlock, and never both see the same free slot.

Both kinds `explain()` themselves: the blockers diagnosis shows, built from the same
queries the dispatcher uses.
"""

import datetime
import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, QuerySet

from .choices import WaitReason
from .models import Instance

# The order candidates start in: higher priority first, then earlier scheduled time
# (SPEC section 4), then id for a total order. A descending field is a number.
# start_key() and ahead_q() follow it, so this is the one place that says it.
# The priority is the dispatch priority: the instance's own, or what a baseline at risk
# lends it, the greater (SPEC 7.3; Instance.dispatch_priority).
START_ORDER = ("-dispatch_priority", "scheduled_at", "id")
START_FIELDS = tuple(f.lstrip("-") for f in START_ORDER)


def start_key(row: dict) -> tuple:
    """START_ORDER for a candidate row (a dict with START_FIELDS)."""
    return tuple(-row[f[1:]] if f.startswith("-") else row[f] for f in START_ORDER)


def ahead_q(instance: Instance) -> Q:
    """Instances that START_ORDER puts before `instance`."""
    ahead = None
    equal: dict = {}
    for f in START_ORDER:
        name = f.lstrip("-")
        value = getattr(instance, "pk" if name == "id" else name)
        before = Q(**equal, **{f"{name}__{'gt' if f.startswith('-') else 'lt'}": value})
        ahead = before if ahead is None else ahead | before
        equal[name] = value
    return ahead


# Wait reasons in the order a pending instance is shown with them (SPEC section 4).
REASON_ORDER = [reason.value for reason in WaitReason]


# --- what diagnosis shows ----------------------------------------------------------------


@dataclass
class Blocker:
    kind: str  # a WaitReason value
    message: str
    detail: dict = field(default_factory=dict)
    actions: list[dict] = field(default_factory=list)


def action(name: str, target: int, **extra) -> dict:
    """An operation that would unblock an instance, as diagnosis lists it."""
    return {"action": name, "target": target, **extra}


@dataclass
class Explaining:
    """What a gate's explain() may use besides the instance."""

    now: datetime.datetime
    # names.ref(instance) -> the instance as diagnosis names it to this viewer (an
    # instance of a project the viewer is not a member of keeps only its id and state).
    names: Any
    # ready_now(queryset) -> those of it that are pending, unblocked, due and not dry
    # runs: what competes for slots right now (the dispatcher's own query).
    ready_now: Callable[[QuerySet[Instance]], QuerySet[Instance]]


# --- the gates ---------------------------------------------------------------------------


class Gate:
    name = ""
    wait_reason: str = ""

    def before_pass(self, *, now: datetime.datetime) -> None:
        """Called at the start of every full dispatcher pass."""

    def released(self, *, finished: list[dict]) -> list[int]:
        """Called when instances finished (`finished`: their id and backfill_id, as the
        worker read them): pending instances this gate may admit now (the dispatcher
        looks at them at once instead of at its next pass). Called for every attempt's
        end: it should not need to read the database to find it has nothing to do."""
        return []

    def explain(self, instance: Instance, explaining: Explaining) -> list[Blocker]:
        return []


class FilterGate(Gate):
    def admits(self) -> Q:
        """A filter over Instance that holds for the instances this gate lets start."""
        raise NotImplementedError


class Verdict(enum.Enum):
    ADMIT = "admit"
    SKIP = "skip"  # not this one; those behind it may still start
    STOP = "stop"  # not this one, and nothing behind it: it keeps its place in the queue


class Hold:
    """A capacity gate's say over one claim, made inside the claim's transaction after
    its rows were locked and its usage counted."""

    # Candidates that cannot start at all in this claim (their capacity is full),
    # left out of what is read. A hold may widen it while it admits.
    exclude: Q | None = None
    # Whether judge()/take() must see each candidate; with the values named here
    # (name -> field path or expression) read along with its id, resource_group_id,
    # dispatch_priority and scheduled_at.
    judges: bool = False
    fields: dict[str, Any] = {}

    def limit(self, group_id: int) -> int | None:
        """At most this many of a group's candidates may start (None: no bound)."""
        return None

    def judge(self, row: dict) -> Verdict:
        """SKIP passes over this candidate; STOP ends its group's turn in this claim."""
        return Verdict.ADMIT

    def take(self, row: dict) -> None:
        """`row` starts: count it."""


class CapacityGate(Gate):
    def prepare(self, *, due: QuerySet[Instance], now: datetime.datetime) -> Any:
        """Once per pass, before any claim, outside their transactions: what the holds
        of this pass need to know of all that is due (`due`)."""
        return None

    def hold(
        self,
        *,
        group_ids: list[int],
        candidates: QuerySet[Instance],
        now: datetime.datetime,
        prepared: Any,
    ) -> Hold | None:
        """Lock, count and answer this gate's say over a claim among `candidates` in
        the resource groups `group_ids` (None: this gate has no say in it)."""
        return None

    def waiting(self, *, now: datetime.datetime) -> Q | None:
        """Pending instances this gate holds back now (their wait reason is this gate's);
        None when it holds back none."""
        return None


_GATES: dict[str, Gate] = {}


def register(gate: Gate) -> None:
    """Add a gate (from an AppConfig.ready()); registering a name again replaces it."""
    if not gate.wait_reason or gate.wait_reason not in REASON_ORDER:
        raise ValueError(f"gate {gate.name!r}: wait_reason must be a WaitReason")
    _GATES[gate.name] = gate


def unregister(name: str) -> None:
    _GATES.pop(name, None)


def gates() -> list[Gate]:
    """Every registered gate in registration order (the lock order of capacity gates)."""
    return list(_GATES.values())


def filter_gates() -> list[FilterGate]:
    return [g for g in _GATES.values() if isinstance(g, FilterGate)]


def capacity_gates() -> list[CapacityGate]:
    return [g for g in _GATES.values() if isinstance(g, CapacityGate)]


def by_reason(items: Iterable[Gate]) -> list[Gate]:
    """Gates in the order of their wait reasons (registration order among equals)."""
    return sorted(items, key=lambda g: REASON_ORDER.index(g.wait_reason))


def admitted_q() -> Q:
    """What every filter gate admits."""
    q = Q()
    for gate in filter_gates():
        q &= gate.admits()
    return q


def before_pass(*, now: datetime.datetime) -> None:
    for gate in gates():
        gate.before_pass(now=now)


def released(*, finished: list[dict]) -> list[int]:
    """Pending instances the gates may admit now that `finished` finished."""
    ids: list[int] = []
    for gate in gates():
        ids.extend(gate.released(finished=finished))
    return list(dict.fromkeys(ids))
