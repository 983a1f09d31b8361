"""The canonical shape of a NodeSpec, as stored in NodeVersion.spec.

Publishing validates input into this shape; everything downstream (generation,
execution, diffs, backups) reads only this shape.
"""

import hashlib
import json

DEFAULT_PRIORITY = 3
DEFAULT_TIMEOUT_SECONDS = 3600
DEFAULT_RETRY_INTERVAL_SECONDS = 60

SPEC_DEFAULTS = {
    "type": "shell",
    "schedule": {"type": "recurring", "cron": ""},
    "upstream": [],
    "self_dependent": False,
    "owner": "",
    "priority": DEFAULT_PRIORITY,
    "resource_group": "default",
    "timeout_seconds": DEFAULT_TIMEOUT_SECONDS,
    "retries": 0,
    "retry_interval_seconds": DEFAULT_RETRY_INTERVAL_SECONDS,
    "params": {},
    "content": "",
    "datasource": None,
    "cpu": None,
    "memory_mb": None,
    "description": "",
    "paused": False,
}


def spec_hash(spec: dict) -> str:
    """A stable fingerprint: a node whose spec hash did not change gets no new version."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()
