"""Script parameter substitution (SPEC section 2), done before an attempt runs.

Syntax inside node content:

    ${bizdate}           the business date, YYYYMMDD
    ${cyctime}           the scheduled time in the project timezone, YYYYMMDDHHMMSS
    ${bizdate:FMT}       strftime of the business date, e.g. ${bizdate:%Y-%m-%d}
    ${cyctime:FMT}       strftime of the scheduled time, e.g. ${cyctime:%H:%M}
    ${var.NAME}          a project variable
    ${NAME}              a node parameter (defaults merged with run overrides)
    $${                  a literal "${" (e.g. a bash "$${HOME}" becomes "${HOME}")

Values of node parameters and project variables may themselves contain
references (a parameter `day: ${bizdate:%Y-%m-%d}`); they are resolved too, and
a reference cycle is an error rather than a hang. The built-in names `bizdate`
and `cyctime` always mean the dates, even if a node parameter has that name.

Nothing is ever left half-substituted: any reference that cannot be resolved
raises UnknownParameter, whose message lists every problem of the text at once,
so the attempt fails with one clear log line.
"""

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

BIZDATE_FORMAT = "%Y%m%d"
CYCTIME_FORMAT = "%Y%m%d%H%M%S"

# Alternatives in order: the escape, a complete reference, an opening "${" that is
# never closed on its line (reported, never copied into the output).
_TOKEN = re.compile(r"\$\$\{|\$\{([^{}\n]*)\}|\$\{")


class UnknownParameter(ValueError):
    """The text holds references that cannot be resolved.

    `problems` lists each one as shown in the message, e.g. "${foo}", or
    "${zzz} (in ${day})" for a reference found inside a parameter's value.
    """

    def __init__(self, message: str, problems: list[str]):
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class ParamContext:
    biz_date: datetime.date
    cyctime: datetime.datetime  # aware, in the project timezone
    variables: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)


def render(text: str, ctx: ParamContext) -> str:
    """`text` with every ${...} replaced; raises UnknownParameter listing all failures."""
    resolver = _Resolver(ctx)
    result = resolver.text(text, ())
    resolver.raise_if_failed()
    return result


def render_value(value: Any, ctx: ParamContext) -> Any:
    """render() applied to every string inside nested dicts and lists (e.g. an http spec).

    Dict keys are rendered too (a header name may be a parameter); other scalars
    are returned unchanged. All failures of the whole structure are raised at once.
    """
    resolver = _Resolver(ctx)
    result = resolver.value(value)
    resolver.raise_if_failed()
    return result


@dataclass(frozen=True)
class RunParameter:
    """One node parameter as an instance runs with it."""

    name: str
    value: str
    given: bool  # given when the run was started; otherwise the node's default applied


def run_parameters(*, defaults: Mapping[str, Any], given: Mapping[str, Any]) -> list[RunParameter]:
    """The node parameters an instance runs with, merged as the worker merges them: the
    values given at Run first, then the defaults they did not override, each by name."""
    shown = [RunParameter(str(k), str(v), True) for k, v in sorted(given.items())]
    shown += [
        RunParameter(str(k), str(v), False) for k, v in sorted(defaults.items()) if k not in given
    ]
    return shown


class _Resolver:
    def __init__(self, ctx: ParamContext):
        self.ctx = ctx
        self.unknown: list[str] = []
        self.unterminated: list[str] = []
        self.cycles: list[str] = []

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value, ())
        if isinstance(value, Mapping):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value

    def text(self, text: str, stack: tuple[str, ...]) -> str:
        def replace(match: re.Match) -> str:
            token = match.group(0)
            if token == "$${":
                return "${"
            if match.group(1) is None:
                rest = match.string[match.start() :].split("\n", 1)[0]
                self._note(self.unterminated, _shorten(rest), stack)
                return ""
            return self.reference(match.group(1).strip(), stack)

        return _TOKEN.sub(replace, text)

    def reference(self, expr: str, stack: tuple[str, ...]) -> str:
        shown = "${" + expr + "}"
        name, has_format, fmt = expr.partition(":")
        name = name.strip()
        if name in ("bizdate", "cyctime"):
            moment = self.ctx.biz_date if name == "bizdate" else self.ctx.cyctime
            if not has_format:
                return moment.strftime(BIZDATE_FORMAT if name == "bizdate" else CYCTIME_FORMAT)
            if fmt.strip():
                try:
                    return moment.strftime(fmt)
                except ValueError:  # e.g. a lone surrogate in the format
                    pass
            self._note(self.unknown, shown, stack)  # "${bizdate:}" names no usable format
            return ""
        if name.startswith("var."):
            source, key = self.ctx.variables, name[len("var.") :]
        else:
            source, key = self.ctx.params, name
        if has_format or not key or key not in source:
            self._note(self.unknown, shown, stack)
            return ""
        if shown in stack:
            cycle = " -> ".join([*stack[stack.index(shown) :], shown])
            if cycle not in self.cycles:
                self.cycles.append(cycle)
            return ""
        raw = source[key]
        return self.text("" if raw is None else str(raw), (*stack, shown))

    @staticmethod
    def _note(bucket: list[str], shown: str, stack: tuple[str, ...]) -> None:
        entry = f"{shown} (in {stack[-1]})" if stack else shown
        if entry not in bucket:
            bucket.append(entry)

    def raise_if_failed(self) -> None:
        parts = []
        if self.unknown:
            parts.append("unknown parameter(s): " + ", ".join(self.unknown))
        if self.unterminated:
            parts.append("unterminated parameter(s): " + ", ".join(self.unterminated))
        if self.cycles:
            parts.append("recursive parameter(s): " + ", ".join(self.cycles))
        if parts:
            raise UnknownParameter("; ".join(parts), self.unknown + self.unterminated + self.cycles)


def _shorten(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
