"""Reads of alerts for the API, the CLI and the pages: who may see which, the filters of
SPEC section 12, and keyset pages newest first over (last_at, id), which the indexes
alert_last_idx and alert_state_last_idx serve."""

from dataclasses import dataclass, fields

from django.db.models import QuerySet

from apps.core.errors import NotFound, ValidationFailed
from apps.core.pagination import Page, keyset_page
from apps.projects.selectors import projects_visible_to

from .choices import AlertState, Severity
from .models import Alert

# The largest id a row can have (a 64-bit integer column): a larger one names nothing, and
# SQLite cannot even be asked about it.
MAX_ID = 2**63 - 1


def alerts_visible_to(user) -> QuerySet[Alert]:
    """Alerts of the projects `user` is a member of; a superuser sees every alert, those
    of no project (system alerts) too."""
    queryset = Alert.objects.select_related("project", "acknowledged_by", "resolved_by")
    if not user.is_authenticated:
        return queryset.none()
    if user.is_superuser:
        return queryset
    return queryset.filter(project__in=projects_visible_to(user))


def alert_get(*, user, alert_id: int) -> Alert:
    """The alert, if `user` may see it: one they may not see does not exist."""
    alert = alerts_visible_to(user).filter(pk=alert_id).first()
    if alert is None:
        raise NotFound(f"alert {alert_id} not found")
    return alert


@dataclass
class AlertFilters:
    """Filters of GET /api/alerts and the Alerts page. Empty strings mean "no filter";
    `rule`, `node` and `instance` are ids."""

    project: str = ""
    state: str = ""
    severity: str = ""
    rule: str = ""
    node: str = ""
    instance: str = ""

    @classmethod
    def from_query(cls, query) -> "AlertFilters":
        return cls(**{f.name: str(query.get(f.name) or "").strip() for f in fields(cls)})


def _refuse(field: str, message: str):
    raise ValidationFailed(f"invalid {field}", [{"field": field, "message": message}])


def alert_filter(queryset: QuerySet[Alert], filters: AlertFilters) -> QuerySet[Alert]:
    if filters.project:
        queryset = queryset.filter(project__code=filters.project)
    if filters.state:
        if filters.state == "open":
            queryset = queryset.filter(state__in=(AlertState.FIRING, AlertState.ACKNOWLEDGED))
        elif filters.state in AlertState.values:
            queryset = queryset.filter(state=filters.state)
        else:
            _refuse("state", f"one of {', '.join(AlertState.values)}, or open")
    if filters.severity:
        if filters.severity not in Severity.values:
            _refuse("severity", f"one of {', '.join(Severity.values)}")
        queryset = queryset.filter(severity=filters.severity)
    for name in ("rule", "node", "instance"):
        value = getattr(filters, name)
        if not value:
            continue
        if not (value.isascii() and value.isdigit()):
            _refuse(name, f"a {name} id (a whole number)")
        if int(value) > MAX_ID:
            return queryset.none()
        queryset = queryset.filter(**{f"{name}_id": int(value)})
    return queryset


def alerts_page(queryset: QuerySet[Alert], *, cursor: str | None, limit: int | str | None) -> Page:
    """One page, the most recently active first."""
    return keyset_page(queryset, cursor=cursor, limit=limit, order_field="last_at")


def firing_count_for(user) -> int:
    """How many alerts `user` may see are firing (the navigation bar's badge)."""
    return alerts_visible_to(user).filter(state=AlertState.FIRING).count()


HISTORY_ROWS = 200


def alert_history(alert: Alert, *, limit: int = HISTORY_ROWS) -> tuple[list, list, bool]:
    """The alert's newest `limit` timeline events and deliveries, each newest first, and
    whether older ones were left out (for its page and its API answer)."""
    from apps.notifications.models import Delivery

    events = list(alert.events.select_related("user").order_by("-at", "-id")[: limit + 1])
    deliveries = list(
        Delivery.objects.filter(alert=alert)
        .select_related("channel")
        .order_by("-created_at", "-id")[: limit + 1]
    )
    truncated = len(events) > limit or len(deliveries) > limit
    return events[:limit], deliveries[:limit], truncated
