"""Steps that prepare an attempt's work directory before its command starts, which
features register (project resources: apps.resources copies a node version's pinned
files there).

A step gets a PrepareContext and answers None, or raises PreparationFailed: the attempt
then fails with that reason and its command never starts. The engine names none of them;
a feature registers its step in its AppConfig.ready().
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class PrepareContext:
    instance: object  # apps.instances.models.Instance, with project, node and version
    attempt: object  # apps.instances.models.Attempt
    workdir: Path  # the attempt's work directory (handed to OPSCENTER_RUN_AS after)
    line: Callable[[str], None]  # one timestamped line in the attempt's log
    # Call it while a long step works (it sends the attempt's heartbeat); True: stop,
    # the attempt was stopped or declared lost (raise PreparationFailed(outcome="stopped")).
    tick: Callable[[], bool] = lambda: False


class PreparationFailed(Exception):
    """The work directory could not be prepared; `retryable` False when another attempt
    would fail the same way; `outcome` "stopped" when a tick said to stop."""

    def __init__(self, reason: str, *, retryable: bool = True, outcome: str = "failed"):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.outcome = outcome


Prepare = Callable[[PrepareContext], None]

_STEPS: dict[str, Prepare] = {}


def register(name: str, step: Prepare) -> None:
    """Run `step` before every command (again under the same name: replaced)."""
    _STEPS[name] = step


def prepare(context: PrepareContext) -> None:
    """Every registered step in registration order; the first failure ends the round.
    A step that raises anything else fails the attempt saying so (a retry may do better)."""
    for name, step in list(_STEPS.items()):
        try:
            step(context)
        except PreparationFailed:
            raise
        except Exception as exc:
            raise PreparationFailed(f"{name} could not be prepared: {exc}") from exc
