"""Rows for page tests: instances with attempts and logs, built directly."""

import datetime

from apps.instances.models import Attempt, AttemptLogChunk, Instance
from tests.factories import instance_create, node_create

# 02:00 on 2026-11-22 in Asia/Shanghai (the `project` fixture's timezone).
T0 = datetime.datetime(2026, 11, 21, 18, 0, tzinfo=datetime.UTC)


def running_instance(project, owner, name: str = "load_orders", *, log: list[str] = ()) -> Instance:
    """A running instance with one running attempt whose log holds `log` chunks."""
    node = node_create(project, name, owner=owner, type="shell")
    instance = instance_create(
        node, T0, state="running", attempt_count=1, started_at=T0, queued_at=T0
    )
    attempt = Attempt.objects.create(instance=instance, number=1, state="running", started_at=T0)
    log_append(attempt, *log)
    return instance


def log_append(attempt: Attempt, *texts: str) -> None:
    """Write log chunks the way the worker does: each at the offset where the last ended."""
    offset = attempt.log_size
    for text in texts:
        AttemptLogChunk.objects.create(attempt=attempt, offset=offset, text=text)
        offset += len(text)
    Attempt.objects.filter(pk=attempt.pk).update(log_size=offset)
    attempt.log_size = offset


def attempt_finish(instance: Instance, *, state: str = "succeeded", exit_code: int = 0) -> None:
    """End the running attempt and the instance, as the worker does."""
    end = T0 + datetime.timedelta(seconds=75)
    Attempt.objects.filter(instance=instance, state="running").update(
        state=state, finished_at=end, exit_code=exit_code, cpu_seconds=1.25, peak_memory_mb=42.5
    )
    Instance.objects.filter(pk=instance.pk).update(state=state, finished_at=end)


def hourly_day(project, owner) -> dict:
    """hourly_load's 24 runs of biz date 2026-11-21 (those of 07:00 and 19:00 failed), a
    self-dependent chain, all feeding daily_report of that date (pending)."""
    hour = datetime.timedelta(hours=1)
    biz_date = datetime.date(2026, 11, 21)
    hourly = node_create(project, "hourly_load", owner=owner, cron="0 * * * *")
    daily = node_create(project, "daily_report", owner=owner, cron="0 2 * * *", upstream=[hourly])
    first = T0 - 26 * hour  # 00:00 of 2026-11-21 in Asia/Shanghai
    runs: list[Instance] = []
    for n in range(24):
        state = "failed" if n in (7, 19) else "succeeded"
        runs.append(
            instance_create(
                hourly, first + n * hour, biz_date=biz_date, state=state, upstream=runs[-1:]
            )
        )
    report = instance_create(daily, T0, biz_date=biz_date, state="pending", upstream=runs)
    return {"runs": runs, "report": report, "hourly": hourly}
