"""Reads on project resources."""

from django.db.models import Count, OuterRef, Prefetch, QuerySet, Subquery

from apps.core.errors import NotFound
from apps.nodes.choices import NodeStatus
from apps.nodes.models import Node

from .models import Resource, ResourcePin, ResourceVersion


def resources_for_project(project) -> QuerySet[Resource]:
    """The project's resources by name, each with its versions (newest first) prefetched
    and `version_count` annotated."""
    return (
        Resource.objects.filter(project=project)
        .select_related("created_by")
        .annotate(version_count=Count("versions"))
        .prefetch_related(
            Prefetch(
                "versions",
                queryset=ResourceVersion.objects.select_related("uploaded_by").order_by("-number"),
            )
        )
        .order_by("name", "id")
    )


def resource_latest_versions(project, names, *, lock: bool = False) -> dict[str, ResourceVersion]:
    """name -> the latest version of each of `names` that exists in `project`.

    `lock` (inside a transaction) holds the resources' rows until it ends, so a delete
    of one waits and then sees the node versions that pin it (publishing does this)."""
    names = set(names)
    if lock:
        list(
            Resource.objects.select_for_update()
            .filter(project=project, name__in=names)
            .order_by("id")
            .values_list("id", flat=True)
        )
    newest = ResourceVersion.objects.filter(resource=OuterRef("resource")).order_by("-number")
    return {
        version.resource.name: version
        for version in ResourceVersion.objects.filter(
            resource__project=project,
            resource__name__in=names,
            number=Subquery(newest.values("number")[:1]),
        ).select_related("resource")
    }


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


def resource_get(*, project, name: str) -> Resource:
    """The project's resource of that name, its versions prefetched (NotFound if none)."""
    resource = resources_for_project(project).filter(name=name).first()
    if resource is None:
        raise NotFound(f"no resource {name!r} in project {project.code!r}")
    return resource


def resource_version_get(*, resource: Resource, number: int | None = None) -> ResourceVersion:
    """Version `number` of the resource, its latest when None."""
    versions = resource.versions.select_related("resource__project")
    version = (
        versions.order_by("-number").first()
        if number is None
        else versions.filter(number=number).first()
    )
    if version is None:
        raise NotFound(
            f"resource {resource.name!r} has no version {number}"
            if number is not None
            else f"resource {resource.name!r} has no version",
            [{"field": "version", "message": "no such version"}] if number is not None else [],
        )
    return version
