"""/api/projects/{code}/resources: a project's files, with their versions.

Viewers list and download; developers (and above) upload; admins delete. A project one
is not a member of answers 404.
"""

from ninja import File, Form, Query, Router, Status
from ninja.files import UploadedFile

from apps.core.pagination import keyset_page
from apps.core.schemas import PageQuery, errors
from apps.projects.choices import Role
from apps.projects.permissions import require_role
from apps.projects.selectors import project_get

from . import services
from .http import resource_version_download
from .schemas import (
    ProjectResourceDetailOut,
    ProjectResourceList,
    ResourceUploadOut,
)
from .selectors import resource_get, resource_users, resource_version_get, resources_for_project

router = Router(tags=["resources"])
SOURCE = "api"


def _project_for(request, code: str, role: str = Role.VIEWER):
    project = project_get(user=request.user, code=code)
    require_role(request.user, project, role)
    return project


@router.get("/{code}/resources", response=ProjectResourceList, summary="A project's resources")
def resource_list(request, code: str, query: Query[PageQuery]):
    project = _project_for(request, code)
    page = keyset_page(
        resources_for_project(project),
        cursor=query.cursor,
        limit=query.limit,
        order_field="name",
        descending=False,
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.post(
    "/{code}/resources",
    response={200: ResourceUploadOut, 201: ResourceUploadOut},
    summary="Upload a file (developer): multipart `file`, and `name` (default: the file's "
    "name). An existing name gets a new version (201); the same content as its latest "
    "version makes none (200)",
)
def resource_upload(
    request,
    code: str,
    file: File[UploadedFile] = None,
    name: Form[str] = None,
):
    project = _project_for(request, code, Role.DEVELOPER)
    if not name and file is not None:
        name = file.name
    version = services.resource_upload(
        project=project, name=name or "", fileobj=file, user=request.user, source=SOURCE
    )
    return Status(201 if version.is_new else 200, _upload_out(version))


def _upload_out(version) -> dict:
    return {
        "name": version.resource.name,
        "version": version.number,
        "size_bytes": version.size_bytes,
        "sha256": version.sha256,
        "uploaded_by": version.uploaded_by.username if version.uploaded_by_id else None,
        "uploaded_at": version.uploaded_at,
        "created": version.is_new,
    }


@router.get("/{code}/resources/{name}", response=ProjectResourceDetailOut)
def resource_detail(request, code: str, name: str):
    project = _project_for(request, code)
    resource = resource_get(project=project, name=name)
    resource.used_by = [str(node) for node in resource_users(resource)]
    return resource


@router.get(
    "/{code}/resources/{name}/download",
    response={200: None},
    summary="Download a version's file (`?version=N`; the latest by default)",
)
def resource_download(request, code: str, name: str, version: int | None = None):
    project = _project_for(request, code)
    resource = resource_get(project=project, name=name)
    return resource_version_download(resource_version_get(resource=resource, number=version))


@router.delete(
    "/{code}/resources/{name}",
    response={204: None, **errors(409)},
    summary="Delete a resource with every version (admin); 409 while a published node uses it",
)
def resource_delete(request, code: str, name: str):
    project = _project_for(request, code, Role.ADMIN)
    resource = resource_get(project=project, name=name)
    services.resource_delete(resource=resource, user=request.user, source=SOURCE)
    return Status(204, None)
