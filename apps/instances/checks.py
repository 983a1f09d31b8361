"""Checks that run after an attempt's command succeeded, which features register.

A check runs before the attempt is recorded successful, so before the instance's children
are released: a check that fails makes the attempt fail and the downstream waits. The
engine names none of them; a feature registers its check in its AppConfig.ready()
(data quality rules: apps.quality).

A check gets a CheckContext: the instance and attempt, a way to write its own lines in
the attempt's log, the parameter rendering of SPEC section 2 for the instance, and `run`,
which runs a command the way the executors run a node's command (a supervised process
tree, killed when the attempt's timeout passes or an operator stops it). It answers None
(passed) or a CheckFailure (or a reason alone) that the attempt ends with.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .executors import FAILED, RunResult
from .executors.process import Command

logger = logging.getLogger(__name__)


@dataclass
class CheckContext:
    instance: object  # apps.instances.models.Instance, with project, node and version
    attempt: object  # apps.instances.models.Attempt
    workdir: Path  # the attempt's work directory (removed when the attempt ends)
    line: Callable[[str], None]  # one timestamped line in the attempt's log
    write: Callable[[str], None]  # text as it is into the attempt's log
    render: Callable[[str], str]  # ${...} substitution; raises params.UnknownParameter
    # Runs a command to its end under the attempt's watch: `log` gets its output lines.
    run: Callable[[Command, Callable[[str], None]], RunResult]


@dataclass
class CheckFailure:
    reason: str
    # failed | timed_out | stopped: a check whose command was stopped or timed out ends
    # the attempt that way.
    outcome: str = FAILED
    # False when another attempt would fail the same way.
    retryable: bool = True
    killed_for: str = ""


Check = Callable[[CheckContext], CheckFailure | str | None]

_CHECKS: dict[str, Check] = {}


def register(name: str, check: Check) -> None:
    """Run `check` after every successful command (again under the same name: replaced)."""
    _CHECKS[name] = check


def registered() -> list[str]:
    return list(_CHECKS)


def run_checks(context: CheckContext) -> CheckFailure | None:
    """Every registered check in registration order; the first failure ends the round.
    A check that raises fails the attempt saying so (a retry may do better)."""
    for name, check in list(_CHECKS.items()):
        try:
            answer = check(context)
        except Exception as exc:
            logger.exception("check %s failed for attempt %s", name, context.attempt.pk)
            context.line(f"{name}: could not be checked: {exc}")
            return CheckFailure(reason=f"{name} could not be checked: {exc}")
        if answer is None:
            continue
        return CheckFailure(reason=answer) if isinstance(answer, str) else answer
    return None
