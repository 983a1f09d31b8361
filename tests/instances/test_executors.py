"""The executors against real processes, databases and an HTTP server (no mocks)."""

import json
import os
import signal
import sqlite3
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg import conninfo

from apps.instances.executors import RunRequest, RunResult, execute

GRACE = 0.5  # seconds between SIGTERM and SIGKILL in these tests


def run(
    node_type: str,
    content,
    workdir: Path,
    *,
    timeout: float | None = 30,
    datasource: dict | None = None,
    env: dict | None = None,
    tick=None,
    on_start=None,
) -> tuple[RunResult, str]:
    chunks: list[str] = []
    request = RunRequest(
        node_type=node_type,
        content=content,
        timeout_seconds=timeout,
        datasource=datasource,
        env=env or {},
        workdir=workdir,
    )
    result = execute(
        request,
        log=chunks.append,
        tick=tick or (lambda: False),
        on_start=on_start,
        kill_grace_seconds=GRACE,
    )
    assert all(chunk.endswith("\n") for chunk in chunks), chunks
    return result, "".join(chunks)


def gone(pid: int) -> bool:
    """Not running any more (a zombie waiting for init to reap it counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_for_file(path: Path, deadline_seconds: float = 20) -> str:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        time.sleep(0.02)
    raise AssertionError(f"{path} was never written")


# --- shell and python --------------------------------------------------------------


def test_shell_success_logs_output_lines_in_order(tmp_path):
    script = (
        'for i in $(seq 1 300); do echo "line $i"; done\necho "to stderr" >&2\necho "cwd=$PWD"\n'
    )
    result, log = run("shell", script, tmp_path)
    assert result.outcome == "succeeded"
    assert result.exit_code == 0
    assert result.reason == ""
    lines = log.splitlines()
    assert lines[:300] == [f"line {i}" for i in range(1, 301)]
    assert lines[300:302] == ["to stderr", f"cwd={tmp_path}"]
    assert lines[-1] == "[opscenter] exited with code 0"


def test_shell_failure_reports_the_exit_code(tmp_path):
    result, log = run("shell", "echo before\nexit 3\necho never\n", tmp_path)
    assert (result.outcome, result.exit_code, result.reason) == ("failed", 3, "exited with code 3")
    assert "before" in log
    assert "never" not in log
    assert "[opscenter] failed: exited with code 3" in log


def test_shell_stops_at_the_first_failing_command_and_pipe(tmp_path):
    result, log = run("shell", "false\necho after-false\n", tmp_path)
    assert result.outcome == "failed"
    assert "after-false" not in log
    result, log = run("shell", "false | cat\necho after-pipe\n", tmp_path)
    assert result.outcome == "failed"
    assert "after-pipe" not in log


def test_shell_killed_by_a_signal_has_a_negative_exit_code(tmp_path):
    result, _ = run("shell", "kill -KILL $$\n", tmp_path)
    assert (result.outcome, result.exit_code) == ("failed", -9)
    assert result.reason == "killed by signal SIGKILL"


def test_python_success_and_failure(tmp_path):
    result, log = run("python", "import sys\nprint('hello', sys.argv[0])\n", tmp_path)
    assert result.outcome == "succeeded"
    assert "hello script.py" in log

    result, log = run("python", "print('start')\nraise RuntimeError('boom')\n", tmp_path)
    assert (result.outcome, result.exit_code) == ("failed", 1)
    assert "start" in log
    assert "RuntimeError: boom" in log


def test_python_stdout_and_stderr_interleave_in_order(tmp_path):
    script = "import sys\nfor i in range(50):\n    print(f'out {i}')\n    print(f'err {i}', file=sys.stderr)\n"
    result, log = run("python", script, tmp_path)
    assert result.outcome == "succeeded"
    expected = [line for i in range(50) for line in (f"out {i}", f"err {i}")]
    assert log.splitlines()[:-1] == expected


def test_partial_last_line_and_invalid_utf8_are_kept(tmp_path):
    result, log = run(
        "shell", "printf 'caf\\xc3\\xa9 \\xff\\xfe\\n'\nprintf 'no newline'\n", tmp_path
    )
    assert result.outcome == "succeeded"
    assert "café \ufffd\ufffd\n" in log
    assert "no newline\n[opscenter]" in log


def test_environment_has_request_env_but_not_worker_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("OPSCENTER_TEST_SECRET_KEY", "s3cret-value")
    monkeypatch.setenv("SOME_PASSWORD", "pw-value")
    monkeypatch.setenv("HARMLESS_SETTING", "visible")
    result, log = run("shell", "env\n", tmp_path, env={"BIZDATE": "20261121"})
    assert result.outcome == "succeeded"
    assert "BIZDATE=20261121" in log
    assert "HARMLESS_SETTING=visible" in log
    assert "s3cret-value" not in log
    assert "pw-value" not in log


def test_on_start_gets_the_pid_of_the_subreaper_that_holds_the_tree(tmp_path):
    started = []
    result, log = run("shell", "echo parent=$PPID\n", tmp_path, on_start=started.append)
    assert result.outcome == "succeeded"
    assert f"parent={started[0]}" in log


def test_virtual_runs_nothing_and_succeeds(tmp_path):
    started = []
    result, log = run("virtual", "", tmp_path / "never-created", on_start=started.append)
    assert result == RunResult("succeeded", None, 0.0, 0.0, "")
    assert started == []
    assert "virtual node" in log
    assert not (tmp_path / "never-created").exists()


def test_unknown_node_type_fails_without_running(tmp_path):
    result, log = run("perl", "print 1", tmp_path)
    assert (result.outcome, result.exit_code) == ("failed", None)
    assert "unknown node type 'perl'" in result.reason
    assert "unknown node type" in log


# --- timeouts, stops and whole-tree kills -------------------------------------------

# A python script whose child starts a grandchild in its own session that ignores
# SIGTERM; all three write their pids, then wait forever.
TREE_SCRIPT = """
import os, signal, subprocess, sys, time
grandchild = '''
import os, signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open("grandchild.pid", "w").write(f"{os.getpid()}\\\\n")
while True:
    time.sleep(1)
'''
child = '''
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", sys.argv[1]], start_new_session=True)
while True:
    time.sleep(1)
'''
proc = subprocess.Popen([sys.executable, "-c", child, grandchild])
open("child.pid", "w").write(f"{proc.pid}\\n")
print("tree started", flush=True)
while True:
    time.sleep(1)
"""


def read_pids(workdir: Path) -> list[int]:
    return [int(wait_for_file(workdir / f"{name}.pid")) for name in ("child", "grandchild")]


def test_timeout_kills_the_whole_tree_including_a_new_session_ignoring_sigterm(tmp_path):
    started = []
    # The tick records the pids as soon as they exist; the timeout does the killing.
    pids: list[int] = []

    def tick() -> bool:
        if not pids and (tmp_path / "grandchild.pid").exists():
            pids.extend(read_pids(tmp_path))
        return False

    result, log = run(
        "python", TREE_SCRIPT, tmp_path, timeout=3, tick=tick, on_start=started.append
    )
    assert result.outcome == "timed_out"
    assert result.reason == "timed out after 3s"
    assert result.exit_code == -15  # the root died of SIGTERM
    assert len(pids) == 2, "the tree never started within the timeout"
    child, grandchild = pids
    assert gone(started[0]) and gone(child) and gone(grandchild)
    assert "tree started" in log
    assert "timed out after 3s: killing process tree (pids " in log
    kill_line = next(line for line in log.splitlines() if "killing process tree" in line)
    assert str(child) in kill_line and str(grandchild) in kill_line
    # Only the grandchild ignored SIGTERM, so only it needed SIGKILL.
    sigkill_line = next(line for line in log.splitlines() if "SIGKILL" in line)
    assert f"(pids {grandchild})" in sigkill_line


def test_timeout_finds_a_grandchild_whose_parent_already_exited(tmp_path):
    # The middle process exits at once: the grandchild is re-parented away from the tree.
    script = (
        "setsid -f bash -c 'trap \"\" TERM; echo $$ > orphan.pid; while true; do sleep 0.2; done'\n"
        "while true; do sleep 0.2; done\n"
    )
    result, log = run("shell", script, tmp_path, timeout=2)
    orphan = int(wait_for_file(tmp_path / "orphan.pid"))
    assert result.outcome == "timed_out"
    assert gone(orphan)
    assert str(orphan) in next(line for line in log.splitlines() if "SIGKILL" in line)


def test_tick_returning_true_stops_the_tree(tmp_path):
    pids: list[int] = []

    def tick() -> bool:
        if (tmp_path / "grandchild.pid").exists():
            pids.extend(read_pids(tmp_path))
            return True
        return False

    result, log = run("python", TREE_SCRIPT, tmp_path, timeout=None, tick=tick)
    assert result.outcome == "stopped"
    assert result.reason == "stopped"
    assert all(gone(pid) for pid in pids)
    assert "stop requested: killing process tree" in log


def test_background_processes_left_by_a_finished_script_are_killed(tmp_path):
    result, log = run("shell", "sleep 300 &\necho $! > bg.pid\necho done\n", tmp_path)
    background = int(wait_for_file(tmp_path / "bg.pid"))
    assert result.outcome == "succeeded"
    assert gone(background)
    assert f"killing leftover processes (pids {background})" in log


def test_a_failing_log_callback_still_kills_the_tree(tmp_path):
    def log(text: str) -> None:
        if "ready" in text:
            raise RuntimeError("log storage is down")

    request = RunRequest(
        "shell", "sleep 300 &\necho $! > bg.pid\necho ready\nwait\n", None, None, {}, tmp_path
    )
    with pytest.raises(RuntimeError, match="log storage is down"):
        execute(request, log=log, tick=lambda: False, kill_grace_seconds=GRACE)
    assert gone(int(wait_for_file(tmp_path / "bg.pid")))


# --- measurements -------------------------------------------------------------------


def test_cpu_seconds_of_a_busy_loop(tmp_path):
    script = "import time\nwhile time.process_time() < 0.5:\n    pass\n"
    result, _ = run("python", script, tmp_path)
    assert result.outcome == "succeeded"
    assert result.cpu_seconds >= 0.5


def test_cpu_seconds_of_a_killed_tree_include_the_busy_grandchild(tmp_path):
    # The grandchild burns CPU in its own session; the stop comes once it has used 0.5 s.
    script = (
        f"setsid {sys.executable} -c 'import os, time\n"
        'open("busy.pid", "w").write(f"{os.getpid()}\\n")\n'
        "while True: pass' &\n"
        "wait\n"
    )

    def tick() -> bool:
        path = tmp_path / "busy.pid"
        if not path.exists() or not path.read_text().endswith("\n"):
            return False
        times = psutil.Process(int(path.read_text())).cpu_times()
        return times.user + times.system >= 0.5

    result, _ = run("shell", script, tmp_path, timeout=None, tick=tick)
    assert result.outcome == "stopped"
    assert result.cpu_seconds >= 0.4  # sampled up to one poll before the stop


def test_peak_memory_of_a_process_allocating_100_mb(tmp_path):
    # The script holds 100 MB until the executor has sampled it (told through a file).
    script = (
        "import os, time\n"
        "block = b'x' * (100 * 1024 * 1024)\n"
        "open('allocated', 'w').close()\n"
        "while not os.path.exists('release'):\n"
        "    time.sleep(0.02)\n"
    )
    ticks_since_allocated = []

    def tick() -> bool:
        if (tmp_path / "allocated").exists():
            ticks_since_allocated.append(1)
            if len(ticks_since_allocated) == 2:  # a whole sample after the allocation
                (tmp_path / "release").touch()
        return False

    result, _ = run("python", script, tmp_path, tick=tick)
    assert result.outcome == "succeeded"
    assert result.peak_memory_mb >= 80
    assert result.peak_memory_mb < 400  # the worker's own memory is not counted


# --- sql ----------------------------------------------------------------------------

SQLITE_SCRIPT = """
-- a comment-only line; then statements with ';' inside strings
create table events (id integer primary key, name text);
insert into events (name) values ('a;b'), ('c'), ('d');
update events set name = upper(name) where name <> 'a;b';
select id, name from events order by id;
"""


def test_sql_on_sqlite_logs_each_statement_and_the_final_rows(tmp_path):
    database = tmp_path / "ds.sqlite3"
    result, log = run(
        "sql", SQLITE_SCRIPT, tmp_path, datasource={"kind": "sqlite", "path": str(database)}
    )
    assert result.outcome == "succeeded", log
    assert f"connected to SQLite database {database}" in log
    assert (
        "[1/4] -- a comment-only line; then statements with ';' inside strings create table" in log
    )
    assert "[2/4] insert into events (name) values ('a;b'), ('c'), ('d');" in log
    assert "-> 3 row(s)" in log
    assert "-> 2 row(s)" in log
    assert "id\tname\n1\ta;b\n2\tC\n3\tD\n" in log
    assert "committed 4 statement(s)" in log
    with sqlite3.connect(database) as conn:
        assert conn.execute("select count(*) from events").fetchone() == (3,)


def test_sql_on_sqlite_failure_rolls_back_every_statement(tmp_path):
    database = tmp_path / "ds.sqlite3"
    script = (
        "create table t (a integer);\ninsert into t values (1);\ninsert into missing values (2);\n"
    )
    result, log = run("sql", script, tmp_path, datasource={"kind": "sqlite", "path": str(database)})
    assert (result.outcome, result.exit_code) == ("failed", 1)
    assert "ERROR in statement 3: no such table: missing" in log
    assert "rolled back" in log
    with sqlite3.connect(database) as conn:
        assert conn.execute("select name from sqlite_master where name = 't'").fetchall() == []


def test_sql_shows_only_the_first_20_rows(tmp_path):
    script = "with recursive n(i) as (select 1 union all select i + 1 from n where i < 50) select i from n;"
    result, log = run(
        "sql", script, tmp_path, datasource={"kind": "sqlite", "path": str(tmp_path / "x.db")}
    )
    assert result.outcome == "succeeded"
    assert "\n20\n" in log and "\n21\n" not in log
    assert "(only the first 20 rows are shown)" in log


def test_sql_without_datasource_fails_without_running(tmp_path):
    result, log = run("sql", "select 1", tmp_path, datasource=None)
    assert (result.outcome, result.exit_code) == ("failed", None)
    assert result.reason == "sql node has no datasource"


@pytest.fixture
def postgres_datasource():
    """A throwaway PostgreSQL database on the server the tests use, dropped afterwards."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        url = os.environ.get(
            "OPSCENTER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        )
    params = conninfo.conninfo_to_dict(url)
    password = params.pop("password", None) or "never-logged-pw-123"
    name = f"opscenter_ds_{uuid.uuid4().hex[:10]}"
    admin = conninfo.make_conninfo(**{**params, "dbname": "postgres"})
    with psycopg.connect(admin, autocommit=True, password=password) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        dsn = conninfo.make_conninfo(**{**params, "dbname": name})
        yield {"kind": "postgresql", "dsn": dsn, "password": password}, name
    finally:
        with psycopg.connect(admin, autocommit=True, password=password) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_sql_on_postgresql_runs_in_one_transaction(tmp_path, postgres_datasource):
    datasource, name = postgres_datasource
    script = (
        "create table orders (id serial primary key, amount numeric);\n"
        "insert into orders (amount) values (10), (20.5);\n"
        "select pg_sleep(0.5);\n"
        "select count(*) as n, sum(amount) as total from orders;\n"
    )
    pids: list[int] = []
    exposed: list[bool] = []

    def tick() -> bool:
        # The password never appears in the runner's argv or environment.
        try:
            proc = psutil.Process(pids[0])
            visible = " ".join(proc.cmdline()) + json.dumps(proc.environ())
        except psutil.Error:
            return False
        exposed.append(datasource["password"] in visible)
        return False

    result, log = run(
        "sql", script, tmp_path, datasource=datasource, tick=tick, on_start=pids.append
    )
    assert result.outcome == "succeeded", log
    assert f"connected to PostgreSQL database {name}" in log
    assert "n\ttotal\n2\t30.5\n" in log
    assert datasource["password"] not in log
    assert exposed and not any(exposed)
    with psycopg.connect(datasource["dsn"], password=datasource["password"]) as conn:
        assert conn.execute("select count(*) from orders").fetchone() == (2,)


def test_sql_on_postgresql_failure_rolls_back(tmp_path, postgres_datasource):
    datasource, _ = postgres_datasource
    script = "create table t (a int);\ninsert into t values (1);\nselect 1 / 0;\n"
    result, log = run("sql", script, tmp_path, datasource=datasource)
    assert (result.outcome, result.exit_code) == ("failed", 1)
    assert "ERROR in statement 3: division by zero" in log
    with psycopg.connect(datasource["dsn"], password=datasource["password"]) as conn:
        assert conn.execute("select to_regclass('public.t')").fetchone() == (None,)


def test_sql_connection_failure_is_reported(tmp_path):
    datasource = {
        "kind": "postgresql",
        "dsn": "host=127.0.0.1 port=1 dbname=x connect_timeout=2",
        "password": "pw",
    }
    result, log = run("sql", "select 1", tmp_path, datasource=datasource)
    assert result.outcome == "failed"
    assert "ERROR: could not connect:" in log


# --- http ---------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/fail":
            self.answer(500, "internal trouble")
        elif self.path == "/big":
            self.answer(200, "x" * 5000)
        else:
            self.answer(200, "hello from the server")

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        echo = {
            "body": body,
            "type": self.headers["Content-Type"],
            "token": self.headers["X-Token"],
        }
        self.answer(201, json.dumps(echo))

    def answer(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


NO_PROXY = {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}


def test_http_get_success_logs_status_and_body(tmp_path, server):
    result, log = run("http", {"url": f"{server}/hello"}, tmp_path, env=NO_PROXY)
    assert result.outcome == "succeeded", log
    assert f"GET {server}/hello" in log
    assert "-> HTTP 200 OK" in log
    assert "hello from the server" in log


def test_http_post_sends_json_body_and_headers(tmp_path, server):
    spec = {
        "url": f"{server}/run",
        "method": "post",
        "headers": {"X-Token": "t-1"},
        "body": {"date": "20261121"},
    }
    result, log = run("http", spec, tmp_path, env=NO_PROXY)
    assert result.outcome == "succeeded", log
    assert "-> HTTP 201" in log
    assert '"token": "t-1"' in log
    assert '"type": "application/json"' in log
    assert '\\"date\\": \\"20261121\\"' in log


def test_http_accepts_content_as_json_text(tmp_path, server):
    result, log = run(
        "http",
        json.dumps({"url": f"{server}/x", "method": "POST", "body": "raw"}),
        tmp_path,
        env=NO_PROXY,
    )
    assert result.outcome == "succeeded", log
    assert '"body": "raw"' in log


def test_http_non_2xx_fails(tmp_path, server):
    result, log = run("http", {"url": f"{server}/fail"}, tmp_path, env=NO_PROXY)
    assert (result.outcome, result.exit_code) == ("failed", 1)
    assert "-> HTTP 500" in log
    assert "internal trouble" in log


def test_http_body_is_logged_up_to_2000_characters(tmp_path, server):
    result, log = run("http", {"url": f"{server}/big"}, tmp_path, env=NO_PROXY)
    assert result.outcome == "succeeded"
    assert "x" * 2000 + "\n" in log
    assert "x" * 2001 not in log
    assert "(body truncated: 5000 characters" in log


def test_http_invalid_spec_fails_naming_the_field(tmp_path):
    result, log = run("http", {"method": "GET"}, tmp_path)
    assert (result.outcome, result.exit_code) == ("failed", 2)
    assert "invalid http request: url is required" in log
    result, log = run("http", "not json", tmp_path)
    assert result.outcome == "failed"
    assert "http content is not a JSON object" in result.reason


def test_http_connection_refused_fails(tmp_path):
    result, log = run("http", {"url": "http://127.0.0.1:1/", "timeout": 5}, tmp_path, env=NO_PROXY)
    assert (result.outcome, result.exit_code) == ("failed", 1)
    assert "ERROR: request failed:" in log


def test_runner_uses_the_interpreter_of_the_worker(tmp_path):
    # The runners are started with sys.executable, the same environment as the worker.
    result, log = run("python", "import sys\nprint(sys.executable)\n", tmp_path)
    assert result.outcome == "succeeded"
    assert sys.executable in log


def test_the_process_dies_with_a_worker_killed_by_sigkill(tmp_path):
    worker_code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from apps.instances.executors import RunRequest, execute\n"
        "request = RunRequest('shell', 'echo $$ > root.pid\\nexec sleep 300\\n', None, None, {}, Path(sys.argv[1]))\n"
        "execute(request, log=lambda text: None, tick=lambda: False, kill_grace_seconds=0.5)\n"
    )
    project_root = Path(__file__).resolve().parents[2]
    worker = psutil.Popen(
        [sys.executable, "-c", worker_code, str(tmp_path)],
        cwd=project_root,
        env={**os.environ, "PYTHONPATH": str(project_root)},
    )
    root = int(wait_for_file(tmp_path / "root.pid"))
    assert not gone(root)
    worker.kill()
    worker.wait(10)
    deadline = time.monotonic() + 10
    while not gone(root) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gone(root)


def test_output_beyond_the_log_limit_is_read_but_not_kept(tmp_path, monkeypatch):
    from apps.instances.executors import process

    monkeypatch.setattr(process, "MAX_LOG_BYTES", 100_000)
    script = "import sys\nfor i in range(20000):\n    print('x' * 99)\nprint('the end', file=sys.stderr)\n"
    result, log = run("python", script, tmp_path)
    assert result.outcome == "succeeded"
    assert 100_000 <= len(log) < 200_000
    assert "[opscenter] log truncated: output beyond 100000 bytes not kept" in log
    assert "the end" not in log


def test_a_worker_ignoring_sigchld_gets_a_failure_not_a_crash(tmp_path):
    # With SIGCHLD ignored the kernel reaps children itself and the exit status is lost.
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        result, log = run("shell", "echo still-ran\n", tmp_path)
    finally:
        signal.signal(signal.SIGCHLD, previous)
    assert (result.outcome, result.exit_code, result.reason) == ("failed", None, "exit status lost")
    assert "still-ran" in log
