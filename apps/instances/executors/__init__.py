"""Run one attempt of a node: shell, python, sql, http or virtual.

execute() never touches the database: the worker passes callbacks (`log` stores
output, `tick` heartbeats and says whether to stop) and records the RunResult.
Every type but virtual runs as a supervised process tree (see process.py);
sql and http run small runner modules in a subprocess, so a timeout or a stop
kills them the same way as a script, and a datasource password travels only on
the runner's stdin.
"""

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from .base import FAILED, STOPPED, SUCCEEDED, TIMED_OUT, Outcome, RunRequest, RunResult
from .process import Command, RunAsRefused, note, run_as, run_command

__all__ = [
    "FAILED",
    "STOPPED",
    "SUCCEEDED",
    "TIMED_OUT",
    "Outcome",
    "RunRequest",
    "RunResult",
    "RunAsRefused",
    "execute",
    "run_as",
    "runner_command",
]

# The project root, so `python -m apps.instances.executors.<runner>` imports from any cwd.
_PROJECT_ROOT = Path(__file__).resolve().parents[3]
# The worker's own secrets stay out of user scripts.
_SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE|API_?KEY", re.I)
_SECRET_EXACT = {"DATABASE_URL", "REDIS_URL", "OPSCENTER_ENCRYPTION_KEY"}


class Refused(Exception):
    """The request cannot be run at all (bad content, missing datasource)."""


def execute(
    request: RunRequest,
    *,
    log: Callable[[str], None],
    tick: Callable[[], bool],
    on_start: Callable[[int], None] | None = None,
    kill_grace_seconds: float | None = None,
    tag: str = "",
) -> RunResult:
    """Run one attempt to its end; `log` gets text (whole lines), `tick` ~5 times a second.
    The command runs as settings.OPSCENTER_RUN_AS when that is set; `tag` names the run in
    its subreaper's command line (see process.run_command).

    `kill_grace_seconds` overrides settings.OPSCENTER_KILL_GRACE_SECONDS (tests).
    """
    if request.node_type == "virtual":
        log(note("virtual node: nothing to run"))
        return RunResult(SUCCEEDED, None, 0.0, 0.0, "")
    build = _COMMANDS.get(request.node_type)
    try:
        if build is None:
            raise Refused(f"unknown node type {request.node_type!r}")
        user = run_as()
        command = build(request)
    except (Refused, RunAsRefused) as exc:
        log(note(str(exc)))
        return RunResult(FAILED, None, 0.0, 0.0, str(exc))
    return run_command(
        command,
        timeout_seconds=request.timeout_seconds,
        timeout_kills=request.timeout_kills,
        memory_limit_mb=request.memory_limit_mb,
        log=log,
        tick=tick,
        on_start=on_start,
        kill_grace_seconds=kill_grace_seconds,
        user=user,
        tag=tag,
    )


def _worker_environ() -> dict[str, str]:
    """This process's environment without its secrets."""
    return {
        name: value
        for name, value in os.environ.items()
        if name not in _SECRET_EXACT and not _SECRET_NAME.search(name)
    }


def _environment(request: RunRequest, **extra: str) -> dict[str, str]:
    env = _worker_environ()
    env.update(extra)
    env.update({str(k): str(v) for k, v in request.env.items()})
    return env


def _script(request: RunRequest, filename: str) -> Path:
    if not isinstance(request.content, str):
        raise Refused(f"{request.node_type} content must be text")
    request.workdir.mkdir(parents=True, exist_ok=True)
    path = request.workdir / filename
    path.write_text(request.content, encoding="utf-8")
    return path


def _shell(request: RunRequest) -> Command:
    path = _script(request, "script.sh")
    return Command(
        ["bash", "-e", "-o", "pipefail", path.name], request.workdir, _environment(request)
    )


def _python(request: RunRequest) -> Command:
    path = _script(request, "script.py")
    env = _environment(request, PYTHONUNBUFFERED="1")
    return Command([sys.executable, "-u", path.name], request.workdir, env)


def _runner(request: RunRequest, module: str, payload: dict) -> Command:
    return runner_command(
        f"apps.instances.executors.{module}", payload, workdir=request.workdir, env=request.env
    )


def runner_command(module: str, payload: dict, *, workdir: Path, env: dict[str, str]) -> Command:
    """`python -m module` of this project in `workdir`, with `payload` as JSON on its stdin
    (the only place a datasource password travels) and the worker's environment without
    its secrets, plus `env`."""
    workdir.mkdir(parents=True, exist_ok=True)
    environment = _worker_environ()
    environment["PYTHONUNBUFFERED"] = "1"
    environment.update({str(k): str(v) for k, v in env.items()})
    # After `env`: the runner must import from here whatever the node sets.
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(_PROJECT_ROOT), environment.get("PYTHONPATH")])
    )
    argv = [sys.executable, "-u", "-m", module]
    return Command(argv, workdir, environment, stdin=json.dumps(payload).encode())


def _sql(request: RunRequest) -> Command:
    if not isinstance(request.content, str):
        raise Refused("sql content must be text")
    datasource = request.datasource
    if not datasource:
        raise Refused("sql node has no datasource")
    if datasource.get("kind") not in ("postgresql", "sqlite"):
        raise Refused(f"unsupported datasource kind {datasource.get('kind')!r}")
    return _runner(request, "sql_runner", {"datasource": datasource, "sql": request.content})


def _http(request: RunRequest) -> Command:
    content = request.content
    if isinstance(content, str):
        try:
            content = json.loads(content)
        except ValueError as exc:
            raise Refused(f"http content is not a JSON object: {exc}") from exc
    if not isinstance(content, dict):
        raise Refused("http content must be an object with a url")
    return _runner(request, "http_runner", {"request": content})


_COMMANDS: dict[str, Callable[[RunRequest], Command]] = {
    "shell": _shell,
    "python": _python,
    "sql": _sql,
    "http": _http,
}
