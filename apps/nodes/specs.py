"""The canonical shape of a NodeSpec, as stored in NodeVersion.spec.

Publishing validates input into this shape; everything downstream (generation,
execution, diffs, backups) reads only this shape.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

DEFAULT_PRIORITY = 3

# The runtime settings a node may give (SPEC 9). Not given (None), the project's or the
# global runtime configuration applies: apps.configuration.runtime.runtime_for.
RUNTIME_KEYS = (
    "timeout_seconds",
    "timeout_action",
    "retries",
    "retry_interval_seconds",
    "rerun_policy",
)

SPEC_DEFAULTS = {
    "type": "shell",
    "schedule": {"type": "recurring", "cron": ""},
    "upstream": [],
    "self_dependent": False,
    "owner": "",
    "priority": DEFAULT_PRIORITY,
    "resource_group": "default",
    "timeout_seconds": None,
    "timeout_action": None,
    "retries": None,
    "retry_interval_seconds": None,
    "rerun_policy": None,
    "params": {},
    "content": "",
    "datasource": None,
    "cpu": None,
    "memory_mb": None,
    "description": "",
    "paused": False,
}

# Keys a canonical spec holds only when given, so that a node published before the key
# existed keeps its hash (and gets no new version) when it is republished unchanged.
# `group`: the node group it was published with (through the CLI by default the name of
# its pipeline file); Node.group mirrors it.
# `resources`: names of project resources (apps.resources) the attempt finds in its work
# directory; the versions current at publish are pinned with the node version
# (ResourcePin).
SPEC_OPTIONAL_KEYS = ("group", "resources")


def spec_hash(spec: dict, resource_versions: dict[str, int] | None = None) -> str:
    """A stable fingerprint: a node whose spec hash did not change gets no new version.

    `resource_versions` (resource name -> pinned version number) counts too: a spec
    republished after one of its resources got a newer version is a change, and its new
    node version runs the newer file. Without resources the hash is the spec's alone."""
    payload = {**spec, "resource_versions": resource_versions} if resource_versions else spec
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class NodeSpec:
    """A stored spec, typed: what the engine reads of a node version. Built from any
    version's spec (older ones may lack newer keys: those read as not given)."""

    name: str
    type: str
    schedule_type: str
    cron: str
    upstream: tuple[str, ...]
    self_dependent: bool
    owner: str
    priority: int
    resource_group: str
    # Runtime settings: None when the node does not give them (its project's or the
    # global value applies).
    timeout_seconds: int | None
    timeout_action: str | None
    retries: int | None
    retry_interval_seconds: int | None
    rerun_policy: str | None
    params: dict
    content: Any
    datasource: str | None
    cpu: float | None
    memory_mb: int | None
    description: str
    paused: bool
    resources: tuple[str, ...]

    @classmethod
    def from_spec(cls, spec: dict) -> "NodeSpec":
        values = {**SPEC_DEFAULTS, **(spec or {})}
        schedule = values.get("schedule") or {}
        return cls(
            name=values.get("name") or "",
            type=values["type"],
            schedule_type=schedule.get("type") or "",
            cron=schedule.get("cron") or "",
            upstream=tuple(values.get("upstream") or ()),
            self_dependent=bool(values["self_dependent"]),
            owner=values["owner"] or "",
            priority=values["priority"],
            resource_group=values["resource_group"],
            timeout_seconds=values["timeout_seconds"],
            timeout_action=values["timeout_action"],
            retries=values["retries"],
            retry_interval_seconds=values["retry_interval_seconds"],
            rerun_policy=values["rerun_policy"],
            params=dict(values.get("params") or {}),
            content=values.get("content"),
            datasource=values.get("datasource"),
            cpu=values.get("cpu"),
            memory_mb=values.get("memory_mb"),
            description=values.get("description") or "",
            paused=bool(values["paused"]),
            resources=tuple(values.get("resources") or ()),
        )

    def runtime_given(self) -> dict[str, Any]:
        """The runtime settings this node gives itself (its level of SPEC 9)."""
        return {key: getattr(self, key) for key in RUNTIME_KEYS if getattr(self, key) is not None}
