"""Baselines under test: a project's day built row by row (no generator), with a history
of successful runs of known durations, and the state changes a worker makes."""

import datetime
import zoneinfo

from apps.baselines.models import Baseline
from apps.instances import states
from apps.instances.models import Attempt, Instance, InstanceDependency
from apps.notifications import services as notifications
from apps.notifications.models import Delivery
from tests.factories import instance_create, node_create

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")  # the `project` fixture's timezone
# The scheduled day under test; its instances are of biz date BIZ_DATE (T-1).
DAY = datetime.date(2026, 11, 20)
BIZ_DATE = DAY - datetime.timedelta(days=1)
MIN = datetime.timedelta(minutes=1)


def at(hh: int, mm: int = 0, ss: int = 0, *, day: datetime.date = DAY) -> datetime.datetime:
    """hh:mm:ss of `day` in the project's timezone."""
    return datetime.datetime.combine(day, datetime.time(hh, mm, ss), tzinfo=SHANGHAI)


def history(node, minutes: list[float], *, hh: int = 2) -> list[Instance]:
    """Successful past runs of `node`, one per earlier day (the newest first in
    `minutes`), each with its attempt lasting that long."""
    made = []
    for n, length in enumerate(minutes, start=1):
        start = at(hh, day=DAY - datetime.timedelta(days=n))
        finish = start + datetime.timedelta(minutes=length)
        instance = instance_create(
            node, start, state="succeeded", started_at=start, finished_at=finish, attempt_count=1
        )
        Attempt.objects.create(
            instance=instance,
            number=1,
            state="succeeded",
            started_at=start,
            finished_at=finish,
            exit_code=0,
        )
        made.append(instance)
    return made


def chain_instance(node, scheduled: datetime.datetime, upstream=(), **fields) -> Instance:
    return instance_create(node, scheduled, upstream=upstream, **fields)


def start(instance: Instance, now: datetime.datetime) -> Attempt:
    """queued -> running, as a worker starts it."""
    states.instances_queue(ids=[instance.pk], now=now)
    return states.attempt_start(instance_id=instance.pk, now=now)


def finish(instance: Instance, now: datetime.datetime, *, outcome: str = "succeeded") -> None:
    attempt = Attempt.objects.filter(instance=instance).order_by("-number").first()
    states.attempt_finish(
        attempt=attempt,
        result=states.AttemptOutcome(
            outcome=outcome,
            exit_code=0 if outcome == "succeeded" else 3,
            reason="" if outcome == "succeeded" else "exit code 3",
        ),
        retries=0,
        retry_interval_seconds=0,
        now=now,
    )


def run(instance: Instance, started: datetime.datetime, finished: datetime.datetime) -> None:
    start(instance, started)
    finish(instance, finished)


def diamond(project, owner, **node_fields) -> dict:
    """a -> b, a -> c, b -> d, c -> d: nodes with a history of known durations (medians a
    11, b 20, c 32.5, d 5 minutes) and today's pending instances, all scheduled at 02:00."""
    nodes = {}
    nodes["a"] = node_create(project, "a", owner=owner, **node_fields)
    nodes["b"] = node_create(project, "b", owner=owner, upstream=[nodes["a"]], **node_fields)
    nodes["c"] = node_create(project, "c", owner=owner, upstream=[nodes["a"]], **node_fields)
    nodes["d"] = node_create(
        project, "d", owner=owner, upstream=[nodes["b"], nodes["c"]], **node_fields
    )
    history(nodes["a"], [10, 12, 11])
    history(nodes["b"], [20, 22, 18])
    history(nodes["c"], [30, 35, 25, 40])
    history(nodes["d"], [5])
    today = {}
    today["a"] = chain_instance(nodes["a"], at(2))
    today["b"] = chain_instance(nodes["b"], at(2), upstream=[today["a"]])
    today["c"] = chain_instance(nodes["c"], at(2), upstream=[today["a"]])
    today["d"] = chain_instance(nodes["d"], at(2), upstream=[today["b"], today["c"]])
    return {"nodes": nodes, "instances": today}


def baseline_make(project, key_nodes, **fields) -> Baseline:
    values = dict(
        project=project,
        name=fields.pop("name", "daily report"),
        cycle="daily",
        committed_time="10:00",
        margin_minutes=30,
        priority=8,
        recipients={"owner": True},
    )
    values.update(fields)
    channels = values.pop("channels", [])
    baseline = Baseline.objects.create(**values)
    baseline.key_nodes.set(key_nodes)
    baseline.channels.set(channels)
    return baseline


def fresh(instance: Instance) -> Instance:
    return Instance.objects.get(pk=instance.pk)


def edges_of(instance: Instance) -> list[int]:
    return list(
        InstanceDependency.objects.filter(downstream=instance).values_list("upstream_id", flat=True)
    )


def send_pending(now) -> list[Delivery]:
    pending = Delivery.objects.filter(state="pending").order_by("id")
    return [notifications.delivery_send(delivery_id=d.pk, now=now) for d in pending]
