"""Issue 13, finding 2 (and the parent side of finding 4), against real processes: every
process of an attempt dies with its worker, grandchildren re-parented away included, and
the process a job sees as its parent carries none of the worker's secrets."""

import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

from apps.instances.executors import RunRequest, execute

ROOT = Path(__file__).resolve().parents[2]

# Both kinds of escape the issue names: a shell script's `sh -c` whose parent is gone (and
# one in a session of its own), and a Python script's subprocess.run.
SHELL_JOB = """\
sh -c 'sleep 300 & echo $! > sh-grandchild.pid; wait' &
setsid sh -c 'echo $$ > own-session.pid; exec sleep 300' &
echo started > started
wait
"""
PYTHON_JOB = """\
import subprocess, sys
code = "import os, time; open('py-grandchild.pid', 'w').write(str(os.getpid())); time.sleep(300)"
open("started", "w").write("started")
subprocess.run([sys.executable, "-c", code])
"""

WORKER = """\
import json, sys
from pathlib import Path
import django
django.setup()
from apps.instances.executors import RunRequest, execute
node_type, content, workdir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
request = RunRequest(node_type, content, None, None, {}, workdir)
def on_start(pid):
    (workdir / "subreaper.pid").write_text(str(pid))
log = open(workdir / "log.txt", "a")
def write(text):
    log.write(text)
    log.flush()
execute(request, log=write, tick=lambda: False, on_start=on_start, kill_grace_seconds=0.5)
"""


def start_worker(node_type: str, content: str, workdir: Path, **env: str) -> psutil.Popen:
    return psutil.Popen(
        [sys.executable, "-c", WORKER, node_type, content, str(workdir)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


def wait_until(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def pids_in(workdir: Path, *names: str) -> list[int]:
    for name in names:
        wait_until(lambda n=name: (workdir / n).exists() and (workdir / n).read_text(), 20, name)
    return [int((workdir / name).read_text()) for name in names]


@pytest.mark.parametrize(
    "node_type, content, pid_files",
    [
        ("shell", SHELL_JOB, ["sh-grandchild.pid", "own-session.pid"]),
        ("python", PYTHON_JOB, ["py-grandchild.pid"]),
    ],
)
def test_every_process_of_an_attempt_dies_with_its_worker(tmp_path, node_type, content, pid_files):
    worker = start_worker(node_type, content, tmp_path)
    try:
        grandchildren = pids_in(tmp_path, *pid_files)
        (subreaper,) = pids_in(tmp_path, "subreaper.pid")
        tree = {p.pid for p in psutil.Process(subreaper).children(recursive=True)}
        assert set(grandchildren) <= tree
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    # The subreaper notices its worker is gone and takes every process of the job along;
    # it exits last, so its being gone means the whole tree is.
    wait_until(lambda: gone(subreaper), 10, "the subreaper outlived its worker")
    assert all(gone(pid) for pid in grandchildren), "a grandchild outlived its worker"


def test_the_jobs_parent_carries_none_of_the_workers_secrets(tmp_path):
    secrets = {
        "DATABASE_URL": "postgresql://opscenter:db-password-31337@db.example/opscenter",
        "SECRET_KEY": "secret-key-value-31337",
        "OPSCENTER_ENCRYPTION_KEY": "l3Ysm8EV1cMR0bIc1RmbrfRnoPWCaP-S0iqmcsLzrWk=",
    }
    job = (
        'echo "parent is $PPID"\n'
        "tr '\\0' '\\n' < /proc/$PPID/environ || echo 'parent environment unreadable'\n"
        "tr '\\0' '\\n' < /proc/$PPID/cmdline\n"
        "echo done\n"
    )
    worker = start_worker("shell", job, tmp_path, **secrets)
    worker.wait(60)
    log = (tmp_path / "log.txt").read_text()
    assert "done" in log, log
    (subreaper,) = pids_in(tmp_path, "subreaper.pid")
    assert f"parent is {subreaper}" in log
    for name, value in secrets.items():
        assert value not in log, f"the job read {name} from its parent"


def test_the_subreaper_gives_the_command_its_stdin_and_environment(tmp_path):
    chunks: list[str] = []
    request = RunRequest(
        node_type="http",
        content={"url": "http://127.0.0.1:9/", "timeout_seconds": 1},
        timeout_seconds=30,
        datasource=None,
        env={"OPSCENTER_NODE": "n1"},
        workdir=tmp_path,
    )
    result = execute(request, log=chunks.append, tick=lambda: False, kill_grace_seconds=0.5)
    # The runner got its payload on stdin through the subreaper (it tried the URL).
    assert result.outcome == "failed"
    assert "127.0.0.1:9" in "".join(chunks)
