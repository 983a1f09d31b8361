"""The backfill window as an admission gate (apps.instances.admission), registered by
BackfillsConfig.ready().

A backfill instance starts only inside its run's window: the dates the run may work
on now (serial: one; parallel: N), from its first date with an unfinished instance,
of a run not stopped. Outside it, an instance waits as for upstream: for earlier dates.
"""

import datetime

from django.db.models import F, Q

from apps.instances.admission import Blocker, Explaining, FilterGate, action
from apps.instances.choices import WaitReason
from apps.instances.models import Instance

from .choices import BackfillState
from .models import Backfill


class BackfillWindowGate(FilterGate):
    name = "backfill_window"
    wait_reason = WaitReason.WAITING_UPSTREAM

    def admits(self) -> Q:
        """Not a backfill instance, or one inside its run's window of a run not stopped
        (an instance to run without dependencies waits for neither)."""
        return (
            Q(run_now=True)
            | Q(backfill__isnull=True)
            | (
                Q(backfill_seq__lt=F("backfill__window_start") + F("backfill__parallelism"))
                & ~Q(backfill__state=BackfillState.STOPPED)
            )
        )

    def before_pass(self, *, now: datetime.datetime) -> None:
        # Move running backfills' windows on before choosing what may start.
        from .services import backfills_refresh_running

        backfills_refresh_running()

    def released(self, *, finished: list[dict]) -> list[int]:
        """A finished date moves its backfill's window: the dates that entered it."""
        from .services import backfill_refresh

        entered: list[int] = []
        for backfill_id in sorted({row["backfill_id"] for row in finished} - {None}):
            entered.extend(backfill_refresh(backfill_id=backfill_id))
        return entered

    def explain(self, instance: Instance, explaining: Explaining) -> list[Blocker]:
        """Waiting for earlier dates of its run, or never starting once the run was
        stopped."""
        run: Backfill | None = instance.backfill
        if run is None or instance.run_now:
            return []
        detail = {"backfill": run.pk, "order": run.order, "parallelism": run.parallelism}
        if run.state == BackfillState.STOPPED:
            return [
                Blocker(
                    kind=WaitReason.WAITING_UPSTREAM,
                    message=f"its backfill run #{run.pk} was stopped",
                    detail=detail,
                    actions=[action("run_now", instance.pk, object="instance")],
                )
            ]
        if (
            instance.backfill_seq is None
            or instance.backfill_seq < run.window_start + run.parallelism
        ):
            return []
        ahead = instance.backfill_seq - run.window_start - run.parallelism + 1
        return [
            Blocker(
                kind=WaitReason.WAITING_UPSTREAM,
                message=f"waits for earlier dates of backfill run #{run.pk} ({run.order}, "
                f"{run.parallelism} date(s) at a time): {ahead} date(s) to finish first",
                detail={**detail, "dates_ahead": ahead},
                actions=[action("run_now", instance.pk, object="instance")],
            )
        ]
