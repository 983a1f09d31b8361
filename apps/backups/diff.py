"""What a restore would change: pure functions of what the target holds and what the
archive holds, no database, no archive (apps.backups.restore gathers both)."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from apps.core.textdiff import classified, content_text, unified_diff

from .kinds import normalized_spec

# The diff answers SPEC 12's four kinds and the monitoring and runtime configuration
# restored after them; the other kinds are archived for the record.
DIFF_KINDS = (
    "nodes",
    "variables",
    "datasources",
    "resources",
    "monitor_rules",
    "baselines",
    "field_rules",
    "runtime_config",
)


@dataclass
class KindDiff:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
        }

    @property
    def to_write(self) -> list[str]:
        """What a restore writes: what is new and what differs."""
        return self.added + self.changed


def diff_kind(current: Mapping[str, str | None], archived: Mapping[str, str]) -> KindDiff:
    """Compare one kind by key and fingerprint.

    `current`: key -> fingerprint of what the target holds; None for one that is there but
    inactive (an offline node): the archive's record of it brings it back (changed), and
    it is not "removed" when the archive lacks it, since it is already gone.
    `archived`: key -> fingerprint of the archive's records. Each list comes sorted."""
    diff = KindDiff()
    for key, fingerprint in archived.items():
        if key not in current:
            diff.added.append(key)
        elif current[key] is None or current[key] != fingerprint:
            diff.changed.append(key)
        else:
            diff.unchanged.append(key)
    diff.removed = [
        key for key, value in current.items() if value is not None and key not in archived
    ]
    for names in (diff.added, diff.changed, diff.removed, diff.unchanged):
        names.sort()
    return diff


@dataclass
class FieldChange:
    field: str
    current: Any
    archived: Any


@dataclass
class NodeChange:
    """One changed node as the operator reviews it before a restore: the spec fields
    that differ and a unified diff of its script (from what runs now to the archive's)."""

    name: str
    current_version: int | None
    archived_version: int | None
    fields: list[FieldChange]
    script_diff: str
    offline: bool = False

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "current_version": self.current_version,
            "archived_version": self.archived_version,
            "offline": self.offline,
            "fields": [
                {"field": f.field, "current": f.current, "archived": f.archived}
                for f in self.fields
            ],
            "script_diff": self.script_diff,
        }


def node_change(
    *,
    name: str,
    current_spec: dict,
    archived_spec: dict,
    current_version: int | None = None,
    archived_version: int | None = None,
    offline: bool = False,
) -> NodeChange:
    current, archived = normalized_spec(current_spec), normalized_spec(archived_spec)
    fields = []
    for key in sorted(set(current) | set(archived)):
        if key == "content" or current.get(key) == archived.get(key):
            continue
        if key == "schedule":  # one line per part: "schedule.cron 0 2 * * * -> 0 3 * * *"
            for part in sorted(set(current[key] or {}) | set(archived[key] or {})):
                old, new = (current[key] or {}).get(part), (archived[key] or {}).get(part)
                if old != new:
                    fields.append(FieldChange(f"schedule.{part}", old, new))
            continue
        fields.append(FieldChange(key, current.get(key), archived.get(key)))
    before, after = content_text(current.get("content")), content_text(archived.get("content"))
    script_diff = ""
    if before != after:
        script_diff = "\n".join(
            unified_diff(
                before.splitlines(),
                after.splitlines(),
                fromfile=f"{name} (current{f' v{current_version}' if current_version else ''})",
                tofile=f"{name} (backup{f' v{archived_version}' if archived_version else ''})",
            )
        )
    return NodeChange(
        name=name,
        current_version=current_version,
        archived_version=archived_version,
        fields=fields,
        script_diff=script_diff,
        offline=offline,
    )


def classify_diff_lines(text: str) -> list[dict]:
    """A unified diff's lines classed for display: head, hunk, add, del, ctx."""
    return classified(text.splitlines())
