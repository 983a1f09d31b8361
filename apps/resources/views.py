"""A project's resources page (/projects/<code>/resources/): the files with their
versions, a drag-and-drop upload (developers), downloads (everyone in the project) and
delete (admins, refused while a published node uses the file).

Views parse the form, call apps.resources.services (as the API does) and render. A
project one is not a member of is a 404.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.errors import NotFound, OpscenterError
from apps.core.forms import refusal_errors
from apps.core.htmx import render_page_or_partial
from apps.core.pagination import keyset_page, view_page
from apps.projects.choices import ROLE_RANK, Role
from apps.projects.views import project_context, refused_form, require_role

from . import services
from .http import resource_version_download
from .selectors import resource_get, resource_users, resource_version_get, resources_for_project

SOURCE = "ui"
UPLOAD_FIELDS = ("name", "file")


def _resource_or_404(project, name: str):
    try:
        return resource_get(project=project, name=name)
    except NotFound as exc:
        raise Http404(exc.detail) from exc


def _context(request, code: str) -> dict:
    context = project_context(request, code)
    context["may_upload"] = ROLE_RANK[context["role"]] >= ROLE_RANK[Role.DEVELOPER]
    return context


@login_required
@require_http_methods(["GET", "POST"])
def resource_list(request, code: str):
    """The project's resources; POST uploads a file (developer): a new resource, or a new
    version of the one of that name."""
    context = _context(request, code)
    project = context["project"]
    errors, status, name = [], 200, ""
    if request.method == "POST":
        require_role(context, Role.DEVELOPER)
        upload = request.FILES.get("file")
        name = (request.POST.get("name") or "").strip()
        try:
            version = services.resource_upload(
                project=project,
                name=name or (upload.name if upload else ""),
                fileobj=upload,
                user=request.user,
                source=SOURCE,
            )
        except OpscenterError as exc:
            errors, status = refusal_errors(exc), 422
        else:
            resource = version.resource.name
            messages.success(
                request,
                f"Uploaded {resource} as version {version.number}."
                if version.is_new
                else f"{resource} is unchanged: the file equals version {version.number}.",
            )
            return redirect("project_resources:list", code)
    page, page_errors = view_page(
        keyset_page,
        resources_for_project(project),
        request.GET,
        order_field="name",
        descending=False,
    )
    context.update(
        {
            "tab": "resources",
            "page": page,
            "paged": bool(request.GET.get("cursor")),
            "page_errors": page_errors,
            "values": {"name": name},
            "max_bytes": settings.OPSCENTER_RESOURCE_MAX_BYTES,
            "form_open": bool(errors),
            **refused_form(errors, UPLOAD_FIELDS),
        }
    )
    if page_errors and status == 200:
        status = 422
    return render_page_or_partial(
        request,
        page="resources/list.html",
        partial="resources/_table.html",
        context=context,
        status=status,
    )


@login_required
@require_GET
def resource_detail(request, code: str, name: str):
    """A resource's versions with their downloads, the nodes that use it, and Delete."""
    context = _context(request, code)
    resource = _resource_or_404(context["project"], name)
    context.update(
        {
            "tab": "resources",
            "resource": resource,
            "versions": list(resource.versions.all()),
            "used_by": resource_users(resource),
        }
    )
    return render(request, "resources/detail.html", context)


@login_required
@require_GET
def resource_download(request, code: str, name: str):
    """A version's file (`?version=N`; the latest by default)."""
    context = _context(request, code)
    resource = _resource_or_404(context["project"], name)
    number = request.GET.get("version") or None
    if number is not None and not number.isdigit():
        raise Http404(f"no version {number!r} of {name}")
    try:
        version = resource_version_get(
            resource=resource, number=int(number) if number is not None else None
        )
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    return resource_version_download(version)


@login_required
@require_POST
def resource_delete(request, code: str, name: str):
    """Delete with every version (admin); refused while a published node uses it."""
    context = _context(request, code)
    require_role(context, Role.ADMIN)
    resource = _resource_or_404(context["project"], name)
    try:
        services.resource_delete(resource=resource, user=request.user, source=SOURCE)
    except OpscenterError as exc:
        messages.error(request, f"Resource {name} was not deleted: {exc.detail}")
        return redirect("project_resources:detail", code, name)
    messages.success(request, f"Resource {name} deleted.")
    return redirect("project_resources:list", code)
