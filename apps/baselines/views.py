"""Baseline pages: the list (today's status of each, at-risk first) and a baseline's page
(a cycle's status with the Gantt chart of its critical path, key instances, the 30-cycle
on-time rate, history and alerts). Views parse, call selectors and render."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone

from apps.accounts.timezones import project_page
from apps.core import clock
from apps.core.errors import NotFound, ValidationFailed
from apps.instances.models import Instance

from .selectors import (
    HISTORY_CYCLES,
    baseline_alerts,
    baseline_get,
    baseline_rows,
    cycle_of,
    cycle_status,
    cycles_history,
    gantt,
    on_time_rate,
)

# The list and an open cycle's page refresh this often (the monitor recomputes each minute).
POLL_SECONDS = 30


@login_required
def baseline_list(request):
    now = clock.now()
    rows = baseline_rows(user=request.user, project=request.project, now=now)
    context = {
        "rows": rows,
        "now": now,
        "show_project": request.project is None,
        "poll_seconds": POLL_SECONDS,
    }
    return render(request, "baselines/list.html", context)


@login_required
def baseline_detail(request, baseline_id: int):
    try:
        baseline = baseline_get(user=request.user, baseline_id=baseline_id)
    except NotFound as exc:
        from django.http import Http404

        raise Http404(exc.detail) from exc
    project_page(request, baseline.project)
    now = clock.now()
    errors, view, chart, missing = [], None, None, ""
    try:
        biz_date, hour = cycle_of(
            baseline,
            biz_date=request.GET.get("biz_date"),
            hour=request.GET.get("hour"),
            now=now,
        )
    except ValidationFailed as exc:
        errors = exc.errors
        biz_date, hour = cycle_of(baseline, biz_date=None, hour=None, now=now)
    try:
        view = cycle_status(baseline=baseline, biz_date=biz_date, hour=hour, now=now)
        chart = gantt(view, now=now, tz=timezone.get_current_timezone())
    except NotFound as exc:
        missing = exc.detail
    keys = []
    if view is not None:
        found = Instance.objects.filter(pk__in=view.key_instances).select_related("node")
        keys = sorted(found, key=lambda i: (i.scheduled_at, i.pk))
    context = {
        "baseline": baseline,
        "biz_date": biz_date,
        "hour": hour,
        "view": view,
        "chart": chart,
        "missing": missing,
        "errors": errors,
        "key_instances": keys,
        "on_time": on_time_rate(baseline),
        "history": list(cycles_history(baseline)[:HISTORY_CYCLES]),
        "history_cycles": HISTORY_CYCLES,
        "alerts": baseline_alerts(baseline),
        "now": now,
        "poll_seconds": POLL_SECONDS,
        "hours": range(24),
    }
    return render(request, "baselines/detail.html", context, status=422 if errors else 200)
