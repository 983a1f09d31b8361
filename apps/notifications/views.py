"""Notification pages: the channels (list, new, edit, Test in place, delete) and the
delivery log. Views parse, call apps.notifications.services and .selectors, render;
the services check roles and write the operation log."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from apps.core.errors import NotFound, OpscenterError, PermissionDenied, ValidationFailed
from apps.core.htmx import render_page_or_partial, stop_polling, wants_partial
from apps.core.pagination import Page, keyset_page
from apps.projects.selectors import projects_visible_to

from . import services
from .choices import ChannelKind, DeliveryState
from .forms import errors_by_field, kind_fields, read_post
from .models import Channel
from .selectors import (
    admin_project_ids,
    channel_changeable,
    channel_get,
    channels_visible_to,
    deliveries_visible_to,
    may_change_channels,
    projects_for_new_channels,
)
from .transports import FieldErrors, transport_for

DELIVERIES_ID = "delivery-table"
DELIVERY_POLL_SECONDS = 5
RECENT_DELIVERIES = 10


def _channel_or_404(request, channel_id: int) -> Channel:
    try:
        return channel_get(user=request.user, channel_id=channel_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc


def _go(request, url: str):
    return HttpResponseClientRedirect(url) if wants_partial(request) else redirect(url)


# --- channels -----------------------------------------------------------------------------


@login_required
@require_GET
def index(request):
    return redirect("notifications:channels")


@login_required
@require_GET
def channel_list(request):
    channels = channels_visible_to(request.user)
    if request.project is not None:
        channels = channels.filter(Q(project=request.project) | Q(project__isnull=True))
    channels = list(channels.order_by("project__code", "name"))
    admin_ids = admin_project_ids(request.user)
    rows = [
        {
            "channel": channel,
            "target": transport_for(channel.kind).describe(channel.config or {}),
            "may_change": channel_changeable(channel, request.user, admin_ids),
        }
        for channel in channels
    ]
    may_create = request.user.is_superuser or bool(admin_ids)
    return render(
        request,
        "notifications/channels.html",
        {"rows": rows, "may_create": may_create},
    )


def _form_context(
    request,
    *,
    kind: str,
    channel: Channel | None,
    data=None,
    errors: list[dict] | None = None,
) -> dict:
    by_field = errors_by_field(errors or [])
    values = {
        "name": channel.name if channel else "",
        "project": channel.project.code if channel and channel.project_id else "",
        "enabled": channel.enabled if channel else True,
    }
    if data is not None:
        values = {
            "name": data.get("name", ""),
            "project": data.get("project", ""),
            "enabled": bool(data.get("enabled")),
        }
    return {
        "channel": channel,
        "kind": kind,
        "kinds": ChannelKind.choices,
        "values": values,
        "fields": kind_fields(kind, channel=channel, data=data, errors=by_field),
        "field_errors": by_field,
        "errors": errors or [],
        "projects": projects_for_new_channels(request.user),
        "may_global": request.user.is_superuser,
        "fields_url": reverse("notifications:channel_fields"),
    }


@login_required
def channel_new(request):
    if not (request.user.is_superuser or projects_for_new_channels(request.user).exists()):
        raise DjangoPermissionDenied("creating channels needs the admin role in a project")
    kind = (request.POST if request.method == "POST" else request.GET).get("kind") or "email"
    if request.method != "POST":
        initial_project = request.project.code if request.project is not None else ""
        context = _form_context(request, kind=kind, channel=None)
        context["values"]["project"] = initial_project
        return render(request, "notifications/channel_new.html", context)
    data = request.POST
    parse_errors = FieldErrors()
    config, secrets = read_post(kind, data, parse_errors)
    errors = parse_errors.items
    if not errors:
        try:
            project = _posted_project(request, data.get("project", ""))
            channel = services.channel_create(
                by=request.user,
                project=project,
                name=data.get("name", ""),
                kind=kind,
                config=config,
                secrets=secrets,
                enabled=bool(data.get("enabled")),
                source="ui",
            )
        except ValidationFailed as exc:
            errors = exc.errors or [{"field": "", "message": exc.detail}]
        except OpscenterError as exc:
            errors = [{"field": "project", "message": exc.detail}]
        else:
            messages.success(request, f"Channel {channel.name} created.")
            return _go(request, reverse("notifications:channel_detail", args=[channel.pk]))
    context = _form_context(request, kind=kind, channel=None, data=data, errors=errors)
    return render_page_or_partial(
        request,
        page="notifications/channel_new.html",
        partial="notifications/_channel_form.html",
        context=context,
        status=422,
    )


def _posted_project(request, code: str):
    if not code:
        return None
    project = projects_visible_to(request.user).filter(code=code).first()
    if project is None:
        raise ValidationFailed(
            "invalid project", [{"field": "project", "message": f"no project {code!r}"}]
        )
    return project


@login_required
def channel_detail(request, channel_id: int):
    """The channel's settings (a form for those who may change it), its Test button and
    its latest deliveries. POST saves the form."""
    channel = _channel_or_404(request, channel_id)
    may_change = may_change_channels(request.user, channel.project)
    status = 200
    if request.method == "POST":
        if not may_change:
            raise Http404("no such channel to change")
        kind = request.POST.get("kind") or channel.kind
        parse_errors = FieldErrors()
        config, secrets = read_post(kind, request.POST, parse_errors)
        errors = parse_errors.items
        if not errors:
            try:
                services.channel_update(
                    channel=channel,
                    by=request.user,
                    fields={
                        "name": request.POST.get("name", ""),
                        "kind": kind,
                        "config": config,
                        "secrets": secrets,
                        "enabled": bool(request.POST.get("enabled")),
                    },
                    source="ui",
                )
            except ValidationFailed as exc:
                errors = exc.errors or [{"field": "", "message": exc.detail}]
            else:
                messages.success(request, f"Channel {channel.name} saved.")
                return _go(request, reverse("notifications:channel_detail", args=[channel.pk]))
        channel.refresh_from_db()
        context = _form_context(
            request, kind=kind, channel=channel, data=request.POST, errors=errors
        )
        status = 422
    else:
        context = _form_context(request, kind=channel.kind, channel=channel)
    context.update(
        {
            "may_change": may_change,
            "target": transport_for(channel.kind).describe(channel.config or {}),
            "readable_config": _readable_config(channel),
            "recent": channel.deliveries.order_by("-id")[:RECENT_DELIVERIES],
        }
    )
    if status == 422 and wants_partial(request):
        return render(request, "notifications/_channel_form.html", context, status=422)
    return render(request, "notifications/channel_detail.html", context, status=status)


def _readable_config(channel: Channel) -> list[tuple[str, str]]:
    """What a reader sees of the settings: every plain key but the URL, whose path and
    query carry robot tokens (the target shows its origin)."""
    rows = []
    for spec in transport_for(channel.kind).form_fields:
        if spec.secret or spec.name == "url":
            continue
        value = (channel.config or {}).get(spec.name)
        if value in (None, "", [], {}):
            continue
        if isinstance(value, list):
            value = ", ".join(value)
        elif isinstance(value, dict):
            value = ", ".join(value)  # header names only
        rows.append((spec.label, str(value)))
    return rows


@login_required
@require_GET
def channel_fields(request):
    """The inputs of the kind chosen in the form (asked by htmx when the kind changes)."""
    kind = request.GET.get("kind", "")
    channel = None
    if request.GET.get("channel", "").isdigit():
        channel = channels_visible_to(request.user).filter(pk=int(request.GET["channel"])).first()
    fields = kind_fields(kind, channel=channel)
    return render(request, "notifications/_kind_fields.html", {"fields": fields, "kind": kind})


@login_required
@require_POST
def channel_test(request, channel_id: int):
    """Send a test message now; an htmx request gets the result in place."""
    channel = _channel_or_404(request, channel_id)
    try:
        delivery = services.channel_test(channel=channel, by=request.user, source="ui")
    except PermissionDenied as exc:
        if wants_partial(request):
            return render(
                request,
                "notifications/_test_result.html",
                {"error": exc.detail, "channel": channel},
                status=403,
            )
        messages.error(request, exc.detail)
        return redirect("notifications:channel_detail", channel.pk)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    if wants_partial(request):
        return render(
            request,
            "notifications/_test_result.html",
            {"delivery": delivery, "channel": channel},
        )
    outcome = (
        delivery.state if not delivery.last_error else f"{delivery.state}: {delivery.last_error}"
    )
    (messages.success if delivery.state == "sent" else messages.error)(
        request, f"Test of {channel.name}: {outcome}"
    )
    return redirect("notifications:channel_detail", channel.pk)


@login_required
@require_POST
def channel_delete(request, channel_id: int):
    channel = _channel_or_404(request, channel_id)
    try:
        services.channel_delete(channel=channel, by=request.user, source="ui")
    except OpscenterError as exc:
        messages.error(request, f"Channel {channel.name} was not deleted: {exc.detail}")
        return _go(request, reverse("notifications:channel_detail", args=[channel.pk]))
    messages.success(request, f"Channel {channel.name} deleted.")
    return _go(request, reverse("notifications:channels"))


# --- deliveries ---------------------------------------------------------------------------


@login_required
@require_GET
def delivery_list(request):
    """Newest first, a keyset page at a time, filtered by state, channel and alert. The
    table polls while a pending delivery is on it (a 286 stops it)."""
    deliveries = deliveries_visible_to(request.user).select_related("channel")
    if request.project is not None:
        deliveries = deliveries.filter(project=request.project)
    filters = {k: request.GET.get(k, "").strip() for k in ("state", "channel", "alert")}
    errors: list[dict] = []
    if filters["state"]:
        if filters["state"] in DeliveryState.values:
            deliveries = deliveries.filter(state=filters["state"])
        else:
            errors.append(
                {"field": "state", "message": "one of " + ", ".join(DeliveryState.values)}
            )
    for name in ("channel", "alert"):
        if filters[name]:
            if filters[name].isdigit():
                deliveries = deliveries.filter(**{f"{name}_id": int(filters[name])})
            else:
                errors.append({"field": name, "message": "an id (a whole number)"})
    page = Page(items=[], next_cursor=None)
    if not errors:
        try:
            page = keyset_page(
                deliveries,
                cursor=request.GET.get("cursor") or None,
                limit=request.GET.get("limit"),
                order_field="id",
            )
        except ValidationFailed as exc:
            errors = exc.errors or [{"field": "", "message": exc.detail}]
    pending = any(d.state == DeliveryState.PENDING for d in page.items)
    channels = channels_visible_to(request.user)
    if request.project is not None:
        channels = channels.filter(Q(project=request.project) | Q(project__isnull=True))
    context = {
        "page": page,
        "errors": errors,
        "filters": filters,
        "states": DeliveryState.choices,
        "channels": channels.order_by("name"),
        "table_id": DELIVERIES_ID,
        "pending": pending,
        "poll_seconds": DELIVERY_POLL_SECONDS,
        "paged": bool(request.GET.get("cursor")),
        "query": urlencode({k: v for k, v in request.GET.items() if v}),
    }
    response = render_page_or_partial(
        request,
        page="notifications/deliveries.html",
        partial="notifications/_deliveries.html",
        context=context,
        status=422 if errors else 200,
    )
    if wants_partial(request) and not pending and not errors:
        stop_polling(response)
    return response
