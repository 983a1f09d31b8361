"""The O&M overview page. It reads everything through apps.monitoring.selectors, the
same numbers GET /api/overview answers."""

import datetime
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.urls import reverse

from apps.core.errors import ValidationFailed
from apps.core.htmx import render_page_or_partial, stop_polling, triggered_by
from apps.instances.choices import InstanceKind, InstanceState, WaitReason

from .choices import Severity
from .selectors import (
    DEFAULT_PERIOD,
    TREND_PERIODS,
    overview_days,
    overview_get,
    today_biz_date,
)

# The live part (today's counts, running, waiting) refreshes this often while anything
# is queued or running, and stops when nothing is.
LIVE_ID = "overview-live"
LIVE_POLL_SECONDS = 15
# Every state with a column in today's table, in the order an instance goes through them.
TODAY_STATES = [
    InstanceState.PENDING,
    InstanceState.QUEUED,
    InstanceState.RUNNING,
    InstanceState.SUCCEEDED,
    InstanceState.FAILED,
    InstanceState.STOPPED,
    InstanceState.SKIPPED,
]


@login_required
def overview(request):
    errors: list[dict] = []
    try:
        days = overview_days(request.GET.get("days"))
    except ValidationFailed as exc:
        errors, days = exc.errors, DEFAULT_PERIOD
    data = overview_get(user=request.user, project=request.project, days=days)
    context = {
        "overview": data,
        "errors": errors,
        "periods": TREND_PERIODS,
        "today_rows": _today_rows(data),
        "today_states": [_state_column(data, state) for state in TODAY_STATES],
        "waiting_reasons": [
            {"value": reason.value, "count": data.today.waiting.get(reason.value, 0)}
            for reason in WaitReason
        ],
        "today_scope": _today_scope(data),
        "waiting": [
            {"instance": i, "seconds": max((data.now - i.scheduled_at).total_seconds(), 0)}
            for i in data.waiting_longest
        ],
        "chart_data": _chart_data(data),
        "severity_tiles": _severity_tiles(data),
        "live_id": LIVE_ID,
        "live_poll_seconds": LIVE_POLL_SECONDS,
    }
    live = triggered_by(request, LIVE_ID)
    response = render_page_or_partial(
        request,
        page="monitoring/overview.html",
        partial="monitoring/_live.html" if live else "monitoring/_period.html",
        context=context,
        status=422 if errors else 200,
    )
    if live and not data.active:
        stop_polling(response)
    return response


def _instances_url(data, **filters) -> str:
    """The instance list showing exactly what a number counts."""
    if data.today.biz_date is not None:
        filters = {"biz_date": data.today.biz_date.isoformat(), **filters}
    kept = {key: value for key, value in filters.items() if value}
    return reverse("instances:list") + (f"?{urlencode(kept)}" if kept else "")


def _today_scope(data) -> list[dict]:
    """Which business day "today" is, per timezone in scope (usually one line)."""
    groups: dict[datetime.date, set[str]] = {}
    for project in data.projects:
        groups.setdefault(today_biz_date(project, data.now), set()).add(project.timezone)
    return [
        {
            "biz_date": day,
            "scheduled": day + datetime.timedelta(days=1),
            "timezones": sorted(zones),
        }
        for day, zones in sorted(groups.items())
    ]


def _state_column(data, state: InstanceState) -> dict:
    return {
        "state": state.value,
        "label": state.label,
        "total": data.today.state_totals.get(state.value, 0),
        "url": _instances_url(data, state=state.value),
    }


def _today_rows(data) -> list[dict]:
    """Kinds with anything today, each with a count and a link per state."""
    rows = []
    for kind in InstanceKind:
        counts = data.today.counts.get(kind.value, {})
        total = data.today.kind_totals.get(kind.value, 0)
        cells = [
            {
                "state": state.value,
                "count": counts.get(state.value, 0),
                "url": _instances_url(data, kind=kind.value, state=state.value),
            }
            for state in TODAY_STATES
        ]
        rows.append(
            {
                "kind": kind.value,
                "label": kind.label,
                "total": total,
                "url": _instances_url(data, kind=kind.value),
                "cells": cells,
            }
        )
    return rows


def _severity_tiles(data) -> list[dict]:
    """Open alerts per severity, each linking to the alerts page showing exactly those."""
    url = reverse("alerts:list")
    return [
        {
            "severity": severity.value,
            "count": data.open_alerts.by_severity.get(severity.value, 0),
            "url": f"{url}?{urlencode({'state': 'open', 'severity': severity.value})}",
        }
        for severity in Severity
    ]


def _chart_data(data) -> dict:
    """What static/js/overview.js draws; colours are names from the state choices."""
    return {
        "labels": [day.biz_date.isoformat() for day in data.trend],
        "succeeded": [day.succeeded for day in data.trend],
        "failed": [day.failed for day in data.trend],
        "failed_attempts": [day.failed_attempts for day in data.trend],
        "avg_duration_seconds": [day.avg_duration_seconds for day in data.trend],
        "colors": {
            "succeeded": InstanceState.SUCCEEDED.color,
            "failed": InstanceState.FAILED.color,
            "duration": InstanceState.RUNNING.color,
        },
    }
