"""Global search from the top bar: an instance id opens the instance, a biz date
(YYYY-MM-DD or YYYYMMDD) the instance list of that date, a node name the node; anything
else lists the matching nodes. Only what the user may see is found, and the completion
endpoint lists matching visible nodes as the user types."""

import datetime
import re
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.db.models import Case, IntegerField, Value, When
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from apps.nodes.selectors import nodes_visible_to

from .selectors import instances_visible_to

COMPLETIONS = 10
RESULTS = 50
_DATE = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")
_INSTANCE = re.compile(r"^#?(\d{1,18})$")


def _as_date(query: str) -> datetime.date | None:
    match = _DATE.match(query)
    if not match:
        return None
    try:
        return datetime.date(*(int(part) for part in match.groups()))
    except ValueError:
        return None


def _matching_nodes(user, query: str, limit: int):
    """Visible nodes whose name contains `query`: exact name first, then prefixes."""
    return (
        nodes_visible_to(user)
        .filter(name__icontains=query)
        .select_related("project")
        .annotate(
            rank=Case(
                When(name__iexact=query, then=Value(0)),
                When(name__istartswith=query, then=Value(1)),
                default=Value(2),
                output_field=IntegerField(),
            )
        )
        .order_by("rank", "name", "project__code", "env")[:limit]
    )


@login_required
@require_GET
def search(request):
    query = request.GET.get("q", "").strip()
    context = {"q": query, "nodes": [], "message": ""}
    if not query:
        context["message"] = "Type an instance id, a node name or a biz date (YYYY-MM-DD)."
        return render(request, "instances/search.html", context, status=422)
    day = _as_date(query)
    # A date-shaped number (20261121) is a biz date; "#20261121" asks for the instance.
    if day is not None and not query.startswith("#"):
        return redirect(reverse("instances:list") + "?" + urlencode({"biz_date": day.isoformat()}))
    match = _INSTANCE.match(query)
    if match:
        instance_id = int(match.group(1))
        if instances_visible_to(request.user).filter(pk=instance_id).exists():
            return redirect("instances:detail", instance_id=instance_id)
        context["message"] = f"No instance {instance_id} that you may see."
    nodes = list(_matching_nodes(request.user, query, RESULTS))
    exact = [n for n in nodes if n.name.lower() == query.lower()]
    if len(exact) == 1:
        return redirect("nodes:detail", node_id=exact[0].id)
    context["nodes"] = nodes
    if not nodes and not context["message"]:
        context["message"] = f"Nothing matches {query!r}."
    return render(request, "instances/search.html", context)


@login_required
@require_GET
def search_nodes(request):
    """The completion list under the search box (htmx): matching visible nodes."""
    query = request.GET.get("q", "").strip()
    nodes = list(_matching_nodes(request.user, query, COMPLETIONS)) if query else []
    return render(
        request,
        "instances/_search_nodes.html",
        {"q": query, "nodes": nodes, "day": _as_date(query), "instance": _INSTANCE.match(query)},
    )
