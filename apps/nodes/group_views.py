"""Node group pages: the groups (nodes published with the same `group`, by default their
pipeline file) with their counts, one group's nodes with Pause group, Resume group and
Backfill this group, and the pause and resume actions.

Views parse the request, call apps.nodes.selectors and the group operations of
apps.nodes.operations (which check roles and write the operation log), and render."""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.core.errors import NotFound, OpscenterError
from apps.core.htmx import render_page_or_partial
from apps.core.pagination import keyset_page, view_page
from apps.instances.operations import operate_role
from apps.projects.models import Project
from apps.projects.selectors import has_role, project_get

from . import operations
from .choices import NodeStatus, ScheduleType
from .selectors import group_get, node_groups_page, nodes_visible_to

GROUPS_TABLE_ID = "node-groups"
GROUP_NODES_TABLE_ID = "group-nodes"
GROUP_OPERATIONS = {"pause": operations.group_pause, "resume": operations.group_resume}


@login_required
@require_GET
def node_group_list(request):
    """Every group the user may see (of the project chosen in the switcher), by name."""
    queryset = nodes_visible_to(request.user)
    if request.project is not None:
        queryset = queryset.filter(project=request.project)
    page, errors = view_page(node_groups_page, queryset, request.GET)
    return render_page_or_partial(
        request,
        page="nodes/groups.html",
        partial="nodes/_groups_table.html",
        context={
            "page": page,
            "errors": errors,
            "paged": bool(request.GET.get("cursor")),
            "table_id": GROUPS_TABLE_ID,
        },
        status=422 if errors else 200,
    )


@login_required
@require_GET
def node_group_detail(request, code: str, group: str):
    """The group's counts, its nodes a page at a time (an htmx pager gets the table) and
    its actions for those who may operate every environment it has nodes in."""
    project, row = _group_or_404(request, code, group)
    nodes = nodes_visible_to(request.user).filter(project=project, group=group)
    page, errors = view_page(keyset_page, nodes, request.GET, order_field="name", descending=False)
    envs = set(nodes.order_by().values_list("env", flat=True).distinct())
    context = {
        "project": project,
        "group": row,
        "page": page,
        "errors": errors,
        "paged": bool(request.GET.get("cursor")),
        "table_id": GROUP_NODES_TABLE_ID,
        "can_batch": False,
        # Online nodes that are not paused: what Pause group would pause.
        "pausable": row["nodes"] - row["offline"] - row["paused"],
        "can_operate": all(has_role(request.user, project, operate_role(env)) for env in envs),
        "backfill_url": _backfill_url(nodes),
    }
    return render_page_or_partial(
        request,
        page="nodes/group.html",
        partial="nodes/_table.html",
        context=context,
        status=422 if errors else 200,
    )


@login_required
@require_POST
def node_group_action(request, code: str, group: str, action: str):
    """Pause or resume the whole group; the outcome comes back as a message on its page."""
    project, _ = _group_or_404(request, code, group)
    try:
        results = GROUP_OPERATIONS[action](
            project=project, group=group, by=request.user, source="ui"
        )
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    except OpscenterError as exc:
        messages.error(request, f"Group {group} was not {action}d: {exc.detail}")
    else:
        done = [r for r in results if r.ok and r.message == f"{action}d"]
        refused = [r for r in results if not r.ok]
        text = f"Group {group}: {len(done)} node{'s' if len(done) != 1 else ''} {action}d"
        left = len(results) - len(done) - len(refused)
        if left:
            text += f", {left} {'already paused' if action == 'pause' else 'not paused'}"
        if refused:
            messages.warning(
                request,
                f"{text}; {len(refused)} refused: " + "; ".join(r.message for r in refused[:5]),
            )
        else:
            messages.success(request, f"{text}.")
    return redirect("nodes:group", code=project.code, group=group)


def _group_or_404(request, code: str, group: str) -> tuple[Project, dict]:
    try:
        return project_get(user=request.user, code=code), group_get(
            user=request.user, project_code=code, group=group
        )
    except NotFound as exc:
        raise Http404(exc.detail) from exc


def _backfill_url(nodes) -> str:
    """The New backfill form with the group's nodes that a backfill may name (its online
    recurring nodes) chosen as roots; "" when it has none."""
    ids = list(
        nodes.filter(status=NodeStatus.ONLINE, schedule_type=ScheduleType.RECURRING)
        .order_by("name")
        .values_list("id", flat=True)
    )
    if not ids:
        return ""
    return reverse("backfills:new") + "?" + urlencode([("node", i) for i in ids])
