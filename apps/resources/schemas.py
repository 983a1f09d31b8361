"""API shapes for project resources (SPEC section 12, /api/projects/{code}/resources)."""

from ninja import Field, Schema

from apps.projects.schemas import IsoDateTime


class ResourceVersionOut(Schema):
    number: int
    size_bytes: int
    sha256: str = Field(description="hex SHA-256 of the file")
    uploaded_by: str | None
    uploaded_at: IsoDateTime

    @staticmethod
    def resolve_uploaded_by(obj) -> str | None:
        return obj.uploaded_by.username if obj.uploaded_by_id else None


class ProjectResourceOut(Schema):
    name: str
    created_at: IsoDateTime
    created_by: str | None
    latest_version: int | None = Field(description="the version a publish pins now")
    size_bytes: int | None = Field(description="the latest version's size")
    versions: list[ResourceVersionOut] = Field(description="newest first")

    @staticmethod
    def resolve_created_by(obj) -> str | None:
        return obj.created_by.username if obj.created_by_id else None

    @staticmethod
    def resolve_latest_version(obj) -> int | None:
        versions = list(obj.versions.all())
        return versions[0].number if versions else None

    @staticmethod
    def resolve_size_bytes(obj) -> int | None:
        versions = list(obj.versions.all())
        return versions[0].size_bytes if versions else None


class ProjectResourceDetailOut(ProjectResourceOut):
    used_by: list[str] = Field(
        description="online nodes whose current version pins one of its versions "
        "(project.node); deleting the resource is refused while there are any"
    )

    @staticmethod
    def resolve_used_by(obj) -> list[str]:
        return obj.used_by


class ProjectResourceList(Schema):
    items: list[ProjectResourceOut]
    next_cursor: str | None


class ResourceUploadOut(Schema):
    name: str
    version: int
    size_bytes: int
    sha256: str
    uploaded_by: str | None
    uploaded_at: IsoDateTime
    created: bool = Field(
        description="false when the file equals the latest version's (no new version made)"
    )
