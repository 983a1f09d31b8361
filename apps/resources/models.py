"""Project resources: named files (scripts, jars, reference data) with versions.

The files live in Django's default storage (a local directory or any django-storages
backend, see STORAGES in settings); the rows record where, how big and their SHA-256.
"""

import posixpath
import secrets

from django.conf import settings
from django.db import models


def resource_file_path(version: "ResourceVersion", filename: str) -> str:
    """resources/<project>/<name>/<number>-<random>/<name>: the file keeps its resource's
    name, and the random part keeps a new project of a deleted one's code (or a version
    number that was used before) from landing on a file that is still being removed."""
    resource = version.resource
    return posixpath.join(
        "resources",
        resource.project.code,
        resource.name,
        f"{version.number}-{secrets.token_hex(4)}",
        resource.name,
    )


class Resource(models.Model):
    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="resources"
    )
    # The file name a node finds in its working directory (validated by the services).
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="uniq_project_resource")
        ]
        ordering = ["project", "name"]

    def __str__(self) -> str:
        return f"{self.project.code}/{self.name}"


class ResourceVersion(models.Model):
    """One uploaded file of a resource; never changed once stored."""

    resource = models.ForeignKey(Resource, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    file = models.FileField(upload_to=resource_file_path, max_length=500)
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    uploaded_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["resource", "number"], name="uniq_resource_version")
        ]
        ordering = ["resource", "-number"]

    def __str__(self) -> str:
        return f"{self.resource} v{self.number}"


class ResourcePin(models.Model):
    """A node version runs with exactly these resource versions, chosen at its publish.

    `name` and `number` stay when the resource is deleted later (`resource_version`
    becomes null): an attempt of that old version then fails naming what is missing
    instead of running without the file."""

    node_version = models.ForeignKey(
        "nodes.NodeVersion", on_delete=models.CASCADE, related_name="resource_pins"
    )
    resource_version = models.ForeignKey(
        ResourceVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="pins"
    )
    name = models.CharField(max_length=200)
    number = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["node_version", "name"], name="uniq_resource_pin")
        ]
        ordering = ["node_version", "name"]

    def __str__(self) -> str:
        return f"{self.node_version} uses {self.name} v{self.number}"
