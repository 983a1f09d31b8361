"""Run one command as a supervised process tree.

The command runs under a subreaper of its own (subreaper.py, one small process per
command): every process it starts stays below it, even one whose parent exited or that
started a session of its own, and it all dies with the worker (the subreaper notices at
once: its control pipe closes, or the kernel's parent-death signal). The subreaper is
started with an empty environment and gets the command (its environment, its stdin, the
OS user to run as) on its control pipe; it exits only when no process of the command is
left. While it runs, one loop on the caller's thread reads the merged output, hands
complete lines to `log`, samples the whole tree with psutil (memory, CPU), enforces the
timeout and asks `tick` whether to stop. Everything happens on the caller's thread, so
`log` and `tick` may use the database.

Killing is always of the whole tree: the subreaper gets SIGTERM and sends it on to every
process below it, SIGKILL after the grace period, and exits when all are gone. Should it
not (killed from outside), the worker kills every descendant it saw and every process
still carrying the run's environment marker. Leftover background processes of a command
that exited are killed the same way, so an attempt never leaves anything running.

With settings.OPSCENTER_RUN_AS the command runs as that unprivileged OS user (the worker
must be root): the work directory is handed to it, and the worker's processes, whose
environment holds its secrets, are root's and unreadable to the command.
"""

import codecs
import json
import os
import pwd
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from .base import FAILED, STOPPED, SUCCEEDED, TIMED_OUT, RunResult

POLL_SECONDS = 0.2
# Output beyond this is read (so the process never blocks) but not stored.
MAX_LOG_BYTES = 20 * 1024 * 1024
# A line longer than this is handed to `log` in pieces.
MAX_PENDING_CHARS = 64 * 1024
# Every process of one run carries OPSCENTER_RUN_ID=<uuid>, to find escaped descendants.
RUN_MARKER = "OPSCENTER_RUN_ID"

_STATUS_LOST = -1  # never a real wait status
MIB = 1024 * 1024
SUBREAPER = Path(__file__).with_name("subreaper.py")
# How long the subreaper may take beyond the grace period to be done with the tree.
SUBREAPER_MARGIN_SECONDS = 5.0


@dataclass(frozen=True)
class Command:
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    stdin: bytes | None = None  # written then closed; None: /dev/null


@dataclass(frozen=True)
class RunAs:
    """The unprivileged OS user commands run as (settings.OPSCENTER_RUN_AS)."""

    name: str
    uid: int
    gid: int
    home: str


class RunAsRefused(Exception):
    """OPSCENTER_RUN_AS names a user commands cannot be run as from this process."""


def run_as(name: str | None = None) -> RunAs | None:
    """The user to run commands as: `name`, else settings.OPSCENTER_RUN_AS; None to run
    them as this process's own user. Refuses an unknown user, root, and a worker that
    cannot switch user (not root)."""
    if name is None:
        from django.conf import settings

        name = settings.OPSCENTER_RUN_AS
    if not name:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise RunAsRefused(f"OPSCENTER_RUN_AS: there is no OS user {name!r}") from None
    if entry.pw_uid == 0:
        raise RunAsRefused(f"OPSCENTER_RUN_AS: {name!r} is root; name an unprivileged user")
    if entry.pw_uid == os.geteuid():
        return None  # already that user
    if os.geteuid() != 0:
        raise RunAsRefused(
            f"OPSCENTER_RUN_AS={name}: the worker runs as uid {os.geteuid()}, not root, "
            "so it cannot run commands as another user; start the workers as root or "
            "unset OPSCENTER_RUN_AS"
        )
    return RunAs(name=name, uid=entry.pw_uid, gid=entry.pw_gid, home=entry.pw_dir)


def _hand_over(directory: Path, user: RunAs) -> None:
    """The command's work directory (and the script in it) belongs to its user."""
    for root, dirs, files in os.walk(directory):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), user.uid, user.gid, follow_symlinks=False)
    os.chown(directory, user.uid, user.gid)
    directory.chmod(0o700)


def note(text: str) -> str:
    """A line of opscenter's own, told apart from the command's output."""
    return f"[opscenter] {text}\n"


def run_command(
    command: Command,
    *,
    timeout_seconds: float | None,
    log: Callable[[str], None],
    tick: Callable[[], bool],
    on_start: Callable[[int], None] | None = None,
    kill_grace_seconds: float | None = None,
    user: RunAs | None = None,
    tag: str = "",
    timeout_kills: bool = True,
    memory_limit_mb: int | None = None,
) -> RunResult:
    """Run `command` (as `user`) to its end. `on_start` gets the pid of its subreaper, the
    process that holds the whole tree; `tag` names the run in the subreaper's command line
    (an attempt's "attempt-<id>"), so a reaper can tell it from a process that reused its
    pid. Past `timeout_seconds` the tree is killed, unless `timeout_kills` is False (then
    the log says so and it goes on); a tree whose summed RSS passes `memory_limit_mb` is
    killed and the run fails, saying by how much."""
    if kill_grace_seconds is None:
        from django.conf import settings

        kill_grace_seconds = float(settings.OPSCENTER_KILL_GRACE_SECONDS)
    marker = uuid.uuid4().hex
    env = {**command.env, RUN_MARKER: marker}
    if user is not None:
        env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
    spec = {
        "argv": command.argv,
        "cwd": str(command.cwd),
        "env": env,
        "stdin": command.stdin.decode() if command.stdin is not None else None,
        "user": user.__dict__ if user is not None else None,
        "grace": kill_grace_seconds,
        "parent": os.getpid(),
    }
    try:
        if user is not None:
            _hand_over(Path(command.cwd), user)
        proc = subprocess.Popen(
            [sys.executable, "-I", str(SUBREAPER), tag or marker],
            cwd="/",
            env={},  # nothing of the worker's: a command may read its parent's environment
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        log(note(f"could not start {command.argv[0]}: {exc}"))
        return RunResult(FAILED, None, 0.0, 0.0, f"could not start: {exc}")
    run = _Run(proc, marker, log, kill_grace_seconds)
    try:
        if on_start is not None:
            on_start(proc.pid)
        run.send_spec(spec)
        return run.supervise(
            timeout_seconds, tick, timeout_kills=timeout_kills, memory_limit_mb=memory_limit_mb
        )
    except BaseException:
        # A failing callback (or an interrupt) must never leave the tree running; the
        # callbacks may be what failed, so the clean-up no longer calls them.
        run.log = _discard
        run.kill_tree(tick=None)
        run.reap(block=True)
        raise
    finally:
        run.close()


class _Run:
    def __init__(self, proc: subprocess.Popen, marker: str, log, grace: float):
        self.proc = proc
        self.marker = marker
        self.log = log
        self.grace = grace
        self.pgid = proc.pid  # start_new_session: the child leads its own group
        self.fd = proc.stdout.fileno()
        self.eof = False
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""
        self.logged_bytes = 0
        self.truncated = False
        self.status: int | None = None  # exit status once reaped
        self.rusage = None
        self.seen: dict[int, psutil.Process] = {}
        self.cpu_by_process: dict[tuple[int, float], float] = {}
        self.peak_rss = 0
        self.current_rss = 0  # the tree's summed RSS at the last sample
        try:
            self.root = psutil.Process(proc.pid)
            self.seen[proc.pid] = self.root
        except psutil.Error:
            self.root = None

    # --- the loop -------------------------------------------------------------------

    def supervise(
        self,
        timeout_seconds: float | None,
        tick: Callable[[], bool],
        *,
        timeout_kills: bool = True,
        memory_limit_mb: int | None = None,
    ) -> RunResult:
        started = time.monotonic()
        limit = timeout_seconds if timeout_seconds and timeout_seconds > 0 else None
        memory_limit = memory_limit_mb * MIB if memory_limit_mb else None
        next_check = started
        outcome, reason, killed_for = None, "", ""
        overtime_noted = False
        while not self.reap():
            self.pump(until=next_check)
            now = time.monotonic()
            if now < next_check or self.reap():
                continue
            self.sample()
            if memory_limit is not None and self.current_rss > memory_limit:
                used = self.current_rss / MIB
                outcome, killed_for = FAILED, "memory"
                reason = f"killed: memory {used:.0f} MB over its {memory_limit_mb} MB allocation"
                self.flush(note(f"{reason}: killing process tree (pids {self.pids_text()})"))
                self.kill_tree(tick)
                break
            if limit is not None and now - started >= limit:
                if not timeout_kills:
                    if not overtime_noted:
                        overtime_noted = True
                        self.flush(
                            note(
                                f"running past its timeout of {limit:g}s; timeout_action "
                                "alert_only: it goes on, and a running_longer alert is raised"
                            )
                        )
                else:
                    outcome, reason, killed_for = (
                        TIMED_OUT,
                        f"timed out after {limit:g}s",
                        "timeout",
                    )
                    self.flush(note(f"{reason}: killing process tree (pids {self.pids_text()})"))
                    self.kill_tree(tick)
                    break
            if tick():
                outcome, reason = STOPPED, "stopped"
                self.flush(note(f"stop requested: killing process tree (pids {self.pids_text()})"))
                self.kill_tree(tick)
                break
            next_check = now + POLL_SECONDS
        self.reap(block=True)
        if outcome is None:
            # The subreaper killed what the command left behind; only something it did not
            # see (it was killed from outside) can be left.
            leftovers = [p for p in self.collect() if p.pid != self.proc.pid]
            if leftovers:
                pids = ", ".join(str(p.pid) for p in leftovers)
                self.flush(note(f"command exited; killing leftover processes (pids {pids})"))
                self.kill_tree(tick)
        self.drain_output()
        exit_code = self.exit_code()
        if outcome is None:
            if exit_code == 0:
                outcome = SUCCEEDED
            elif exit_code is None:
                outcome, reason = FAILED, "exit status lost"
            elif exit_code < 0:
                outcome, reason = FAILED, f"killed by signal {_signal_name(-exit_code)}"
            else:
                outcome, reason = FAILED, f"exited with code {exit_code}"
            self.flush(note(f"{outcome}: {reason}" if reason else "exited with code 0"))
        else:
            self.flush(note(f"{outcome.replace('_', ' ')}; exit status {exit_code}"))
        return RunResult(
            outcome, exit_code, self.cpu_seconds(), self.peak_memory_mb(), reason, killed_for
        )

    def send_spec(self, spec: dict) -> None:
        """The command, on the subreaper's control pipe; the pipe then stays open: its
        closing (this process's death) tells the subreaper to kill everything."""
        try:
            self.proc.stdin.write(json.dumps(spec).encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # it died at once; its exit status tells why

    def reap(self, block: bool = False) -> bool:
        """True once the root process has exited; keeps its status and rusage."""
        if self.status is None:
            try:
                pid, status, rusage = os.wait4(self.proc.pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                # Reaped by someone else (SIGCHLD ignored in this process): status lost.
                pid, status, rusage = self.proc.pid, _STATUS_LOST, None
            if pid:
                self.status, self.rusage = status, rusage
                # Tell Popen, so it neither waits again nor warns that it is still running.
                self.proc.returncode = self.exit_code()
        return self.status is not None

    def exit_code(self) -> int | None:
        if self.status is None or self.status == _STATUS_LOST:
            return None
        return os.waitstatus_to_exitcode(self.status)

    # --- output ---------------------------------------------------------------------

    def pump(self, until: float) -> None:
        """Read output until `until` (monotonic) or the first chunk, whichever is first."""
        remaining = max(0.0, until - time.monotonic())
        if self.eof:
            time.sleep(min(remaining, 0.05))
            return
        ready, _, _ = select.select([self.fd], [], [], remaining)
        if ready:
            self.read_chunk()

    def read_chunk(self) -> None:
        data = os.read(self.fd, 65536)
        if not data:
            self.eof = True
            self.pending += self.decoder.decode(b"", final=True)
            return
        if self.logged_bytes >= MAX_LOG_BYTES:
            if not self.truncated:
                self.truncated = True
                self.flush(note(f"log truncated: output beyond {MAX_LOG_BYTES} bytes not kept"))
            return
        self.logged_bytes += len(data)
        self.pending += self.decoder.decode(data)
        if len(self.pending) >= MAX_PENDING_CHARS or "\n" in self.pending:
            self.flush_lines()

    def flush_lines(self) -> None:
        """Hand complete lines to `log`; a partial line waits for its end (unless huge)."""
        cut = self.pending.rfind("\n") + 1
        if cut == 0 and len(self.pending) >= MAX_PENDING_CHARS:
            cut = len(self.pending)
        if cut:
            text, self.pending = self.pending[:cut], self.pending[cut:]
            self.log(text)

    def flush(self, own_line: str = "") -> None:
        """Hand over everything read so far, then (optionally) a line of our own."""
        text = self.pending
        if text and not text.endswith("\n"):
            text += "\n"
        self.pending = ""
        if text or own_line:
            self.log(text + own_line)

    def drain_output(self) -> None:
        """Read what is left in the pipe; give up shortly if something escaped still holds it."""
        deadline = time.monotonic() + 1.0
        while not self.eof and time.monotonic() < deadline:
            self.pump(until=deadline)

    # --- the tree -------------------------------------------------------------------

    def sample(self) -> None:
        rss = 0
        for proc in self.tree():
            if proc.pid == self.proc.pid:
                continue  # the subreaper: not the command's memory or CPU
            try:
                with proc.oneshot():
                    memory = proc.memory_info().rss
                    times = proc.cpu_times()
            except psutil.Error:
                continue
            rss += memory
            self.cpu_by_process[(proc.pid, proc.create_time())] = times.user + times.system
            # A process's own high-water mark catches a spike between two samples.
            self.peak_rss = max(self.peak_rss, _high_water_rss(proc.pid))
        self.current_rss = rss
        self.peak_rss = max(self.peak_rss, rss)

    def tree(self) -> list[psutil.Process]:
        """The root, its descendants now, and every descendant seen before still alive."""
        found: dict[int, psutil.Process] = {}
        if self.root is not None and self.status is None:
            found[self.root.pid] = self.root
            try:
                for child in self.root.children(recursive=True):
                    found.setdefault(child.pid, child)
            except psutil.Error:
                pass
        for pid, proc in list(self.seen.items()):
            if pid not in found:
                if _alive(proc):
                    found[pid] = proc
                else:
                    del self.seen[pid]
        self.seen.update(found)
        return list(found.values())

    def collect(self) -> list[psutil.Process]:
        """tree() plus any process carrying this run's marker (escaped, re-parented)."""
        procs = {p.pid: p for p in self.tree() if _alive(p)}
        me = os.getpid()
        for proc in psutil.process_iter():
            if proc.pid in procs or proc.pid == me:
                continue
            try:
                if proc.environ().get(RUN_MARKER) == self.marker and _alive(proc):
                    procs[proc.pid] = proc
            except psutil.Error:
                continue
        self.seen.update(procs)
        return list(procs.values())

    def pids_text(self) -> str:
        return ", ".join(str(p.pid) for p in self.collect()) or str(self.proc.pid)

    def kill_tree(self, tick: Callable[[], bool] | None) -> None:
        """SIGTERM the whole tree, SIGKILL what is left after the grace period. The
        subreaper does it and exits when nothing is left; should it not, every process
        still seen (or carrying the marker) gets SIGKILL from here."""
        if not self.reap():
            try:
                self.proc.send_signal(signal.SIGTERM)
            except OSError:
                pass
            deadline = time.monotonic() + self.grace + SUBREAPER_MARGIN_SECONDS
            next_tick = time.monotonic() + POLL_SECONDS
            while not self.reap() and time.monotonic() < deadline:
                self.pump(until=min(deadline, time.monotonic() + 0.05))
                if tick is not None and time.monotonic() >= next_tick:
                    tick()  # keeps the heartbeat going; we are stopping already
                    next_tick = time.monotonic() + POLL_SECONDS
        survivors = [p for p in self.collect() if p.pid != self.proc.pid or not self.reap()]
        if survivors:
            pids = ", ".join(str(p.pid) for p in survivors)
            self.flush(note(f"still running after {self.grace:g}s grace: SIGKILL (pids {pids})"))
            self.signal_all(survivors, signal.SIGKILL)
            # SIGKILL cannot be refused, but dying takes a moment; be done only when dead.
            deadline = time.monotonic() + 5
            while any(_alive(p) for p in survivors) and time.monotonic() < deadline:
                self.pump(until=time.monotonic() + 0.02)
                self.reap()

    def signal_all(self, procs: list[psutil.Process], sig: int) -> None:
        if self.status is None:
            try:
                os.killpg(self.pgid, sig)
            except OSError:
                pass
        for proc in procs:
            try:
                proc.send_signal(sig)  # psutil refuses if the pid was reused
            except psutil.Error:
                pass

    # --- measurements ---------------------------------------------------------------

    def cpu_seconds(self) -> float:
        # rusage covers the root and every descendant it waited for, to the end; the
        # samples also cover descendants nobody waited for (killed, re-parented), up
        # to the last sample. Neither alone is complete; the larger is the better guess.
        waited = self.rusage.ru_utime + self.rusage.ru_stime if self.rusage else 0.0
        return round(max(waited, sum(self.cpu_by_process.values())), 3)

    def peak_memory_mb(self) -> float:
        # Not ru_maxrss: the kernel carries the forking worker's own RSS into it.
        return round(self.peak_rss / 1024 / 1024, 1)

    def close(self) -> None:
        for stream in (self.proc.stdout, self.proc.stdin):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


def _discard(text: str) -> None:
    pass


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _high_water_rss(pid: int) -> int:
    """Peak RSS in bytes of the process since its exec (Linux VmHWM); 0 where unknown."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
