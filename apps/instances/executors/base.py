"""What the worker asks an executor to run, and what it gets back."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Outcome = Literal["succeeded", "failed", "timed_out", "stopped"]

SUCCEEDED: Outcome = "succeeded"
FAILED: Outcome = "failed"
TIMED_OUT: Outcome = "timed_out"
STOPPED: Outcome = "stopped"


@dataclass(frozen=True)
class RunRequest:
    node_type: str  # shell | python | sql | http | virtual
    content: Any  # the script text, already rendered; a dict (or JSON text) for http
    timeout_seconds: float | None  # None (or <= 0): no limit
    # sql only: {"kind": "postgresql", "dsn": ..., "password": ...} or {"kind": "sqlite", "path": ...}
    datasource: dict | None
    env: dict[str, str]  # added to the process environment
    workdir: Path  # created if missing; scripts are written here and run from here
    # False: past its timeout the command goes on (timeout_action alert_only); the
    # executor only notes it in the log.
    timeout_kills: bool = True
    # The tree's summed RSS may not pass this (MiB): over it, the tree is killed and the
    # run fails, saying so. None: no limit.
    memory_limit_mb: int | None = None


@dataclass(frozen=True)
class RunResult:
    outcome: Outcome
    # The root process's exit status: its exit code, or -N when signal N ended it
    # (also after a timeout or stop). None when no process ran (virtual node,
    # refused request, process could not be started).
    exit_code: int | None
    cpu_seconds: float  # user + system of the whole process tree
    peak_memory_mb: float  # highest summed RSS of the process tree
    reason: str  # "" on success, else one short human line
    # Why the executor killed the tree itself: "timeout", "memory"; "" when it did not.
    killed_for: str = ""
