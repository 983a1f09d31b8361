"""Reads on project resources."""

from django.db.models import Count, Prefetch, QuerySet

from apps.nodes.choices import NodeStatus
from apps.nodes.models import Node

from .models import Resource, ResourcePin, ResourceVersion


def resources_for_project(project) -> QuerySet[Resource]:
    """The project's resources by name, each with its versions (newest first) prefetched
    and `version_count` annotated."""
    return (
        Resource.objects.filter(project=project)
        .annotate(version_count=Count("versions"))
        .prefetch_related(
            Prefetch(
                "versions",
                queryset=ResourceVersion.objects.select_related("uploaded_by").order_by("-number"),
            )
        )
        .order_by("name", "id")
    )


def resource_latest_versions(project, names) -> dict[str, ResourceVersion]:
    """name -> the latest version of each of `names` that exists in `project` (one query)."""
    latest: dict[str, ResourceVersion] = {}
    for version in (
        ResourceVersion.objects.filter(resource__project=project, resource__name__in=set(names))
        .select_related("resource")
        .order_by("resource_id", "-number")
    ):
        latest.setdefault(version.resource.name, version)
    return latest


def resource_version_open(version: ResourceVersion):
    """The version's file, opened for binary reading from storage; the caller closes it."""
    return version.file.storage.open(version.file.name, "rb")


def resource_pins(node_version) -> list[ResourcePin]:
    """What `node_version` was published with, by name; a pin whose resource was deleted
    since has no resource_version."""
    return list(
        ResourcePin.objects.filter(node_version=node_version)
        .select_related("resource_version__resource")
        .order_by("name")
    )


def pinned_resources(node_version) -> list[ResourceVersion]:
    """The resource versions `node_version` runs with (those still stored), by name."""
    return [pin.resource_version for pin in resource_pins(node_version) if pin.resource_version]


def resource_users(resource: Resource) -> list[Node]:
    """Online nodes whose current version pins a version of `resource`."""
    return list(
        Node.objects.filter(
            status=NodeStatus.ONLINE,
            current_version__resource_pins__resource_version__resource=resource,
        )
        .select_related("project")
        .distinct()
        .order_by("project__code", "env", "name")
    )
