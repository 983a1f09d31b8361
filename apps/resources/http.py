"""A resource version's file as an HTTP download, for the API and the pages alike."""

from django.http import FileResponse

from .models import ResourceVersion
from .selectors import resource_version_open


def resource_version_download(version: ResourceVersion) -> FileResponse:
    """Streamed from storage as an attachment named after the resource, with its
    version and SHA-256 in headers a script can check."""
    response = FileResponse(
        resource_version_open(version),
        as_attachment=True,
        filename=version.resource.name,
        content_type="application/octet-stream",
    )
    response["Content-Length"] = str(version.size_bytes)
    response["X-Resource-Version"] = str(version.number)
    response["X-Resource-SHA256"] = version.sha256
    return response
