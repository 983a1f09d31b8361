"""A baseline cycle's prediction, critical path and status (SPEC 7.3). Pure: facts in,
answers out, no database, so the whole rule is tested at a frozen `now` by hand.

For every unfinished instance of the ancestor closure of the key instances:

- expected duration: the median of its node's last 10 successful runs; without history
  its timeout if set, else 5 minutes, and then the prediction is not `estimated`;
- predicted start: the latest of now, its scheduled time (or next attempt's) and the
  predicted finishes of its upstream; predicted finish: start + expected;
- a running instance finishes at max(now, started + expected);
- a finished one (succeeded or skipped) stands at its real times.

A failed (no retry left), stopped or paused instance on the way makes the prediction
unknown (None) and is named in `blocked_by`; the critical path is then drawn as if the
blocking instances were rerun now, which is what an operator needs to know next.

The critical path runs from the key instance finishing last back through, at each
step, the upstream instance whose finish held its start, to where nothing upstream
held it (apps.core.dag.longest_path).
"""

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from apps.core import dag

from .choices import CycleStatus

DONE = ("succeeded", "skipped")
BLOCKING = ("failed", "stopped")
RUNNING = ("running", "stopping")
# Without history: the node's timeout if it sets one, else this.
DEFAULT_EXPECTED_SECONDS = 300.0


@dataclass(frozen=True)
class Facts:
    """One instance as the prediction reads it."""

    id: int
    node_id: int
    node_name: str
    state: str
    scheduled_at: datetime.datetime
    next_attempt_at: datetime.datetime | None = None
    started_at: datetime.datetime | None = None
    finished_at: datetime.datetime | None = None
    # The instance or its node is paused: it will not start.
    paused: bool = False

    @property
    def done(self) -> bool:
        return self.state in DONE

    @property
    def blocking(self) -> bool:
        return self.state in BLOCKING or (self.paused and not self.done)


@dataclass(frozen=True)
class Expected:
    """How long an instance is expected to run. `estimated` is False when its node has no
    successful run to go by (the timeout, or 5 minutes, stands in)."""

    seconds: float
    estimated: bool = True


def expected_from(median_seconds: float | None, timeout_seconds: int | None) -> Expected:
    if median_seconds is not None:
        return Expected(float(median_seconds), True)
    return Expected(float(timeout_seconds or DEFAULT_EXPECTED_SECONDS), False)


@dataclass(frozen=True)
class Step:
    """One instance of the critical path, with its predicted or real start and finish."""

    instance: int
    node: int
    node_name: str
    state: str
    start: datetime.datetime
    finish: datetime.datetime
    expected_seconds: float | None
    # Real times (a finished instance), the real start (running), or both predicted.
    real_start: bool = False
    real_finish: bool = False

    def as_dict(self) -> dict:
        return {
            "instance": self.instance,
            "node": self.node,
            "node_name": self.node_name,
            "state": self.state,
            "start": self.start,
            "finish": self.finish,
            "expected_seconds": self.expected_seconds,
            "real_start": self.real_start,
            "real_finish": self.real_finish,
        }


@dataclass
class Prediction:
    keys: list[int]
    # Every instance of the closure: the key instances and their ancestors.
    members: list[int]
    # The latest finish of the key instances: predicted, or real once all are done;
    # None while something blocks them.
    predicted_finish: datetime.datetime | None
    estimated: bool
    blocked_by: list[int]
    critical_path: list[Step]
    # Every key instance succeeded or was skipped.
    finished: bool
    # Per instance of the closure: its predicted (or real) start and finish.
    start: dict[int, datetime.datetime] = field(default_factory=dict)
    finish: dict[int, datetime.datetime] = field(default_factory=dict)
    # Those of `members` that succeeded or were skipped.
    done: set[int] = field(default_factory=set)

    @property
    def unfinished(self) -> list[int]:
        return [i for i in self.members if i not in self.done]


@dataclass
class Schedule:
    """When every instance of a graph is predicted (or known) to start and finish: one
    longest-path computation shared by every cycle whose closure lies in the graph (an
    instance's times depend on its own ancestors only, whichever cycle asks)."""

    path: dag.LongestPath
    facts: Mapping[int, Facts]
    expected: Mapping[int, Expected]
    done: set[int]
    running: set[int]
    blocking: set[int]


def schedule(
    *,
    facts: Mapping[int, Facts],
    upstream: Mapping[int, Iterable[int]],
    expected: Mapping[int, Expected],
    now: datetime.datetime,
    nodes: Iterable[int] | None = None,
) -> Schedule:
    """The predicted schedule of `nodes` (default: every instance of `facts`), which must
    hold the ancestors of each of them."""
    # A deterministic order for ties: earlier scheduled first.
    order = sorted(facts if nodes is None else nodes, key=lambda i: (facts[i].scheduled_at, i))
    graph = {i: [u for u in upstream.get(i, ()) if u in facts] for i in order}
    done, running, blocking = set(), set(), set()
    fixed: dict[int, tuple] = {}
    earliest: dict[int, datetime.datetime] = {}
    weight: dict[int, datetime.timedelta] = {}
    for i in order:
        f = facts[i]
        if f.done:
            done.add(i)
            start = f.started_at or f.finished_at or f.scheduled_at
            fixed[i] = (start, max(start, f.finished_at or start))
            continue
        seconds = expected[i].seconds if i in expected else DEFAULT_EXPECTED_SECONDS
        weight[i] = datetime.timedelta(seconds=seconds)
        if f.blocking:
            blocking.add(i)
            # As if rerun now: what the path would be once the blocker is dealt with.
            earliest[i] = now
        elif f.state in RUNNING and f.started_at is not None:
            running.add(i)
            fixed[i] = (f.started_at, max(now, f.started_at + weight[i]))
        else:
            earliest[i] = max(now, f.scheduled_at, f.next_attempt_at or f.scheduled_at)
    path = dag.longest_path(
        order,
        graph,
        weight=lambda i: weight.get(i, datetime.timedelta(0)),
        earliest=earliest,
        fixed=fixed,
        origin=now,
    )
    return Schedule(
        path=path,
        facts=facts,
        expected=expected,
        done=done,
        running=running,
        blocking=blocking,
    )


def predict(
    *,
    keys: Iterable[int],
    facts: Mapping[int, Facts],
    upstream: Mapping[int, Iterable[int]],
    expected: Mapping[int, Expected],
    now: datetime.datetime,
    shared: Schedule | None = None,
) -> Prediction:
    """The prediction of the cycle whose key instances are `keys`. `facts` and `upstream`
    (instance id -> its upstream instance ids) cover at least the closure; `expected`
    maps each unfinished instance of it to its expected duration. `shared`: a schedule
    already computed over a graph holding the closure (several cycles at once)."""
    keys = [k for k in dict.fromkeys(keys) if k in facts]
    closure = dag.ancestors(keys, upstream)
    members = keys + [i for i in closure if i not in keys]
    plan = shared or schedule(
        facts=facts, upstream=upstream, expected=expected, now=now, nodes=members
    )
    path = plan.path
    finished = bool(keys) and all(k in plan.done for k in keys)
    blocked = sorted(
        (i for i in members if i in plan.blocking), key=lambda i: (facts[i].scheduled_at, i)
    )
    estimated = all(expected[i].estimated for i in members if i not in plan.done and i in expected)
    end = None
    for k in keys:
        if end is None or path.finish[k] > path.finish[end]:
            end = k
    steps = []
    for i in path.path_to(end) if end is not None else []:
        f = facts[i]
        steps.append(
            Step(
                instance=i,
                node=f.node_id,
                node_name=f.node_name,
                state=f.state,
                start=path.start[i],
                finish=path.finish[i],
                expected_seconds=expected[i].seconds if i in expected else None,
                real_start=i in plan.done or i in plan.running,
                real_finish=i in plan.done,
            )
        )
    predicted = None
    if finished or (not blocked and keys):
        predicted = path.finish[end]
    return Prediction(
        keys=keys,
        members=members,
        predicted_finish=predicted,
        estimated=estimated,
        blocked_by=blocked,
        critical_path=steps,
        finished=finished,
        start={i: path.start[i] for i in members},
        finish={i: path.finish[i] for i in members},
        done={i for i in members if i in plan.done},
    )


def status_of(
    prediction: Prediction,
    *,
    now: datetime.datetime,
    committed_at: datetime.datetime,
    warning_at: datetime.datetime,
) -> str:
    """SPEC 7.3's status: finished on time or late once every key instance is done (its
    finish against the committed time); else broken past the committed time or while
    blocked; warning past the warning time, or when the predicted finish is past it;
    else safe."""
    if prediction.finished:
        on_time = prediction.predicted_finish <= committed_at
        return CycleStatus.FINISHED_ON_TIME if on_time else CycleStatus.FINISHED_LATE
    if now > committed_at or prediction.predicted_finish is None:
        return CycleStatus.BROKEN
    if now > warning_at or prediction.predicted_finish > warning_at:
        return CycleStatus.WARNING
    return CycleStatus.SAFE
