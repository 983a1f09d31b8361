"""The monitor's side of baselines: every open cycle recomputed (its prediction, critical
path and status), transitions alerted, and priority lent while a cycle is at risk.

`baselines_check` is the minute pass: it finds today's cycles of every enabled baseline
(a daily baseline's biz date, each hour of an hourly one's scheduled day so far) and the
cycles still open from the last OPEN_DAYS days, and recomputes them all together:

1. the key instances of every cycle in one query;
2. the ancestor closure of all of them at once, level by level (apps.core.dag.Walk): one
   query per level reads the level's upstream edges with the upstream instances' facts;
3. the expected durations of the unfinished instances' nodes in one query;
4. each cycle's prediction and status, in Python (apps.baselines.prediction);
5. in one transaction: the cycles written (a status change by a conditional update, so of
   two monitors only one alerts it), their path's instances written again when the path
   changed, alerts raised and resolved, and the lent priorities brought up to date.

`cycles_for_instances_recompute` does steps 1-5 for the open cycles an instance is on, as
soon as the instance changes state (the event consumer calls it: see hooks).

An edge to a finished instance of an earlier biz date (a self-dependent node's previous
cycle) is not followed: it cannot move the prediction, and following it would walk every
earlier day.
"""

import datetime
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, replace

from django.db import IntegrityError, connection, transaction
from django.db.models import Q

from apps.core import dag
from apps.instances.choices import FINISHED, InstanceKind
from apps.instances.models import Instance, InstanceDependency
from apps.monitoring.durations import MedianCache, node_medians
from apps.monitoring.timepass import AnyOf
from apps.nodes.choices import Env
from apps.nodes.models import Node, NodeVersion

from . import alerts
from .choices import AT_RISK, OPEN_STATUSES, CycleStatus
from .models import Baseline, BaselineCycle, BaselineCycleInstance
from .prediction import (
    Expected,
    Facts,
    Prediction,
    expected_from,
    predict,
    schedule,
    status_of,
)

# Open cycles older than this many days are no longer recomputed (they stay as they were).
OPEN_DAYS = 7
CHUNK = 5000
FACT_FIELDS = (
    "id",
    "node_id",
    "state",
    "scheduled_at",
    "next_attempt_at",
    "started_at",
    "finished_at",
    "paused",
    "biz_date",
    "version_id",
)

CycleKey = tuple[int, datetime.date, int | None]  # baseline id, biz date, hour


@dataclass
class Computed:
    """A cycle as just computed, beside its stored row (None: not stored yet)."""

    baseline: Baseline
    biz_date: datetime.date
    hour: int | None
    committed_at: datetime.datetime
    warning_at: datetime.datetime
    prediction: Prediction
    status: str
    facts: dict[int, Facts]
    row: BaselineCycle | None = None

    @property
    def key(self) -> CycleKey:
        return (self.baseline.pk, self.biz_date, self.hour)


def _in(column: str, ids) -> Q:
    """`column` among `ids`: one array parameter on PostgreSQL."""
    ids = sorted(set(ids))
    if connection.vendor == "postgresql":
        return Q(AnyOf(column, ids))
    return Q(**{f"{column}__in": ids})


def _chunks(ids, size: int = CHUNK):
    ids = sorted(set(ids))
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


# --- which cycles ----------------------------------------------------------------------


def today_biz_date(baseline: Baseline, now: datetime.datetime) -> datetime.date:
    """The biz date of the day being scheduled now in the baseline's project timezone."""
    return now.astimezone(baseline.project.tz).date() - datetime.timedelta(days=1)


def current_cycles(baseline: Baseline, now: datetime.datetime) -> list[CycleKey]:
    """Today's cycles of a baseline: its biz date, or each hour of the scheduled day
    begun so far (hourly)."""
    biz_date = today_biz_date(baseline, now)
    if not baseline.is_hourly:
        return [(baseline.pk, biz_date, None)]
    hour = now.astimezone(baseline.project.tz).hour
    return [(baseline.pk, biz_date, h) for h in range(hour + 1)]


def key_nodes_of(baselines: list[Baseline]) -> dict[int, list[int]]:
    """Baseline id -> its key node ids, in one query."""
    through = Baseline.key_nodes.through
    found: dict[int, list[int]] = defaultdict(list)
    rows = through.objects.filter(baseline_id__in=[b.pk for b in baselines])
    for baseline_id, node_id in rows.values_list("baseline_id", "node_id").order_by("node_id"):
        found[baseline_id].append(node_id)
    return found


def key_instances(
    wanted: dict[CycleKey, Baseline], key_nodes: dict[int, list[int]]
) -> dict[CycleKey, list[int]]:
    """The key instances of each cycle: the recurring production instances of its key
    nodes on its biz date (and, hourly, scheduled in its hour of the project's day)."""
    node_ids = {n for key in wanted for n in key_nodes.get(key[0], ())}
    dates = {key[1] for key in wanted}
    if not node_ids:
        return {}
    by_node_date: dict[tuple[int, datetime.date], list[tuple]] = defaultdict(list)
    rows = (
        Instance.objects.filter(_in("node_id", node_ids), biz_date__in=sorted(dates))
        .filter(kind=InstanceKind.RECURRING, env=Env.PROD)
        .values_list("id", "node_id", "biz_date", "scheduled_at")
        .order_by("scheduled_at", "id")
    )
    for instance_id, node_id, biz_date, scheduled_at in rows:
        by_node_date[(node_id, biz_date)].append((instance_id, scheduled_at))
    found: dict[CycleKey, list[int]] = {}
    for key, baseline in wanted.items():
        _, biz_date, hour = key
        tz = baseline.project.tz
        ids = [
            instance_id
            for node_id in key_nodes.get(baseline.pk, ())
            for instance_id, scheduled_at in by_node_date.get((node_id, biz_date), ())
            if hour is None or scheduled_at.astimezone(tz).hour == hour
        ]
        if ids:
            found[key] = ids
    return found


# --- the closure and its facts ------------------------------------------------------------


def _facts(row: dict, node: tuple[str, bool]) -> Facts:
    name, paused = node
    return Facts(
        id=row["id"],
        node_id=row["node_id"],
        node_name=name,
        state=row["state"],
        scheduled_at=row["scheduled_at"],
        next_attempt_at=row["next_attempt_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        paused=row["paused"] or paused,
    )


class Closure:
    """The ancestor closure of some instances, read level by level: `upstream` maps each
    instance reached to its upstream instances, `facts` each to its Facts; `biz_date` and
    `version` what the walk and the durations need besides."""

    def __init__(self, starts: list[int]):
        self.facts: dict[int, Facts] = {}
        self.biz_date: dict[int, datetime.date] = {}
        self.version: dict[int, int] = {}
        self.upstream: dict[int, list[int]] = {}
        self.nodes: dict[int, tuple[str, bool]] = {}
        self._read(starts)
        walk = dag.Walk([i for i in starts if i in self.facts], self._level)
        for _level in walk:
            pass

    def _read(self, ids) -> None:
        """The facts of `ids` not read yet: the instances by primary key, then the nodes
        not seen yet by primary key (a join would hash the whole node table)."""
        missing = [i for i in ids if i not in self.facts]
        rows = []
        for chunk in _chunks(missing):
            rows += Instance.objects.filter(_in("id", chunk)).order_by().values(*FACT_FIELDS)
        new_nodes = {row["node_id"] for row in rows} - self.nodes.keys()
        for chunk in _chunks(new_nodes):
            for node_id, name, paused in Node.objects.filter(_in("id", chunk)).values_list(
                "id", "name", "paused"
            ):
                self.nodes[node_id] = (name, paused)
        for row in rows:
            self.facts[row["id"]] = _facts(row, self.nodes.get(row["node_id"], ("?", False)))
            self.biz_date[row["id"]] = row["biz_date"]
            self.version[row["id"]] = row["version_id"]

    def _level(self, ids: list[int]) -> dict[int, list[int]]:
        # Two plain reads, each along its own index (the edges by downstream, then the
        # instances not seen yet by id): a join of the two lets the planner walk the
        # whole instance table.
        edges: list[tuple[int, int]] = []
        for chunk in _chunks(ids):
            edges += (
                InstanceDependency.objects.filter(_in("downstream_id", chunk), removed=False)
                .order_by("upstream_id")
                .values_list("downstream_id", "upstream_id")
            )
        self._read({up for _, up in edges})
        found: dict[int, list[int]] = {}
        for down, up in edges:
            if up not in self.facts:
                continue  # gone meanwhile
            if self.facts[up].done and self.biz_date[up] < self.biz_date[down]:
                continue  # a finished earlier cycle moves nothing
            found.setdefault(down, []).append(up)
        self.upstream.update(found)
        return found


# The usual durations, kept between passes (apps.monitoring.durations.MedianCache): read
# again after MEDIAN_MAX_AGE, or at once when this process sees a run of the node succeed.
MEDIAN_MAX_AGE = datetime.timedelta(minutes=15)
MEDIANS = MedianCache(MEDIAN_MAX_AGE)
# A node version's timeout, from its spec: versions never change, so it is kept for good.
_TIMEOUTS: dict[int, int | None] = {}


def _timeouts(version_ids: set[int]) -> dict[int, int | None]:
    missing = [v for v in version_ids if v not in _TIMEOUTS]
    if len(_TIMEOUTS) + len(missing) > 200_000:
        _TIMEOUTS.clear()
    for chunk in _chunks(missing):
        found = dict(
            NodeVersion.objects.filter(pk__in=chunk).values_list("pk", "spec__timeout_seconds")
        )
        for version_id in chunk:
            timeout = found.get(version_id)
            ok = isinstance(timeout, int) and not isinstance(timeout, bool) and timeout > 0
            _TIMEOUTS[version_id] = timeout if ok else None
    return {v: _TIMEOUTS.get(v) for v in version_ids}


def caches_clear() -> None:
    """Forget every kept median and timeout (tests start from an empty database)."""
    MEDIANS.clear()
    _TIMEOUTS.clear()


def expected_durations(
    closure: Closure, instance_ids: set[int], *, now: datetime.datetime
) -> dict[int, Expected]:
    """Each instance's expected duration: its node's median of the last successful runs,
    else its version's timeout, else 5 minutes (not estimated)."""
    if not instance_ids:
        return {}
    nodes = {closure.facts[i].node_id for i in instance_ids}
    medians = MEDIANS.get(nodes, now=now)
    without = {closure.version[i] for i in instance_ids if closure.facts[i].node_id not in medians}
    timeouts = _timeouts(without)
    found = {}
    for i in instance_ids:
        timeout = timeouts.get(closure.version[i])
        found[i] = expected_from(medians.get(closure.facts[i].node_id), timeout)
    return found


# --- computing -----------------------------------------------------------------------------


def cycles_compute(
    wanted: dict[CycleKey, Baseline],
    *,
    now: datetime.datetime,
    rows: dict[CycleKey, BaselineCycle] | None = None,
) -> list[Computed]:
    """Compute every cycle of `wanted` that has key instances (nothing is written)."""
    rows = rows or {}
    keys_of = key_instances(wanted, key_nodes_of(list({b.pk: b for b in wanted.values()}.values())))
    if not keys_of:
        return []
    starts = sorted({i for ids in keys_of.values() for i in ids})
    closure = Closure(starts)
    unfinished = {i for i, f in closure.facts.items() if not f.done}
    expected = expected_durations(closure, unfinished, now=now)
    # One schedule for every cycle: an instance's times depend on its ancestors only.
    shared = schedule(facts=closure.facts, upstream=closure.upstream, expected=expected, now=now)
    computed = []
    for key, keys in keys_of.items():
        baseline = wanted[key]
        _, biz_date, hour = key
        committed_at = baseline.committed_at(biz_date, hour)
        warning_at = baseline.warning_at(committed_at)
        prediction = predict(
            keys=keys,
            facts=closure.facts,
            upstream=closure.upstream,
            expected=expected,
            now=now,
            shared=shared,
        )
        computed.append(
            Computed(
                baseline=baseline,
                biz_date=biz_date,
                hour=hour,
                committed_at=committed_at,
                warning_at=warning_at,
                prediction=prediction,
                status=status_of(
                    prediction, now=now, committed_at=committed_at, warning_at=warning_at
                ),
                facts=closure.facts,
                row=rows.get(key),
            )
        )
    _fill_path_expectations(computed, closure)
    return computed


def _fill_path_expectations(computed: list[Computed], closure: Closure) -> None:
    """A finished step of a critical path has no expected duration yet: its node's."""
    missing = {
        step.node
        for c in computed
        for step in c.prediction.critical_path
        if step.expected_seconds is None
    }
    if not missing:
        return
    medians = node_medians(missing)
    for c in computed:
        c.prediction.critical_path = [
            step
            if step.expected_seconds is not None or step.node not in medians
            else _with_expected(step, medians[step.node])
            for step in c.prediction.critical_path
        ]


def _with_expected(step, seconds: float):
    return replace(step, expected_seconds=seconds)


# --- writing -------------------------------------------------------------------------------


def _iso(value: datetime.datetime | None) -> str | None:
    return value.isoformat() if value else None


def path_json(computed: Computed) -> list[dict]:
    return [
        {**step.as_dict(), "start": _iso(step.start), "finish": _iso(step.finish)}
        for step in computed.prediction.critical_path
    ]


def blocked_json(computed: Computed) -> list[dict]:
    facts = computed.facts
    return [
        {
            "instance": i,
            "node": facts[i].node_id,
            "node_name": facts[i].node_name,
            "state": facts[i].state,
            "paused": facts[i].paused,
        }
        for i in computed.prediction.blocked_by
    ]


def _values(computed: Computed) -> dict:
    p = computed.prediction
    return {
        "committed_at": computed.committed_at,
        "warning_at": computed.warning_at,
        "predicted_finish": p.predicted_finish,
        "estimated": p.estimated,
        "blocked_by": blocked_json(computed),
        "key_instances": p.keys,
        "critical_path": path_json(computed),
        "finished_at": p.predicted_finish if p.finished else None,
    }


_ROWS_UPDATE = """
UPDATE baselines_baselinecycle AS c SET
    committed_at = v.committed_at, warning_at = v.warning_at,
    predicted_finish = v.predicted_finish, estimated = v.estimated,
    blocked_by = v.blocked_by, key_instances = v.key_instances,
    critical_path = v.critical_path, finished_at = v.finished_at, computed_at = %s
FROM unnest(
    %s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::timestamptz[], %s::boolean[],
    %s::jsonb[], %s::jsonb[], %s::jsonb[], %s::timestamptz[]
) AS v(id, committed_at, warning_at, predicted_finish, estimated, blocked_by,
       key_instances, critical_path, finished_at)
WHERE c.id = v.id
"""


def _rows_update(rows: list[BaselineCycle], *, now: datetime.datetime) -> None:
    """Write the predictions of cycles whose status did not change: one statement of
    arrays on PostgreSQL (a bulk_update's CASE per row and field costs more to parse and
    plan than to run), bulk_update elsewhere."""
    if not rows:
        return
    fields = ["committed_at", "warning_at", "predicted_finish", "estimated"]
    json_fields = ["blocked_by", "key_instances", "critical_path"]
    if connection.vendor != "postgresql":
        BaselineCycle.objects.bulk_update(
            rows, [*fields, *json_fields, "finished_at", "computed_at"], batch_size=500
        )
        return
    columns = [[r.pk for r in rows]]
    columns += [[getattr(r, name) for r in rows] for name in fields]
    columns += [[json.dumps(getattr(r, name)) for r in rows] for name in json_fields]
    columns += [[r.finished_at for r in rows]]
    with connection.cursor() as cursor:
        cursor.execute(_ROWS_UPDATE, [now, *columns])


def _digest(prediction: Prediction) -> str:
    text = (
        ",".join(map(str, sorted(prediction.members))) + "|" + ",".join(map(str, prediction.keys))
    )
    return hashlib.sha1(text.encode()).hexdigest()


_MEMBERS_INSERT = """
INSERT INTO baselines_baselinecycleinstance (cycle_id, instance_id, key)
SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::boolean[])
"""


def _members_write(written: list[Computed]) -> None:
    """The path's instances of every cycle whose path changed (its digest), in a few
    statements for all of them."""
    changed = [c for c in written if c.row.path_digest != _digest(c.prediction)]
    if not changed:
        return
    stale = [c.row.pk for c in changed if c.row.path_digest]
    for chunk in _chunks(stale):
        BaselineCycleInstance.objects.filter(cycle_id__in=chunk).delete()
    cycle_ids, instance_ids, key_flags = [], [], []
    for c in changed:
        keys = set(c.prediction.keys)
        for i in c.prediction.members:
            cycle_ids.append(c.row.pk)
            instance_ids.append(i)
            key_flags.append(i in keys)
        c.row.path_digest = _digest(c.prediction)
    if connection.vendor == "postgresql":
        # One statement of arrays: a day's new cycles bring tens of thousands of rows.
        with connection.cursor() as cursor:
            cursor.execute(_MEMBERS_INSERT, [cycle_ids, instance_ids, key_flags])
    else:
        BaselineCycleInstance.objects.bulk_create(
            [
                BaselineCycleInstance(cycle_id=c, instance_id=i, key=k)
                for c, i, k in zip(cycle_ids, instance_ids, key_flags, strict=True)
            ],
            batch_size=2000,
        )
    BaselineCycle.objects.bulk_update([c.row for c in changed], ["path_digest"], batch_size=500)


def _create(new: list[Computed], *, now: datetime.datetime) -> list[Computed]:
    """Store the cycles seen for the first time; answers those this monitor made (a cycle
    another monitor made a moment ago is its to alert)."""
    rows = [
        BaselineCycle(
            baseline=c.baseline,
            biz_date=c.biz_date,
            hour=c.hour,
            status=c.status,
            status_since=now,
            computed_at=now,
            **_values(c),
        )
        for c in new
    ]
    try:
        with transaction.atomic():
            BaselineCycle.objects.bulk_create(rows, batch_size=500)
    except IntegrityError:
        # Some exist already: one at a time, keeping what this monitor made.
        made = []
        for c, row in zip(new, rows, strict=True):
            row.pk = None
            try:
                with transaction.atomic():
                    row.save()
            except IntegrityError:
                continue
            c.row = row
            made.append(c)
        return made
    for c, row in zip(new, rows, strict=True):
        c.row = row
    return new


def cycles_write(computed: list[Computed], *, now: datetime.datetime) -> dict:
    """Write what was computed, alert transitions and bring lending up to date, in one
    transaction. Answers counts of what changed."""
    counts = {"cycles": len(computed), "created": 0, "transitions": 0, "alerts": 0}
    with transaction.atomic():
        written: list[Computed] = []
        transitions: list[tuple[Computed, str | None]] = []
        quiet: list[BaselineCycle] = []
        new = [c for c in computed if c.row is None]
        new_ids = {id(c) for c in new}
        made = _create(new, now=now)
        counts["created"] = len(made)
        written += made
        transitions += [(c, None) for c in made]
        for c in computed:
            row = c.row
            if id(c) in new_ids:
                continue
            values = _values(c)
            if row.status != c.status:
                # The transition is claimed: of two monitors, only one alerts it.
                if not BaselineCycle.objects.filter(pk=row.pk, status=row.status).update(
                    status=c.status, status_since=now, computed_at=now, **values
                ):
                    continue
                transitions.append((c, row.status))
                row.status, row.status_since = c.status, now
            elif any(getattr(row, name) != value for name, value in values.items()):
                for name, value in values.items():
                    setattr(row, name, value)
                row.computed_at = now
                quiet.append(row)
            written.append(c)
        # Only what moved is written: a cycle waiting on a scheduled time, or on a run
        # not yet past its usual duration, predicts the same minute after minute.
        _rows_update(quiet, now=now)
        _members_write(written)
        open_keys = alerts.open_keys(computed=[c for c, _ in transitions])
        for c, previous in transitions:
            if previous != c.status:
                counts["transitions"] += 1
                counts["alerts"] += _transition(c, open_keys, now=now)
        counts["lending_changed"] = lending_refresh(
            instance_ids={i for c in computed for i in c.prediction.members},
            baseline_ids={c.baseline.pk for c in computed},
            unfinished={
                i
                for c in computed
                for i in c.prediction.members
                if c.facts[i].state not in FINISHED
            },
        )
    return counts


def _transition(c: Computed, open_keys: set[str], *, now: datetime.datetime) -> int:
    """Entering warning or broken raises its alert (once per cycle: not while one is
    open); finishing resolves the cycle's alerts, saying on time or late."""
    if c.status in (CycleStatus.WARNING, CycleStatus.BROKEN):
        key = alerts.dedup_key(c.baseline.pk, c.status, c.biz_date, c.hour)
        if key in open_keys:
            return 0
        return int(alerts.baseline_alert_raise(computed=c, trigger=c.status, now=now) is not None)
    if c.status in (CycleStatus.FINISHED_ON_TIME, CycleStatus.FINISHED_LATE):
        if any(
            alerts.dedup_key(c.baseline.pk, t, c.biz_date, c.hour) in open_keys
            for t in alerts.TRIGGERS
        ):
            alerts.baseline_alerts_resolve(computed=c, now=now)
    return 0


# --- lending -------------------------------------------------------------------------------


def lending_refresh(
    *,
    instance_ids: set[int] | None = None,
    baseline_ids: set[int] | None = None,
    unfinished: set[int] | None = None,
) -> int:
    """Lend each unfinished instance on the path of an at-risk cycle (of an enabled
    baseline) the highest priority among those cycles' baselines (ties: the lowest
    baseline id), and take lending back from every other instance. Limited to
    `instance_ids` and whatever `baseline_ids` lend now when given; every instance
    otherwise. `unfinished`: those known unfinished (the states are read otherwise).
    Answers how many instances changed."""
    lent = Instance.objects.filter(lent_by__isnull=False).order_by()
    at_risk = BaselineCycleInstance.objects.filter(
        cycle__status__in=AT_RISK, cycle__baseline__enabled=True
    )
    columns = ("instance_id", "cycle__baseline__priority", "cycle__baseline_id")
    held_columns = ("id", "lent_priority", "lent_by_id")
    if instance_ids is None:
        rows = list(at_risk.values_list(*columns))
        current = list(lent.values_list(*held_columns))
    else:
        candidates = set(instance_ids)
        if baseline_ids:
            candidates |= set(
                lent.filter(lent_by__in=sorted(baseline_ids)).values_list("id", flat=True)
            )
        rows, current = [], []
        for chunk in _chunks(candidates):
            rows += at_risk.filter(_in("instance_id", chunk)).values_list(*columns)
            current += lent.filter(_in("id", chunk)).values_list(*held_columns)
    # Lent only while unfinished: the states of the instances not known to be.
    unknown = {row[0] for row in rows} - (unfinished or set())
    still = set(unfinished or ()) if unfinished is not None else set()
    for chunk in _chunks(unknown):
        still |= set(
            Instance.objects.filter(_in("id", chunk))
            .exclude(state__in=FINISHED)
            .order_by()
            .values_list("id", flat=True)
        )
    desired: dict[int, tuple[int, int]] = {}
    for instance_id, priority, baseline_id in rows:
        if instance_id not in still:
            continue
        best = desired.get(instance_id)
        if best is None or (priority, -baseline_id) > (best[0], -best[1]):
            desired[instance_id] = (priority, baseline_id)
    changes: dict[tuple[int, int] | None, list[int]] = defaultdict(list)
    held = {instance_id: (priority, by) for instance_id, priority, by in current}
    for instance_id, target in desired.items():
        if held.get(instance_id) != target:
            changes[target].append(instance_id)
    for instance_id in held:
        if instance_id not in desired:
            changes[None].append(instance_id)
    return _lent_write(changes)


_LENT_UPDATE = """
UPDATE instances_instance AS i SET lent_priority = v.priority, lent_by_id = v.baseline
FROM unnest(%s::bigint[], %s::smallint[], %s::bigint[]) AS v(id, priority, baseline)
WHERE i.id = v.id
"""


def _lent_write(changes: dict[tuple[int, int] | None, list[int]]) -> int:
    """Write the lent priorities: in one statement on PostgreSQL, one per lending
    baseline elsewhere."""
    if not changes:
        return 0
    if connection.vendor == "postgresql":
        ids, priorities, baselines = [], [], []
        for target, instance_ids in changes.items():
            priority, by = target if target is not None else (None, None)
            ids += instance_ids
            priorities += [priority] * len(instance_ids)
            baselines += [by] * len(instance_ids)
        with connection.cursor() as cursor:
            cursor.execute(_LENT_UPDATE, [ids, priorities, baselines])
            return cursor.rowcount
    changed = 0
    for target, instance_ids in changes.items():
        priority, by = target if target is not None else (None, None)
        for chunk in _chunks(instance_ids):
            changed += Instance.objects.filter(pk__in=chunk).update(
                lent_priority=priority, lent_by_id=by
            )
    return changed


# --- the passes ----------------------------------------------------------------------------


def _baselines(ids=None):
    queryset = Baseline.objects.filter(enabled=True).select_related("project")
    if ids is not None:
        queryset = queryset.filter(pk__in=sorted(ids))
    return {b.pk: b for b in queryset.prefetch_related("channels")}


def baselines_check(*, now: datetime.datetime) -> dict:
    """The minute pass: today's cycles of every enabled baseline and every cycle still
    open from the last OPEN_DAYS days, recomputed and written."""
    baselines = _baselines()
    wanted: dict[CycleKey, Baseline] = {}
    for baseline in baselines.values():
        for key in current_cycles(baseline, now):
            wanted[key] = baseline
    oldest = now.date() - datetime.timedelta(days=OPEN_DAYS)
    open_rows = BaselineCycle.objects.filter(
        status__in=OPEN_STATUSES, biz_date__gte=oldest, baseline_id__in=list(baselines)
    )
    rows: dict[CycleKey, BaselineCycle] = {}
    for row in open_rows:
        key = (row.baseline_id, row.biz_date, row.hour)
        rows[key] = row
        wanted[key] = baselines[row.baseline_id]
    today = {key for key in wanted if key not in rows}
    if today:
        dates = sorted({key[1] for key in today})
        for row in BaselineCycle.objects.filter(
            baseline_id__in=list(baselines), biz_date__in=dates
        ):
            key = (row.baseline_id, row.biz_date, row.hour)
            if key in today:
                if row.is_open:
                    rows[key] = row
                else:
                    del wanted[key]  # finished: its history stands
    computed = cycles_compute(wanted, now=now, rows=rows)
    counts = cycles_write(computed, now=now) if computed else {"cycles": 0}
    if not computed:
        counts["lending_changed"] = lending_refresh()
    return counts


def cycles_for_instances_recompute(instance_ids: list[int], *, now: datetime.datetime) -> int:
    """Recompute at once the open cycles whose path holds any of `instance_ids` (an
    instance on it changed state). Answers how many cycles were recomputed."""
    if not instance_ids:
        return 0
    cycle_ids: set[int] = set()
    for chunk in _chunks(instance_ids):
        cycle_ids |= set(
            BaselineCycleInstance.objects.filter(
                _in("instance_id", chunk), cycle__status__in=OPEN_STATUSES
            ).values_list("cycle_id", flat=True)
        )
    if not cycle_ids:
        return 0
    rows = list(BaselineCycle.objects.filter(pk__in=sorted(cycle_ids), baseline__enabled=True))
    baselines = _baselines({row.baseline_id for row in rows})
    wanted, by_key = {}, {}
    for row in rows:
        key = (row.baseline_id, row.biz_date, row.hour)
        wanted[key] = baselines[row.baseline_id]
        by_key[key] = row
    computed = cycles_compute(wanted, now=now, rows=by_key)
    if computed:
        cycles_write(computed, now=now)
    return len(computed)


def cycle_compute(
    baseline: Baseline, biz_date: datetime.date, hour: int | None, *, now: datetime.datetime
) -> Computed | None:
    """One cycle computed now, for a page or the API (nothing is written); None when the
    cycle has no key instance."""
    computed = cycles_compute({(baseline.pk, biz_date, hour): baseline}, now=now)
    return computed[0] if computed else None
