"""The subreaper of one attempt: every process the attempt starts lives and dies under it.

The worker starts it for each command (process.run_command) as
`python -I subreaper.py TAG`, with an empty environment, its stdin a control pipe from the
worker and its stdout the attempt's log pipe. The first line on the control pipe is the
command as JSON: {"argv", "cwd", "env", "stdin" (text or null), "user" (null, or
{"name", "uid", "gid", "home"}), "grace", "parent"}. It then:

- becomes the child subreaper (PR_SET_CHILD_SUBREAPER): whatever the command starts and
  leaves behind (a `sh -c` whose parent exited, a double-forked daemon, a process in a new
  session) is re-parented to it, not to PID 1, so it can always find and kill it;
- makes itself non-dumpable, so a process of the command cannot read its memory or
  /proc files (it held the command's stdin, a datasource password for a sql node);
- starts the command in a session of its own, as `user` when given (initgroups, setgid,
  setuid before exec), with the environment given, dying with the subreaper;
- on the worker's death (the control pipe closes, or PR_SET_PDEATHSIG) SIGKILLs every
  descendant at once; on SIGTERM (stop, timeout) sends SIGTERM to every descendant,
  SIGKILL after `grace` seconds; when the command exits, kills what it left behind the
  same way and says so in the log;
- exits only once it has no child left, so while it lives the attempt may still have
  processes, and once it is gone none is left. Its exit status is the command's (killed
  by signal N: it dies of signal N).

Only the standard library: it starts in milliseconds and imports nothing of the worker.
"""

import ctypes
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
# The signal the kernel sends when the worker (our parent) dies.
WORKER_GONE_SIGNAL = signal.SIGUSR1
POLL_SECONDS = 0.05

_libc = ctypes.CDLL(None, use_errno=True)


def prctl(option: int, value: int) -> None:
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl({option}): {os.strerror(errno)}")


def note(text: str) -> None:
    """A line of opscenter's own in the attempt's log (as process.note writes them)."""
    try:
        os.write(1, f"[opscenter] {text}\n".encode())
    except OSError:
        pass  # nobody reads the log any more: the worker is gone


def descendants(root: int) -> list[int]:
    """Every living process below `root`, from /proc (parents before children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != b"Z":  # a zombie is dead already; reaping it is what remains
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, queue = [], [root]
    while queue:
        for pid in children.get(queue.pop(0), []):
            found.append(pid)
            queue.append(pid)
    return found


class Subreaper:
    def __init__(self, spec: dict):
        self.spec = spec
        self.me = os.getpid()
        self.command: subprocess.Popen | None = None
        self.status: int | None = None  # the command's wait status
        self.stop_requested = False
        self.worker_gone = False

    # --- signals and the control pipe -------------------------------------------------

    def on_sigterm(self, signum, frame) -> None:
        self.stop_requested = True

    def on_worker_gone(self, signum, frame) -> None:
        self.worker_gone = True

    def watch_control(self, timeout: float) -> None:
        """The worker keeps the control pipe open while it lives: EOF is its death."""
        if self.worker_gone:
            time.sleep(timeout)
            return
        try:
            ready, _, _ = select.select([0], [], [], timeout)
            if ready and not os.read(0, 4096):
                self.worker_gone = True
        except InterruptedError:
            pass
        except OSError:
            self.worker_gone = True

    # --- the command ------------------------------------------------------------------

    def start(self) -> None:
        spec = self.spec
        user = spec.get("user")
        me = self.me

        def in_child() -> None:
            # After the switch of user (which clears the parent-death signal).
            prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
            if os.getppid() != me:
                os._exit(1)

        kwargs = {}
        if user:
            kwargs = dict(
                user=user["uid"],
                group=user["gid"],
                extra_groups=os.getgrouplist(user["name"], user["gid"]),
            )
        self.command = subprocess.Popen(
            spec["argv"],
            cwd=spec["cwd"],
            env=spec["env"],
            stdin=subprocess.PIPE if spec.get("stdin") is not None else subprocess.DEVNULL,
            stdout=1,
            stderr=1,
            start_new_session=True,
            preexec_fn=in_child,
            **kwargs,
        )
        if spec.get("stdin") is not None:
            data = spec["stdin"].encode()
            spec["stdin"] = None
            threading.Thread(target=self.feed, args=(data,), daemon=True).start()

    def feed(self, data: bytes) -> None:
        try:
            self.command.stdin.write(data)
        except OSError:
            pass  # it died before reading; its exit status tells why
        finally:
            try:
                self.command.stdin.close()
            except OSError:
                pass

    def reap(self) -> bool:
        """Reap every exited child; True while any child is left."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return False
            if pid == 0:
                return True
            if self.command is not None and pid == self.command.pid:
                self.status = status
                self.command.returncode = os.waitstatus_to_exitcode(status)

    # --- killing ----------------------------------------------------------------------

    def signal_tree(self, sig: int) -> list[int]:
        pids = descendants(self.me)
        if self.command is not None and self.status is None:
            try:
                os.killpg(self.command.pid, sig)
            except OSError:
                pass
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        return pids

    def kill_all(self, grace: float) -> None:
        """SIGTERM every descendant, SIGKILL after `grace` (at once when the worker is
        gone), until no child is left."""
        if grace > 0 and not self.worker_gone:
            self.signal_tree(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while self.reap() and time.monotonic() < deadline and not self.worker_gone:
                self.watch_control(POLL_SECONDS)
            survivors = descendants(self.me)
            if survivors and not self.worker_gone:
                pids = ", ".join(map(str, survivors))
                note(f"still running after {grace:g}s grace: SIGKILL (pids {pids})")
        # New ones may appear while we kill: again until nothing is left.
        while self.reap():
            self.signal_tree(signal.SIGKILL)
            time.sleep(0.01)

    # --- the loop ---------------------------------------------------------------------

    def run(self) -> int:
        grace = float(self.spec.get("grace") or 0)
        while self.status is None:
            if not self.reap() and self.status is None:
                return None  # the command is gone and its status with it
            if self.status is not None:
                break
            if self.worker_gone:
                self.kill_all(0)
                return self.status
            if self.stop_requested:
                self.kill_all(grace)
                return self.status
            self.watch_control(POLL_SECONDS)
        left = descendants(self.me)
        if left:
            note(f"command exited; killing leftover processes (pids {', '.join(map(str, left))})")
            self.kill_all(grace)
        return self.status


def exit_like(status: int | None) -> None:
    """End this process the way the command ended."""
    if status is None:
        os._exit(255)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            signal.signal(sig, signal.SIG_DFL)  # SIGKILL and SIGSTOP have no handler
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [sig])
        except (OSError, ValueError):
            pass
        prctl(PR_SET_DUMPABLE, 0)  # no core file either
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(status))


def read_spec() -> dict:
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(0, 65536)
        if not chunk:
            os._exit(254)  # the worker died before saying what to run
        line += chunk
    return json.loads(line)


def main() -> None:
    signal.signal(WORKER_GONE_SIGNAL, lambda *a: None)  # until the handlers are set
    # An ignored SIGCHLD (inherited from the worker) would lose every exit status.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    prctl(PR_SET_DUMPABLE, 0)
    prctl(PR_SET_PDEATHSIG, int(WORKER_GONE_SIGNAL))
    spec = read_spec()
    if os.getppid() != spec["parent"]:
        os._exit(253)  # the worker died before the parent-death signal was set
    reaper = Subreaper(spec)
    signal.signal(signal.SIGTERM, reaper.on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(WORKER_GONE_SIGNAL, reaper.on_worker_gone)
    try:
        reaper.start()
    except OSError as exc:
        note(f"could not start {spec['argv'][0]}: {exc}")
        os._exit(127)
    status = None
    try:
        status = reaper.run()
    finally:
        # Whatever happened above, nothing of the attempt outlives us.
        reaper.worker_gone = True
        reaper.kill_all(0)
        sys.stdout.flush()
    exit_like(status if status is not None else reaper.status)


if __name__ == "__main__":
    main()
