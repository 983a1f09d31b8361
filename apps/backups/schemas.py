"""API shapes of backups (SPEC 12)."""

from ninja import Field, Schema

from apps.core.schemas import ErrorItemOut, InputSchema
from apps.projects.schemas import IsoDateTime


class BackupOut(Schema):
    id: int
    created_at: IsoDateTime
    trigger: str = Field(description="scheduled | manual | uploaded")
    state: str = Field(description="running | ready | failed")
    error: str
    size_bytes: int | None
    sha256: str = Field(description="of the whole archive file, as stored")
    projects: list[str]
    expires_at: IsoDateTime
    archived_at: IsoDateTime | None = Field(description="when the archive was made")
    path: str = Field(description="its name in the storage")
    created_by: str | None

    @staticmethod
    def resolve_created_by(obj) -> str | None:
        return obj.created_by.username if obj.created_by_id else None


class BackupList(Schema):
    items: list[BackupOut]
    next_cursor: str | None


class BackupSettingsOut(Schema):
    time: str = Field(description="HH:MM in the server's TIME_ZONE")
    timezone: str
    retention_days: int
    enabled: bool
    next_run: IsoDateTime | None = Field(description="the daily backup's next run")


class BackupSettingsIn(InputSchema):
    time: str | None = Field(None, description="HH:MM in the server's TIME_ZONE")
    retention_days: int | None = Field(None, description="days a backup is kept (1 to 3650)")
    enabled: bool | None = None


class BackupVerifyOut(Schema):
    ok: bool
    message: str


class RestoreIn(InputSchema):
    project: str = Field(description="the project to restore into (admin there)")
    source_project: str | None = Field(
        None,
        description="the backup's project to restore from; default: its only project, or "
        "the one of the target's code",
    )
    dry_run: bool = Field(True, description="answer the diff and change nothing")
    remove_missing: bool = Field(
        False,
        description="take the nodes the backup lacks offline, delete the variables, "
        "baselines, monitoring and field rules it lacks and the project's runtime settings "
        "when it has none",
    )


class KindDiffOut(Schema):
    added: list[str]
    changed: list[str]
    removed: list[str]
    unchanged: list[str]


class FieldChangeOut(Schema):
    field: str
    current: object = None
    archived: object = None


class NodeChangeOut(Schema):
    name: str
    current_version: int | None
    archived_version: int | None
    offline: bool
    fields: list[FieldChangeOut]
    script_diff: str = Field(description="unified diff of the script, current to backup")


class RestoreOut(Schema):
    nodes: KindDiffOut
    variables: KindDiffOut
    datasources: KindDiffOut
    resources: KindDiffOut
    monitor_rules: KindDiffOut
    baselines: KindDiffOut
    field_rules: KindDiffOut
    runtime_config: KindDiffOut = Field(description="the project's runtime settings: key project")
    dry_run: bool
    project: str
    source_project: str
    backup: int | None
    archived_at: str
    errors: list[ErrorItemOut] = Field(
        description="dry run: what the real restore would refuse (empty: it would go through)"
    )
    warnings: list[str]
    node_changes: list[NodeChangeOut] = Field(
        description="dry run: the first 200 changed nodes' field changes and script diffs"
    )
    published: dict[str, list[str]] = Field(description="real restore: the publish's answer")
    offline: list[str] = Field(description="nodes taken offline (remove_missing)")
    restored_without_secret: list[str] = Field(
        description="datasources restored without their password: set it again"
    )
