"""Alert pages: the list (filters, keyset pages, batch acknowledge/resolve, live while an
alert on it is open), one alert's page (facts, the instance it is about, a timeline of
its events and deliveries, acknowledge/resolve), and the firing badge of the top bar.

Views parse, call apps.monitoring.alert_selectors and the alert operations, and render;
the operations check the operator role and write the operation log themselves.
"""

import datetime
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import push_url, trigger_client_event

from apps.accounts.timezones import project_page
from apps.core.errors import NotFound, OpscenterError, ValidationFailed
from apps.core.htmx import render_page_or_partial, stop_polling, triggered_by, wants_partial
from apps.core.pagination import view_page
from apps.nodes.models import Node
from apps.notifications.choices import DeliveryState
from apps.projects.choices import Role
from apps.projects.models import Membership
from apps.projects.selectors import has_role, projects_visible_to

from .alert_selectors import (
    HISTORY_ROWS,
    AlertFilters,
    alert_filter,
    alert_get,
    alert_history,
    alerts_page,
    alerts_visible_to,
    firing_count_for,
)
from .alerts import ALERT_ACTIONS
from .choices import AlertEventKind, AlertState, Severity, TriggerType
from .models import Alert
from .services import alerts_batch

TABLE_ID = "alert-table"
LIVE_ID = "alert-live"
BADGE_ID = "firing-badge"
# The list re-renders itself this often while an alert on it is open; so does an open
# alert's page. The badge in the top bar asks for the firing count as often.
LIST_POLL_SECONDS = 5
LIVE_POLL_SECONDS = 5
BADGE_POLL_SECONDS = 5
# An alert repeating every minute for days has thousands of lines: the page shows the
# newest this many events and deliveries.
TIMELINE_ROWS = HISTORY_ROWS
# Sent (HX-Trigger) by the badge when the firing count moved: an Alerts table that stopped
# polling asks for itself again at once, so a new alert appears.
CHANGED_EVENT = "opscenter:alerts-changed"
# Sent after an operator acted on alerts from the list: the badge asks again at once.
ACTED_EVENT = "opscenter:alerts-acted"

# How each line of an alert's timeline is marked.
EVENT_COLORS = {
    AlertEventKind.FIRED: "red",
    AlertEventKind.REPEATED: "orange",
    AlertEventKind.ESCALATED: "purple",
    AlertEventKind.ACKNOWLEDGED: "yellow",
    AlertEventKind.RESOLVED: "green",
}

ACTION_WORDS = {
    "ack": ("Acknowledge", "acknowledged"),
    "resolve": ("Resolve", "resolved"),
}


# --- the list --------------------------------------------------------------------------


def _may_operate_somewhere(user) -> bool:
    """Whether the list offers batch actions: to whoever is an operator somewhere."""
    if user.is_superuser:
        return True
    return Membership.objects.filter(user=user, role__in=[Role.OPERATOR, Role.ADMIN]).exists()


def _node_choices(request, filters: AlertFilters) -> list[Node]:
    """Nodes the node filter offers: those of the project in view (the switcher's), and
    the filtered node wherever it is."""
    project = request.project
    nodes = Node.objects.none()
    if project is not None:
        nodes = Node.objects.filter(project=project)
    if filters.node.isdigit():
        visible = Node.objects.filter(project__in=projects_visible_to(request.user))
        nodes = nodes | visible.filter(pk=int(filters.node))
    return list(nodes.select_related("project").order_by("project__code", "name", "env"))


def _filter_choices(request, filters: AlertFilters) -> dict:
    """What the filter form offers (the whole page only; the table does not need it)."""
    return {
        "state_choices": [("open", "Open (firing or acknowledged)"), *AlertState.choices],
        "severity_choices": Severity.choices,
        "project_choices": list(
            projects_visible_to(request.user).order_by("code").values_list("code", "name")
        ),
        "node_choices": _node_choices(request, filters),
    }


def _list_context(request, query: QueryDict | None = None) -> tuple[dict, int]:
    """The table of the list for `query` (default: the request's own parameters)."""
    query = request.GET if query is None else query
    errors: list[dict] = []
    filters = AlertFilters.from_query(query)
    queryset = alerts_visible_to(request.user).select_related("node")
    if request.project is not None:
        queryset = queryset.filter(project=request.project)
    page, errors = view_page(alerts_page, lambda: alert_filter(queryset, filters), query)
    polling = any(alert.is_open for alert in page.items)
    labels = dict(TriggerType.choices)
    for alert in page.items:
        alert.trigger_label = labels.get(alert.trigger, alert.trigger)
    may_batch = _may_operate_somewhere(request.user)
    kept = {key: value for key, value in query.items() if value and key != "project"}
    list_url = reverse("alerts:list")

    def url(**changes) -> str:
        params = {k: v for k, v in {**kept, **changes}.items() if v}
        return list_url + (f"?{urlencode(params)}" if params else "")

    context = {
        "page": page,
        "alerts": page.items,
        "filters": filters,
        "errors": errors,
        "polling": polling,
        "poll_seconds": LIST_POLL_SECONDS,
        "table_id": TABLE_ID,
        "changed_event": CHANGED_EVENT,
        "paged": bool(query.get("cursor")),
        "may_batch": may_batch,
        "batch_actions": [(name, ACTION_WORDS[name][0]) for name in ALERT_ACTIONS],
        "list_url": list_url,
        # The table asks for itself again with the list's filters, whoever asked for it.
        "table_url": url(),
        "first_page_url": url(cursor=None),
        "next_page_url": url(cursor=page.next_cursor),
        "next_url": url(),
        "show_project": request.project is None,
    }
    return context, 422 if errors else 200


@login_required
@require_GET
def alert_list(request):
    """Newest activity first. An htmx request (filters, a page link, the poller, the
    changed event) gets the table, which polls while an alert on it is open and answers
    286 once none is; it still listens for CHANGED_EVENT, so a new alert appears."""
    context, status = _list_context(request)
    if not wants_partial(request):
        context |= _filter_choices(request, context["filters"])
    response = render_page_or_partial(
        request,
        page="alerts/list.html",
        partial="alerts/_table.html",
        context=context,
        status=status,
    )
    if wants_partial(request):
        if triggered_by(request, TABLE_ID):
            if not context["polling"] and status == 200:
                stop_polling(response)
        else:
            kept = [(k, v) for k, v in request.GET.items() if v and k != "project"]
            push_url(response, request.path + (f"?{urlencode(kept)}" if kept else ""))
    return response


def _next_url(request, default: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def _batch_ids(request) -> tuple[list[int], list[dict]]:
    raw = request.POST.getlist("ids")
    bad = [value for value in raw if not value.isdigit()]
    if bad:
        return [], [{"field": "ids", "message": f"{bad[0]!r} is not an alert id"}]
    ids = list(dict.fromkeys(int(value) for value in raw))
    if not ids:
        return [], [{"field": "ids", "message": "choose the alerts to act on"}]
    return ids, []


@login_required
@require_POST
def alert_batch(request):
    """Acknowledge or resolve the ticked alerts, with one comment. Each alert is done on
    its own (a refusal does not stop the others) and the answer says what became of each.
    From htmx, the answer is the table again (with the list's filters); otherwise a
    redirect back to the list."""
    action = request.POST.get("action", "")
    comment = request.POST.get("comment", "").strip()
    ids, errors = _batch_ids(request)
    if action not in ALERT_ACTIONS:
        errors.append({"field": "action", "message": f"one of {', '.join(ALERT_ACTIONS)}"})
    results = []
    if not errors:
        try:
            results = alerts_batch(
                ids=ids, action=action, by=request.user, source="ui", comment=comment
            )
        except ValidationFailed as exc:
            errors = exc.errors or [{"field": "", "message": exc.detail}]
    for error in errors:
        messages.error(request, f"{error['field']}: {error['message']}")
    if results:
        done = [r for r in results if r.ok]
        refused = [r for r in results if not r.ok]
        verb = ACTION_WORDS[action][1]
        if done:
            ids_text = ", ".join(f"#{r.id}" for r in done)
            messages.success(
                request, f"{len(done)} alert{'s' if len(done) != 1 else ''} {verb}: {ids_text}."
            )
        for result in refused:
            messages.error(request, f"Alert #{result.id} not {verb}: {result.message}")
    back = _next_url(request, reverse("alerts:list"))
    if wants_partial(request):
        # The table as the list shows it now: its filters come in `next`.
        context, status = _list_context(request, QueryDict(urlsplit(back).query))
        context["show_messages"] = True
        response = render(request, "alerts/_table.html", context, status=status)
        patch_vary_headers(response, ["HX-Request"])
        trigger_client_event(response, ACTED_EVENT, after="settle")
        return response
    return HttpResponseRedirect(back)


# --- one alert -------------------------------------------------------------------------


@dataclass
class TimelineEntry:
    at: datetime.datetime
    kind: str  # "event" or "delivery"
    item: object


def _timeline(alert: Alert) -> tuple[list[TimelineEntry], bool, bool]:
    """The alert's newest events and deliveries (TIMELINE_ROWS of each) in the order they
    happened (a delivery at its creation); whether older ones were left out, and whether
    a delivery is still pending."""
    events, deliveries, truncated = alert_history(alert, limit=TIMELINE_ROWS)
    labels = dict(AlertEventKind.choices)
    for event in events:
        event.label = labels.get(event.kind, event.kind)
        event.color = EVENT_COLORS.get(event.kind, "gray")
    entries = [TimelineEntry(e.at, "event", e) for e in events]
    entries += [TimelineEntry(d.created_at, "delivery", d) for d in deliveries]
    # Events first at equal times: a delivery follows the event that caused it.
    entries.sort(key=lambda entry: (entry.at, entry.kind != "event", entry.item.pk))
    pending = any(d.state == DeliveryState.PENDING for d in deliveries)
    return entries, truncated, pending


def may_operate(user, alert: Alert) -> bool:
    """Acknowledge and resolve: operators of the alert's project; a system alert (no
    project), superusers."""
    if alert.project_id is None:
        return user.is_superuser
    return has_role(user, alert.project, Role.OPERATOR)


def _alert_or_404(request, alert_id: int) -> Alert:
    try:
        alert = alert_get(user=request.user, alert_id=alert_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    project_page(request, alert.project)
    return alert


def _detail_context(request, alert: Alert) -> dict:
    timeline, truncated, pending = _timeline(alert)
    return {
        "alert": alert,
        "timeline": timeline,
        "timeline_truncated": truncated,
        "timeline_rows": TIMELINE_ROWS,
        "deliveries_pending": pending,
        # Follow while it is open, or while its announcements are still being sent.
        "live": alert.is_open or pending,
        "live_id": LIVE_ID,
        "poll_seconds": LIVE_POLL_SECONDS,
        "may_operate": may_operate(request.user, alert),
        "trigger_label": dict(TriggerType.choices).get(alert.trigger, alert.trigger),
        "tz": alert.project.timezone if alert.project_id else "UTC",
        # A poll that finds the state changed brings the buttons again too.
        "swap_actions": wants_partial(request) and request.GET.get("shown") != alert.state,
    }


@login_required
@require_GET
def alert_detail(request, alert_id: int):
    """The whole page; its live part (state, facts, buttons, timeline) polls this view
    while the alert is open or a delivery is pending, and gets a 286 after."""
    alert = _alert_or_404(request, alert_id)
    context = _detail_context(request, alert)
    response = render_page_or_partial(
        request, page="alerts/detail.html", partial="alerts/_live.html", context=context
    )
    if wants_partial(request) and not context["live"]:
        stop_polling(response)
    return response


@login_required
@require_POST
def alert_operate(request, alert_id: int, action: str):
    """Acknowledge or resolve one alert, with a comment. A refusal (a viewer, an alert
    already resolved) comes back as a message naming why."""
    alert = _alert_or_404(request, alert_id)
    operation = ALERT_ACTIONS[action]
    label, verb = ACTION_WORDS[action]
    try:
        operation(
            alert=alert, by=request.user, source="ui", comment=request.POST.get("comment", "")
        )
    except OpscenterError as exc:
        messages.error(request, f"{label} refused: {exc.detail}")
    else:
        messages.success(request, f"Alert #{alert.pk} {verb}.")
    back = _next_url(request, reverse("alerts:detail", args=[alert.pk]))
    return HttpResponseRedirect(back)


# --- the top bar's badge ---------------------------------------------------------------


@require_GET
def firing_badge(request):
    """The number of firing alerts for the top bar, asked every few seconds. When it
    differs from the number the page shows (`shown`), the answer also triggers
    CHANGED_EVENT, so an open Alerts page fetches its table at once. Signed out (the
    session ended while the page stayed open): an empty 286, so the badge goes away and
    stops asking, instead of a login page swapped into the top bar."""
    if not request.user.is_authenticated:
        return stop_polling(HttpResponse(""))
    count = firing_count_for(request.user)
    response = render(
        request,
        "alerts/_badge.html",
        badge_context(count),
    )
    if request.GET.get("shown", "") != str(count):
        trigger_client_event(response, CHANGED_EVENT)
    patch_vary_headers(response, ["HX-Request"])
    return response


def badge_context(count: int) -> dict:
    return {
        "firing": count,
        "badge_id": BADGE_ID,
        "badge_poll_seconds": BADGE_POLL_SECONDS,
        "acted_event": ACTED_EVENT,
    }
