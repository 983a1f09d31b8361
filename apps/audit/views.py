"""The operation log page (filters, keyset pages) and its CSV export."""

import csv
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from apps.core.errors import ValidationFailed
from apps.core.pagination import parse_limit, view_page
from apps.projects.selectors import projects_visible_to

from .choices import Result, Source
from .selectors import (
    FILTER_FIELDS,
    OperationFilters,
    operation_filter,
    operations_export,
    operations_page,
    operations_visible_to,
)

CSV_COLUMNS = [
    "id",
    "created_at",
    "username",
    "source",
    "action",
    "object_type",
    "object_id",
    "project",
    "result",
    "message",
]


def _queryset(request, filters: OperationFilters):
    queryset = operations_visible_to(request.user).select_related("project")
    if request.project is not None:
        queryset = queryset.filter(project=request.project)
    return operation_filter(queryset, filters)


@login_required
@require_GET
def operation_list(request):
    filters = OperationFilters.from_query(request.GET)
    page, errors = view_page(operations_page, lambda: _queryset(request, filters), request.GET)
    kept = {k: v for k, v in request.GET.items() if v and k in (*FILTER_FIELDS, "limit")}
    list_url = reverse("audit:list")

    def url(base: str = list_url, **changes) -> str:
        params = {k: v for k, v in {**kept, **changes}.items() if v}
        return base + (f"?{urlencode(params)}" if params else "")

    context = {
        "page": page,
        "operations": page.items,
        "filters": filters,
        "errors": errors,
        "list_url": list_url,
        "first_page_url": url(),
        "next_page_url": url(cursor=page.next_cursor) if page.next_cursor else "",
        "paged": bool(request.GET.get("cursor")),
        "export_url": url(reverse("audit:export")),
        "result_choices": Result.choices,
        "source_choices": Source.choices,
        "project_choices": list(
            projects_visible_to(request.user).order_by("code").values_list("code", "name")
        ),
        "show_project": request.project is None,
    }
    return render(request, "audit/list.html", context, status=422 if errors else 200)


class _Echo:
    def write(self, value):
        return value


@login_required
@require_GET
def operation_export(request):
    """Every entry the filters match, as CSV, streamed row by row."""
    filters = OperationFilters.from_query(request.GET)
    try:
        if request.GET.get("limit"):
            parse_limit(request.GET.get("limit"))
        queryset = _queryset(request, filters)
    except ValidationFailed as exc:
        lines = [f"{e['field']}: {e['message']}" for e in exc.errors or []] or [exc.detail]
        return HttpResponse(
            "\n".join(lines) + "\n", status=422, content_type="text/plain; charset=utf-8"
        )
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(CSV_COLUMNS)
        for entry in operations_export(queryset):
            yield writer.writerow(
                [
                    entry.id,
                    entry.created_at.isoformat(),
                    entry.username,
                    entry.source,
                    entry.action,
                    entry.object_type,
                    entry.object_id,
                    entry.project.code if entry.project else "",
                    entry.result,
                    entry.message,
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="operations.csv"'
    return response
