"""A day's timeline: a Gantt chart of one biz date's instances, in lanes per resource
group or per node, each bar its queue time (queued → started) then its run time
(started → finished, or now). Zoomed by a time range (`from`, `to`); live while
something of the day is queued or running (htmx polls every 10 s, 286 stops it)."""

import datetime
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.utils import timezone
from django.views.decorators.http import require_GET

from apps.core import clock
from apps.core.htmx import render_page_or_partial, stop_polling, wants_partial

from .history import TIMELINE_GROUPS, day_timeline
from .selectors import instances_visible_to

TIMELINE_POLL_SECONDS = 10
TIMELINE_ID = "day-timeline"
# SVG geometry, in viewBox units.
WIDTH = 1000
LABEL_WIDTH = 160
LANE_HEIGHT = 22
AXIS_HEIGHT = 20
TICKS = 6


@login_required
@require_GET
def instance_timeline(request):
    # The viewer's zone (apps.accounts.timezones): theirs, the chosen project's, or the server's.
    tz = timezone.get_current_timezone()
    errors = []
    raw_date = request.GET.get("biz_date", "").strip()
    biz_date = clock.now().astimezone(tz).date() - datetime.timedelta(days=1)
    if raw_date:
        try:
            biz_date = datetime.date.fromisoformat(raw_date)
        except ValueError:
            errors.append(
                {"field": "biz_date", "message": f"{raw_date!r} is not a date as YYYY-MM-DD"}
            )
    group_by = request.GET.get("group_by", "").strip() or "resource_group"
    if group_by not in TIMELINE_GROUPS:
        errors.append({"field": "group_by", "message": f"one of {', '.join(TIMELINE_GROUPS)}"})
        group_by = "resource_group"
    window = {}
    for name in ("from", "to"):
        raw = request.GET.get(name, "").strip()
        if not raw:
            continue
        try:
            value = datetime.datetime.fromisoformat(raw)
        except ValueError:
            errors.append({"field": name, "message": f"{raw!r} is not a time as YYYY-MM-DDTHH:MM"})
            continue
        window[name] = value if value.tzinfo else value.replace(tzinfo=tz)
    if "from" in window and "to" in window and window["from"] >= window["to"]:
        errors.append({"field": "to", "message": "must be after from"})
        window = {}

    instances = instances_visible_to(request.user)
    if request.project is not None:
        instances = instances.filter(project=request.project)
    timeline = day_timeline(instances=instances, biz_date=biz_date, group_by=group_by)
    start = window.get("from") or timeline.start
    end = window.get("to") or timeline.end
    chart = _chart(timeline, start, end, tz) if start and end and start < end else None
    context = {
        "timeline": timeline,
        "chart": chart,
        "biz_date": biz_date,
        "group_by": group_by,
        "group_choices": TIMELINE_GROUPS,
        "window_from": _local_input(window.get("from"), tz),
        "window_to": _local_input(window.get("to"), tz),
        "zoom": _zoom_links(request, start, end, tz) if chart else {},
        "errors": errors,
        "tz": tz,
        "live": timeline.live and not errors,
        "poll_seconds": TIMELINE_POLL_SECONDS,
        "timeline_id": TIMELINE_ID,
        "self_url": request.path + _query(request),
    }
    response = render_page_or_partial(
        request,
        page="instances/timeline.html",
        partial="instances/_timeline.html",
        context=context,
        status=422 if errors else 200,
    )
    if wants_partial(request) and not context["live"] and not errors:
        stop_polling(response)
    return response


def _query(request, **changes) -> str:
    params = {key: value for key, value in request.GET.items() if value}
    for key, value in changes.items():
        if value in (None, ""):
            params.pop(key, None)
        else:
            params[key] = value
    return f"?{urlencode(params)}" if params else ""


def _local_input(value: datetime.datetime | None, tz) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%dT%H:%M") if value else ""


def _zoom_links(request, start, end, tz) -> dict:
    """Zoom in (the middle half), out (twice as wide) and back to the whole day."""
    middle = start + (end - start) / 2
    quarter = (end - start) / 4
    fmt = "%Y-%m-%dT%H:%M:%S"

    def link(a, b):
        return request.path + _query(
            request,
            **{"from": a.astimezone(tz).strftime(fmt), "to": b.astimezone(tz).strftime(fmt)},
        )

    return {
        "in": link(middle - quarter, middle + quarter),
        "out": link(start - 2 * quarter, end + 2 * quarter),
        "all": request.path + _query(request, **{"from": None, "to": None}),
    }


def _chart(timeline, start, end, tz) -> dict:
    """Lanes and bars placed in SVG units; bars outside the window are left out and
    those across its edges clipped to it."""
    span = (end - start).total_seconds()
    plot = WIDTH - LABEL_WIDTH

    def x(moment):
        seconds = (moment - start).total_seconds()
        return LABEL_WIDTH + plot * min(max(seconds / span, 0.0), 1.0)

    lanes = []
    for index, lane in enumerate(timeline.lanes):
        y = AXIS_HEIGHT + index * LANE_HEIGHT
        bars = []
        for bar in lane.bars:
            begin = bar.queued_at or bar.started_at
            finish = bar.finished_at or bar.started_at or begin
            if finish < start or begin > end:
                continue
            item = {"bar": bar, "y": y + 4, "height": LANE_HEIGHT - 8}
            if bar.queued_at and bar.started_at and bar.started_at > bar.queued_at:
                item["queue_x"] = round(x(bar.queued_at), 2)
                item["queue_w"] = round(max(x(bar.started_at) - x(bar.queued_at), 0.5), 2)
            elif bar.queued_at and not bar.started_at:
                item["queue_x"] = round(x(bar.queued_at), 2)
                item["queue_w"] = round(max(x(bar.finished_at or end) - x(bar.queued_at), 0.5), 2)
            if bar.started_at:
                item["run_x"] = round(x(bar.started_at), 2)
                item["run_w"] = round(max(x(finish) - x(bar.started_at), 1.0), 2)
            bars.append(item)
        lanes.append({"name": lane.name, "y": y, "text_y": y + LANE_HEIGHT / 2 + 4, "bars": bars})
    # A day that ran in minutes (a demo, a catch-up) needs its seconds to tell ticks apart.
    to_the_second = span / TICKS < 60
    tick_format = "%m-%d %H:%M:%S" if to_the_second else "%m-%d %H:%M"
    ticks = []
    for n in range(TICKS + 1):
        moment = start + (end - start) * n / TICKS
        ticks.append(
            {
                "x": round(LABEL_WIDTH + plot * n / TICKS, 2),
                "label": moment.astimezone(tz).strftime(tick_format),
                # The last label ends at the right edge instead of running past it.
                "anchor": "end" if n == TICKS else "middle",
            }
        )
    height = AXIS_HEIGHT + max(len(lanes), 1) * LANE_HEIGHT + 4
    return {
        "width": WIDTH,
        "height": height,
        "label_width": LABEL_WIDTH,
        "lanes": lanes,
        "ticks": ticks,
        "start": start.astimezone(tz),
        "end": end.astimezone(tz),
        "shape": "full" if to_the_second else "minute",
    }
